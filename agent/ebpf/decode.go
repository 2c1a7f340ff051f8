package ebpf

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Decode errors; a record that fails to decode is counted in
// Stats.DecodeErrors and skipped.
var (
	errShort       = errors.New("record too short")
	errUnknownKind = errors.New("unknown record kind")
	errArgvOrphan  = errors.New("argv continuation without its exec record")
)

// Sizes of the fixed parts of the records, from the bpf2go mirrors of the
// C structs (TestRecordLayout checks them against the object's BTF).
const (
	headerSize = int(unsafe.Sizeof(collectorXdrHeader{}))
	argvChunk  = 4096 // XDR_ARGV_CHUNK
	// argvStale is how long continuations wait for their exec record,
	// which the same BPF program submits microseconds later; older ones
	// lost it to a full ring.
	argvStale = 2_000_000_000 // ns
	// argvPendingMax bounds the execs whose continuations are pending.
	argvPendingMax = 256
)

// load copies the fixed-size record part at the start of b into *dst; the
// ring holds the kernel's native layout, which the generated Go types
// mirror exactly.
func load[T any](dst *T, b []byte) bool {
	n := int(unsafe.Sizeof(*dst))
	if len(b) < n {
		return false
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(dst)), n), b[:n])
	return true
}

// cut splits the first n bytes off b.
func cut(b []byte, n int) (head, rest []byte, ok bool) {
	if n < 0 || n > len(b) {
		return nil, b, false
	}
	return b[:n], b[n:], true
}

// cstring converts a NUL-padded char array.
func cstring(b []int8) string {
	u := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(b))), len(b))
	if i := bytes.IndexByte(u, 0); i >= 0 {
		u = u[:i]
	}
	return string(u)
}

// userDev converts a kernel dev_t (major << 20 | minor) to st_dev encoding.
func userDev(d uint32) uint64 { return unix.Mkdev(d>>20, d&0xfffff) }

func fileInfo(f *collectorXdrFile) FileInfo {
	if f.Ino == 0 && f.Dev == 0 {
		return FileInfo{}
	}
	return FileInfo{
		Inode: f.Ino, Dev: userDev(f.Dev), Mode: f.Mode, UID: f.Uid, GID: f.Gid,
		Size: f.Size, ModTime: f.MtimeSec, ChangeTime: f.CtimeSec,
		ModTimeNsec: f.MtimeNsec, ChangeTimeNsec: f.CtimeNsec, Links: f.Nlink,
	}
}

// argvParts collects the continuations of one exec's argv.
type argvParts struct {
	time uint64 // Header.Time of the exec record they belong to
	data []byte // argv bytes from offset argvChunk on
	next uint32 // index of the next continuation expected
}

// decoder turns ring buffer records into events. It keeps the argv
// continuations that wait for their exec record. It is not safe for
// concurrent use.
type decoder struct {
	argvMax int
	pending map[uint32]*argvParts // by pid
	// orphans counts continuations dropped because their exec record never
	// came or they did not fit.
	orphans uint64
	// gen is the kernel's generation number in the last open or repeat
	// record decoded (see xdr_repeat).
	gen uint32
}

func newDecoder(argvMax int) *decoder {
	return &decoder{argvMax: argvMax, pending: make(map[uint32]*argvParts)}
}

type decodeFunc func(d *decoder, ev *Event, flags uint32, p []byte) error

// decoders dispatches on the record kind; kindArgv records are handled by
// the decoder itself.
var decoders = map[Kind]decodeFunc{
	KindExec:       decodeExec,
	KindFork:       decodeFork,
	KindExit:       decodeExit,
	KindSetID:      decodeSetID,
	KindPtrace:     decodePtrace,
	KindProcAccess: decodeProcAccess,
	KindComm:       decodeComm,
	KindSetsid:     decodeHeaderOnly,
	kindRepeat:     decodeRepeat,
	KindFileOpen:   decodeFile,
	KindFileUnlink: decodeFile,
	KindFileRename: decodeFile,
	KindFileChmod:  decodeFile,
	KindFileChown:  decodeFile,
	KindFileXattr:  decodeFile,
	KindFileUtimes: decodeFile,
	KindFileMknod:  decodeFile,
	KindFileWrite:  decodeFile,
	KindFileClose:  decodeFile,
	KindFileCopy:   decodeFile,
	KindMemfd:      decodeFile,
	KindLoadImage:  decodeMemory,
	KindMprotect:   decodeMemory,
	KindConnect:    decodeNet,
	KindBind:       decodeNet,
	KindListen:     decodeNet,
	KindAccept:     decodeNet,
	KindSend:       decodeNet,
	KindDNS:        decodeNet,
}

