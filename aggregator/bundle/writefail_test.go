package bundle

import (
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeDisk makes the files of a Writer fail like a full or broken disk.
type fakeDisk struct {
	free         int64 // bytes that can still be written
	failCreate   bool
	failTruncate bool
	failSync     bool
}

// diskFile is a real file whose writes fail once the disk is full.
type diskFile struct {
	*os.File
	disk *fakeDisk
}

func (f *diskFile) WriteAt(p []byte, off int64) (int, error) {
	n := int(min(int64(len(p)), max(f.disk.free, 0)))
	written, err := f.File.WriteAt(p[:n], off)
	f.disk.free -= int64(written)
	if err == nil && written < len(p) {
		err = &fs.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	return written, err
}

func (f *diskFile) Truncate(size int64) error {
	if f.disk.failTruncate {
		return &fs.PathError{Op: "truncate", Path: f.Name(), Err: syscall.EIO}
	}
	return f.File.Truncate(size)
}

func (f *diskFile) Sync() error {
	if f.disk.failSync {
		return &fs.PathError{Op: "sync", Path: f.Name(), Err: syscall.EIO}
	}
	return f.File.Sync()
}

// newFailWriter returns a Writer on a fresh directory whose files live on
// disk.
func newFailWriter(t *testing.T, disk *fakeDisk) (*Writer, string) {
	t.Helper()
	dir := t.TempDir()
	w, err := NewWriter(&WriterOptions{Dir: dir, Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	w.create = func(path string) (file, error) {
		if disk.failCreate {
			return nil, &fs.PathError{Op: "open", Path: path, Err: syscall.EACCES}
		}
		f, err := createFile(path)
		if err != nil {
			return nil, err
		}
		return &diskFile{File: f.(*os.File), disk: disk}, nil
	}
	return w, dir
}

// writeEvents writes events from..to-1 and flushes, and returns the error
// of the flush.
func writeEvents(t *testing.T, w *Writer, from, to uint64) error {
	t.Helper()
	for seq := from; seq < to; seq++ {
		if err := w.Write(testEvent(seq)); err != nil {
			t.Fatalf("write %d: %v", seq, err)
		}
	}
	return w.Flush()
}

// checkWriteError checks that err is a *WriteError for a .part file that
// lost lost records and wraps want.
func checkWriteError(t *testing.T, err error, lost int, want error) {
	t.Helper()
	we := asWriteError(t, err)
	if we.Lost != lost || !errors.Is(err, want) || !strings.HasSuffix(we.Path, PartExt) {
		t.Errorf("got %v (lost %d, path %s), want %d lost and %v", err, we.Lost, we.Path, lost, want)
	}
}

const plenty = math.MaxInt64

func TestWriteFailFrame(t *testing.T) {
	disk := &fakeDisk{free: plenty}
	w, dir := newFailWriter(t, disk)
	if err := writeEvents(t, w, 1, 11); err != nil {
		t.Fatal(err)
	}
	disk.free = 100
	checkWriteError(t, writeEvents(t, w, 11, 21), 10, syscall.ENOSPC)
	disk.free = plenty
	if err := writeEvents(t, w, 21, 31); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	files := listBundles(t, dir, Ext)
	if len(files) != 1 {
		t.Fatalf("bundles %v, want 1", files)
	}
	recs := mustReadRecords(t, files[0])
	want := append(seqRange(1, 11), seqRange(21, 31)...)
	if d := cmp.Diff(want, eventSeqs(recs)); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
	if got := recs[len(recs)-1].GetTrailer().GetRecordCounts()["event"]; got != 20 {
		t.Errorf("trailer counts %d events, want 20", got)
	}
	st := w.Stats()
	if st.Records != 20 || st.Lost != 10 || st.WriteErrors != 1 {
		t.Errorf("stats %+v, want 20 records, 10 lost, 1 write error", st)
	}
}

func TestWriteFailHeaderFrame(t *testing.T) {
	disk := &fakeDisk{free: 10}
	w, dir := newFailWriter(t, disk)
	checkWriteError(t, writeEvents(t, w, 1, 4), 3, syscall.ENOSPC)
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("bundle without header left: %v", entries)
	}
	disk.free = plenty
	if err := writeEvents(t, w, 4, 5); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	files := listBundles(t, dir, Ext)
	if len(files) != 1 || !strings.HasSuffix(files[0], "-000001"+Ext) {
		t.Fatalf("bundles %v, want one with seq 1", files)
	}
	recs := mustReadRecords(t, files[0])
	if recs[0].GetHeader().GetBundleSeq() != 1 || len(recs) != 3 {
		t.Errorf("records %v, want header with seq 1, event 4, trailer", recs)
	}
}

func TestWriteFailCutBack(t *testing.T) {
	disk := &fakeDisk{free: plenty}
	w, dir := newFailWriter(t, disk)
	if err := writeEvents(t, w, 1, 6); err != nil {
		t.Fatal(err)
	}
	disk.free, disk.failTruncate = 10, true
	err := writeEvents(t, w, 6, 11)
	checkWriteError(t, err, 5, syscall.EIO)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("got %v, want the write error too", err)
	}
	disk.free, disk.failTruncate = plenty, false
	if err := writeEvents(t, w, 11, 16); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// The first bundle ends in a partial frame: left unsealed.
	parts := listBundles(t, dir, PartExt)
	if len(parts) != 1 {
		t.Fatalf("unsealed bundles %v, want 1", parts)
	}
	recs, err := readRecords(t, parts[0])
	if d := cmp.Diff(seqRange(1, 6), eventSeqs(recs)); d != "" {
		t.Errorf("unsealed bundle events (-want +got):\n%s", d)
	}
	if ce := asCorruptError(t, err); ce.Records != 6 {
		t.Errorf("damage after %d records, want 6", ce.Records)
	}
	files := listBundles(t, dir, Ext)
	if len(files) != 1 {
		t.Fatalf("bundles %v, want 1", files)
	}
	if d := cmp.Diff(seqRange(11, 16), eventSeqs(mustReadRecords(t, files[0]))); d != "" {
		t.Errorf("second bundle events (-want +got):\n%s", d)
	}
}

func TestWriteFailCreate(t *testing.T) {
	disk := &fakeDisk{free: plenty, failCreate: true}
	w, dir := newFailWriter(t, disk)
	err := w.Write(testEvent(1))
	we := asWriteError(t, err)
	if we.Lost != 1 || !errors.Is(err, fs.ErrPermission) || filepath.Dir(we.Path) != dir {
		t.Errorf("got %v, want 1 lost and permission denied", err)
	}
	disk.failCreate = false
	if err := writeEvents(t, w, 2, 3); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if st := w.Stats(); st.Lost != 1 || st.Records != 1 {
		t.Errorf("stats %+v, want 1 lost, 1 record", st)
	}
}

func TestWriteFailSeal(t *testing.T) {
	tests := []struct {
		name        string
		fail        func(*fakeDisk)
		want        error
		wantTrailer bool // the trailer was written before the failure
	}{
		{"trailer", func(d *fakeDisk) { d.free = 0 }, syscall.ENOSPC, false},
		{"fsync", func(d *fakeDisk) { d.failSync = true }, syscall.EIO, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			disk := &fakeDisk{free: plenty}
			w, dir := newFailWriter(t, disk)
			if err := writeEvents(t, w, 1, 6); err != nil {
				t.Fatal(err)
			}
			tc.fail(disk)
			checkWriteError(t, w.Rotate(), 0, tc.want)
			// The unsealed bundle reads without error.
			parts := listBundles(t, dir, PartExt)
			if len(parts) != 1 {
				t.Fatalf("unsealed bundles %v, want 1", parts)
			}
			recs := mustReadRecords(t, parts[0])
			if d := cmp.Diff(seqRange(1, 6), eventSeqs(recs)); d != "" {
				t.Errorf("events (-want +got):\n%s", d)
			}
			if got := recs[len(recs)-1].GetTrailer() != nil; got != tc.wantTrailer {
				t.Errorf("unsealed bundle has trailer: %v, want %v", got, tc.wantTrailer)
			}
			// The Writer goes on with a new bundle.
			*disk = fakeDisk{free: plenty}
			if err := writeEvents(t, w, 6, 7); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if files := listBundles(t, dir, Ext); len(files) != 1 || !strings.HasSuffix(files[0], "-000002"+Ext) {
				t.Errorf("bundles %v, want one with seq 2", files)
			}
		})
	}
}

// TestWriteFailSync checks that a failed fsync of Sync leaves the bundle
// unsealed and that the next Write opens another.
func TestWriteFailSync(t *testing.T) {
	disk := &fakeDisk{free: plenty}
	w, dir := newFailWriter(t, disk)
	if err := w.Write(testEvent(1)); err != nil {
		t.Fatal(err)
	}
	disk.failSync = true
	checkWriteError(t, w.Sync(), 0, syscall.EIO)
	disk.failSync = false
	if err := w.Write(testEvent(2)); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if parts, files := listBundles(t, dir, PartExt), listBundles(t, dir, Ext); len(parts) != 1 || len(files) != 1 {
		t.Errorf("unsealed %v and sealed %v, want one each", parts, files)
	}
}

// TestWriteFailAccounting writes through repeated failures of frames that
// Write flushes itself, and checks that every record is either in a file
// or counted as lost.
func TestWriteFailAccounting(t *testing.T) {
	disk := &fakeDisk{free: plenty}
	w, dir := newFailWriter(t, disk)
	w.frameBytes = 1 << 10
	w.maxBytes = 8 << 10
	var lost int
	const n = 3000
	for seq := uint64(1); seq <= n; seq++ {
		// The disk fills up and is freed again in cycles.
		switch seq % 500 {
		case 100:
			disk.free = 2000
		case 300:
			disk.free = plenty
		}
		if err := w.Write(testEvent(seq)); err != nil {
			lost += asWriteError(t, err).Lost
		}
	}
	disk.free = plenty
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	st := w.Stats()
	if lost == 0 || uint64(lost) != st.Lost {
		t.Fatalf("errors reported %d lost, stats %d; want the same, > 0", lost, st.Lost)
	}
	var inFiles uint64
	for _, ext := range []string{Ext, PartExt} {
		for _, f := range listBundles(t, dir, ext) {
			inFiles += uint64(len(eventSeqs(mustReadRecords(t, f))))
		}
	}
	if inFiles != st.Records || st.Records+st.Lost != n {
		t.Errorf("%d events in files, stats %+v; want records = events in files, records+lost = %d", inFiles, st, n)
	}
}
