package bundle

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// writeBundleTo writes a bundle of 20 events starting at seq into w,
// marked critical if asked, and seals it.
func writeBundleTo(t *testing.T, w *Writer, seq uint64, critical bool) {
	t.Helper()
	for i := range uint64(20) {
		if err := w.Write(testEvent(seq + i)); err != nil {
			t.Fatal(err)
		}
	}
	if critical {
		w.MarkCritical()
	}
	if err := w.Rotate(); err != nil {
		t.Fatal(err)
	}
}

// bundleSize returns the size of a sealed bundle of 20 events.
func bundleSize(t *testing.T) int64 {
	t.Helper()
	w, err := NewWriter(&WriterOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var size int64
	w.OnSeal(func(path string) {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		size = fi.Size()
	})
	writeBundleTo(t, w, 1, false)
	return size
}

// seqOf returns the seq in a bundle path's name.
func seqOf(t *testing.T, path string) uint64 {
	t.Helper()
	n, ok := parseName("xdr", filepath.Base(path))
	if !ok {
		t.Fatalf("bad bundle name %s", path)
	}
	return n.seq
}

func TestQuota(t *testing.T) {
	size := bundleSize(t)
	// Room for three bundles of about the same size, not four.
	maxDir := size*7/2 + 1
	dir := t.TempDir()
	var logs bytes.Buffer
	w, err := NewWriter(&WriterOptions{Dir: dir, MaxBytes: size, MaxDirBytes: maxDir, Now: newClock().Now, Logger: newTextLogger(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	var deleted []uint64
	var deletedBytes int64
	sizes := map[string]int64{}
	w.OnSeal(func(path string) {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		sizes[path] = fi.Size()
	})
	w.OnDelete(func(path string) {
		deleted = append(deleted, seqOf(t, path))
		deletedBytes += sizes[path]
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("OnDelete(%s) before the file is gone: %v", path, err)
		}
	})
	critical := map[uint64]bool{2: true, 5: true, 9: true, 10: true}
	for seq := uint64(1); seq <= 10; seq++ {
		writeBundleTo(t, w, seq*100, critical[seq])
	}
	// Non-critical bundles go oldest first; critical ones only when no
	// other is left.
	if d := cmp.Diff([]uint64{1, 3, 4, 6, 7, 8, 2}, deleted); d != "" {
		t.Errorf("deleted bundles (-want +got):\n%s", d)
	}
	var left []string
	for _, f := range listBundles(t, dir, Ext) {
		left = append(left, filepath.Base(f))
	}
	wantLeft := []string{
		"xdr-20250304T050607.895Z-000005.crit.gpbz",
		"xdr-20250304T050607.899Z-000009.crit.gpbz",
		"xdr-20250304T050607.900Z-000010.crit.gpbz",
	}
	if d := cmp.Diff(wantLeft, left); d != "" {
		t.Errorf("bundles left (-want +got):\n%s", d)
	}
	st := w.Stats()
	if st.QuotaDeleted != 7 || st.QuotaDeletedBytes != uint64(deletedBytes) || st.Sealed != 10 {
		t.Errorf("stats %+v, want 10 sealed, 7 deleted of %d bytes", st, deletedBytes)
	}
	if got := strings.Count(logs.String(), `level=INFO msg="bundle deleted"`); got != 7 {
		t.Errorf("%d deletions logged at info, want 7:\n%s", got, logs.String())
	}

	// The open bundle is never deleted, even when nothing else is left.
	if err := w.Write(testEvent(2000)); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	w.maxDirBytes = 1
	w.enforceQuota()
	if err := w.takeErr(); err != nil {
		t.Fatal(err)
	}
	if files := listBundles(t, dir, Ext); len(files) != 0 {
		t.Errorf("bundles %v left, want all deleted", files)
	}
	if parts := listBundles(t, dir, PartExt); len(parts) != 1 {
		t.Fatalf("open bundle gone: %v", parts)
	}
	w.maxDirBytes = maxDir
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if files := listBundles(t, dir, Ext); len(files) != 1 || cmp.Diff([]uint64{2000}, eventSeqs(mustReadRecords(t, files[0]))) != "" {
		t.Errorf("bundles %v, want the one that was open", files)
	}
}

// TestQuotaAtStart checks that NewWriter applies the quota to the bundles
// already in the directory, after recovering unsealed ones.
func TestQuotaAtStart(t *testing.T) {
	dir := t.TempDir()
	w, err := NewWriter(&WriterOptions{Dir: dir, Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	w.OnSeal(func(path string) {
		fi, _ := os.Stat(path)
		total += fi.Size()
	})
	for seq := uint64(1); seq <= 4; seq++ {
		writeBundleTo(t, w, seq*100, seq == 1)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	crashed := writeCrashed(t, dir, 20, false)
	size := bundleSize(t)

	w, err = NewWriter(&WriterOptions{Dir: dir, MaxBytes: size, MaxDirBytes: total - size/2})
	if err != nil {
		t.Fatal(err)
	}
	st := w.Stats()
	if st.Recovered != 1 || st.QuotaDeleted != 2 {
		t.Errorf("stats %+v, want 1 recovered, 2 deleted", st)
	}
	var seqs []uint64
	for _, f := range listBundles(t, dir, Ext) {
		seqs = append(seqs, seqOf(t, f))
	}
	// The recovered bundle 5 counts; 2 and 3 go, critical 1 stays.
	if d := cmp.Diff([]uint64{1, 4, 5}, seqs); d != "" {
		t.Errorf("bundles left (-want +got):\n%s (recovered %s)", d, crashed.path)
	}
}

func TestQuotaOptions(t *testing.T) {
	for _, o := range []WriterOptions{{MaxDirBytes: -1}, {MaxBytes: 1 << 20, MaxDirBytes: 1<<20 - 1}} {
		o.Dir = t.TempDir()
		if _, err := NewWriter(&o); err == nil {
			t.Errorf("NewWriter accepted MaxBytes %d, MaxDirBytes %d", o.MaxBytes, o.MaxDirBytes)
		}
	}
}

// TestQuotaDiskFull checks that a write failing for lack of space deletes
// the oldest non-critical bundles and is tried again, and that critical
// bundles are not deleted for it.
func TestQuotaDiskFull(t *testing.T) {
	disk := &fakeDisk{free: plenty}
	w, dir := newFailWriter(t, disk)
	w.maxDirBytes = 1 << 30
	sizes := map[string]int64{}
	w.OnSeal(func(path string) {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		sizes[path] = fi.Size()
	})
	var deleted []uint64
	w.OnDelete(func(path string) {
		deleted = append(deleted, seqOf(t, path))
		disk.free += sizes[path]
	})
	for seq := uint64(1); seq <= 5; seq++ {
		writeBundleTo(t, w, seq*100, seq == 1 || seq == 4)
	}
	w.maxBytes = sizes[listBundles(t, dir, Ext)[0]] * 3 / 2 // frees two bundles at a time

	// Full disk: bundles 2 and 3 make room, nothing is lost.
	disk.free = 100
	if err := writeEvents(t, w, 600, 610); err != nil {
		t.Fatalf("write on full disk with bundles to delete: %v", err)
	}
	if d := cmp.Diff([]uint64{2, 3}, deleted); d != "" {
		t.Errorf("deleted (-want +got):\n%s", d)
	}
	// Then bundle 5, the last non-critical one.
	disk.free = 100
	if err := writeEvents(t, w, 610, 620); err != nil {
		t.Fatalf("write on full disk with a bundle to delete: %v", err)
	}
	// Only critical bundles are left: the write fails, its records are
	// counted as lost.
	disk.free = 100
	checkWriteError(t, writeEvents(t, w, 620, 630), 10, syscall.ENOSPC)
	if d := cmp.Diff([]uint64{2, 3, 5}, deleted); d != "" {
		t.Errorf("deleted (-want +got):\n%s", d)
	}
	st := w.Stats()
	if st.Lost != 10 || st.WriteErrors != 1 || st.QuotaDeleted != 3 {
		t.Errorf("stats %+v, want 10 lost, 1 write error, 3 deleted", st)
	}
	disk.free = plenty
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var left []uint64
	for _, f := range listBundles(t, dir, Ext) {
		left = append(left, seqOf(t, f))
	}
	if d := cmp.Diff([]uint64{1, 4, 6}, left); d != "" {
		t.Errorf("bundles left (-want +got):\n%s", d)
	}
	if d := cmp.Diff(seqRange(600, 620), eventSeqs(mustReadRecords(t, listBundles(t, dir, Ext)[2]))); d != "" {
		t.Errorf("events of the bundle written on a full disk (-want +got):\n%s", d)
	}
}

// TestQuotaCreateDiskFull checks that creating a bundle file on a full
// disk makes room too.
func TestQuotaCreateDiskFull(t *testing.T) {
	dir := t.TempDir()
	w, err := NewWriter(&WriterOptions{Dir: dir, MaxDirBytes: 1 << 30, Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	writeBundleTo(t, w, 100, false)
	full := true
	w.create = func(path string) (file, error) {
		if full && len(listBundles(t, dir, Ext)) > 0 {
			return nil, &os.PathError{Op: "open", Path: path, Err: syscall.ENOSPC}
		}
		return createFile(path)
	}
	if err := w.Write(testEvent(1)); err != nil {
		t.Fatalf("write: %v", err)
	}
	if st := w.Stats(); st.QuotaDeleted != 1 || st.Lost != 0 {
		t.Errorf("stats %+v, want 1 deleted, none lost", st)
	}
	full = false
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}
