package ebpf

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ringWaiter waits for the kernel to wake the ring buffer's reader
// through the Go runtime's network poller, so that the waiting goroutine
// parks instead of blocking its thread in epoll_wait. A thread blocked in
// a system call makes the runtime hand its processor to another thread and
// its monitor poll every few tens of microseconds, each time through a
// context switch: on the development VM that churn was about half of the
// agent's CPU in an exec storm.
//
// It holds an epoll instance watching the ring buffer map, itself
// registered with the runtime's poller: the kernel's wake-ups (once the
// ring holds wakeup_bytes) reach it; records submitted without one wait
// for the deadline.
type ringWaiter struct {
	f      *os.File
	conn   syscall.RawConn
	events [1]unix.EpollEvent
}

func newRingWaiter(ringFD int) (*ringWaiter, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(ringFD)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, ringFD, &ev); err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("set non-blocking: %w", err)
	}
	f := os.NewFile(uintptr(epfd), "ring-buffer-wakeups")
	w := &ringWaiter{f: f}
	// A deadline can be set only on a file the runtime polls.
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		return nil, fmt.Errorf("ring buffer wake-ups through the runtime poller: %w", err)
	}
	if w.conn, err = f.SyscallConn(); err != nil {
		f.Close()
		return nil, err
	}
	return w, nil
}

// wait returns once the ring buffer has records the kernel woke the
// reader for, deadline passes, or interrupt is called. It reports whether
// it was woken.
func (w *ringWaiter) wait(deadline time.Time) (bool, error) {
	if err := w.f.SetReadDeadline(deadline); err != nil {
		return false, err
	}
	var woken bool
	var werr error
	err := w.conn.Read(func(fd uintptr) bool {
		n, err := unix.EpollWait(int(fd), w.events[:], 0)
		switch {
		case errors.Is(err, unix.EINTR):
			return false
		case err != nil:
			werr = err
			return true
		}
		woken = n > 0
		return woken
	})
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return woken, werr
}

// interrupt ends a wait in progress (or the next one) at once. It is safe
// to call from another goroutine.
func (w *ringWaiter) interrupt() { w.f.SetReadDeadline(time.Now()) }

func (w *ringWaiter) close() error { return w.f.Close() }
