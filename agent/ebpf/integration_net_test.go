package ebpf

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"
)

// equateAddr compares netip values by ==.
var equateAddr = cmpopts.EquateComparable(netip.AddrPort{})

// netWatch collects this process's network events of the given kinds.
func netWatch(t *testing.T, h *hub, kinds ...Kind) *watch {
	self := uint32(os.Getpid())
	return h.watch(t, func(ev *Event) bool {
		if ev.Net == nil || ev.Header.TGID != self {
			return false
		}
		for _, k := range kinds {
			if ev.Kind == k {
				return true
			}
		}
		return false
	})
}

// nextNet returns the next event of w, which must be of the given kind.
func nextNet(t *testing.T, w *watch, kind Kind) NetOp {
	t.Helper()
	ev := w.next(t, waitTimeout)
	if ev.Kind != kind {
		t.Fatalf("kind %v, want %v (%+v)", ev.Kind, kind, *ev.Net)
	}
	return *ev.Net
}

// soProtocol returns the protocol of a socket: Go listens with MPTCP where
// the kernel has it, and an MPTCP listener accepts plain TCP clients as TCP.
func soProtocol(t *testing.T, c syscall.Conn) uint16 {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var proto int
	var serr error
	if err := rc.Control(func(fd uintptr) { proto, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PROTOCOL) }); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
	return uint16(proto)
}

