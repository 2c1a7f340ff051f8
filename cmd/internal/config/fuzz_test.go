package config

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// FuzzParse checks that Parse never panics, that its errors name the
// file and line, and that every accepted file round-trips: written back
// in the accepted syntax it parses to the same keys and values, and
// writing that again gives the same bytes.
func FuzzParse(f *testing.F) {
	if ref, err := os.ReadFile(referencePath); err == nil {
		f.Add(ref)
	} else {
		f.Fatal(err)
	}
	for _, tt := range parseErrorTests {
		f.Add([]byte(tt.in))
	}
	f.Add([]byte("socket = \"/s\" # c\r\n[agent]\nqueue = -1_000\ncapture-env = true\n[aggregator]\nallow-uid = [\"0\", \"\\u00e9\\t\",]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("xdr.conf", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "xdr.conf:") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		text := encode(file.entries)
		again, err := Parse("xdr.conf", text)
		if err != nil {
			t.Fatalf("Parse of the re-encoded file: %v\ninput: %q\nencoded: %q", err, data, text)
		}
		if !sameEntries(file.entries, again.entries) {
			diff := cmp.Diff(file.entries, again.entries, cmpEntries, cmpopts.IgnoreFields(entry{}, "line"))
			t.Fatalf("entries changed by re-encoding (-first +second):\n%s", diff)
		}
		if text2 := encode(again.entries); !bytes.Equal(text, text2) {
			t.Fatalf("encoding is not deterministic:\n%q\n%q", text, text2)
		}
	})
}

// sameEntries reports whether a and b hold the same keys and values,
// whatever their lines. It is cmp.Equal without the reflection, which
// would slow the fuzzer down.
func sameEntries(a, b []entry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.section != y.section || x.key != y.key || x.val.kind != y.val.kind || x.val.str != y.val.str ||
			x.val.num != y.val.num || x.val.b != y.val.b || !slices.Equal(x.val.list, y.val.list) {
			return false
		}
	}
	return true
}

// encode writes entries back in the accepted syntax: top-level keys
// first, then each section once, in the order they come.
func encode(entries []entry) []byte {
	var b bytes.Buffer
	section := ""
	for _, e := range entries {
		if e.section != section {
			section = e.section
			fmt.Fprintf(&b, "[%s]\n", section)
		}
		fmt.Fprintf(&b, "%s = ", e.key)
		switch e.val.kind {
		case kindString:
			b.WriteString(encodeString(e.val.str))
		case kindInt:
			b.WriteString(strconv.FormatInt(e.val.num, 10))
		case kindBool:
			b.WriteString(strconv.FormatBool(e.val.b))
		case kindArray:
			b.WriteByte('[')
			for i, s := range e.val.list {
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteString(encodeString(s))
			}
			b.WriteByte(']')
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func encodeString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case isControl(r):
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
