package mapper

import (
	"net/netip"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/xdr-sensor/xdr/agent/ebpf"
	"github.com/xdr-sensor/xdr/agent/proctable"
	"github.com/xdr-sensor/xdr/proto/objid"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// dnsQuery builds a query for name (dotted, no trailing dot) and qtype.
func dnsQuery(name string, qtype uint16) []byte {
	b := []byte{0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0}
	start := 0
	for i := 0; name != "" && i <= len(name); i++ {
		if i == len(name) || name[i] == '.' {
			b = append(b, byte(i-start))
			b = append(b, name[start:i]...)
			start = i + 1
		}
	}
	return append(b, 0, byte(qtype>>8), byte(qtype), 0, 1)
}

func TestActivity(t *testing.T) {
	m, tab := newMapper(t)
	self := tab.Lookup(uint32(os.Getpid()))
	fi := ebpf.FileInfo{Inode: 42, Dev: 7, Mode: unix.S_IFREG | 0o644, UID: 0, GID: 0, Size: 10, ModTime: 100, ChangeTime: 101}
	wantFile := &xdrv1.File{Path: "/tmp/x", Size: 10, Mode: unix.S_IFREG | 0o644, OwnerName: "root", GroupName: "root",
		ChangeTime: 101, ModifyTime: 100, Device: 7, Inode: 42}
	with := func(f *xdrv1.File, set func(*xdrv1.File)) *xdrv1.File {
		c := proto.Clone(f).(*xdrv1.File)
		set(c)
		return c
	}
	local := netip.MustParseAddrPort("127.0.0.1:40000")
	remote := netip.MustParseAddrPort("127.0.0.1:8080")
	tests := []struct {
		name       string
		in         ebpf.Event
		wantAccess xdrv1.XdrAccessType // UNSPECIFIED: not reported
		wantTarget proto.Message
		wantID     uint64
	}{
		{"open", ebpf.Event{Kind: ebpf.KindFileOpen, File: &ebpf.FileOp{Op: ebpf.OpOpenat, Path: "/tmp/x", File: fi, Flags: unix.O_RDONLY}},
			xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_OPEN, wantFile, objid.File("/tmp/x")},
		{"open that created", ebpf.Event{Kind: ebpf.KindFileOpen, File: &ebpf.FileOp{Op: ebpf.OpOpenat, Path: "/tmp/x", File: fi, Created: true, Flags: unix.O_CREAT}},
			xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_CREATE, with(wantFile, func(f *xdrv1.File) { f.Flags = unix.O_CREAT }), objid.File("/tmp/x")},
		{"denied open", ebpf.Event{Kind: ebpf.KindFileOpen, File: &ebpf.FileOp{Op: ebpf.OpOpenat, Path: "/tmp/x", Ret: -int64(unix.EACCES)}},
			0, nil, 0},
		{"unlink by path", ebpf.Event{Kind: ebpf.KindFileUnlink, File: &ebpf.FileOp{Op: ebpf.OpUnlinkat, Path: "/tmp/y", PathRaw: true}},
			xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_DELETE, &xdrv1.File{Path: "/tmp/y"}, objid.File("/tmp/y")},
		{"rename", ebpf.Event{Kind: ebpf.KindFileRename, File: &ebpf.FileOp{Op: ebpf.OpRenameat2, Path: "/tmp/a", Path2: "/tmp/b"}},
			xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_MOVE, &xdrv1.File{Path: "/tmp/a", NewPath: "/tmp/b"}, objid.File("/tmp/a")},
		{"copy", ebpf.Event{Kind: ebpf.KindFileCopy, File: &ebpf.FileOp{Op: ebpf.OpCopyFileRange, Path: "/tmp/dst", Path2: "/tmp/src"}},
			xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_COPY, &xdrv1.File{Path: "/tmp/src", NewPath: "/tmp/dst"}, objid.File("/tmp/src")},
		{"chmod", ebpf.Event{Kind: ebpf.KindFileChmod, File: &ebpf.FileOp{Op: ebpf.OpFchmodat, Path: "/tmp/x", Mode: 0o755}},
			xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_SET_SECURITY, &xdrv1.File{Path: "/tmp/x"}, objid.File("/tmp/x")},
		{"utimes", ebpf.Event{Kind: ebpf.KindFileUtimes, File: &ebpf.FileOp{Op: ebpf.OpUtimensat, Path: "/tmp/x"}},
			xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_MODIFY_TIMESTAMP, &xdrv1.File{Path: "/tmp/x"}, objid.File("/tmp/x")},
		{"write", ebpf.Event{Kind: ebpf.KindFileWrite, File: &ebpf.FileOp{Op: ebpf.OpWrite, Path: "/tmp/x", File: fi}},
			xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_MODIFY, wantFile, objid.File("/tmp/x")},
		{"close", ebpf.Event{Kind: ebpf.KindFileClose, File: &ebpf.FileOp{Op: ebpf.OpClose, Path: "/tmp/x", File: fi}},
			xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_CLOSE, wantFile, objid.File("/tmp/x")},
		{"memfd", ebpf.Event{Kind: ebpf.KindMemfd, File: &ebpf.FileOp{Op: ebpf.OpMemfdCreate, Name: "payload"}},
			xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_CREATE, &xdrv1.File{Path: "/memfd:payload", Memfd: true}, objid.File("/memfd:payload")},
		{"load image", ebpf.Event{Kind: ebpf.KindLoadImage, Memory: &ebpf.MemoryOp{Op: ebpf.OpMmap, Path: "/tmp/x", File: fi, Prot: unix.PROT_EXEC}},
			xdrv1.XdrAccessType_XDR_ACCESS_TYPE_PROCESS_LOAD_IMAGE, wantFile, objid.File("/tmp/x")},
		{"mprotect", ebpf.Event{Kind: ebpf.KindMprotect, Memory: &ebpf.MemoryOp{Op: ebpf.OpMprotect, Addr: 0x1000, Len: 4096, Prot: 5, OldProt: 3}},
			xdrv1.XdrAccessType_XDR_ACCESS_TYPE_MEMORY_MODIFY_PERMISSION, &xdrv1.Memory{Address: 0x1000, Length: 4096, Prot: 5, OldProt: 3},
			objid.Memory(&xdrv1.Memory{Prot: 5})},
		{"outcome of a non-blocking connect", ebpf.Event{Kind: ebpf.KindConnect, Net: &ebpf.NetOp{Op: ebpf.OpConnectOutcome, Ret: -int64(unix.ETIMEDOUT), Family: unix.AF_INET, Type: unix.SOCK_STREAM, Local: local, Remote: remote}},
			xdrv1.XdrAccessType_XDR_ACCESS_TYPE_CONNECTION_CONNECT_OUTBOUND,
			&xdrv1.Connection{Protocol: xdrv1.XdrConnectionType_XDR_CONNECTION_TYPE_TCP, Family: unix.AF_INET, LocalAddress: "127.0.0.1", LocalPort: 40000,
				RemoteAddress: "127.0.0.1", RemotePort: 8080, Direction: xdrv1.Direction_DIRECTION_OUTBOUND, Result: -int32(unix.ETIMEDOUT), Outcome: true},
			objid.Connection(&xdrv1.Connection{Protocol: xdrv1.XdrConnectionType_XDR_CONNECTION_TYPE_TCP, Direction: xdrv1.Direction_DIRECTION_OUTBOUND, RemoteAddress: "127.0.0.1", RemotePort: 8080})},
		{"connect refused", ebpf.Event{Kind: ebpf.KindConnect, Net: &ebpf.NetOp{Op: ebpf.OpConnect, Ret: -int64(unix.ECONNREFUSED), Family: unix.AF_INET, Type: unix.SOCK_STREAM, Local: local, Remote: remote}},
			xdrv1.XdrAccessType_XDR_ACCESS_TYPE_CONNECTION_CONNECT_OUTBOUND,
			&xdrv1.Connection{Protocol: xdrv1.XdrConnectionType_XDR_CONNECTION_TYPE_TCP, Family: unix.AF_INET, LocalAddress: "127.0.0.1", LocalPort: 40000,
				RemoteAddress: "127.0.0.1", RemotePort: 8080, Direction: xdrv1.Direction_DIRECTION_OUTBOUND, Result: -int32(unix.ECONNREFUSED)},
			objid.Connection(&xdrv1.Connection{Protocol: xdrv1.XdrConnectionType_XDR_CONNECTION_TYPE_TCP, Direction: xdrv1.Direction_DIRECTION_OUTBOUND, RemoteAddress: "127.0.0.1", RemotePort: 8080})},
		{"accept", ebpf.Event{Kind: ebpf.KindAccept, Net: &ebpf.NetOp{Op: ebpf.OpAccept4, Ret: 5, Family: unix.AF_INET6, Type: unix.SOCK_STREAM,
			Local: netip.MustParseAddrPort("[::1]:8080"), Remote: netip.MustParseAddrPort("[::1]:50000")}},
			xdrv1.XdrAccessType_XDR_ACCESS_TYPE_CONNECTION_CONNECT_INBOUND,
			&xdrv1.Connection{Protocol: xdrv1.XdrConnectionType_XDR_CONNECTION_TYPE_TCP, Family: unix.AF_INET6, LocalAddress: "::1", LocalPort: 8080,
				RemoteAddress: "::1", RemotePort: 50000, Direction: xdrv1.Direction_DIRECTION_INBOUND},
			objid.Connection(&xdrv1.Connection{Protocol: xdrv1.XdrConnectionType_XDR_CONNECTION_TYPE_TCP, Direction: xdrv1.Direction_DIRECTION_INBOUND, RemoteAddress: "::1", RemotePort: 50000})},
		{"listen", ebpf.Event{Kind: ebpf.KindListen, Net: &ebpf.NetOp{Op: ebpf.OpListen, Family: unix.AF_INET, Type: unix.SOCK_STREAM, Local: remote}},
			xdrv1.XdrAccessType_XDR_ACCESS_TYPE_CONNECTION_LISTEN,
			&xdrv1.Connection{Protocol: xdrv1.XdrConnectionType_XDR_CONNECTION_TYPE_TCP, Family: unix.AF_INET, LocalAddress: "127.0.0.1", LocalPort: 8080, Direction: xdrv1.Direction_DIRECTION_LISTEN},
			objid.Connection(&xdrv1.Connection{Protocol: xdrv1.XdrConnectionType_XDR_CONNECTION_TYPE_TCP, Direction: xdrv1.Direction_DIRECTION_LISTEN, LocalAddress: "127.0.0.1", LocalPort: 8080})},
		{"bind of a stream socket", ebpf.Event{Kind: ebpf.KindBind, Net: &ebpf.NetOp{Op: ebpf.OpBind, Family: unix.AF_INET, Type: unix.SOCK_STREAM, Local: remote}},
			0, nil, 0},
		{"unix connect", ebpf.Event{Kind: ebpf.KindConnect, Net: &ebpf.NetOp{Op: ebpf.OpConnect, Family: unix.AF_UNIX, Type: unix.SOCK_STREAM, UnixPath: "/run/x.sock"}},
			xdrv1.XdrAccessType_XDR_ACCESS_TYPE_CONNECTION_CONNECT_OUTBOUND,
			&xdrv1.Connection{Family: unix.AF_UNIX, RemoteAddress: "/run/x.sock", Direction: xdrv1.Direction_DIRECTION_OUTBOUND},
			objid.Connection(&xdrv1.Connection{Direction: xdrv1.Direction_DIRECTION_OUTBOUND, RemoteAddress: "/run/x.sock"})},
		{"dns query", ebpf.Event{Kind: ebpf.KindDNS, Net: &ebpf.NetOp{Op: ebpf.OpSendto, Family: unix.AF_INET, Type: unix.SOCK_DGRAM,
			Remote: netip.MustParseAddrPort("10.0.0.53:53"), Payload: dnsQuery("example.com", 28)}},
			xdrv1.XdrAccessType_XDR_ACCESS_TYPE_DNS_QUERY,
			&xdrv1.Dns{Name: "example.com", QueryType: 28, ServerAddress: "10.0.0.53", ServerPort: 53, Protocol: xdrv1.XdrConnectionType_XDR_CONNECTION_TYPE_UDP},
			objid.DNS("example.com", 28)},
		{"datagram to port 53 that is no query", ebpf.Event{Kind: ebpf.KindDNS, Net: &ebpf.NetOp{Op: ebpf.OpSendto, Family: unix.AF_INET, Type: unix.SOCK_DGRAM,
			Remote: netip.MustParseAddrPort("10.0.0.53:53"), Payload: []byte("hello")}},
			xdrv1.XdrAccessType_XDR_ACCESS_TYPE_CONNECTION_CONNECT_OUTBOUND,
			&xdrv1.Connection{Protocol: xdrv1.XdrConnectionType_XDR_CONNECTION_TYPE_UDP, Family: unix.AF_INET, RemoteAddress: "10.0.0.53", RemotePort: 53, Direction: xdrv1.Direction_DIRECTION_OUTBOUND},
			objid.Connection(&xdrv1.Connection{Protocol: xdrv1.XdrConnectionType_XDR_CONNECTION_TYPE_UDP, Direction: xdrv1.Direction_DIRECTION_OUTBOUND, RemoteAddress: "10.0.0.53", RemotePort: 53})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := m.Activity(5, self, self.TGID, &tt.in)
			if tt.wantAccess == 0 {
				if ev != nil {
					t.Fatalf("got %v, want no event", ev)
				}
				return
			}
			if ev == nil {
				t.Fatal("no event")
			}
			if ev.GetAccessType() != tt.wantAccess || ev.GetKernelEvent() != xdrv1.KernelEvent_KERNEL_EVENT_SYSCALL || ev.GetSubject().GetTgid() != self.TGID {
				t.Errorf("access %v kernel event %v subject %d, want %v SYSCALL %d", ev.GetAccessType(), ev.GetKernelEvent(), ev.GetSubject().GetTgid(), tt.wantAccess, self.TGID)
			}
			var got proto.Message
			switch tg := ev.GetTarget().(type) {
			case *xdrv1.ActEvent_File:
				got = tg.File
			case *xdrv1.ActEvent_Memory:
				got = tg.Memory
			case *xdrv1.ActEvent_Connection:
				got = tg.Connection
			case *xdrv1.ActEvent_Dns:
				got = tg.Dns
			}
			if d := cmp.Diff(tt.wantTarget, got, protocmp.Transform()); d != "" {
				t.Errorf("target (-want +got):\n%s", d)
			}
			if ev.GetTargetHashId() != tt.wantID || ev.GetTargetHashId() != objid.Target(ev) {
				t.Errorf("target hash id %x, want %x (objid.Target %x)", ev.GetTargetHashId(), tt.wantID, objid.Target(ev))
			}
		})
	}
}

