package ebpf

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

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
	for c.rd.AvailableBytes() > 0 {
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
