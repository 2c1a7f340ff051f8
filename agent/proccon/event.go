package proccon

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
)

// What is the kind of a proc connector event: the PROC_EVENT_* values of
// linux/cn_proc.h.
type What uint32

// Event kinds. NonzeroExit is only a subscription filter flag in current
// kernels; should a message ever carry it, it is decoded like Exit.
const (
	None        What = 0x00000000 // acknowledgement of a subscription request
	Fork        What = 0x00000001
	Exec        What = 0x00000002
	UID         What = 0x00000004
	GID         What = 0x00000040
	SID         What = 0x00000080
	Ptrace      What = 0x00000100
	Comm        What = 0x00000200
	NonzeroExit What = 0x20000000
	Coredump    What = 0x40000000
	Exit        What = 0x80000000
)

// String returns the lowercase name of w, or its hexadecimal value when the
// kind is unknown.
func (w What) String() string {
	switch w {
	case None:
		return "none"
	case Fork:
		return "fork"
	case Exec:
		return "exec"
	case UID:
		return "uid"
	case GID:
		return "gid"
	case SID:
		return "sid"
	case Ptrace:
		return "ptrace"
	case Comm:
		return "comm"
	case NonzeroExit:
		return "nonzero_exit"
	case Coredump:
		return "coredump"
	case Exit:
		return "exit"
	}
	return "What(0x" + strconv.FormatUint(uint64(w), 16) + ")"
}

// Event is one decoded proc connector event. Fields that are not meaningful
// for the event's kind are zero. Pids and tgids are as seen from the initial
// pid namespace.
type Event struct {
	What      What
	CPU       uint32
	Timestamp uint64 // kernel monotonic clock in ns (ktime_get_ns), as sent by the kernel

	// PID and TGID are the subject: for Fork the child, for every other kind
	// the task the event is about. PID is the thread id; TGID is the process
	// id (the thread group leader's pid).
	PID, TGID uint32

	// ParentPID and ParentTGID: for Fork, Exit and Coredump the subject's
	// real parent. ParentPID is the parent thread: the thread that forked a
	// process, while for a new thread (CLONE_THREAD) the parent is the
	// process's own parent, not the creating thread. Exit and Coredump carry
	// them only since Linux 4.18 and the kernel sends zeros for an exiting
	// non-leader thread; zero means unknown.
	ParentPID, ParentTGID uint32

	// RealID and EffectiveID: for UID the new real and effective uid, for GID
	// the new real and effective gid.
	RealID, EffectiveID uint32

	// TracerPID and TracerTGID: for Ptrace the tracer on attach, 0 and 0 on
	// detach.
	TracerPID, TracerTGID uint32

	// Comm: for Comm the new task name, without NUL bytes, at most 16 bytes.
	Comm string

	// ExitCode and ExitSignal: for Exit the task's exit_code (a raw wait
	// status: code<<8, or the terminating signal with 0x80 if it dumped core)
	// and exit_signal (the signal sent to the parent, SIGCHLD for processes,
	// -1 as 0xffffffff for threads).
	ExitCode, ExitSignal uint32

	// Err: for None, the error number of the acknowledged request (0 on
	// success).
	Err uint32
}

// IsThread reports whether the event concerns a thread that is not its
// thread group's leader. For Fork it reports whether the child is a thread.
func (e *Event) IsThread() bool { return e.PID != e.TGID }

// Decode errors. Errors returned by Decode wrap one of these with context.
var (
	// ErrShort reports a message shorter than its headers or than the
	// length it declares, or an event whose kind-specific part is truncated.
	ErrShort = errors.New("proc connector message too short")
	// ErrNotProc reports a connector message that is not from the proc
	// connector (its cn_msg id is not CN_IDX_PROC/CN_VAL_PROC).
	ErrNotProc = errors.New("not a proc connector message")
	// ErrUnknownKind reports an event kind this package does not know,
	// typically one added by a newer kernel.
	ErrUnknownKind = errors.New("unknown proc connector event kind")
)

// Wire layout, from linux/connector.h and linux/cn_proc.h.
const (
	cnIdxProc = 1 // CN_IDX_PROC
	cnValProc = 1 // CN_VAL_PROC

	// struct cn_msg: struct cb_id {u32 idx; u32 val}; u32 seq; u32 ack;
	// u16 len; u16 flags; u8 data[].
	cnMsgLen = 20
	// struct proc_event before its union: u32 what; u32 cpu; u64 timestamp_ns.
	procEventHeaderLen = 16
	// TASK_COMM_LEN.
	commLen = 16
)

// ne is the byte order of the running kernel's messages.
var ne = binary.NativeEndian

