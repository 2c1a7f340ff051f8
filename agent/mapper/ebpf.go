package mapper

import (
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/xdr-sensor/xdr/agent/ebpf"
	"github.com/xdr-sensor/xdr/agent/proctable"
	"github.com/xdr-sensor/xdr/proto/objid"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// Traceme maps a PTRACE_TRACEME: tracee (thread pid) asked tracer, its
// parent, to trace it.
func (m *Mapper) Traceme(ts int64, tracee *proctable.Proc, pid uint32, tracer *proctable.Proc) *xdrv1.ActEvent {
	ev := m.event(xdrv1.KernelEvent_KERNEL_EVENT_PTRACE, "traceme", ts, m.subject(tracee, pid))
	setProcessTarget(ev, m.Process(tracer, 0))
	ev.Details = &xdrv1.ActEvent_Ptrace{Ptrace: &xdrv1.PtraceDetails{
		Attach: true, TracerPid: tracer.TGID, TracerTgid: tracer.TGID, Request: unix.PTRACE_TRACEME,
	}}
	return ev
}

// PtraceModify maps a ptrace request that writes to tracee's memory or
// registers (POKE*, SET*REGS, SETREGSET), made by tracer's thread pid.
func (m *Mapper) PtraceModify(ts int64, tracer *proctable.Proc, pid uint32, tracee *proctable.Proc, request int64) *xdrv1.ActEvent {
	ev := m.event(xdrv1.KernelEvent_KERNEL_EVENT_PTRACE, "modify", ts, m.subject(tracer, pid))
	setProcessTarget(ev, m.Process(tracee, 0))
	ev.Details = &xdrv1.ActEvent_Ptrace{Ptrace: &xdrv1.PtraceDetails{
		Attach: true, TracerPid: pid, TracerTgid: tracer.TGID, Request: request,
	}}
	return ev
}

// ProcAccess maps process_vm_readv, process_vm_writev and pidfd_open by
// subject (thread pid) on target. It returns nil for other operations.
func (m *Mapper) ProcAccess(ts int64, subject *proctable.Proc, pid uint32, target *proctable.Proc, op ebpf.Op) *xdrv1.ActEvent {
	var variant string
	switch op {
	case ebpf.OpProcessVMReadv, ebpf.OpProcessVMWritev, ebpf.OpPidfdOpen:
		variant = op.String()
	default:
		return nil
	}
	ev := m.event(xdrv1.KernelEvent_KERNEL_EVENT_SYSCALL, variant, ts, m.subject(subject, pid))
	setProcessTarget(ev, m.Process(target, 0))
	return ev
}

// Activity maps a file, memory or network event of subject (thread pid).
// It returns nil for events that have no row: failed calls other than
// connect (the File and Memory targets have no result to say so), and
// binds of stream sockets (their listen is reported).
func (m *Mapper) Activity(ts int64, subject *proctable.Proc, pid uint32, e *ebpf.Event) *xdrv1.ActEvent {
	variant := activityVariant(e)
	if variant == "" {
		return nil
	}
	ev := m.event(xdrv1.KernelEvent_KERNEL_EVENT_SYSCALL, variant, ts, m.subject(subject, pid))
	switch {
	case e.File != nil:
		f := m.fileTarget(e.File.Path, &e.File.File)
		f.Flags = e.File.Flags
		switch e.Kind {
		case ebpf.KindFileRename:
			f.NewPath = e.File.Path2
		case ebpf.KindFileCopy:
			// Source to destination, as a move.
			f.Path, f.NewPath = e.File.Path2, e.File.Path
		case ebpf.KindMemfd:
			f.Memfd = true
			if f.Path == "" {
				f.Path = "/memfd:" + cleanText(e.File.Name)
			}
		}
		ev.Target = &xdrv1.ActEvent_File{File: f}
		ev.TargetHashId = objid.File(f.Path)
	case e.Memory != nil:
		mo := e.Memory
		if e.Kind == ebpf.KindLoadImage {
			f := m.fileTarget(mo.Path, &mo.File)
			ev.Target = &xdrv1.ActEvent_File{File: f}
			ev.TargetHashId = objid.File(f.Path)
			break
		}
		mem := &xdrv1.Memory{Address: mo.Addr, Length: mo.Len, Prot: mo.Prot, OldProt: mo.OldProt, Flags: mo.Flags, Path: cleanText(mo.Path)}
		ev.Target = &xdrv1.ActEvent_Memory{Memory: mem}
		ev.TargetHashId = objid.Memory(mem)
	case e.Net != nil:
		if variant == "dns" {
			d := dnsTarget(e.Net)
			ev.Target = &xdrv1.ActEvent_Dns{Dns: d}
			ev.TargetHashId = objid.DNS(d.Name, d.QueryType)
			break
		}
		c := connTarget(e.Kind, e.Net)
		ev.Target = &xdrv1.ActEvent_Connection{Connection: c}
		ev.TargetHashId = objid.Connection(c)
	}
	return ev
}

// activityVariant returns the Rules variant of an activity event, or ""
// when it is not reported.
func activityVariant(e *ebpf.Event) string {
	switch {
	case e.File != nil:
		if e.File.Ret < 0 {
			return ""
		}
		if e.Kind == ebpf.KindFileOpen && e.File.Created {
			return "file_create"
		}
	case e.Memory != nil:
		if e.Memory.Ret < 0 {
			return ""
		}
	case e.Net != nil:
		n := e.Net
		switch {
		case e.Kind == ebpf.KindConnect:
			// Refused and failed connects are reported, with their
			// result.
		case n.Ret < 0:
			return ""
		case e.Kind == ebpf.KindBind && n.Type == unix.SOCK_STREAM:
			return ""
		case e.Kind == ebpf.KindDNS:
			if _, _, ok := parseDNSQuery(n.Payload); !ok {
				// Not a query we can read: a datagram like any other.
				return "send"
			}
		}
	default:
		return ""
	}
	switch e.Kind {
	case ebpf.KindFileOpen, ebpf.KindFileUnlink, ebpf.KindFileRename, ebpf.KindFileChmod, ebpf.KindFileChown,
		ebpf.KindFileXattr, ebpf.KindFileUtimes, ebpf.KindFileMknod, ebpf.KindFileWrite, ebpf.KindFileClose,
		ebpf.KindFileCopy, ebpf.KindMemfd, ebpf.KindLoadImage, ebpf.KindMprotect,
		ebpf.KindConnect, ebpf.KindBind, ebpf.KindListen, ebpf.KindAccept, ebpf.KindSend, ebpf.KindDNS:
		return e.Kind.String()
	}
	return ""
}

// fileTarget builds a File target from a path and what the kernel had of
// its inode (zero when it named the file by path only).
func (m *Mapper) fileTarget(path string, fi *ebpf.FileInfo) *xdrv1.File {
	f := &xdrv1.File{Path: cleanText(path)}
	if fi.Inode == 0 {
		return f
	}
	f.Size = uint64(fi.Size)
	f.Mode = fi.Mode
	f.Uid, f.Gid = fi.UID, fi.GID
	f.Device, f.Inode = fi.Dev, fi.Inode
	f.ChangeTime, f.ModifyTime = fi.ChangeTime, fi.ModTime
	if u := m.o.Users; u != nil {
		f.OwnerName = cleanText(u.UserName(fi.UID))
		f.GroupName = cleanText(u.GroupName(fi.GID))
	}
	return f
}

func connProtocol(n *ebpf.NetOp) xdrv1.XdrConnectionType {
	if n.Family != unix.AF_INET && n.Family != unix.AF_INET6 {
		return xdrv1.XdrConnectionType_XDR_CONNECTION_TYPE_UNSPECIFIED
	}
	switch n.Type {
	case unix.SOCK_STREAM:
		return xdrv1.XdrConnectionType_XDR_CONNECTION_TYPE_TCP
	case unix.SOCK_DGRAM:
		return xdrv1.XdrConnectionType_XDR_CONNECTION_TYPE_UDP
	}
	return xdrv1.XdrConnectionType_XDR_CONNECTION_TYPE_UNSPECIFIED
}

func addrString(a netip.AddrPort) (string, uint32) {
	if !a.IsValid() {
		return "", 0
	}
	return a.Addr().Unmap().String(), uint32(a.Port())
}

func connTarget(k ebpf.Kind, n *ebpf.NetOp) *xdrv1.Connection {
	c := &xdrv1.Connection{Protocol: connProtocol(n), Family: uint32(n.Family), Result: int32(n.Ret),
		Outcome: n.Op == ebpf.OpConnectOutcome}
	if n.Ret > 0 {
		// accept's result is the new fd, not a status.
		c.Result = 0
	}
	c.LocalAddress, c.LocalPort = addrString(n.Local)
	c.RemoteAddress, c.RemotePort = addrString(n.Remote)
	if n.UnixPath != "" {
		c.RemoteAddress = cleanText(n.UnixPath)
	}
	switch k {
	case ebpf.KindAccept:
		c.Direction = xdrv1.Direction_DIRECTION_INBOUND
	case ebpf.KindBind, ebpf.KindListen:
		c.Direction = xdrv1.Direction_DIRECTION_LISTEN
	default:
		c.Direction = xdrv1.Direction_DIRECTION_OUTBOUND
	}
	return c
}

func dnsTarget(n *ebpf.NetOp) *xdrv1.Dns {
	name, qtype, _ := parseDNSQuery(n.Payload)
	d := &xdrv1.Dns{Name: name, QueryType: uint32(qtype), Protocol: connProtocol(n)}
	d.ServerAddress, d.ServerPort = addrString(n.Remote)
	return d
}

// ExecImage maps an exec the eBPF collector reported: Exec, with the
// executed file described from the kernel's record of its inode when
// /proc could not show it (the process was gone, or had exec'd again).
func (m *Mapper) ExecImage(ts int64, res proctable.ExecResult, exe *ebpf.FileInfo) *xdrv1.ActEvent {
	ev := m.Exec(ts, res)
	if f := ev.GetFile(); f != nil && res.ExeStat == nil && exe.Inode != 0 {
		k := m.fileTarget(f.GetPath(), exe)
		k.Deleted, k.Hashes, k.Memfd = f.Deleted, f.Hashes, f.Memfd
		ev.Target = &xdrv1.ActEvent_File{File: k}
	}
	return ev
}