func TestProcessAccessAndPtrace(t *testing.T) {
	m, tab := newMapper(t)
	self := tab.Lookup(uint32(os.Getpid()))
	parent := tab.Lookup(uint32(os.Getppid()))
	tests := []struct {
		name       string
		ev         *xdrv1.ActEvent
		wantAccess xdrv1.XdrAccessType
		wantTarget uint32
	}{
		{"process_vm_readv", m.ProcAccess(1, self, self.TGID, parent, ebpf.OpProcessVMReadv), xdrv1.XdrAccessType_XDR_ACCESS_TYPE_MODIFIED_PROCESS_READ_PROCESS, parent.TGID},
		{"process_vm_writev", m.ProcAccess(1, self, self.TGID, parent, ebpf.OpProcessVMWritev), xdrv1.XdrAccessType_XDR_ACCESS_TYPE_MODIFIED_PROCESS_WRITE_MEMORY, parent.TGID},
		{"pidfd_open", m.ProcAccess(1, self, self.TGID, parent, ebpf.OpPidfdOpen), xdrv1.XdrAccessType_XDR_ACCESS_TYPE_PROCESS_OPEN, parent.TGID},
		{"traceme", m.Traceme(1, self, self.TGID, parent), xdrv1.XdrAccessType_XDR_ACCESS_TYPE_PROCESS_TRACME, parent.TGID},
		{"pokedata", m.PtraceModify(1, self, self.TGID, parent, unix.PTRACE_POKEDATA), xdrv1.XdrAccessType_XDR_ACCESS_TYPE_MODIFIED_PROCESS_WRITE_MEMORY, parent.TGID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.ev.GetAccessType() != tt.wantAccess || tt.ev.GetProcess().GetTgid() != tt.wantTarget || tt.ev.GetSubject().GetTgid() != self.TGID {
				t.Errorf("got access %v target %d subject %d, want %v %d %d", tt.ev.GetAccessType(), tt.ev.GetProcess().GetTgid(),
					tt.ev.GetSubject().GetTgid(), tt.wantAccess, tt.wantTarget, self.TGID)
			}
			if tt.ev.GetTargetHashId() != objid.Target(tt.ev) || tt.ev.GetTargetHashId() == 0 {
				t.Errorf("target hash id %x, objid.Target %x", tt.ev.GetTargetHashId(), objid.Target(tt.ev))
			}
		})
	}
	if ev := m.ProcAccess(1, self, self.TGID, parent, ebpf.OpOpenat); ev != nil {
		t.Errorf("openat as a process access: got %v, want nil", ev)
	}
	if d := m.Traceme(1, self, self.TGID, parent).GetPtrace(); d.GetTracerTgid() != parent.TGID || !d.GetAttach() {
		t.Errorf("traceme details %v", d)
	}
}

