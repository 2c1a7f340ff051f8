package mapper

import (
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/xdr-sensor/xdr/agent/proctable"
)

func TestCleanText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"héllo ✓", "héllo ✓"},
		{"a\xffb", `a\xffb`},
		{"\x80\x05", `\x80` + "\x05"},
		{"tail\xe2\x82", `tail\xe2\x82`},
	}
	for _, tt := range tests {
		got := cleanText(tt.in)
		if got != tt.want {
			t.Errorf("cleanText(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if !utf8.ValidString(got) {
			t.Errorf("cleanText(%q) is not valid UTF-8", tt.in)
		}
	}
	in := []string{"ok", "bad\xfe"}
	out := cleanList(in)
	if in[1] != "bad\xfe" || out[1] != `bad\xfe` || out[0] != "ok" {
		t.Errorf("cleanList: in %q out %q", in, out)
	}
}

// An argument that is not UTF-8 must not make the event unencodable.
func TestNonUTF8ArgvEncodes(t *testing.T) {
	m, tab := newMapper(t)
	p := *tab.Lookup(uint32(1))
	p.Argv = []string{"prog", "\xff\xfe"}
	p.Exe = "/tmp/\xc3"
	ev := m.Exec(1, proctable.ExecResult{Proc: &p})
	if _, err := proto.Marshal(ev); err != nil {
		t.Fatalf("event with non-UTF-8 argv does not encode: %v", err)
	}
	if got := ev.GetSubject().GetArgv()[1]; got != `\xff\xfe` {
		t.Errorf("argv[1] = %q", got)
	}
}
