package ebpf

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The integration tests share one collector: loading takes about a second
// and closing a few more. A background goroutine reads its events and hands
// each to the watches registered at that time.

// helperEnv makes the test binary run a helper action instead of the tests
// (see TestMain); some tests need a child process that does something Go's
// os/exec cannot make a standard command do.
const helperEnv = "XDR_EBPF_TEST_HELPER"

func TestMain(m *testing.M) {
	if action := os.Getenv(helperEnv); action != "" {
		os.Exit(runHelper(action))
	}
	code := m.Run()
	if err := closeShared(); err != nil {
		fmt.Fprintln(os.Stderr, "close shared collector:", err)
		code = 1
	}
	os.Exit(code)
}

// runHelper runs a helper action in a child process and returns its exit
// code.
func runHelper(action string) int {
	switch action {
	case "threads-exit":
		// Several threads alive at the end of input, then exit_group(5):
		// the process exits once.
		started := make(chan struct{})
		for range 4 {
			go func() {
				runtime.LockOSThread()
				started <- struct{}{}
				select {}
			}()
		}
		for range 4 {
			<-started
		}
		io.Copy(io.Discard, os.Stdin)
		return 5
	}
	fmt.Fprintln(os.Stderr, "unknown helper action", action)
	return 2
}

var (
	sharedMu sync.Mutex
	shared   *hub
)

// needRoot skips t unless the test runs as root.
func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: loads and attaches BPF programs")
	}
}

// sharedHub returns the collector shared by the integration tests.
func sharedHub(t testing.TB) *hub {
	t.Helper()
	needRoot(t)
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared == nil {
		h, err := newHub(nil)
		if err != nil {
			t.Fatalf("open collector: %v", err)
		}
		shared = h
	}
	return shared
}

// closeShared closes the shared collector, if open (benchmarks measure a
// baseline without programs attached).
func closeShared() error {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared == nil {
		return nil
	}
	err := shared.close()
	shared = nil
	return err
}

type hub struct {
	c    *Collector
	done chan struct{}

	mu      sync.Mutex
	watches map[*watch]struct{}
	err     error // the reader's error, if it stopped on one
}

// watch receives the events matching pred from its creation on.
type watch struct {
	h    *hub
	pred func(*Event) bool
	ch   chan Event
}

func newHub(opts *Options) (*hub, error) {
	c, err := Open(opts)
	if err != nil {
		return nil, err
	}
	h := &hub{c: c, done: make(chan struct{}), watches: make(map[*watch]struct{})}
	go h.run()
	return h, nil
}

func (h *hub) run() {
	defer close(h.done)
	var evs []Event
	for {
		var err error
		evs, err = h.c.Read(evs[:0])
		h.mu.Lock()
		for i := range evs {
			for w := range h.watches {
				if w.pred(&evs[i]) {
					select {
					case w.ch <- evs[i]:
					default:
						h.err = errors.New("a watch's buffer overflowed")
					}
				}
			}
		}
		if err != nil && !errors.Is(err, os.ErrClosed) {
			h.err = err
		}
		h.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (h *hub) close() error {
	err := h.c.Close()
	<-h.done
	if h.err != nil {
		return errors.Join(err, h.err)
	}
	return err
}

// watch starts collecting the events that happen from now on (by their
// kernel time) and match pred, until t ends.
func (h *hub) watch(t testing.TB, pred func(*Event) bool) *watch {
	var now unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &now); err != nil {
		t.Fatal(err)
	}
	since := uint64(now.Nano())
	w := &watch{h: h, ch: make(chan Event, 1<<16), pred: func(ev *Event) bool {
		return ev.Header.Time >= since && pred(ev)
	}}
	h.mu.Lock()
	h.watches[w] = struct{}{}
	h.mu.Unlock()
	t.Cleanup(func() {
		h.mu.Lock()
		delete(h.watches, w)
		h.mu.Unlock()
	})
	return w
}

// next returns the next matching event, failing t after timeout.
func (w *watch) next(t testing.TB, timeout time.Duration) Event {
	t.Helper()
	select {
	case ev := <-w.ch:
		return ev
	case <-time.After(timeout):
		w.h.mu.Lock()
		err := w.h.err
		w.h.mu.Unlock()
		t.Fatalf("no matching event within %v (reader error: %v; stats %+v)", timeout, err, w.h.c.Stats())
		return Event{}
	}
}

// drain returns the matching events that arrive within d.
func (w *watch) drain(d time.Duration) []Event {
	var evs []Event
	deadline := time.After(d)
	for {
		select {
		case ev := <-w.ch:
			evs = append(evs, ev)
		case <-deadline:
			return evs
		}
	}
}

// settle waits long enough for events already produced to have been read:
// a few poll intervals.
const settle = 10 * DefaultPollInterval

const waitTimeout = 5 * time.Second

// startTicks reads field 22 of /proc/PID/stat.
func startTicks(t testing.TB, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// The comm field (2) may hold spaces; the fields resume after its ')'.
	i := bytes.LastIndexByte(b, ')')
	fields := strings.Fields(string(b[i+1:])) // fields[0] is field 3, the state
	v, err := strconv.ParseUint(fields[22-3], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// childEvents watches the events of a child process to be started: the
// watch exists before the child runs, and matches once its pid is known.
type childEvents struct {
	w       *watch
	mu      sync.Mutex
	pid     uint32
	pending []Event // matched pred before the pid was known
}

func childWatch(t testing.TB, h *hub, pred func(*Event) bool) *childEvents {
	c := &childEvents{}
	c.w = h.watch(t, func(ev *Event) bool {
		if !pred(ev) {
			return false
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.pid == 0 {
			// The child may act, and the hub read it, before start
			// knows its pid: keep the event for start to match.
			if len(c.pending) < 4096 {
				c.pending = append(c.pending, *ev)
			}
			return false
		}
		return ev.Header.TGID == c.pid
	})
	return c
}

// start starts cmd and lets the watch match its events. Events the child
// has before start returns are still matched: those the hub already read
// were kept and are delivered here.
func (c *childEvents) start(cmd *exec.Cmd) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	c.mu.Lock()
	c.pid = uint32(cmd.Process.Pid)
	var early []Event
	for _, ev := range c.pending {
		if ev.Header.TGID == c.pid {
			early = append(early, ev)
		}
	}
	c.pending = nil
	c.mu.Unlock()
	for _, ev := range early {
		c.w.ch <- ev
	}
	return nil
}