func TestParseDNSQuery(t *testing.T) {
	tests := []struct {
		name      string
		in        []byte
		wantName  string
		wantQtype uint16
		wantOK    bool
	}{
		{"A", dnsQuery("www.example.com", 1), "www.example.com", 1, true},
		{"AAAA", dnsQuery("example.org", 28), "example.org", 28, true},
		{"root", dnsQuery("", 2), ".", 2, true},
		{"odd bytes escaped", dnsQuery("a b\x01", 16), `a\032b\001`, 16, true},
		{"short header", []byte{1, 2, 3}, "", 0, false},
		{"response", func() []byte { b := dnsQuery("x.com", 1); b[2] |= 0x80; return b }(), "", 0, false},
		{"no question", func() []byte { b := dnsQuery("x.com", 1); b[5] = 0; return b }(), "", 0, false},
		{"cut label", dnsQuery("example.com", 1)[:16], "", 0, false},
		{"cut qtype", func() []byte { b := dnsQuery("x.com", 1); return b[:len(b)-3] }(), "", 0, false},
		{"pointer", append([]byte{0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0}, 0xc0, 12, 0, 1, 0, 1), "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name, qtype, ok := parseDNSQuery(tt.in)
			if d := cmp.Diff([]any{tt.wantName, tt.wantQtype, tt.wantOK}, []any{name, qtype, ok}); d != "" {
				t.Errorf("parseDNSQuery (-want +got):\n%s", d)
			}
		})
	}
}

