package proctable

import (
	"time"

	"github.com/xdr-sensor/xdr/agent/exehash"
)

// Creds are a process's user and group ids: real, effective, saved and
// file-system.
type Creds struct {
	UID, EUID, SUID, FSUID uint32
	GID, EGID, SGID, FSGID uint32
}

// Proc is what the table knows about one process (thread group). Callers
// treat a *Proc returned by the table as read-only and must not keep it
// across later table calls: the table updates entries in place.
type Proc struct {
	TGID uint32
	PPID uint32
	// StartTicks is the start time in clock ticks since boot, as in
	// /proc/PID/stat. Together with the boot id and TGID it makes
	// InstanceID.
	StartTicks       uint64
	InstanceID       uint64
	ParentInstanceID uint64

	Exe           string
	ExeDeleted    bool
	ExeKey        exehash.Key // zero when the executable could not be stat'ed
	Argv          []string
	ArgvTruncated bool
	Cwd           string
	Comm          string
	Creds         Creds
	CredsKnown    bool
	SessionID     uint32
	Cgroup        string
	ContainerID   string
	Env           []string
	EnvTruncated  bool

	// Partial says enrichment is incomplete: fields left empty are
	// unknown.
	Partial bool
	// TracerTGID is the process tracing this one, as last reported.
	TracerTGID uint32
	// commAtExec says Comm was read from /proc after an exec, so that a
	// rename the process made right after the exec may show in it already
	// (see SetComm).
	commAtExec bool

	exited time.Time // zero while alive
}

// Exited reports whether the process has exited (it stays in the table
// for the grace period).
func (p *Proc) Exited() bool { return !p.exited.IsZero() }