func TestIntegrationTCP(t *testing.T) {
	h := sharedHub(t)
	for _, tc := range []struct {
		network, addr string
		family        uint16
	}{
		{"tcp4", "127.0.0.1:0", unix.AF_INET},
		{"tcp6", "[::1]:0", unix.AF_INET6},
	} {
		t.Run(tc.network, func(t *testing.T) {
			w := netWatch(t, h, KindBind, KindListen, KindConnect, KindAccept)
			ln, err := net.Listen(tc.network, tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			server := ln.Addr().(*net.TCPAddr).AddrPort()
			conn, err := net.Dial(tc.network, server.String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			sc, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer sc.Close()
			client := conn.LocalAddr().(*net.TCPAddr).AddrPort()

			// The events of these sockets (the net package binds probe
			// sockets of its own on first use).
			got := map[Kind]NetOp{}
			var outcome *NetOp
			for len(got) < 4 || (got[KindConnect].Ret == -int64(unix.EINPROGRESS) && outcome == nil) {
				ev := w.next(t, waitTimeout)
				if ev.Net.Local.Port() != server.Port() && ev.Net.Remote.Port() != server.Port() {
					continue
				}
				if ev.Net.Op == OpConnectOutcome {
					outcome = ev.Net
					continue
				}
				got[ev.Kind] = *ev.Net
			}
			// Go connects without blocking: EINPROGRESS, then the
			// outcome once the handshake is done; or 0 if it was done
			// already.
			switch r := got[KindConnect].Ret; {
			case r == -int64(unix.EINPROGRESS):
				want := NetOp{Op: OpConnectOutcome, FD: got[KindConnect].FD, Family: tc.family, Type: unix.SOCK_STREAM,
					Protocol: unix.IPPROTO_TCP, Local: client, Remote: server}
				if diff := cmp.Diff(want, *outcome, equateAddr); diff != "" {
					t.Errorf("connect outcome (-want +got):\n%s", diff)
				}
			case r != 0:
				t.Errorf("connect returned %d", r)
			}
			if a := got[KindAccept]; a.Ret < 0 || int32(a.Ret) != a.FD {
				t.Errorf("accept returned %d, fd %d", a.Ret, a.FD)
			}
			lproto := soProtocol(t, ln.(*net.TCPListener))
			stream := func(op Op, proto uint16, local, remote netip.AddrPort) NetOp {
				return NetOp{Op: op, Family: tc.family, Type: unix.SOCK_STREAM, Protocol: proto, Local: local, Remote: remote}
			}
			want := map[Kind]NetOp{
				KindBind:    stream(OpBind, lproto, server, netip.AddrPort{}),
				KindListen:  stream(OpListen, lproto, server, netip.AddrPort{}),
				KindConnect: stream(OpConnect, unix.IPPROTO_TCP, client, server),
				KindAccept:  stream(OpAccept4, soProtocol(t, sc.(*net.TCPConn)), server, client),
			}
			if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(NetOp{}, "FD", "Ret"), equateAddr); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIntegrationUnixSocket(t *testing.T) {
	h := sharedHub(t)
	path := filepath.Join(tempDir(t), "sock")
	for _, tc := range []struct{ kind, name string }{
		{"path", path},
		{"abstract", "@xdr-test-" + filepath.Base(filepath.Dir(path))},
	} {
		name := tc.name
		t.Run(tc.kind, func(t *testing.T) {
			w := netWatch(t, h, KindBind, KindListen, KindConnect)
			ln, err := net.Listen("unix", name)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			kernelName := strings.Replace(name, "@", "\x00", 1)
			unixSock := NetOp{Family: unix.AF_UNIX, Type: unix.SOCK_STREAM}
			ignore := cmpopts.IgnoreFields(NetOp{}, "FD", "Ret")

			want := unixSock
			want.Op, want.UnixPath = OpBind, kernelName
			if diff := cmp.Diff(want, nextNet(t, w, KindBind), ignore, equateAddr); diff != "" {
				t.Errorf("bind (-want +got):\n%s", diff)
			}
			want = unixSock
			want.Op = OpListen
			if diff := cmp.Diff(want, nextNet(t, w, KindListen), ignore, equateAddr); diff != "" {
				t.Errorf("listen (-want +got):\n%s", diff)
			}
			conn, err := net.Dial("unix", name)
			if err != nil {
				t.Fatal(err)
			}
			conn.Close()
			want = unixSock
			want.Op, want.UnixPath = OpConnect, kernelName
			if diff := cmp.Diff(want, nextNet(t, w, KindConnect), ignore, equateAddr); diff != "" {
				t.Errorf("connect (-want +got):\n%s", diff)
			}
		})
	}
}

// udpSocket returns an unconnected UDP socket of the family of to.
func udpSocket(t *testing.T, to netip.AddrPort) int {
	t.Helper()
	family := unix.AF_INET
	if to.Addr().Is6() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func sockaddr(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is4() {
		return &unix.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())}
	}
	return &unix.SockaddrInet6{Addr: ap.Addr().As16(), Port: int(ap.Port())}
}

func localAddr(t *testing.T, fd int) netip.AddrPort {
	t.Helper()
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port))
	}
	t.Fatalf("socket address %T", sa)
	return netip.AddrPort{}
}

func TestIntegrationUDPSend(t *testing.T) {
	h := sharedHub(t)
	w := netWatch(t, h, KindSend)
	// A receiver, so that the datagrams go somewhere.
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	to := rx.LocalAddr().(*net.UDPAddr).AddrPort()
	fd := udpSocket(t, to)
	for range 3 { // one event per socket and destination
		if err := unix.Sendto(fd, []byte("hello"), 0, sockaddr(to)); err != nil {
			t.Fatal(err)
		}
	}
	got := nextNet(t, w, KindSend)
	want := NetOp{
		Op: OpSendto, Ret: 5, FD: int32(fd), Family: unix.AF_INET, Type: unix.SOCK_DGRAM, Protocol: unix.IPPROTO_UDP,
		Local: localAddr(t, fd), Remote: to,
	}
	if diff := cmp.Diff(want, got, equateAddr); diff != "" {
		t.Errorf("send (-want +got):\n%s", diff)
	}
	for _, ev := range w.drain(settle) {
		t.Errorf("repeated send reported: %+v", *ev.Net)
	}
}

// dnsQuery builds a DNS query for name and record type qtype.
func dnsQuery(id uint16, name string, qtype uint16) []byte {
	b := binary.BigEndian.AppendUint16(nil, id)
	b = append(b, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0) // RD, one question
	for _, label := range strings.Split(name, ".") {
		b = append(append(b, byte(len(label))), label...)
	}
	b = append(b, 0)
	b = binary.BigEndian.AppendUint16(b, qtype)
	return binary.BigEndian.AppendUint16(b, 1) // class IN
}

// dnsServer receives datagrams on port 53 of the loopback address of
// network, so that queries sent there do not bounce.
func dnsServer(t *testing.T, network string) netip.AddrPort {
	t.Helper()
	ip := net.IPv4(127, 0, 0, 1)
	if network == "udp6" {
		ip = net.IPv6loopback
	}
	c, err := net.ListenUDP(network, &net.UDPAddr{IP: ip, Port: 53})
	if err != nil {
		t.Skipf("listen on port 53: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

func TestIntegrationDNS(t *testing.T) {
	h := sharedHub(t)
	check := func(t *testing.T, w *watch, want NetOp) {
		t.Helper()
		got := nextNet(t, w, KindDNS)
		if diff := cmp.Diff(want, got, equateAddr); diff != "" {
			t.Errorf("dns (-want +got):\n%s", diff)
		}
	}
	query := func(op Op, fd int, to netip.AddrPort, q []byte, ret int) NetOp {
		family := uint16(unix.AF_INET)
		if to.Addr().Is6() {
			family = unix.AF_INET6
		}
		return NetOp{
			Op: op, Ret: int64(ret), FD: int32(fd), Family: family, Type: unix.SOCK_DGRAM, Protocol: unix.IPPROTO_UDP,
			Local: localAddr(t, fd), Remote: to, Payload: q, PayloadSize: uint32(len(q)),
		}
	}

	t.Run("sendto", func(t *testing.T) {
		w := netWatch(t, h, KindDNS)
		to := dnsServer(t, "udp4")
		fd := udpSocket(t, to)
		q := dnsQuery(0x1234, "sendto.xdr.example", 1)
		for range 2 { // every query is counted: the repeat is merged
			if err := unix.Sendto(fd, q, 0, sockaddr(to)); err != nil {
				t.Fatal(err)
			}
		}
		// The repeat is merged when both records come in one read; the
		// reader may also see them in two. Either way the counts add up.
		var total uint32
		for total < 2 {
			ev := w.next(t, waitTimeout)
			if diff := cmp.Diff(query(OpSendto, fd, to, q, len(q)), *ev.Net, equateAddr); diff != "" {
				t.Errorf("dns (-want +got):\n%s", diff)
			}
			total += ev.Count
		}
		if total != 2 {
			t.Errorf("counts add up to %d, want 2", total)
		}
	})

	t.Run("write on a connected socket", func(t *testing.T) {
		w := netWatch(t, h, KindDNS)
		to := dnsServer(t, "udp6")
		fd := udpSocket(t, to)
		if err := unix.Connect(fd, sockaddr(to)); err != nil {
			t.Fatal(err)
		}
		q := dnsQuery(0x4321, "write.xdr.example", 28)
		if _, err := unix.Write(fd, q); err != nil {
			t.Fatal(err)
		}
		check(t, w, query(OpWrite, fd, to, q, 0)) // seen at the call's entry
	})

	t.Run("sendmsg and sendmmsg", func(t *testing.T) {
		w := netWatch(t, h, KindDNS)
		to := dnsServer(t, "udp4")
		fd := udpSocket(t, to)
		q1 := dnsQuery(1, "a.xdr.example", 1)
		q2 := dnsQuery(2, "a.xdr.example", 28)
		if err := unix.Sendmsg(fd, q1, nil, sockaddr(to), 0); err != nil {
			t.Fatal(err)
		}
		check(t, w, query(OpSendmsg, fd, to, q1, len(q1)))

		// The A and AAAA queries in one call, as glibc sends them, to the
		// connected peer.
		if err := unix.Connect(fd, sockaddr(to)); err != nil {
			t.Fatal(err)
		}
		var iov [2]unix.Iovec
		var msgs [2]unix.Mmsghdr
		for i, q := range [][]byte{q1, q2} {
			iov[i].Base = &q[0]
			iov[i].SetLen(len(q))
			msgs[i].Hdr.Iov = &iov[i]
			msgs[i].Hdr.SetIovlen(1)
		}
		n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), 2, 0, 0, 0)
		if errno != 0 || n != 2 {
			t.Fatalf("sendmmsg: %d, %v", n, errno)
		}
		for _, q := range [][]byte{q1, q2} {
			check(t, w, query(OpSendmmsg, fd, to, q, len(q)))
		}
	})
}

// A refused non-blocking connect: either the call itself says so, or it
// returns EINPROGRESS and the outcome record carries ECONNREFUSED, with
// the connecting process as its header although the kernel ended the
// handshake in softirq context.
func TestIntegrationConnectOutcomeRefused(t *testing.T) {
	h := sharedHub(t)
	self := uint32(os.Getpid())
	// A port nothing listens on: bind one, then close it.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	w := netWatch(t, h, KindConnect)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	cerr := unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}})
	t.Logf("connect to a closed port: %v", cerr)
	var connect, outcome *Event
	for connect == nil || (connect.Net.Ret == -int64(unix.EINPROGRESS) && outcome == nil) {
		ev := w.next(t, waitTimeout)
		if ev.Net.Remote.Port() != uint16(port) || ev.Net.FD != int32(fd) {
			continue
		}
		if ev.Net.Op == OpConnectOutcome {
			outcome = &ev
		} else {
			connect = &ev
		}
	}
	switch {
	case cerr == unix.EINPROGRESS:
		if connect.Net.Ret != -int64(unix.EINPROGRESS) {
			t.Fatalf("connect returned EINPROGRESS, the record says %d", connect.Net.Ret)
		}
		if outcome.Net.Ret != -int64(unix.ECONNREFUSED) || outcome.Header.TGID != self || outcome.Header.PID != connect.Header.PID {
			t.Errorf("outcome: ret %d, tgid %d pid %d; want %d from %d/%d", outcome.Net.Ret, outcome.Header.TGID,
				outcome.Header.PID, -int64(unix.ECONNREFUSED), self, connect.Header.PID)
		}
		if outcome.Header.Time < connect.Header.Time {
			t.Errorf("outcome time %d before the connect's %d", outcome.Header.Time, connect.Header.Time)
		}
	case cerr == unix.ECONNREFUSED:
		if connect.Net.Ret != -int64(unix.ECONNREFUSED) {
			t.Errorf("connect refused, the record says %d", connect.Net.Ret)
		}
	default:
		t.Fatalf("connect to a closed port: %v", cerr)
	}
}