// decode decodes one record. ok is false for records that are not events
// by themselves (argv continuations, kept until their exec record).
func (d *decoder) decode(b []byte) (ev Event, ok bool, err error) {
	var h collectorXdrHeader
	if !load(&h, b) {
		return Event{}, false, fmt.Errorf("%w: %d bytes, header needs %d", errShort, len(b), headerSize)
	}
	kind := Kind(h.Kind)
	ev = Event{
		Kind:  kind,
		Count: 1,
		Header: Header{
			Time: h.KtimeNs, StartTime: h.StartBoottimeNs,
			PID: h.Pid, TGID: h.Tgid, PPID: h.Ppid,
			UID: h.Uid, GID: h.Gid, EUID: h.Euid, EGID: h.Egid, SID: h.Sid,
			Comm: cstring(h.Comm[:]),
		},
	}
	p := b[headerSize:]
	if kind == kindArgv {
		return Event{}, false, d.continuation(&ev.Header, p)
	}
	fn := decoders[kind]
	if fn == nil {
		return Event{}, false, fmt.Errorf("%w: %d", errUnknownKind, h.Kind)
	}
	if err := fn(d, &ev, h.Flags, p); err != nil {
		return Event{}, false, fmt.Errorf("%s record: %w", kind, err)
	}
	return ev, true, nil
}

func (d *decoder) continuation(h *Header, p []byte) error {
	var a collectorXdrArgv
	if !load(&a, p) {
		return fmt.Errorf("argv record: %w", errShort)
	}
	data, _, ok := cut(p[unsafe.Sizeof(a):], int(a.Len))
	if !ok {
		return fmt.Errorf("argv record: %w: %d data bytes declared, %d present", errShort, a.Len, len(p)-int(unsafe.Sizeof(a)))
	}
	parts := d.pending[h.PID]
	if a.Index == 0 {
		if parts != nil {
			d.orphans++
		}
		if parts == nil && len(d.pending) >= argvPendingMax {
			d.expire(h.Time)
			if len(d.pending) >= argvPendingMax {
				d.orphans++
				return fmt.Errorf("%w: %d execs pending", errArgvOrphan, len(d.pending))
			}
		}
		parts = &argvParts{time: h.Time}
		d.pending[h.PID] = parts
	}
	if parts == nil || parts.time != h.Time || parts.next != a.Index ||
		int(a.Offset) != argvChunk+len(parts.data) || int(a.Offset)+len(data) > d.argvMax {
		d.orphans++
		return fmt.Errorf("%w: pid %d index %d offset %d", errArgvOrphan, h.PID, a.Index, a.Offset)
	}
	parts.data = append(parts.data, data...)
	parts.next++
	return nil
}

// expire drops the continuations whose exec record was lost.
func (d *decoder) expire(now uint64) {
	for pid, p := range d.pending {
		if now-p.time > argvStale {
			delete(d.pending, pid)
			d.orphans++
		}
	}
}

// splitArgv splits NUL-terminated arguments; a last argument without its
// NUL (truncated) is kept.
func splitArgv(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	b = bytes.TrimSuffix(b, []byte{0})
	n := bytes.Count(b, []byte{0}) + 1
	argv := make([]string, 0, n)
	for {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			return append(argv, string(b))
		}
		argv = append(argv, string(b[:i]))
		b = b[i+1:]
	}
}

