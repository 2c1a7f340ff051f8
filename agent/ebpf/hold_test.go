package ebpf

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// holdReader feeds records to a reader-only Collector one simulated Read
// at a time and shows what each Read returns.
type holdReader struct {
	c     *Collector
	clock uint64 // record times
	total uint64 // events fed
}

func newHoldReader() *holdReader {
	c := readerOnly(DefaultArgvMax)
	c.hold = time.Hour // released by the tests, or by a heldSince moved back
	return &holdReader{c: c}
}

func (h *holdReader) open(tgid uint32, path string, flags uint32) []byte {
	hd := header(KindFileOpen)
	hd.Tgid, hd.Pid = tgid, tgid
	h.clock += 1000
	hd.KtimeNs = h.clock
	h.total++
	return record(hd, raw(&collectorXdrFileop{Op: uint32(OpOpenat), Flags: flags, Ret: 3, Fd: 3, PathLen: uint16(len(path))}), []byte(path))
}

func (h *holdReader) of(kind Kind, tgid uint32, payload []byte) []byte {
	hd := header(kind)
	hd.Tgid, hd.Pid = tgid, tgid
	h.clock += 1000
	hd.KtimeNs = h.clock
	h.total++
	return record(hd, payload)
}

func (h *holdReader) fork(tgid uint32) []byte {
	return h.of(KindFork, tgid, raw(&collectorXdrFork{ChildPid: 9999}))
}

func (h *holdReader) exit(tgid uint32) []byte {
	return h.of(KindExit, tgid, raw(&collectorXdrExit{}))
}

// read is one Read: what is due first, then the records.
func (h *holdReader) read(recs ...[]byte) []string {
	h.c.batch++
	evs := h.c.releaseDue(nil)
	for _, r := range recs {
		evs = h.c.add(evs, r)
	}
	return show(evs)
}

func show(evs []Event) []string {
	var got []string
	for _, ev := range evs {
		s := fmt.Sprintf("%d %s", ev.Header.TGID, ev.Kind)
		if ev.File != nil {
			s += fmt.Sprintf(" %s %#o", ev.File.Path, ev.File.Flags)
		}
		got = append(got, fmt.Sprintf("%s x%d @%d", s, ev.Count, ev.Header.Time))
	}
	return got
}

// check fails unless every event fed is in the counts reported or held.
func (h *holdReader) check(t *testing.T, reported []string, held uint64) {
	t.Helper()
	c := h.c
	if got := c.events.Load() + c.merged.Load() + held; got != h.total {
		t.Errorf("events %d + merged %d + held %d = %d, want the %d fed (%q)", c.events.Load(), c.merged.Load(), held, got, h.total, reported)
	}
}