// unionLen returns the minimal number of union bytes a message of kind w
// must carry. Exit and Coredump gained their parent fields in 4.18; the
// older, shorter forms are accepted.
func unionLen(w What) (int, bool) {
	switch w {
	case None:
		return 4, true // err
	case Fork, UID, GID, Ptrace:
		return 16, true // four u32
	case Exec, SID, Coredump:
		return 8, true // pid, tgid (+ parent pid, tgid for Coredump)
	case Comm:
		return 8 + commLen, true
	case Exit, NonzeroExit:
		return 16, true // pid, tgid, code, signal (+ parent pid, tgid)
	}
	return 0, false
}

// Decode decodes one connector message: the payload of a netlink message
// from the proc connector, that is a struct cn_msg followed by a struct
// proc_event, in native byte order. It validates the connector id, the
// declared payload length against len(b) and the size of the kind-specific
// part; bytes after the declared length are ignored. Decode does not retain
// b and allocates only for the Comm string of a Comm event.
func Decode(b []byte) (Event, error) {
	if len(b) < cnMsgLen {
		return Event{}, fmt.Errorf("%w: %d bytes, connector header needs %d", ErrShort, len(b), cnMsgLen)
	}
	if idx, val := ne.Uint32(b[0:4]), ne.Uint32(b[4:8]); idx != cnIdxProc || val != cnValProc {
		return Event{}, fmt.Errorf("%w: connector id %d/%d, want %d/%d", ErrNotProc, idx, val, cnIdxProc, cnValProc)
	}
	n := int(ne.Uint16(b[16:18]))
	if n > len(b)-cnMsgLen {
		return Event{}, fmt.Errorf("%w: connector header declares %d payload bytes, %d present", ErrShort, n, len(b)-cnMsgLen)
	}
	p := b[cnMsgLen : cnMsgLen+n]
	if len(p) < procEventHeaderLen {
		return Event{}, fmt.Errorf("%w: %d payload bytes, proc_event header needs %d", ErrShort, len(p), procEventHeaderLen)
	}
	ev := Event{
		What:      What(ne.Uint32(p[0:4])),
		CPU:       ne.Uint32(p[4:8]),
		Timestamp: ne.Uint64(p[8:16]),
	}
	u := p[procEventHeaderLen:]
	need, ok := unionLen(ev.What)
	if !ok {
		return Event{}, fmt.Errorf("%w: %v", ErrUnknownKind, ev.What)
	}
	if len(u) < need {
		return Event{}, fmt.Errorf("%w: %v event has %d data bytes, needs %d", ErrShort, ev.What, len(u), need)
	}

	switch ev.What {
	case None:
		ev.Err = ne.Uint32(u[0:4])
	case Fork:
		ev.ParentPID = ne.Uint32(u[0:4])
		ev.ParentTGID = ne.Uint32(u[4:8])
		ev.PID = ne.Uint32(u[8:12])
		ev.TGID = ne.Uint32(u[12:16])
	case Exec, SID:
		ev.PID = ne.Uint32(u[0:4])
		ev.TGID = ne.Uint32(u[4:8])
	case UID, GID:
		ev.PID = ne.Uint32(u[0:4])
		ev.TGID = ne.Uint32(u[4:8])
		ev.RealID = ne.Uint32(u[8:12])
		ev.EffectiveID = ne.Uint32(u[12:16])
	case Ptrace:
		ev.PID = ne.Uint32(u[0:4])
		ev.TGID = ne.Uint32(u[4:8])
		ev.TracerPID = ne.Uint32(u[8:12])
		ev.TracerTGID = ne.Uint32(u[12:16])
	case Comm:
		ev.PID = ne.Uint32(u[0:4])
		ev.TGID = ne.Uint32(u[4:8])
		c := u[8 : 8+commLen]
		if i := bytes.IndexByte(c, 0); i >= 0 {
			c = c[:i]
		}
		ev.Comm = string(c)
	case Coredump:
		ev.PID = ne.Uint32(u[0:4])
		ev.TGID = ne.Uint32(u[4:8])
		if len(u) >= 16 {
			ev.ParentPID = ne.Uint32(u[8:12])
			ev.ParentTGID = ne.Uint32(u[12:16])
		}
	case Exit, NonzeroExit:
		ev.PID = ne.Uint32(u[0:4])
		ev.TGID = ne.Uint32(u[4:8])
		ev.ExitCode = ne.Uint32(u[8:12])
		ev.ExitSignal = ne.Uint32(u[12:16])
		if len(u) >= 24 {
			ev.ParentPID = ne.Uint32(u[16:20])
			ev.ParentTGID = ne.Uint32(u[20:24])
		}
	}
	return ev, nil
}