func decodeExec(d *decoder, ev *Event, flags uint32, p []byte) error {
	var e collectorXdrExec
	if !load(&e, p) {
		return errShort
	}
	p = p[unsafe.Sizeof(e):]
	var filename, exe, cwd, argv []byte
	var ok bool
	for _, f := range []struct {
		dst *[]byte
		n   uint16
	}{{&filename, e.FilenameLen}, {&exe, e.ExeLen}, {&cwd, e.CwdLen}, {&argv, e.ArgvLen}} {
		if *f.dst, p, ok = cut(p, int(f.n)); !ok {
			return fmt.Errorf("%w: strings", errShort)
		}
	}
	x := &Exec{
		Filename:       string(filename),
		Exe:            string(exe),
		ExeFile:        fileInfo(&e.Exe),
		Cwd:            string(cwd),
		ArgvSize:       e.ArgvSize,
		ArgvTruncated:  flags&uint32(collectorXdrFlagXDR_FLAG_ARGV_TRUNCATED) != 0,
		ArgvIncomplete: flags&uint32(collectorXdrFlagXDR_FLAG_ARGV_INCOMPLETE) != 0,
		ExeTruncated:   flags&uint32(collectorXdrFlagXDR_FLAG_PATH_TRUNCATED) != 0,
		CwdTruncated:   flags&uint32(collectorXdrFlagXDR_FLAG_PATH2TRUNCATED) != 0,
		OldPID:         e.OldPid,
	}
	if e.Continuations > 0 {
		parts := d.pending[ev.Header.PID]
		delete(d.pending, ev.Header.PID)
		if parts == nil || parts.time != ev.Header.Time {
			if parts != nil {
				d.orphans++
			}
			x.ArgvIncomplete = true
		} else {
			if parts.next != uint32(e.Continuations) {
				x.ArgvIncomplete = true
			}
			all := make([]byte, 0, len(argv)+len(parts.data))
			argv = append(append(all, argv...), parts.data...)
		}
	}
	if len(argv) != int(e.ArgvCaptured) {
		x.ArgvIncomplete = true
	}
	x.Argv = splitArgv(argv)
	ev.Exec = x
	return nil
}

func decodeFork(_ *decoder, ev *Event, _ uint32, p []byte) error {
	var f collectorXdrFork
	if !load(&f, p) {
		return errShort
	}
	ev.Fork = &Fork{ChildPID: f.ChildPid, ChildTGID: f.ChildTgid, ChildStartTime: f.ChildStartBoottimeNs}
	return nil
}

func decodeExit(_ *decoder, ev *Event, _ uint32, p []byte) error {
	var e collectorXdrExit
	if !load(&e, p) {
		return errShort
	}
	ev.Exit = &Exit{Code: e.ExitCode}
	return nil
}

func creds(c *collectorXdrCreds) Creds {
	return Creds{
		UID: c.Uid, EUID: c.Euid, SUID: c.Suid, FSUID: c.Fsuid,
		GID: c.Gid, EGID: c.Egid, SGID: c.Sgid, FSGID: c.Fsgid,
	}
}

func decodeSetID(_ *decoder, ev *Event, _ uint32, p []byte) error {
	var s collectorXdrSetid
	if !load(&s, p) {
		return errShort
	}
	ev.SetID = &SetID{Op: Op(s.Op), Old: creds(&s.Old), New: creds(&s.New)}
	return nil
}

func decodePtrace(_ *decoder, ev *Event, _ uint32, p []byte) error {
	var t collectorXdrPtrace
	if !load(&t, p) {
		return errShort
	}
	ev.Ptrace = &Ptrace{Request: t.Request, Target: t.TargetPid, Addr: t.Addr, Data: t.Data, Ret: t.Ret}
	return nil
}

func decodeProcAccess(_ *decoder, ev *Event, _ uint32, p []byte) error {
	var a collectorXdrProcAccess
	if !load(&a, p) {
		return errShort
	}
	ev.ProcAccess = &ProcAccess{Op: Op(a.Op), Target: a.TargetPid, Flags: a.Flags, Ret: a.Ret}
	return nil
}

// decodeHeaderOnly decodes a record whose header says everything.
func decodeHeaderOnly(*decoder, *Event, uint32, []byte) error { return nil }

// decodeRepeat decodes a repeat record: Count is how many more opens it
// stands for, d.gen which open they repeat.
func decodeRepeat(d *decoder, ev *Event, _ uint32, p []byte) error {
	var r collectorXdrRepeat
	if !load(&r, p) {
		return errShort
	}
	if r.Count == 0 || r.Gen == 0 {
		return fmt.Errorf("repeat of open %d counting %d", r.Gen, r.Count)
	}
	ev.Count, d.gen = r.Count, r.Gen
	return nil
}

func decodeComm(_ *decoder, ev *Event, _ uint32, p []byte) error {
	var c collectorXdrComm
	if !load(&c, p) {
		return errShort
	}
	ev.Comm = &Comm{Old: cstring(c.OldComm[:])}
	return nil
}

