package wire

import (
	"io"
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The agent and the aggregator move frames over a Unix socket with raw
// read(2) and write(2) calls, waiting in the runtime's poller (and under
// the connection's deadlines) when the socket has nothing to read or no
// room to write.
//
// A normal system call tells the Go scheduler that the thread may block.
// When the process was idle, that restarts the runtime's monitor thread at
// its fastest tick: some 50 sleeps of 20 µs, each a context switch, after
// every batch. On a paravirtualised machine, where a context switch costs
// tens of microseconds, those were the largest share of both processes'
// wake-ups in an exec storm. The sockets are non-blocking, so these calls
// never block and the hand-off buys nothing.

// WriteConn writes all of buf to conn.
func WriteConn(conn *net.UnixConn, buf []byte) (int, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return 0, err
	}
	done := 0
	var werr error
	err = rc.Write(func(fd uintptr) bool {
		for done < len(buf) {
			n, err := rawIO(unix.SYS_WRITE, fd, buf[done:])
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

// ConnReader reads a socket with raw system calls; NewReader takes it in
// place of the connection. Reads honour the connection's read deadline.
type ConnReader struct {
	conn net.Conn
	rc   syscall.RawConn
}

// NewConnReader returns a ConnReader of conn, or nil when conn gives no
// access to its descriptor (the caller then reads conn itself).
func NewConnReader(conn net.Conn) *ConnReader {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return &ConnReader{conn: conn, rc: rc}
}

// Read reads what the socket holds into p, waiting for data when empty.
func (r *ConnReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var rerr error
	err := r.rc.Read(func(fd uintptr) bool {
		for {
			n, rerr = rawIO(unix.SYS_READ, fd, p)
			switch rerr {
			case unix.EAGAIN:
				return false // wait until readable
			case unix.EINTR:
				continue
			}
			return true
		}
	})
	if err == nil {
		err = rerr
	}
	switch {
	case err != nil:
		return 0, &net.OpError{Op: "read", Net: r.conn.LocalAddr().Network(), Addr: r.conn.LocalAddr(), Err: err}
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// rawIO is read(2) or write(2) on fd without the scheduler's system call
// hand-off; fd must be non-blocking.
func rawIO(trap, fd uintptr, p []byte) (int, error) {
	n, _, e := unix.RawSyscall(trap, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}
