package bundle

import (
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestIntegrationDiskFull writes bundles into a 64 KiB tmpfs until it is
// full, frees space and goes on: every record must end up either in a
// readable bundle or counted as lost.
func TestIntegrationDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts a tmpfs")
	}
	mnt := t.TempDir()
	if err := unix.Mount("tmpfs", mnt, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=64k,mode=0700"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount tmpfs: %v", err)
		}
	})
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, 32<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(mnt, "bundles")
	w, err := NewWriter(&WriterOptions{Dir: dir, FrameBytes: 2 << 10, MaxBytes: 12 << 10})
	if err != nil {
		t.Fatal(err)
	}

	written, lost, full := 0, 0, 0
	write := func() {
		// Random text compresses poorly, so the disk fills quickly.
		r := testEvent(uint64(written + 1))
		r.GetEvent().GetSubject().Argv = append(r.GetEvent().GetSubject().Argv, rand.Text()+rand.Text())
		written++
		err := w.Write(r)
		if err == nil {
			return
		}
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("write %d: got %v, want no space left", written, err)
		}
		lost += asWriteError(t, err).Lost
		full++
	}
	for written < 5000 && full < 3 {
		write()
	}
	if full < 3 {
		t.Fatalf("disk never filled up after %d records", written)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		write()
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close after freeing space: %v", err)
	}

	st := w.Stats()
	t.Logf("%d records written, %d write errors, stats %+v", written, full, st)
	if lost == 0 || uint64(lost) != st.Lost || st.WriteErrors == 0 {
		t.Errorf("errors reported %d lost; stats %+v", lost, st)
	}
	var inFiles uint64
	for _, ext := range []string{Ext, PartExt} {
		for _, f := range listBundles(t, dir, ext) {
			inFiles += uint64(len(eventSeqs(mustReadRecords(t, f))))
		}
	}
	if inFiles != st.Records || st.Records+st.Lost != uint64(written) {
		t.Errorf("%d of %d events in files; stats %+v", inFiles, written, st)
	}
	if len(listBundles(t, dir, Ext)) == 0 {
		t.Error("no bundle sealed")
	}
}

// TestIntegrationDiskFullQuota writes into a full 64 KiB tmpfs with a
// quota larger than the disk: the writer deletes the oldest non-critical
// bundles to make room, never a critical one, and every record ends up in
// a bundle on disk, in a bundle the quota deleted, or counted as lost.
func TestIntegrationDiskFullQuota(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts a tmpfs")
	}
	mnt := t.TempDir()
	if err := unix.Mount("tmpfs", mnt, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=64k,mode=0700"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount tmpfs: %v", err)
		}
	})
	dir := filepath.Join(mnt, "bundles")
	w, err := NewWriter(&WriterOptions{Dir: dir, FrameBytes: 2 << 10, MaxBytes: 12 << 10, MaxDirBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	events := map[string]uint64{} // sealed bundle -> events
	var deleted uint64
	w.OnSeal(func(path string) {
		res, err := Verify(path)
		if err != nil {
			t.Fatal(err)
		}
		events[path] = res.Counts["event"]
	})
	w.OnDelete(func(path string) {
		if strings.HasSuffix(path, CritExt) {
			t.Errorf("critical bundle %s deleted for a full disk", path)
		}
		deleted += events[path]
	})

	var lost, written uint64
	for written < 3000 {
		r := testEvent(written + 1)
		r.GetEvent().GetSubject().Argv = append(r.GetEvent().GetSubject().Argv, rand.Text()+rand.Text())
		written++
		err := w.Write(r)
		if written%500 == 0 {
			w.MarkCritical()
		}
		if err == nil {
			continue
		}
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("write %d: got %v, want no space left", written, err)
		}
		lost += uint64(asWriteError(t, err).Lost)
	}
	if err := w.Close(); err != nil && !errors.Is(err, syscall.ENOSPC) {
		t.Fatal(err)
	} else if err != nil {
		lost += uint64(asWriteError(t, err).Lost)
	}

	st := w.Stats()
	t.Logf("stats %+v", st)
	if st.QuotaDeleted == 0 || lost != st.Lost {
		t.Errorf("stats %+v, %d lost reported; want deletions, losses as reported", st, lost)
	}
	var inFiles uint64
	for _, ext := range []string{Ext, PartExt} {
		for _, f := range listBundles(t, dir, ext) {
			inFiles += uint64(len(eventSeqs(mustReadRecords(t, f))))
		}
	}
	if inFiles+deleted != st.Records || st.Records+st.Lost != written {
		t.Errorf("%d events in files, %d in deleted bundles, stats %+v; want records = both, records+lost = %d", inFiles, deleted, st, written)
	}
}