func FuzzParseDNSQuery(f *testing.F) {
	f.Add(dnsQuery("www.example.com", 1))
	f.Add(dnsQuery("", 255))
	f.Add([]byte{0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 63})
	f.Fuzz(func(t *testing.T, b []byte) {
		name, _, ok := parseDNSQuery(b)
		if !ok && name != "" {
			t.Fatalf("failed parse returned name %q", name)
		}
		if ok && (name == "" || len(name) > 4*255) {
			t.Fatalf("name %q of %d bytes", name, len(name))
		}
	})
}

func TestExecImageFileFromKernel(t *testing.T) {
	m, tab := newMapper(t)
	self := tab.Lookup(uint32(os.Getpid()))
	fi := ebpf.FileInfo{Inode: 42, Dev: 7, Mode: unix.S_IFREG | 0o755, Size: 10, ModTime: 100, ChangeTime: 101}
	tests := []struct {
		name string
		res  proctable.ExecResult
		fi   ebpf.FileInfo
		want *xdrv1.File
	}{
		{"no /proc stat: from the record", proctable.ExecResult{Proc: self}, fi, &xdrv1.File{Path: self.Exe, Size: 10, Mode: unix.S_IFREG | 0o755,
			OwnerName: "root", GroupName: "root", ChangeTime: 101, ModifyTime: 100, Device: 7, Inode: 42}},
		{"no stat at all", proctable.ExecResult{Proc: self}, ebpf.FileInfo{}, &xdrv1.File{Path: self.Exe}},
		{"/proc stat wins", proctable.ExecResult{Proc: self, ExeStat: &unix.Stat_t{Ino: 9, Size: 3}}, fi, &xdrv1.File{Path: self.Exe, Size: 3, Inode: 9,
			OwnerName: "root", GroupName: "root"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := m.ExecImage(1, tt.res, &tt.fi)
			got := ev.GetFile()
			got.Hashes = nil
			if d := cmp.Diff(tt.want, got, protocmp.Transform()); d != "" {
				t.Errorf("exec target (-want +got):\n%s", d)
			}
			if ev.GetAccessType() != xdrv1.XdrAccessType_XDR_ACCESS_TYPE_PROCESS_EXECUTE || ev.GetTargetHashId() != objid.File(self.Exe) {
				t.Errorf("exec event %v", ev)
			}
		})
	}
}
