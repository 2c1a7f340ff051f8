//go:build linux

package proccon

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

var (
	// ErrNotSupported is wrapped by the error Dial returns when the running
	// kernel has no netlink connector.
	ErrNotSupported = errors.New("proc connector not supported by the kernel")
	// ErrOverrun is wrapped by the error Receive returns when the socket's
	// receive buffer overflowed: the kernel dropped events. The Conn stays
	// usable, but the caller's view of the process table is incomplete and
	// must be resynchronised (for example by rescanning /proc).
	ErrOverrun = errors.New("proc connector overrun, events were lost")
)

// Subscription requests (enum proc_cn_mcast_op).
const (
	procCnMcastListen = 1
	procCnMcastIgnore = 2
)

const (
	// defaultReadBuffer is the receive buffer requested when
	// Options.ReadBuffer is zero.
	defaultReadBuffer = 8 << 20
	// slots is how many datagrams one system call can return, which
	// bounds how many events one Receive call appends to dst.
	slots = 64
	// slotLen holds any single datagram the proc connector sends (one
	// netlink message of well under 100 bytes) with ample room.
	slotLen = 1 << 10
)

// Options configures Dial. The zero value and a nil *Options select the
// defaults.
type Options struct {
	// ReadBuffer is the socket receive buffer size in bytes, requested with
	// SO_RCVBUFFORCE (falling back to SO_RCVBUF, which net.core.rmem_max
	// caps, when that is not permitted). The kernel doubles the value for
	// its bookkeeping. Zero means 8 MiB. A larger buffer survives longer
	// bursts (a fork storm) without overrun.
	ReadBuffer int
	// Logger receives diagnostics under the group "proccon"; nil discards
	// them.
	Logger *slog.Logger
}

// Stats are cumulative counts of a Conn. Every netlink message received is
// either decoded into an event or counted as a decode error, so Messages ==
// Events + DecodeErrors. Overruns counts receive-buffer overflows reported
// by the kernel; the number of events lost in each is unknown.
type Stats struct {
	Messages, Events, DecodeErrors, Overruns uint64
}

// Conn is a proc connector subscription. Receive must be called from a
// single goroutine; Close and Stats may be called from any goroutine,
// concurrently with Receive. The caller of Dial must call Close.
type Conn struct {
	nl     *netlink.Conn
	rc     syscall.RawConn
	log    *slog.Logger
	closed atomic.Bool

	messages, events, decodeErrors, overruns atomic.Uint64

	// Receive state, owned by the goroutine calling Receive. It lives here,
	// and the read callback is bound once in Dial, so that receiving does
	// not allocate. Slot i of the recvmmsg(2) vector msgs reads into
	// buf[i*slotLen:] and records its sender in from[i].
	read         func(fd uintptr)
	lastYield    time.Time
	buf          []byte
	iov          [slots]unix.Iovec
	from         [slots]unix.RawSockaddrNetlink
	msgs         [slots]mmsghdr
	batch        []Event
	batchStart   int
	readErr      error
	warnedDecode bool
}

// Dial opens a NETLINK_CONNECTOR socket, joins the CN_IDX_PROC multicast
// group, sets the receive buffer and sends PROC_CN_MCAST_LISTEN. The kernel
// acknowledges the request with a None event, which Receive returns like
// any other event. The error wraps ErrNotSupported when the kernel has no
// netlink connector, and os.ErrPermission when the caller lacks
// CAP_NET_ADMIN on a kernel that reserves the subscription to it (before
// 6.6 all did; 6.6 opened it to any user of the initial namespaces, and
// some later kernels, 6.18.44 among them, close it again). Outside the
// initial network namespace it fails with an error wrapping
// unix.ECONNREFUSED.
func Dial(opts *Options) (*Conn, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.ReadBuffer < 0 {
		return nil, fmt.Errorf("dial proc connector: negative read buffer size %d", o.ReadBuffer)
	}
	if o.ReadBuffer == 0 {
		o.ReadBuffer = defaultReadBuffer
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}

	sock, port, err := openSocket()
	if err != nil {
		return nil, dialError("open netlink connector socket", err)
	}
	nl := netlink.NewConn(sock, port)
	c, err := newConn(nl, &o)
	if err != nil {
		_ = nl.Close()
		return nil, err
	}
	return c, nil
}

