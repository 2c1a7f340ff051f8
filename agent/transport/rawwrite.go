package transport

import (
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// writeAll writes buf to conn, waiting in the runtime's poller (and up to
// conn's write deadline) while the socket buffer is full.
//
// The write itself is a raw system call. A normal one tells the Go
// scheduler that the thread may block, and when the agent was idle that
// restarts the runtime's monitor thread at its fastest tick: some 50
// sleeps of 20 µs, each a context switch, after every batch. On a
// paravirtualised machine, where a context switch costs tens of
// microseconds, that was most of the agent's wake-ups. A write to a
// non-blocking socket never blocks, so the hand-off buys nothing.
func writeAll(conn *net.UnixConn, buf []byte) (int, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return 0, err
	}
	done := 0
	var werr error
	err = rc.Write(func(fd uintptr) bool {
		for done < len(buf) {
			n, err := rawWrite(int(fd), buf[done:])
			switch {
			case err == unix.EAGAIN:
				return false // wait until writable
			case err == unix.EINTR:
				continue
			case err != nil:
				werr = err
				return true
			}
			done += n
		}
		return true
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		return done, &net.OpError{Op: "write", Net: "unix", Addr: conn.RemoteAddr(), Err: err}
	}
	return done, nil
}

// rawWrite is write(2) without the scheduler's system call hand-off; fd
// must be non-blocking.
func rawWrite(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}
