//go:build linux

package proccon

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// newTestConn returns a Conn without a socket, for feeding datagrams to
// handleDatagram.
func newTestConn() *Conn {
	return &Conn{log: slog.New(slog.DiscardHandler)}
}

// kernel is the sender address of the kernel's datagrams.
var kernel = unix.RawSockaddrNetlink{Family: unix.AF_NETLINK}

// nlmsg frames payload as a netlink message of type typ, padded to the
// netlink alignment.
func nlmsg(typ uint16, payload []byte) []byte {
	l := unix.NLMSG_HDRLEN + len(payload)
	b := make([]byte, (l+unix.NLMSG_ALIGNTO-1)&^(unix.NLMSG_ALIGNTO-1))
	ne.PutUint32(b[0:4], uint32(l))
	ne.PutUint16(b[4:6], typ)
	copy(b[unix.NLMSG_HDRLEN:], payload)
	return b
}

// procMsg builds a proc connector message without relying on the
// little-endian fixtures.
func procMsg(what What, union ...uint32) []byte {
	b := make([]byte, cnMsgLen+procEventHeaderLen+24)
	ne.PutUint32(b[0:4], cnIdxProc)
	ne.PutUint32(b[4:8], cnValProc)
	ne.PutUint16(b[16:18], procEventHeaderLen+24)
	ne.PutUint32(b[cnMsgLen:], uint32(what))
	ne.PutUint64(b[cnMsgLen+8:], 42)
	for i, v := range union {
		ne.PutUint32(b[cnMsgLen+procEventHeaderLen+4*i:], v)
	}
	return b
}

