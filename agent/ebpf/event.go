package ebpf

import (
	"bytes"
	"net/netip"
)

// Header is what every event says about the task that caused it, read in
// the kernel when the event happened. Pids are as seen from the initial
// pid namespace.
type Header struct {
	// Time is CLOCK_MONOTONIC in nanoseconds (like proccon's Timestamp).
	Time uint64
	// StartTime is the start of the thread group leader, nanoseconds since
	// boot (CLOCK_BOOTTIME): the value /proc/PID/stat's starttime is made
	// of, see StartTicks.
	StartTime uint64
	PID       uint32 // thread id
	TGID      uint32 // process id
	PPID      uint32 // real parent's tgid
	UID, GID  uint32 // real ids
	EUID      uint32
	EGID      uint32
	SID       uint32 // session id
	Comm      string // task name, at most 15 bytes (for exec: the new one)
}

// StartTicks returns the process start time in clock ticks since boot,
// exactly as /proc/PID/stat reports it (field 22, USER_HZ = 100), so that
// a process instance identified from an event matches one read from /proc.
func (h *Header) StartTicks() uint64 { return h.StartTime / 10_000_000 }

// Event is one decoded event. Kind says which one payload pointer is set.
type Event struct {
	Kind   Kind
	Header Header
	// Count is the number of identical events of the process this one
	// stands for (at least 1): Read merges repeats of a process's recent
	// file, memory and network events, such as the same file opened in a
	// loop, into one event with the Header (time, thread) of the first, or
	// reports them later as a copy of it whose Header time is the last
	// repeat's (hold.go). The descriptor an open returned and the thread
	// that acted do not make events different.
	Count uint32

	Exec       *Exec
	Fork       *Fork
	Exit       *Exit
	SetID      *SetID
	Ptrace     *Ptrace
	ProcAccess *ProcAccess
	Comm       *Comm
	File       *FileOp
	Memory     *MemoryOp
	Net        *NetOp
}

// FileInfo describes a file from its inode, as the kernel had it open. It
// is zero when the event names a file by path only.
type FileInfo struct {
	Inode      uint64
	Dev        uint64 // st_dev encoding (unix.Mkdev)
	Mode       uint32 // st_mode: type and permission bits
	UID, GID   uint32
	Size       int64
	ModTime    int64 // Unix seconds
	ChangeTime int64 // Unix seconds
	// ModTimeNsec and ChangeTimeNsec are the nanoseconds within those
	// seconds.
	ModTimeNsec, ChangeTimeNsec uint32
	// Links is the inode's link count: 0 for a file deleted while in use.
	Links uint32
}

// Exec is a successful execve or execveat, reported when the new image is
// in place (sched_process_exec). Failed execs are not reported. The
// Header's Comm is the new name and PID the task that now runs the image.
type Exec struct {
	// Filename is the path as passed to execve (possibly relative).
	Filename string
	// Exe is the absolute path of the file now running: for a script, its
	// interpreter.
	Exe     string
	ExeFile FileInfo
	// Cwd is the working directory.
	Cwd string
	// Argv is the new image's argument vector as /proc/PID/cmdline has it
	// (for a script, as rewritten by the kernel: interpreter first).
	Argv []string
	// ArgvSize is the argument vector's size in bytes.
	ArgvSize uint32
	// ArgvTruncated reports an argument vector longer than Options.ArgvMax:
	// Argv holds its first ArgvMax bytes.
	ArgvTruncated bool
	// ArgvIncomplete reports that part of the captured bytes was lost (a
	// read failed or a continuation record was dropped): Argv holds what
	// arrived, in order, up to the first gap.
	ArgvIncomplete bool
	ExeTruncated   bool // Exe lacks its leading part (too deep or too long)
	CwdTruncated   bool
	// OldPID is the pid that called exec: it differs from Header.PID when
	// a thread other than the leader called it.
	OldPID uint32
}

// Fork is a new process (not a thread). The Header is the parent.
type Fork struct {
	ChildPID       uint32
	ChildTGID      uint32
	ChildStartTime uint64 // as Header.StartTime
}

// Exit is the exit of a process's last thread. The Header is that thread.
type Exit struct {
	// Code is the raw wait status: exit code << 8, or the terminating
	// signal, | 0x80 if it dumped core.
	Code uint32
}

// Creds is a full set of task credentials.
type Creds struct {
	UID, EUID, SUID, FSUID uint32
	GID, EGID, SGID, FSGID uint32
}

// SetID is a successful uid or gid change (for setfsuid and setfsgid, one
// that changed the id). The Header has the new credentials.
type SetID struct {
	Op       Op
	Old, New Creds
}

// Ptrace is a ptrace request that attaches to or modifies another process
// (TRACEME, ATTACH, SEIZE, POKE*, SET*REGS, SETREGSET), with its result.
type Ptrace struct {
	Request int64
	// Target is the tracee's pid, or for PTRACE_TRACEME the tracer (the
	// caller's parent).
	Target     uint32
	Addr, Data uint64
	Ret        int64 // 0 or a negative errno
}

