package bundle

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// nameTimeLayout is the time part of a bundle file name.
const nameTimeLayout = "20060102T150405.000Z"

// bundleName returns the file name, without extension, of bundle seq
// created at t.
func bundleName(prefix string, t time.Time, seq uint64) string {
	return fmt.Sprintf("%s-%s-%06d", prefix, t.UTC().Format(nameTimeLayout), seq)
}

// parseName reports the time and seq of a bundle file name with the given
// prefix, sealed or open; ok is false for any other name.
func parseName(prefix, name string) (t time.Time, seq uint64, ok bool) {
	base, found := strings.CutSuffix(name, PartExt)
	if !found {
		if base, found = strings.CutSuffix(name, Ext); !found {
			return time.Time{}, 0, false
		}
	}
	rest, found := strings.CutPrefix(base, prefix+"-")
	if !found {
		return time.Time{}, 0, false
	}
	ts, seqStr, found := strings.Cut(rest, "-")
	if !found || len(seqStr) < 6 {
		return time.Time{}, 0, false
	}
	seq, err := strconv.ParseUint(seqStr, 10, 64)
	if err != nil {
		return time.Time{}, 0, false
	}
	t, err = time.Parse(nameTimeLayout, ts)
	if err != nil {
		return time.Time{}, 0, false
	}
	return t, seq, true
}

// dirState is what NewWriter learns from the bundles already in its
// directory.
type dirState struct {
	lastSeq  uint64
	lastTime time.Time // latest time in a name
	parts    int       // open bundles (.gpbz.part), left by a crash
}

func scanDir(dir, prefix string) (dirState, error) {
	var st dirState
	entries, err := os.ReadDir(dir)
	if err != nil {
		return st, fmt.Errorf("list bundle directory: %w", err)
	}
	for _, e := range entries {
		t, seq, ok := parseName(prefix, e.Name())
		if !ok {
			continue
		}
		st.lastSeq = max(st.lastSeq, seq)
		if t.After(st.lastTime) {
			st.lastTime = t
		}
		if strings.HasSuffix(e.Name(), PartExt) {
			st.parts++
		}
	}
	return st, nil
}