// newConn finishes Dial on an open socket; the caller closes nl on error.
func newConn(nl *netlink.Conn, o *Options) (*Conn, error) {
	log := o.Logger.WithGroup("proccon")
	if err := nl.JoinGroup(cnIdxProc); err != nil {
		return nil, dialError("join proc connector multicast group", err)
	}
	if err := nl.SetReadBuffer(o.ReadBuffer); err != nil {
		return nil, fmt.Errorf("dial proc connector: set receive buffer to %d bytes: %w", o.ReadBuffer, err)
	}
	// The kernel doubles the requested size (capped at INT_MAX) and
	// reports the doubled value.
	if got, err := nl.ReadBuffer(); err != nil {
		return nil, fmt.Errorf("dial proc connector: read back receive buffer size: %w", err)
	} else if got < 2*min(o.ReadBuffer, math.MaxInt32/2) {
		log.Warn("receive buffer smaller than requested: SO_RCVBUFFORCE needs CAP_NET_ADMIN, SO_RCVBUF is capped by net.core.rmem_max",
			slog.Int("requested", o.ReadBuffer), slog.Int("effective", got))
	} else {
		log.Debug("receive buffer set", slog.Int("requested", o.ReadBuffer), slog.Int("effective", got))
	}
	rc, err := nl.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("dial proc connector: %w", err)
	}

	c := &Conn{
		nl:  nl,
		rc:  rc,
		log: log,
		buf: make([]byte, slots*slotLen),
	}
	c.initSlots()
	c.read = c.wait
	if err := c.sendOp(procCnMcastListen); err != nil {
		return nil, dialError("subscribe to proc events", err)
	}
	return c, nil
}

// dialError wraps err from step of Dial with what the caller can do about
// it.
func dialError(step string, err error) error {
	switch {
	case errors.Is(err, unix.EPROTONOSUPPORT), errors.Is(err, unix.EAFNOSUPPORT):
		return fmt.Errorf("dial proc connector: %s: %w (kernel built without CONFIG_CONNECTOR): %w", step, ErrNotSupported, err)
	case errors.Is(err, unix.ECONNREFUSED):
		return fmt.Errorf("dial proc connector: %s: %w (the proc connector exists only in the initial network namespace: run the agent in the host's network namespace)", step, err)
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("dial proc connector: %s: %w (run as root: this kernel lets only CAP_NET_ADMIN subscribe to the proc connector)", step, err)
	}
	return fmt.Errorf("dial proc connector: %s: %w", step, err)
}

// sendOp sends a subscription request: a cn_msg addressed to the proc
// connector carrying op as its 4-byte payload, the form every kernel
// accepts (6.6+ also accepts an 8-byte struct proc_input with an event
// filter).
func (c *Conn) sendOp(op uint32) error {
	b := make([]byte, cnMsgLen+4)
	ne.PutUint32(b[0:4], cnIdxProc)
	ne.PutUint32(b[4:8], cnValProc)
	ne.PutUint16(b[16:18], 4)
	ne.PutUint32(b[cnMsgLen:], op)
	_, err := c.nl.Send(netlink.Message{
		Header: netlink.Header{Type: netlink.Done},
		Data:   b,
	})
	return err
}

