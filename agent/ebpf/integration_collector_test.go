package ebpf

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// openFiles opens n distinct files under dir (n distinct events).
func openFiles(t *testing.T, dir string, n int) {
	t.Helper()
	for i := range n {
		fd, err := unix.Open(filepath.Join(dir, strconv.Itoa(i)), unix.O_CREAT|unix.O_RDONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
	}
}

// countOpens counts the open events of this process under dir.
func countOpens(evs []Event, dir string) int {
	n := 0
	for _, ev := range evs {
		if ev.Kind == KindFileOpen && ev.Header.TGID == uint32(os.Getpid()) && filepath.Dir(ev.File.Path) == dir {
			n += int(ev.Count)
		}
	}
	return n
}

func TestIntegrationCloseDrains(t *testing.T) {
	needRoot(t)
	c, err := Open(nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := tempDir(t)
	const n = 200
	openFiles(t, dir, n) // nobody reads yet
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	var evs []Event
	for {
		evs, err = c.Read(evs)
		if err != nil {
			break
		}
	}
	if !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Read after Close: %v, want os.ErrClosed", err)
	}
	if got := countOpens(evs, dir); got != n {
		t.Errorf("%d opens drained at Close, want %d", got, n)
	}
	s := c.Stats()
	if s.RingFull != 0 || s.Records == 0 || s.Events != uint64(len(evs)) {
		t.Errorf("stats after Close: %+v (%d events read)", s, len(evs))
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := c.Ignore(1); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Ignore after Close: %v, want os.ErrClosed", err)
	}
}

func TestIntegrationRingFull(t *testing.T) {
	needRoot(t)
	c, err := Open(&Options{RingSize: os.Getpagesize()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dir := tempDir(t)
	const n = 500
	openFiles(t, dir, n) // far more than a page of records, unread
	var evs []Event
	for c.ring.available() > 0 {
		if evs, err = c.Read(evs); err != nil {
			t.Fatal(err)
		}
	}
	s := c.Stats()
	got := countOpens(evs, dir)
	if s.RingFull == 0 || got >= n {
		t.Errorf("ring of a page: %d of %d opens read, %d events lost to a full ring", got, n, s.RingFull)
	}
	t.Logf("%d of %d opens read; stats %+v", got, n, s)
}

func TestIntegrationWakeup(t *testing.T) {
	needRoot(t)
	// A poll interval longer than the test: only the kernel's wake-up on
	// every record (WakeupBytes 1) can end the Read.
	c, err := Open(&Options{WakeupBytes: 1, PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dir := tempDir(t)
	got := make(chan int, 1)
	go func() {
		evs, _ := c.Read(nil)
		got <- countOpens(evs, dir)
	}()
	time.Sleep(settle) // let the Read block
	openFiles(t, dir, 1)
	select {
	case <-got:
	case <-time.After(waitTimeout):
		t.Fatal("Read not woken by the kernel")
	}
}

// TestIntegrationExcludeReads checks the kernel's prefix filter: read-only
// opens of the prefix and below it are counted, not reported; opens that
// may write, creations, a sibling that only shares the prefix's leading
// characters, and a prefix too long for the kernel are reported.
func TestIntegrationExcludeReads(t *testing.T) {
	needRoot(t)
	dir := tempDir(t)
	in, sibling := filepath.Join(dir, "in"), filepath.Join(dir, "inx")
	long := filepath.Join(dir, strings.Repeat("l", MaxKernelPrefix))
	for _, d := range []string{filepath.Join(in, "sub"), sibling, long} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	c, err := Open(&Options{ExcludeReads: []string{in, long}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.KernelPrefixes(); len(got) != 1 || got[0] != in {
		t.Errorf("KernelPrefixes() = %q, want only %q (the other is %d bytes)", got, in, len(long))
	}
	open := func(path string, flags int) {
		t.Helper()
		fd, err := unix.Open(path, flags|unix.O_CLOEXEC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
	}
	a, b := filepath.Join(in, "a"), filepath.Join(in, "sub", "b")
	reported := map[string]int{}
	for _, p := range []string{a, b, filepath.Join(sibling, "c"), filepath.Join(long, "d")} {
		open(p, unix.O_CREAT|unix.O_EXCL|unix.O_RDONLY) // creations: reported
		reported[p]++
	}
	before := c.Stats().FilteredReads
	for range 3 {
		open(a, unix.O_RDONLY)
	}
	open(b, unix.O_RDONLY)
	open(b, unix.O_RDONLY|unix.O_NOFOLLOW)
	open(in, unix.O_RDONLY|unix.O_DIRECTORY)
	const filtered = 6
	open(a, unix.O_WRONLY)
	open(a, unix.O_RDWR)
	open(a, unix.O_RDONLY|unix.O_TRUNC)
	reported[a] += 3
	open(filepath.Join(sibling, "c"), unix.O_RDONLY)
	reported[filepath.Join(sibling, "c")]++
	open(filepath.Join(long, "d"), unix.O_RDONLY)
	reported[filepath.Join(long, "d")]++
	done := filepath.Join(dir, "done")
	open(done, unix.O_CREAT|unix.O_RDONLY)

	got := map[string]int{}
	var evs []Event
	for deadline := time.Now().Add(waitTimeout); got[done] == 0 && time.Now().Before(deadline); {
		if evs, err = c.Read(evs[:0]); err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if ev.Kind == KindFileOpen && ev.Header.TGID == uint32(os.Getpid()) && strings.HasPrefix(ev.File.Path, dir+"/") {
				got[ev.File.Path] += int(ev.Count)
			}
		}
	}
	if got[done] == 0 {
		t.Fatal("the last open never arrived")
	}
	delete(got, done)
	if d := cmp.Diff(reported, got); d != "" {
		t.Errorf("reported opens by path (-want +got):\n%s", d)
	}
	if n := c.Stats().FilteredReads - before; n != filtered {
		t.Errorf("FilteredReads grew by %d, want %d", n, filtered)
	}
}
