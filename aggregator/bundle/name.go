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

// critMark sits between the seq and the extension in the names of
// critical bundles.
const critMark = ".crit"

// fileState is the life-cycle state a bundle file name says.
type fileState int

const (
	stateSealed  fileState = iota // Ext
	statePart                     // PartExt: open, or left by a crash
	stateCorrupt                  // CorruptExt: set aside by recovery
)

var stateExts = [...]string{stateSealed: Ext, statePart: PartExt, stateCorrupt: CorruptExt}

// bundleName returns the file name, without critical mark and extension,
// of bundle seq created at t.
func bundleName(prefix string, t time.Time, seq uint64) string {
	return fmt.Sprintf("%s-%s-%06d", prefix, t.UTC().Format(nameTimeLayout), seq)
}

// fileName returns the file name of the bundle with base name base (from
// bundleName) in the given state.
func fileName(base string, critical bool, state fileState) string {
	if critical {
		return base + critMark + stateExts[state]
	}
	return base + stateExts[state]
}

// nameInfo is what a bundle file name says.
type nameInfo struct {
	base     string // name without critical mark and extension
	t        time.Time
	seq      uint64
	critical bool
	state    fileState
}

// parseName reports what a bundle file name with the given prefix says;
// ok is false for any other name.
func parseName(prefix, name string) (n nameInfo, ok bool) {
	rest, found := "", false
	for state, ext := range stateExts {
		if rest, found = strings.CutSuffix(name, ext); found {
			n.state = fileState(state)
			break
		}
	}
	if !found {
		return n, false
	}
	n.base, n.critical = strings.CutSuffix(rest, critMark)
	rest, found = strings.CutPrefix(n.base, prefix+"-")
	if !found {
		return n, false
	}
	ts, seqStr, found := strings.Cut(rest, "-")
	if !found || len(seqStr) < 6 {
		return n, false
	}
	var err error
	if n.seq, err = strconv.ParseUint(seqStr, 10, 64); err != nil {
		return n, false
	}
	if n.t, err = time.Parse(nameTimeLayout, ts); err != nil {
		return n, false
	}
	return n, true
}

// dirState is what NewWriter learns from the bundles already in its
// directory.
type dirState struct {
	lastSeq  uint64
	lastTime time.Time  // latest time in a name
	parts    []nameInfo // open bundles (.gpbz.part), left by a crash
}

func scanDir(dir, prefix string) (dirState, error) {
	var st dirState
	entries, err := os.ReadDir(dir)
	if err != nil {
		return st, fmt.Errorf("list bundle directory: %w", err)
	}
	for _, e := range entries {
		n, ok := parseName(prefix, e.Name())
		if !ok {
			continue
		}
		st.lastSeq = max(st.lastSeq, n.seq)
		if n.t.After(st.lastTime) {
			st.lastTime = n.t
		}
		if n.state == statePart && e.Type().IsRegular() {
			st.parts = append(st.parts, n)
		}
	}
	return st, nil
}