// ProcAccess is process_vm_readv, process_vm_writev (Ret the bytes
// transferred) or pidfd_open (Ret the fd), with any result.
type ProcAccess struct {
	Op     Op
	Target uint32
	Flags  uint64
	Ret    int64
}

// Comm is a task renaming itself with prctl(PR_SET_NAME); the new name is
// Header.Comm.
type Comm struct {
	Old string
}

// FileOp is a file system event. Paths are absolute as the process sees
// them (relative to its root directory). A path resolved from the open
// file is canonical; one joined from the caller's string and its directory
// (PathRaw) is lexical: it may contain "..", "." and symbolic links.
type FileOp struct {
	Op Op
	// Ret is the call's result: 0, an fd or a byte count, or a negative
	// errno for denied opens; 0 for writes and closes (seen at entry).
	Ret int64
	// Path is the file acted on; for renames the old path, for copies the
	// destination.
	Path           string
	PathRaw        bool
	PathTruncated  bool // Path lacks its leading part
	Path2          string
	Path2Raw       bool
	Path2Truncated bool
	// Name is the extended attribute's name (xattr) or the memfd's name.
	Name          string
	NameTruncated bool
	File          FileInfo // zero when the kernel had no open file
	Created       bool     // the open created the file
	// Flags are the open, rename, AT_* or memfd flags as passed (rmdir:
	// AT_REMOVEDIR); for writes, closes and copies, the file's status flags
	// (f_flags, with O_LARGEFILE where the kernel forces it).
	Flags    uint32
	Mode     uint32 // mode argument of open, chmod and mknod
	UID, GID uint32 // chown arguments (0xffffffff: unchanged)
	FD       int32  // fd acted on or returned, -1 if none
	FD2      int32  // copies: the source fd
	// Aux is the device of mknod, the value size of setxattr, or the byte
	// count asked of a copy.
	Aux uint64
}

// MemoryOp is an executable mapping of a file (KindLoadImage) or PROT_EXEC
// added to anonymous or writable memory (KindMprotect).
type MemoryOp struct {
	Op            Op
	Ret           int64
	Addr, Len     uint64
	Prot          uint32 // new protection, PROT_* bits
	OldProt       uint32 // mprotect: the region's previous PROT_* bits
	Flags         uint32 // mmap flags
	Path          string // backing file, empty for anonymous memory
	PathTruncated bool
	File          FileInfo
}

// NetOp is a socket event. Addresses are those of the socket after the
// call (local) and the destination asked for (remote) where the call names
// one.
type NetOp struct {
	Op     Op
	Ret    int64 // result; 0 for DNS queries seen at the entry of write(2)
	FD     int32
	Family uint16 // AF_INET, AF_INET6, AF_UNIX
	Type   uint16 // SOCK_STREAM, SOCK_DGRAM, ...
	// Protocol is the socket's protocol (IPPROTO_TCP, IPPROTO_UDP, ...).
	Protocol uint16
	Local    netip.AddrPort
	Remote   netip.AddrPort
	// UnixPath is the AF_UNIX address of connect and bind: a path, or an
	// abstract name starting with a NUL byte.
	UnixPath string
	// Payload holds the first bytes of a DNS datagram (at most 512) and
	// PayloadSize the datagram's size.
	Payload     []byte
	PayloadSize uint32
}

// sameAs reports whether e repeats prev: same kind, task and payload, at
// any time. Only kinds that happen in storms are merged.
func (e *Event) sameAs(prev *Event) bool {
	if e.Kind != prev.Kind {
		return false
	}
	a, b := e.Header, prev.Header
	// Which thread of the process did it is not part of what was done
	// (a Go program's goroutine moves between threads); the merged event
	// keeps the first one's.
	a.Time, b.Time = 0, 0
	a.PID, b.PID = 0, 0
	if a != b {
		return false
	}
	switch {
	case e.File != nil && prev.File != nil:
		a, b := *e.File, *prev.File
		if e.Kind == KindFileOpen && a.Ret >= 0 && b.Ret >= 0 {
			// Which descriptor an open returned is not part of what it
			// did: opening the same file the same way again repeats it.
			a.Ret, b.Ret = 0, 0
			a.FD, b.FD = 0, 0
		}
		return a == b
	case e.Memory != nil && prev.Memory != nil:
		return *e.Memory == *prev.Memory
	case e.Net != nil && prev.Net != nil:
		x, y := e.Net, prev.Net
		return x.Op == y.Op && x.Ret == y.Ret && x.FD == y.FD && x.Family == y.Family && x.Type == y.Type &&
			x.Protocol == y.Protocol && x.Local == y.Local && x.Remote == y.Remote && x.UnixPath == y.UnixPath &&
			x.PayloadSize == y.PayloadSize && bytes.Equal(x.Payload, y.Payload)
	}
	return false
}
