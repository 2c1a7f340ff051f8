package ebpf

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// newTestWaiter returns a waiter of an eventfd standing in for the ring
// buffer: both are pollable and become readable when signalled.
func newTestWaiter(t *testing.T) (*ringWaiter, int) {
	t.Helper()
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(efd) })
	w, err := newRingWaiter(efd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.close() })
	return w, efd
}

// checkDeadlineAndWake checks that the deadline ends a wait with nothing
// signalled, and that a signal during a wait ends it.
func checkDeadlineAndWake(t *testing.T, w *ringWaiter, efd int) {
	t.Helper()
	start := time.Now()
	if woken, err := w.wait(start.Add(30 * time.Millisecond)); woken || err != nil {
		t.Fatalf("wait with nothing signalled: woken %v, err %v", woken, err)
	}
	// epoll_wait's timeout is in whole milliseconds.
	if waited := time.Since(start); waited < 29*time.Millisecond {
		t.Fatalf("returned after %v, before its deadline", waited)
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		unix.Write(efd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	}()
	if woken, err := w.wait(time.Now().Add(time.Minute)); !woken || err != nil {
		t.Fatalf("wait while signalled: woken %v, err %v", woken, err)
	}
}

func TestRingWaiter(t *testing.T) {
	w, efd := newTestWaiter(t)
	checkDeadlineAndWake(t, w, efd)
	// Still readable (level): the next wait returns at once.
	if woken, err := w.wait(time.Now().Add(time.Minute)); !woken || err != nil {
		t.Fatalf("wait with data pending: woken %v, err %v", woken, err)
	}
	var buf [8]byte
	unix.Read(efd, buf[:])

	// interrupt ends a wait from another goroutine.
	go func() {
		time.Sleep(20 * time.Millisecond)
		w.interrupt()
	}()
	start := time.Now()
	if woken, err := w.wait(time.Now().Add(time.Minute)); woken || err != nil {
		t.Fatalf("interrupted wait: woken %v, err %v", woken, err)
	}
	if waited := time.Since(start); waited > 30*time.Second {
		t.Fatalf("interrupt did not end the wait (%v)", waited)
	}
}

// TestRingWaiterBlocking checks the fallback for a runtime that cannot
// poll the epoll instance: a blocking epoll_wait up to the deadline.
func TestRingWaiterBlocking(t *testing.T) {
	w, efd := newTestWaiter(t)
	w.polled = false
	checkDeadlineAndWake(t, w, efd)
}