// Receive blocks until at least one event has been decoded, then also
// decodes whatever else is already queued (up to a bound), and returns dst
// with the events appended in arrival order. Messages that fail to decode
// are skipped and counted in Stats.
//
// When the kernel reports that the receive buffer overflowed, Receive
// returns dst and an error wrapping ErrOverrun. The Conn stays usable.
// After Close, Receive returns an error wrapping net.ErrClosed.
func (c *Conn) Receive(dst []Event) ([]Event, error) {
	c.batch, c.batchStart, c.readErr = dst, len(dst), nil
	err := c.rc.Control(c.read)
	dst, c.batch = c.batch, nil
	if err == nil && c.readErr == nil && len(dst) == c.batchStart && c.closed.Load() {
		err = net.ErrClosed
	}
	if err != nil {
		if c.closed.Load() {
			return dst, fmt.Errorf("receive proc events: %w", net.ErrClosed)
		}
		return dst, fmt.Errorf("receive proc events: %w", err)
	}
	return dst, c.readErr
}

func overrunError() error {
	return fmt.Errorf("receive proc events: %w (socket receive buffer full: raise Options.ReadBuffer)", ErrOverrun)
}

// wait is the syscall.RawConn control callback of Receive: it receives
// until a call yields an event, on this goroutine's thread. One
// recvmmsg(2) waits for a datagram and returns those queued behind it, a
// system call per wake-up; parking in the runtime's network poller
// instead costs four or five system calls and thread wake-ups per event
// at the rates a device sees (a read that would block, epoll_wait on
// another thread, futex wake-ups). The socket's receive timeout ends the
// wait every 100 ms, so that a concurrent Close, which takes effect when
// the callback returns, is noticed.
func (c *Conn) wait(fd uintptr) {
	for !c.closed.Load() {
		c.yield()
		n, errno := c.recvmmsg(fd)
		switch errno {
		case 0:
			for i := range n {
				c.handleDatagram(c.datagram(i))
			}
			if len(c.batch) > c.batchStart {
				return
			}
		case unix.EAGAIN, unix.EINTR: // the receive timeout, a signal
		case unix.ENOBUFS:
			c.overruns.Add(1)
			c.readErr = overrunError()
			return
		default:
			c.readErr = fmt.Errorf("receive proc events: %w", os.NewSyscallError("recvmmsg", errno))
			return
		}
	}
}

// yieldEvery is how often the reader passes through the Go scheduler;
// see yield.
const yieldEvery = 5 * time.Millisecond

// yield lets the Go scheduler run if it has not since yieldEvery.
//
// The runtime's monitor takes the processor from a goroutine that sits in
// a system call once it has gone 10 ms without being scheduled, counting
// the time in system calls; the reader, which never parks, would meet
// that on most of its receive and /proc system calls. Worse, the
// processor it gets back carries the monitor's stale bookkeeping, so it
// lost that one too at its next system call: measured, 4 processor
// losses, thread wake-ups and monitor restarts per fork+exec+exit.
// Yielding before every wait avoided those, but each yield wakes another
// thread to pick this goroutine up: 5 futex calls per exec. Every 5 ms is
// twice per monitor period, and cost 1.4 per exec.
func (c *Conn) yield() {
	if now := time.Now(); now.Sub(c.lastYield) >= yieldEvery {
		c.lastYield = now
		runtime.Gosched()
	}
}

// mmsghdr is struct mmsghdr, one entry of a recvmmsg(2) vector.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// initSlots points each entry of the recvmmsg vector at its buffer slot
// and sender address.
func (c *Conn) initSlots() {
	for i := range c.msgs {
		c.iov[i].Base = &c.buf[i*slotLen]
		c.iov[i].SetLen(slotLen)
		h := &c.msgs[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&c.from[i]))
		h.Iov = &c.iov[i]
		h.SetIovlen(1)
	}
}

// recvmmsg waits for a datagram and receives it with those already queued
// behind it, up to slots of them. It is a blocking system call, so it
// goes through the runtime (a raw one would hold up garbage collection).
func (c *Conn) recvmmsg(fd uintptr) (int, unix.Errno) {
	for i := range c.msgs {
		c.msgs[i].hdr.Namelen = unix.SizeofSockaddrNetlink
	}
	n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&c.msgs[0])), slots,
		unix.MSG_WAITFORONE, 0, 0)
	return int(n), errno
}

