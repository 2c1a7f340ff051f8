package ebpf

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
	"unsafe"

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

	// polled is false when the runtime could not poll the epoll instance
	// (pollErr says why): wait then blocks its thread in epoll_wait, and
	// interrupt cannot end it early.
	polled  bool
	pollErr error
}

// newRingWaiter watches the ring buffer map ringFD.
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
	if w.conn, err = f.SyscallConn(); err != nil {
		f.Close()
		return nil, err
	}
	// A deadline can be set only on a file the runtime polls.
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		w.pollErr = fmt.Errorf("ring buffer wake-ups through the runtime poller: %w", err)
		return w, nil
	}
	w.polled = true
	return w, nil
}

// wait returns once the ring buffer has records the kernel woke the
// reader for, deadline passes, or interrupt is called. It reports whether
// it was woken.
func (w *ringWaiter) wait(deadline time.Time) (bool, error) {
	if !w.polled {
		return w.block(deadline)
	}
	if err := w.f.SetReadDeadline(deadline); err != nil {
		return false, err
	}
	var woken bool
	var werr error
	err := w.conn.Read(func(fd uintptr) bool {
		n, err := pollNow(int(fd), w.events[:])
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

// block is wait in a blocking epoll_wait.
func (w *ringWaiter) block(deadline time.Time) (bool, error) {
	var n int
	var werr error
	err := w.conn.Control(func(fd uintptr) {
		for {
			ms := max(0, int(time.Until(deadline).Milliseconds()))
			if n, werr = unix.EpollWait(int(fd), w.events[:], ms); werr != unix.EINTR {
				break
			}
		}
	})
	if err == nil {
		err = werr
	}
	return n > 0, err
}

// interrupt ends a wait in progress (or the next one) at once; a blocking
// one (!polled) ends at its deadline. It is safe to call from another
// goroutine.
func (w *ringWaiter) interrupt() {
	if w.polled {
		w.f.SetReadDeadline(time.Now())
	}
}

func (w *ringWaiter) close() error { return w.f.Close() }

// pollNow is epoll_pwait(2) with a zero timeout, as a raw system call: it
// never blocks, and a normal system call would restart the Go runtime's
// monitor thread at its fastest tick when the agent was idle (see
// transport.writeAll).
func pollNow(epfd int, events []unix.EpollEvent) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}
