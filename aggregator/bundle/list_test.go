package bundle

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestListSealed(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"xdr-20250304T050607.891Z-000003.gpbz":         "ccc",
		"xdr-20250304T050607.890Z-000002.crit.gpbz":    "bb",
		"xdr-20250304T050607.889Z-000001.gpbz":         "a",
		"xdr-20250304T050607.892Z-000004.gpbz.part":    "open",
		"xdr-20250304T050607.893Z-000005.gpbz.corrupt": "set aside",
		"other-20250304T050607.894Z-000006.gpbz":       "other prefix",
		"xdr-bad-000007.gpbz":                          "bad time",
		"agent_guid":                                   "not a bundle",
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Not regular files: a directory and a symbolic link with bundle names.
	if err := os.Mkdir(filepath.Join(dir, "xdr-20250304T050607.895Z-000008.gpbz"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "xdr-20250304T050607.896Z-000009.gpbz")); err != nil {
		t.Fatal(err)
	}
	at := func(ms int) time.Time { return time.Date(2025, 3, 4, 5, 6, 7, ms*int(time.Millisecond), time.UTC) }
	sealed := func(name string, size int64, ms int, seq uint64, crit bool) Sealed {
		return Sealed{Name: name, Path: filepath.Join(dir, name), Size: size, Time: at(ms), Seq: seq, Critical: crit}
	}

	tests := []struct {
		name, prefix string
		want         []Sealed
	}{
		{"default prefix", "", []Sealed{
			sealed("xdr-20250304T050607.889Z-000001.gpbz", 1, 889, 1, false),
			sealed("xdr-20250304T050607.890Z-000002.crit.gpbz", 2, 890, 2, true),
			sealed("xdr-20250304T050607.891Z-000003.gpbz", 3, 891, 3, false),
		}},
		{"explicit prefix", "other", []Sealed{
			sealed("other-20250304T050607.894Z-000006.gpbz", 12, 894, 6, false),
		}},
		{"no match", "none", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ListSealed(dir, tt.prefix)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ListSealed (-want +got):\n%s", diff)
			}
		})
	}
}

func TestListSealedOrderAcrossSeqRestart(t *testing.T) {
	// Seq restarts lower when every bundle was deleted; the time in the
	// name still orders the bundles.
	dir := t.TempDir()
	names := []string{"xdr-20250304T050607.900Z-000001.gpbz", "xdr-20250304T050607.800Z-000042.gpbz", "xdr-20250304T050607.800Z-000041.gpbz"}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ListSealed(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	var gotNames []string
	for _, s := range got {
		gotNames = append(gotNames, s.Name)
	}
	want := []string{names[2], names[1], names[0]}
	if diff := cmp.Diff(want, gotNames); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
}

func TestListSealedMissingDir(t *testing.T) {
	if _, err := ListSealed(filepath.Join(t.TempDir(), "missing"), ""); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ListSealed of a missing directory = %v, want a not-exist error", err)
	}
}

func TestListSealedWriterBundles(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	w, err := NewWriter(&WriterOptions{Dir: dir, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := w.Write(testEvent(uint64(i))); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			w.MarkCritical()
		}
		c.Advance(time.Second)
		if err := w.Rotate(); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Write(testEvent(3)); err != nil { // stays open
		t.Fatal(err)
	}
	got, err := ListSealed(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	var crit []bool
	for i, s := range got {
		crit = append(crit, s.Critical)
		fi, err := os.Stat(s.Path)
		if err != nil || fi.Size() != s.Size || s.Seq != uint64(i+1) {
			t.Errorf("bundle %d = %+v, stat %v %v", i, s, fi, err)
		}
	}
	if diff := cmp.Diff([]bool{false, true, false}, crit); diff != "" {
		t.Errorf("critical marks (-want +got):\n%s", diff)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}