// datagram returns the datagram recvmmsg put in slot i, its sender, and
// whether it was cut short because it did not fit the slot.
func (c *Conn) datagram(i int) ([]byte, *unix.RawSockaddrNetlink, bool) {
	m := &c.msgs[i]
	return c.buf[i*slotLen : i*slotLen+int(m.len)], &c.from[i], m.hdr.Flags&unix.MSG_TRUNC != 0
}

// handleDatagram decodes datagram d from sender from, appending events to
// c.batch; truncated says that d is only the start of the datagram.
func (c *Conn) handleDatagram(d []byte, from *unix.RawSockaddrNetlink, truncated bool) {
	if from.Family != unix.AF_NETLINK || from.Pid != 0 {
		// Only a sender with CAP_NET_ADMIN can reach this socket, but
		// events must come from the kernel itself.
		c.messages.Add(1)
		c.decodeError(fmt.Errorf("datagram from netlink port %d, not the kernel", from.Pid), d)
		return
	}
	if truncated {
		c.messages.Add(1)
		c.decodeError(fmt.Errorf("datagram longer than %d bytes, truncated", len(d)), d)
		return
	}
	b := d
	for len(b) > 0 {
		c.messages.Add(1)
		if len(b) < unix.NLMSG_HDRLEN {
			c.decodeError(fmt.Errorf("%d trailing bytes, netlink header needs %d", len(b), unix.NLMSG_HDRLEN), b)
			return
		}
		l := ne.Uint32(b[0:4])
		if l < unix.NLMSG_HDRLEN || l > uint32(len(b)) {
			c.decodeError(fmt.Errorf("netlink header declares %d bytes, %d present", l, len(b)), b)
			return
		}
		m := b[:l]
		if typ := ne.Uint16(b[4:6]); typ != unix.NLMSG_DONE {
			c.decodeError(fmt.Errorf("netlink message type %d, want NLMSG_DONE", typ), m)
		} else if ev, err := Decode(m[unix.NLMSG_HDRLEN:]); err != nil {
			c.decodeError(err, m)
		} else {
			c.batch = append(c.batch, ev)
			c.events.Add(1)
		}
		next := (int(l) + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1)
		if next >= len(b) {
			return
		}
		b = b[next:]
	}
}

// decodeError counts a message that yielded no event. The first is logged
// as a warning with its leading bytes, later ones at debug level.
func (c *Conn) decodeError(err error, msg []byte) {
	c.decodeErrors.Add(1)
	level, text := slog.LevelDebug, "skipped undecodable proc connector message"
	if !c.warnedDecode {
		c.warnedDecode = true
		level, text = slog.LevelWarn, "skipped undecodable proc connector message (further ones are logged at debug level)"
	}
	if !c.log.Enabled(context.Background(), level) {
		return
	}
	c.log.Log(context.Background(), level, text,
		slog.Any("error", err), slog.String("bytes", hex.EncodeToString(msg[:min(len(msg), 64)])))
}

// Stats returns the Conn's counts so far. It is safe for concurrent use.
func (c *Conn) Stats() Stats {
	return Stats{
		Messages:     c.messages.Load(),
		Events:       c.events.Load(),
		DecodeErrors: c.decodeErrors.Load(),
		Overruns:     c.overruns.Load(),
	}
}

// Close unsubscribes (PROC_CN_MCAST_IGNORE, best effort: without it the
// kernel keeps counting a listener and producing events for nobody) and
// closes the socket, making a concurrent Receive return. Calling Close
// again returns an error wrapping net.ErrClosed.
func (c *Conn) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return fmt.Errorf("close proc connector: %w", net.ErrClosed)
	}
	if err := c.sendOp(procCnMcastIgnore); err != nil {
		c.log.Debug("unsubscribe from proc events failed", slog.Any("error", err))
	}
	if err := c.nl.Close(); err != nil {
		return fmt.Errorf("close proc connector: %w", err)
	}
	return nil
}