func decodeFile(d *decoder, ev *Event, flags uint32, p []byte) error {
	var f collectorXdrFileop
	if !load(&f, p) {
		return errShort
	}
	d.gen = f.Gen
	p = p[unsafe.Sizeof(f):]
	path, p, ok1 := cut(p, int(f.PathLen))
	path2, p, ok2 := cut(p, int(f.Path2Len))
	name, _, ok3 := cut(p, int(f.NameLen))
	if !ok1 || !ok2 || !ok3 {
		return fmt.Errorf("%w: strings", errShort)
	}
	ev.File = &FileOp{
		Op:             Op(f.Op),
		Ret:            f.Ret,
		Path:           string(path),
		PathRaw:        flags&uint32(collectorXdrFlagXDR_FLAG_PATH_RAW) != 0,
		PathTruncated:  flags&uint32(collectorXdrFlagXDR_FLAG_PATH_TRUNCATED) != 0,
		Path2:          string(path2),
		Path2Raw:       flags&uint32(collectorXdrFlagXDR_FLAG_PATH2RAW) != 0,
		Path2Truncated: flags&uint32(collectorXdrFlagXDR_FLAG_PATH2TRUNCATED) != 0,
		Name:           string(name),
		NameTruncated:  flags&uint32(collectorXdrFlagXDR_FLAG_NAME_TRUNCATED) != 0,
		File:           fileInfo(&f.File),
		Created:        flags&uint32(collectorXdrFlagXDR_FLAG_CREATED) != 0,
		Flags:          f.Flags,
		Mode:           f.Mode,
		UID:            f.Uid,
		GID:            f.Gid,
		FD:             f.Fd,
		FD2:            f.Fd2,
		Aux:            f.Aux,
	}
	return nil
}

func decodeMemory(_ *decoder, ev *Event, flags uint32, p []byte) error {
	var m collectorXdrMemop
	if !load(&m, p) {
		return errShort
	}
	path, _, ok := cut(p[unsafe.Sizeof(m):], int(m.PathLen))
	if !ok {
		return fmt.Errorf("%w: path", errShort)
	}
	ev.Memory = &MemoryOp{
		Op: Op(m.Op), Ret: m.Ret, Addr: m.Addr, Len: m.Len,
		Prot: m.Prot, OldProt: m.OldProt, Flags: m.Flags,
		Path:          string(path),
		PathTruncated: flags&uint32(collectorXdrFlagXDR_FLAG_PATH_TRUNCATED) != 0,
		File:          fileInfo(&m.File),
	}
	return nil
}

// hasRemote reports whether a network kind carries the peer's address.
func hasRemote(k Kind) bool {
	return k == KindConnect || k == KindAccept || k == KindSend || k == KindDNS
}

func addrPort(family uint16, a *[16]uint8, port uint16) netip.AddrPort {
	switch family {
	case unix.AF_INET:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(a[:4])), port)
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(*a), port)
	}
	return netip.AddrPort{}
}

func decodeNet(_ *decoder, ev *Event, _ uint32, p []byte) error {
	var n collectorXdrNetop
	if !load(&n, p) {
		return errShort
	}
	p = p[unsafe.Sizeof(n):]
	upath, p, ok1 := cut(p, int(n.UnixPathLen))
	payload, _, ok2 := cut(p, int(n.PayloadLen))
	if !ok1 || !ok2 {
		return fmt.Errorf("%w: strings", errShort)
	}
	op := &NetOp{
		Op: Op(n.Op), Ret: n.Ret, FD: n.Fd,
		Family: n.Family, Type: n.Type, Protocol: n.Protocol,
		Local:       addrPort(n.Family, &n.Laddr, n.Lport),
		PayloadSize: n.PayloadSize,
	}
	if hasRemote(ev.Kind) {
		op.Remote = addrPort(n.Family, &n.Raddr, n.Rport)
	}
	if n.Family == unix.AF_UNIX {
		// A path name ends at its NUL; an abstract name starts with one and
		// is the whole address.
		if i := bytes.IndexByte(upath, 0); i > 0 {
			upath = upath[:i]
		}
		op.UnixPath = string(upath)
	}
	if len(payload) > 0 {
		op.Payload = bytes.Clone(payload)
	}
	ev.Net = op
	return nil
}