func concat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func TestHandleDatagram(t *testing.T) {
	fork := procMsg(Fork, 1, 1, 100, 100)
	exec := procMsg(Exec, 100, 100)
	exit := procMsg(Exit, 100, 100, 0, 17, 1, 1)
	forkEv := Event{What: Fork, Timestamp: 42, PID: 100, TGID: 100, ParentPID: 1, ParentTGID: 1}
	execEv := Event{What: Exec, Timestamp: 42, PID: 100, TGID: 100}
	exitEv := Event{What: Exit, Timestamp: 42, PID: 100, TGID: 100, ParentPID: 1, ParentTGID: 1, ExitSignal: 17}
	notProc := procMsg(Exec, 100, 100)
	ne.PutUint32(notProc[0:4], 7)
	badHeader := nlmsg(unix.NLMSG_DONE, exec)
	ne.PutUint32(badHeader[0:4], 8)
	tooLong := nlmsg(unix.NLMSG_DONE, exec)
	ne.PutUint32(tooLong[0:4], uint32(len(tooLong)+4))

	tests := []struct {
		name      string
		datagram  []byte
		truncated bool   // the datagram did not fit its buffer
		senderPID uint32 // netlink port of the sender
		want      []Event
		wantStats Stats
	}{
		{
			name:      "one event",
			datagram:  nlmsg(unix.NLMSG_DONE, fork),
			want:      []Event{forkEv},
			wantStats: Stats{Messages: 1, Events: 1},
		},
		{
			name:      "several messages in one datagram",
			datagram:  concat(nlmsg(unix.NLMSG_DONE, fork), nlmsg(unix.NLMSG_DONE, exec), nlmsg(unix.NLMSG_DONE, exit)),
			want:      []Event{forkEv, execEv, exitEv},
			wantStats: Stats{Messages: 3, Events: 3},
		},
		{
			name:      "unaligned message length is padded",
			datagram:  concat(nlmsg(unix.NLMSG_DONE, append(fork, 0xee)), nlmsg(unix.NLMSG_DONE, exec)),
			want:      []Event{forkEv, execEv},
			wantStats: Stats{Messages: 2, Events: 2},
		},
		{
			name:      "undecodable message is skipped",
			datagram:  concat(nlmsg(unix.NLMSG_DONE, notProc), nlmsg(unix.NLMSG_DONE, exec)),
			want:      []Event{execEv},
			wantStats: Stats{Messages: 2, Events: 1, DecodeErrors: 1},
		},
		{
			name:      "message type other than NLMSG_DONE",
			datagram:  concat(nlmsg(unix.NLMSG_ERROR, exec), nlmsg(unix.NLMSG_DONE, exec)),
			want:      []Event{execEv},
			wantStats: Stats{Messages: 2, Events: 1, DecodeErrors: 1},
		},
		{
			name:      "header length below header size",
			datagram:  concat(nlmsg(unix.NLMSG_DONE, fork), badHeader),
			want:      []Event{forkEv},
			wantStats: Stats{Messages: 2, Events: 1, DecodeErrors: 1},
		},
		{
			name:      "header length beyond datagram",
			datagram:  tooLong,
			wantStats: Stats{Messages: 1, DecodeErrors: 1},
		},
		{
			name:      "trailing bytes shorter than a header",
			datagram:  concat(nlmsg(unix.NLMSG_DONE, exec), make([]byte, 8)),
			want:      []Event{execEv},
			wantStats: Stats{Messages: 2, Events: 1, DecodeErrors: 1},
		},
		{
			name:      "truncated datagram",
			datagram:  nlmsg(unix.NLMSG_DONE, exec),
			truncated: true,
			wantStats: Stats{Messages: 1, DecodeErrors: 1},
		},
		{
			name:      "sender is not the kernel",
			datagram:  nlmsg(unix.NLMSG_DONE, exec),
			senderPID: 4242,
			wantStats: Stats{Messages: 1, DecodeErrors: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestConn()
			from := kernel
			from.Pid = tt.senderPID
			c.handleDatagram(tt.datagram, &from, tt.truncated)
			if diff := cmp.Diff(tt.want, c.batch); diff != "" {
				t.Errorf("events mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantStats, c.Stats()); diff != "" {
				t.Errorf("stats mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHandleDatagramDoesNotAllocate(t *testing.T) {
	c := newTestConn()
	d := concat(nlmsg(unix.NLMSG_DONE, procMsg(Fork, 1, 1, 100, 100)), nlmsg(unix.NLMSG_DONE, procMsg(Exit, 100, 100, 0, 17, 1, 1)))
	c.batch = make([]Event, 0, 2)
	allocs := testing.AllocsPerRun(100, func() {
		c.batch = c.batch[:0]
		c.handleDatagram(d, &kernel, false)
	})
	if allocs != 0 {
		t.Errorf("handleDatagram allocates %v times per datagram, want 0", allocs)
	}
	if len(c.batch) != 2 {
		t.Errorf("decoded %d events, want 2", len(c.batch))
	}
}

func TestDialError(t *testing.T) {
	tests := []struct {
		name        string
		err         error
		wantIs      error
		wantMessage string
	}{
		{"no connector", os.NewSyscallError("socket", unix.EPROTONOSUPPORT), ErrNotSupported, "CONFIG_CONNECTOR"},
		{"no netlink", os.NewSyscallError("socket", unix.EAFNOSUPPORT), ErrNotSupported, "CONFIG_CONNECTOR"},
		{"not root", fmt.Errorf("netlink join-group: %w", os.NewSyscallError("setsockopt", unix.EPERM)), os.ErrPermission, "run as root"},
		{"other network namespace", os.NewSyscallError("sendmsg", unix.ECONNREFUSED), unix.ECONNREFUSED, "network namespace"},
		{"other", os.NewSyscallError("socket", unix.EMFILE), unix.EMFILE, "open netlink connector socket"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := dialError("open netlink connector socket", tt.err)
			if !errors.Is(err, tt.wantIs) || !errors.Is(err, tt.err) {
				t.Errorf("dialError(%v) = %v, want it to wrap %v and the original error", tt.err, err, tt.wantIs)
			}
			if !strings.Contains(err.Error(), tt.wantMessage) {
				t.Errorf("dialError(%v) = %q, want it to mention %q", tt.err, err, tt.wantMessage)
			}
		})
	}
}

func FuzzHandleDatagram(f *testing.F) {
	f.Add(nlmsg(unix.NLMSG_DONE, procMsg(Fork, 1, 1, 100, 100)))
	f.Add(concat(nlmsg(unix.NLMSG_DONE, procMsg(Comm, 100, 100, 0x656d616e)), nlmsg(unix.NLMSG_DONE, procMsg(Exit, 100, 100, 0, 17, 1, 1))))
	f.Add(concat(nlmsg(unix.NLMSG_DONE, procMsg(None)), make([]byte, 5)))
	f.Fuzz(func(t *testing.T, d []byte) {
		if len(d) > slotLen {
			t.Skip()
		}
		c := newTestConn()
		c.handleDatagram(d, &kernel, false)
		s := c.Stats()
		if s.Messages != s.Events+s.DecodeErrors {
			t.Fatalf("stats do not add up: %+v", s)
		}
		if s.Events != uint64(len(c.batch)) {
			t.Fatalf("counted %d events, returned %d", s.Events, len(c.batch))
		}
		if s.Messages == 0 && len(d) > 0 {
			t.Fatalf("non-empty datagram counted no message: %+v", s)
		}
	})
}

func BenchmarkHandleDatagram(b *testing.B) {
	c := newTestConn()
	d := nlmsg(unix.NLMSG_DONE, procMsg(Exit, 100, 100, 0, 17, 1, 1))
	c.batch = make([]Event, 0, 1)
	b.ReportAllocs()
	b.SetBytes(int64(len(d)))
	for b.Loop() {
		c.batch = c.batch[:0]
		c.handleDatagram(d, &kernel, false)
	}
}

// TestRecvmmsg checks the recvmmsg vector (its layout, the slots, the
// lengths and the truncation flag) on a datagram socket pair, which needs
// no privilege and runs under qemu for the 32-bit layout.
func TestRecvmmsg(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	sent := [][]byte{[]byte("one"), bytes.Repeat([]byte{'x'}, 200), bytes.Repeat([]byte{'y'}, slotLen+1), []byte("four")}
	for _, d := range sent {
		if err := unix.Send(fds[1], d, 0); err != nil {
			t.Fatal(err)
		}
	}
	c := newTestConn()
	c.buf = make([]byte, slots*slotLen)
	c.initSlots()
	n, errno := c.recvmmsg(uintptr(fds[0]))
	if errno != 0 || n != len(sent) {
		t.Fatalf("recvmmsg = %d, %v; want %d datagrams", n, errno, len(sent))
	}
	for i, want := range sent {
		got, _, truncated := c.datagram(i)
		if wantTrunc := len(want) > slotLen; truncated != wantTrunc || !bytes.Equal(got, want[:min(len(want), slotLen)]) {
			t.Errorf("slot %d: %d bytes, truncated %v; want %d bytes, truncated %v", i, len(got), truncated, min(len(want), slotLen), wantTrunc)
		}
	}
	// Nothing queued: MSG_WAITFORONE still waits for the first datagram,
	// so this needs the socket's receive timeout.
	tv := unix.NsecToTimeval((10 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fds[0], unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	if n, errno := c.recvmmsg(uintptr(fds[0])); errno != unix.EAGAIN {
		t.Errorf("recvmmsg on an empty socket = %d, %v; want EAGAIN after the timeout", n, errno)
	}
}
