//go:build linux

package proccon

import (
	"errors"
	"fmt"
	"iter"
	"os"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// socket is the netlink.Socket under a Conn: a NETLINK_CONNECTOR socket
// in blocking mode, which the Go runtime's network poller does not watch.
//
// netlink.Dial's socket is non-blocking and registered with the poller's
// epoll instance. Receive does not wait there (see Conn.wait), so every
// datagram the kernel queued woke an idle runtime thread to find nothing to
// run: three wake-ups and six system calls per fork+exec+exit, for nothing.
// Receive waits in recvmmsg(2) instead, and the os.File keeps the
// descriptor valid while a RawConn callback runs.
type socket struct {
	f  *os.File
	rc syscall.RawConn
}

// recvTimeout bounds each wait for a datagram.
const recvTimeout = 100 * time.Millisecond

// errReceive is what socket's netlink.Socket read methods return: events
// are read by Conn.Receive, straight from the descriptor.
var errReceive = errors.New("proccon: the socket is read by Conn.Receive only")

// openSocket opens and binds the socket, and returns it with the port id
// the kernel assigned.
func openSocket() (*socket, uint32, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_CONNECTOR)
	if err != nil {
		return nil, 0, os.NewSyscallError("socket", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, 0, os.NewSyscallError("bind", err)
	}
	// Receive waits in a blocking recvmmsg(2): the timeout lets it see a
	// Close.
	tv := unix.NsecToTimeval(recvTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, 0, os.NewSyscallError("setsockopt SO_RCVTIMEO", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return nil, 0, os.NewSyscallError("getsockname", err)
	}
	nsa, ok := sa.(*unix.SockaddrNetlink)
	if !ok {
		unix.Close(fd)
		return nil, 0, fmt.Errorf("getsockname: %T, want a netlink address", sa)
	}
	// A blocking descriptor: os.NewFile leaves it out of the poller.
	f := os.NewFile(uintptr(fd), "netlink-connector")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return &socket{f: f, rc: rc}, nsa.Pid, nil
}

func (s *socket) Close() error { return s.f.Close() }

func (s *socket) Send(m netlink.Message) error { return s.SendMessages([]netlink.Message{m}) }

// SendMessages sends msgs to the kernel in one datagram.
func (s *socket) SendMessages(msgs []netlink.Message) error {
	var b []byte
	for _, m := range msgs {
		mb, err := m.MarshalBinary()
		if err != nil {
			return err
		}
		b = append(b, mb...)
	}
	return s.control(func(fd int) error {
		return unix.Sendto(fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
	}, "sendto")
}

func (s *socket) Receive() ([]netlink.Message, error) { return nil, errReceive }

func (s *socket) ReceiveIter() iter.Seq2[netlink.Message, error] {
	return func(yield func(netlink.Message, error) bool) { yield(netlink.Message{}, errReceive) }
}

func (s *socket) JoinGroup(group uint32) error {
	return s.setInt(unix.SOL_NETLINK, unix.NETLINK_ADD_MEMBERSHIP, int(group))
}

func (s *socket) LeaveGroup(group uint32) error {
	return s.setInt(unix.SOL_NETLINK, unix.NETLINK_DROP_MEMBERSHIP, int(group))
}

// SetReadBuffer asks for SO_RCVBUFFORCE, which ignores net.core.rmem_max
// but needs CAP_NET_ADMIN, and falls back to SO_RCVBUF.
func (s *socket) SetReadBuffer(n int) error {
	if err := s.setInt(unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n); err == nil {
		return nil
	}
	return s.setInt(unix.SOL_SOCKET, unix.SO_RCVBUF, n)
}

// SetWriteBuffer is SetReadBuffer for the send buffer.
func (s *socket) SetWriteBuffer(n int) error {
	if err := s.setInt(unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, n); err == nil {
		return nil
	}
	return s.setInt(unix.SOL_SOCKET, unix.SO_SNDBUF, n)
}

func (s *socket) ReadBuffer() (int, error)  { return s.getInt(unix.SOL_SOCKET, unix.SO_RCVBUF) }
func (s *socket) WriteBuffer() (int, error) { return s.getInt(unix.SOL_SOCKET, unix.SO_SNDBUF) }

func (s *socket) SyscallConn() (syscall.RawConn, error) { return s.rc, nil }

func (s *socket) setInt(level, opt, v int) error {
	return s.control(func(fd int) error { return unix.SetsockoptInt(fd, level, opt, v) }, "setsockopt")
}

func (s *socket) getInt(level, opt int) (int, error) {
	var v int
	err := s.control(func(fd int) error {
		var err error
		v, err = unix.GetsockoptInt(fd, level, opt)
		return err
	}, "getsockopt")
	return v, err
}

// control runs f on the descriptor and names a failure after call.
func (s *socket) control(f func(fd int) error, call string) error {
	var ferr error
	if err := s.rc.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return err
	}
	return os.NewSyscallError(call, ferr)
}
