package bundle

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Sealed is a sealed bundle file, as its name and directory entry say.
type Sealed struct {
	// Name is the file name (xdr-20250102T030405.678Z-000042.crit.gpbz),
	// Path the directory joined with it.
	Name, Path string
	// Size is the file size when listed.
	Size int64
	// Time is the creation time in the name, Seq the sequence number.
	Time time.Time
	Seq  uint64
	// Critical is set for a name with the critical mark (CritExt).
	Critical bool
}

// ListSealed returns the sealed bundles (Ext and CritExt, regular files
// only) whose names start with prefix in dir, in creation order: by the
// time in the name, then the seq. An empty prefix selects the Writer's
// default. Open (PartExt) and set-aside (CorruptExt) bundles, symbolic
// links and other files are left out; so is a file removed while the
// directory is read, as by a quota pass running at the same time.
func ListSealed(dir, prefix string) ([]Sealed, error) {
	prefix = cmp.Or(prefix, defaultPrefix)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list bundle directory: %w", err)
	}
	var files []Sealed
	for _, e := range entries {
		n, ok := parseName(prefix, e.Name())
		if !ok || n.state != stateSealed || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("stat bundle: %w", err)
		}
		files = append(files, Sealed{
			Name: e.Name(), Path: filepath.Join(dir, e.Name()), Size: fi.Size(),
			Time: n.t, Seq: n.seq, Critical: n.critical,
		})
	}
	slices.SortFunc(files, func(a, b Sealed) int {
		return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.Seq, b.Seq))
	})
	return files, nil
}