// TestHold follows the /dev/null opens of a program that runs one child
// after another (Go's os/exec opens it for reading, then for writing, for
// every child), and checks when the held counts go out.
func TestHold(t *testing.T) {
	h := newHoldReader()
	const parent = 10
	rd, wr := uint32(0), uint32(1)
	// The first opens are reported at once; the second read-only open of
	// the same read folds into the first.
	if diff := cmp.Diff([]string{"10 file_open /dev/null 0 x2 @1000", "10 file_open /dev/null 01 x1 @2000", "10 fork x1 @4000"},
		h.read(h.open(parent, "/dev/null", rd), h.open(parent, "/dev/null", wr), h.open(parent, "/dev/null", rd), h.fork(parent))); diff != "" {
		t.Errorf("first read (-want +got):\n%s", diff)
	}
	// Later reads: only the forks; the opens are held.
	for i := range 3 {
		got := h.read(h.open(parent, "/dev/null", rd), h.open(parent, "/dev/null", wr), h.fork(parent))
		if len(got) != 1 || h.c.held != 2 {
			t.Fatalf("read %d: %q with %d held, want only the fork and 2 held", i+2, got, h.c.held)
		}
	}
	h.check(t, nil, 6)
	// Released once the oldest has been held for the hold time, oldest
	// first, each timed by its last repeat.
	h.c.heldSince = h.c.heldSince.Add(-h.c.hold)
	if diff := cmp.Diff([]string{"10 file_open /dev/null 0 x3 @11000", "10 file_open /dev/null 01 x3 @12000"}, h.read()); diff != "" {
		t.Errorf("released (-want +got):\n%s", diff)
	}
	h.check(t, nil, 0)
	if h.c.held != 0 || len(h.read()) != 0 {
		t.Errorf("%d still held after the release", h.c.held)
	}

	// An exit releases the process's counts before it, and forgets the
	// process.
	got := h.read(h.open(parent, "/dev/null", rd), h.exit(parent))
	if diff := cmp.Diff([]string{"10 file_open /dev/null 0 x1 @14000", "10 exit x1 @15000"}, got); diff != "" {
		t.Errorf("exit (-want +got):\n%s", diff)
	}
	if _, ok := h.c.recent[parent]; ok || h.c.nrecent != 0 {
		t.Errorf("process still remembered after its exit: %d recent", h.c.nrecent)
	}
	h.check(t, got, 0)

	// A fifth file replaces the process's oldest, releasing its count.
	const p = 20
	var files [][]byte
	for _, f := range []string{"/1", "/2", "/3", "/4"} {
		files = append(files, h.open(p, f, rd))
	}
	h.read(files...)
	h.read(h.open(p, "/1", rd), h.open(p, "/4", rd))
	if diff := cmp.Diff([]string{"20 file_open /5 0 x1 @22000", "20 file_open /1 0 x1 @20000"}, h.read(h.open(p, "/5", rd))); diff != "" {
		t.Errorf("fifth file (-want +got):\n%s", diff)
	}
	h.check(t, nil, 1) // /4
	if n := len(h.c.recent[p]); n != recentPerProcess {
		t.Errorf("%d recent events, want %d", n, recentPerProcess)
	}
	// /1 is forgotten: a new event, not a held count.
	if got := h.read(h.open(p, "/1", rd)); len(got) != 1 {
		t.Errorf("forgotten file: %q, want reported again", got)
	}

	// A full table releases everything and starts over.
	for tgid := uint32(1000); h.c.nrecent < maxRecent; tgid++ {
		if got := h.read(h.open(tgid, "/x", rd)); len(got) != 1 {
			t.Fatalf("%d %q", h.c.nrecent, got)
		}
	}
	got = h.read(h.open(99999, "/x", rd))
	if diff := cmp.Diff([]string{"99999 file_open /x 0 x1 @" + fmt.Sprint(h.clock), "20 file_open /4 0 x1 @21000"}, got); diff != "" {
		t.Errorf("full table (-want +got):\n%s", diff)
	}
	if h.c.nrecent != 1 || h.c.held != 0 {
		t.Errorf("after a full table: %d recent, %d held, want 1 and 0", h.c.nrecent, h.c.held)
	}
	h.check(t, got, 0)
}

// TestHoldRedescribed checks that the events that change how a process is
// described release its counts first, and that a fork does not.
func TestHoldRedescribed(t *testing.T) {
	for _, tc := range []struct {
		kind    Kind
		payload []byte
		release bool
	}{
		{KindFork, raw(&collectorXdrFork{ChildPid: 3}), false},
		{KindSetID, raw(&collectorXdrSetid{}), true},
		{KindComm, raw(&collectorXdrComm{}), true},
		{KindSetsid, nil, true},
		{KindExit, raw(&collectorXdrExit{}), true},
	} {
		t.Run(tc.kind.String(), func(t *testing.T) {
			h := newHoldReader()
			h.read(h.open(5, "/f", 0))
			got := h.read(h.open(5, "/f", 0), h.of(tc.kind, 5, tc.payload))
			want := []string{fmt.Sprintf("5 %s x1 @3000", tc.kind)}
			if tc.release {
				want = append([]string{"5 file_open /f 0 x1 @2000"}, want...)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			// Another process's event releases nothing.
			h = newHoldReader()
			h.read(h.open(5, "/f", 0))
			if got := h.read(h.open(5, "/f", 0), h.of(tc.kind, 6, tc.payload)); len(got) != 1 {
				t.Errorf("another process's %s: %q", tc.kind, got)
			}
		})
	}
}
