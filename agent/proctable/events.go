package proctable

import (
	"encoding/binary"
	"hash/fnv"
	"path"

	"golang.org/x/sys/unix"

	"github.com/xdr-sensor/xdr/agent/exehash"
	"github.com/xdr-sensor/xdr/agent/procfs"
)

// takeExeStat returns a copy of the executable stat the last readAll of p
// made, if it made one.
func (t *Table) takeExeStat(p *Proc) *unix.Stat_t {
	if !t.exeStatOK || p.Exe == "" {
		return nil
	}
	st := t.exeStat
	return &st
}

// TicksPerSecond is the unit of StartTicks (USER_HZ).
const TicksPerSecond = 100

const nsPerTick = 1e9 / TicksPerSecond

// InstanceID is the identity of one process lifetime: a hash of the boot
// id, the start time in ticks since boot and the tgid. Pids are reused;
// this is not (within 2^64).
func InstanceID(bootID string, startTicks uint64, tgid uint32) uint64 {
	h := fnv.New64a()
	var b [12]byte
	binary.LittleEndian.PutUint64(b[:8], startTicks)
	binary.LittleEndian.PutUint32(b[8:], tgid)
	h.Write([]byte(bootID))
	h.Write(b[:])
	return h.Sum64()
}

// StartTimeNs converts start ticks to nanoseconds since boot.
func StartTimeNs(ticks uint64) uint64 { return ticks * nsPerTick }

// Lookup returns the entry for tgid, reading it from /proc when the table
// does not know the process (events were lost, or it predates a failed
// scan). It returns a partial, unremembered entry when /proc has nothing
// either.
func (t *Table) Lookup(tgid uint32) *Proc {
	if p := t.procs[tgid]; p != nil {
		return p
	}
	st, err := t.fs.Stat(int(tgid))
	if err != nil {
		return &Proc{TGID: tgid, Partial: true}
	}
	p := &Proc{TGID: tgid}
	t.fillFromStat(p, st)
	t.readAll(p)
	t.put(p)
	return p
}

// Fork records child, forked by parent. The child starts as a copy of the
// parent (that is what fork makes); only its own stat is read, for its
// start time. When the child is already gone, its start time is derived
// from boottimeNs, the fork's time in CLOCK_BOOTTIME nanoseconds, and the
// entry is partial.
func (t *Table) Fork(parentTGID, childTGID uint32, boottimeNs uint64) *Proc {
	return t.fork(parentTGID, childTGID, boottimeNs, false)
}

// ForkExact is Fork for a collector that reports the child's own start
// time (the eBPF collector): a child already gone is then no less known
// than a live one, since all else is the parent's copy.
func (t *Table) ForkExact(parentTGID, childTGID uint32, startBoottimeNs uint64) *Proc {
	return t.fork(parentTGID, childTGID, startBoottimeNs, true)
}

func (t *Table) fork(parentTGID, childTGID uint32, boottimeNs uint64, exact bool) *Proc {
	parent := t.procs[parentTGID]
	child := &Proc{TGID: childTGID, PPID: parentTGID}
	var st procfs.Stat
	var err error
	if exact && parent != nil && !parent.Partial {
		// The kernel gave the child's start time, and everything else
		// is the parent's copy (the session too): /proc adds nothing.
		err = errSkipped
	} else {
		st, err = t.fs.Stat(int(childTGID))
	}
	if err == nil && uint32(st.PPID) != parentTGID && st.PPID != 0 {
		// The pid already belongs to someone else's child (it exited
		// and the pid was reused); nothing read here is ours.
		err = procfs.ErrGone
	}
	if err != nil {
		child.StartTicks = boottimeNs / nsPerTick
		child.InstanceID = InstanceID(t.bootID, child.StartTicks, childTGID)
		child.Partial = !exact || parent == nil
	} else {
		child.StartTicks = st.StartTicks
		child.InstanceID = InstanceID(t.bootID, st.StartTicks, childTGID)
		child.SessionID = uint32(st.Session)
	}
	if parent != nil {
		child.ParentInstanceID = parent.InstanceID
		child.Exe, child.ExeDeleted, child.ExeKey = parent.Exe, parent.ExeDeleted, parent.ExeKey
		child.Argv, child.ArgvTruncated = parent.Argv, parent.ArgvTruncated
		child.Cwd, child.Comm = parent.Cwd, parent.Comm
		child.Creds, child.CredsKnown = parent.Creds, parent.CredsKnown
		child.Cgroup, child.ContainerID = parent.Cgroup, parent.ContainerID
		child.Env, child.EnvTruncated = parent.Env, parent.EnvTruncated
		if err == nil {
			child.SessionID = uint32(st.Session)
		} else {
			child.SessionID = parent.SessionID
		}
		// A copy of a partial parent is partial too.
		child.Partial = child.Partial || parent.Partial
	} else if err == nil {
		t.readAll(child)
	}
	t.put(child)
	return child
}

// ExecResult is what an exec changed.
type ExecResult struct {
	Proc    *Proc
	OldExe  string
	OldArgv []string
	// ExeStat is the stat of the new executable, nil when unknown.
	ExeStat *unix.Stat_t
}

// Exec re-reads a process that executed a new image. When /proc no longer
// has it (or its pid now belongs to another process), the new image is
// unknown and the entry is partial with exe and argv cleared: the
// pre-exec values are not this image's.
func (t *Table) Exec(tgid uint32) ExecResult {
	p := t.procs[tgid]
	if p == nil || p.Exited() {
		// Unknown (its fork was lost, or it predates the scan): start
		// afresh from /proc.
		np := &Proc{TGID: tgid}
		st, err := t.fs.Stat(int(tgid))
		if err != nil {
			np.Partial = true
			t.put(np)
			return ExecResult{Proc: np}
		}
		t.fillFromStat(np, st)
		t.readAll(np)
		np.commAtExec = !np.Partial
		t.put(np)
		return ExecResult{Proc: np, ExeStat: t.takeExeStat(np)}
	}
	res := ExecResult{Proc: p, OldExe: p.Exe, OldArgv: p.Argv}
	wasPartial := p.Partial
	st, ok := t.read(p, !wasPartial && p.Cwd != "")
	if !ok && wasPartial && st.StartTicks != 0 && st.StartTicks != p.StartTicks && absDiff(st.StartTicks, p.StartTicks) <= 1 {
		// The start time was derived from the fork event and is off by
		// a tick: adopt the exact one (the instance id stays as first
		// reported) and read again.
		p.StartTicks = st.StartTicks
		st, ok = t.read(p, false)
	}
	if !ok || p.Partial {
		// Gone, or the pid already belongs to a newer process (this one
		// exec'd and exited before we got here), or part of the new
		// image could not be read: what was not replaced is the old
		// image's and must not stay.
		if !ok {
			p.Exe, p.ExeDeleted, p.ExeKey, p.Argv, p.ArgvTruncated = "", false, exehash.Key{}, nil, false
		}
		p.Partial = true
		return res
	}
	p.PPID = uint32(st.PPID)
	p.SessionID = uint32(st.Session)
	p.commAtExec = true
	res.ExeStat = t.takeExeStat(p)
	return res
}

func absDiff(a, b uint64) uint64 {
	if a > b {
		return a - b
	}
	return b - a
}

// Exit marks tgid exited and returns its entry (a partial, unremembered
// one when it was unknown).
func (t *Table) Exit(tgid uint32) *Proc {
	p := t.procs[tgid]
	if p == nil {
		return &Proc{TGID: tgid, Partial: true}
	}
	t.markExited(p)
	return p
}

// IDChange is what a uid or gid change changed.
type IDChange struct {
	Proc     *Proc
	Old      Creds
	OldKnown bool
	// CurrentExe is the executable read at the change when it differs
	// from the entry's: an exec of a set-user-id program changes the ids
	// before the exec itself is reported, and the change is the new
	// program's doing, not the old one's.
	CurrentExe string
}

// SetIDs records a uid (group false) or gid (group true) change to the
// given real and effective ids, re-reading the full credentials from
// /proc when it can.
func (t *Table) SetIDs(tgid uint32, group bool, real, effective uint32) IDChange {
	p := t.Lookup(tgid)
	res := IDChange{Proc: p, Old: p.Creds, OldKnown: p.CredsKnown}
	if exe, _, err := t.fs.Exe(int(tgid)); err == nil && exe != p.Exe {
		res.CurrentExe = exe
	}
	if s, err := t.fs.Status(int(tgid)); err == nil {
		p.Creds = credsOf(s)
		p.CredsKnown = true
	}
	// The event's ids are authoritative for the change itself (the
	// process may have changed them again before the read).
	if group {
		p.Creds.GID, p.Creds.EGID = real, effective
	} else {
		p.Creds.UID, p.Creds.EUID = real, effective
	}
	return res
}

// SetComm records a rename and returns the old name.
//
// A process that renames itself at once after an exec (a shell running
// `printf name > /proc/self/comm`) may do so before the exec's /proc read,
// which then saw the new name already. So when the name read at the exec
// is the new one, the old name is rebuilt the way the kernel set it at the
// exec: the base name of the path executed, taken from argv[0], cut to 15
// bytes. (A process renaming itself to its own name again reads as that
// rename only after an exec, and only if argv[0] differs.)
func (t *Table) SetComm(tgid uint32, comm string) (p *Proc, old string) {
	p = t.Lookup(tgid)
	old = p.Comm
	if old == comm && p.commAtExec {
		old = execComm(p)
	}
	p.Comm, p.commAtExec = comm, false
	return p, old
}

// execComm is the comm the kernel gives p's image at exec, as far as the
// table knows it: the base name of argv[0] (of the executable without
// one), cut to TASK_COMM_LEN-1 bytes.
func execComm(p *Proc) string {
	name := p.Exe
	if len(p.Argv) > 0 && p.Argv[0] != "" {
		name = p.Argv[0]
	}
	name = path.Base(name)
	if len(name) > 15 {
		name = name[:15]
	}
	return name
}

// SetSession records that tgid became a session leader (setsid).
func (t *Table) SetSession(tgid uint32) *Proc {
	p := t.Lookup(tgid)
	p.SessionID = tgid
	return p
}

// SetTracer records that tracer attached to tgid (0 for a detach) and
// returns the previous tracer.
func (t *Table) SetTracer(tgid, tracer uint32) (p *Proc, old uint32) {
	p = t.Lookup(tgid)
	old = p.TracerTGID
	p.TracerTGID = tracer
	return p, old
}

// Image is what a kernel exec record (the eBPF collector's) says about the
// new image. It is authoritative over /proc for the fields it has: /proc
// is read after the fact and the process may have moved on or be gone.
type Image struct {
	// StartTicks is the process start time, as Proc.StartTicks.
	StartTicks    uint64
	PPID          uint32
	Exe           string
	Argv          []string
	ArgvTruncated bool
	Cwd           string
	Comm          string
	// UID, EUID, GID, EGID are the ids after the exec, as the kernel
	// reported them; HasIDs says they are set. An exec sets the saved and
	// file-system ids to the effective ones.
	UID, EUID, GID, EGID uint32
	HasIDs               bool
	// ExeKey identifies the executable as the kernel saw it (zero when
	// unknown), ExeDeleted says it had no links left.
	ExeKey     exehash.Key
	ExeDeleted bool
}

// complete reports whether img describes the new image fully: with the
// rest inherited from a known process, /proc has nothing to add.
func (img *Image) complete() bool {
	return img.HasIDs && img.Exe != "" && img.Cwd != "" && img.ExeKey != (exehash.Key{})
}

// ExecImage records an exec the kernel described: it reads what only
// /proc has (credentials, cgroup, the executable's identity for hashing)
// as Exec does, then takes the image from img. The executable's stat and
// key are kept only when /proc showed the same executable.
func (t *Table) ExecImage(tgid uint32, img Image) ExecResult {
	before := t.procs[tgid]
	knownBefore := before != nil && !before.Exited() && !before.Partial && before.StartTicks == img.StartTicks
	if knownBefore && img.complete() && t.envMax == 0 {
		return t.execFromImage(before, &img)
	}
	res := t.Exec(tgid)
	p := res.Proc
	if p.StartTicks == 0 && img.StartTicks != 0 {
		// Gone before /proc could be read: the record still says which
		// process this was.
		p.StartTicks = img.StartTicks
		p.InstanceID = InstanceID(t.bootID, img.StartTicks, tgid)
		p.PPID = img.PPID
		if parent := t.procs[p.PPID]; parent != nil && !parent.Exited() {
			p.ParentInstanceID = parent.InstanceID
		}
	}
	if p.StartTicks != img.StartTicks {
		// The pid already belongs to another process: only the record
		// describes the one that exec'd, and it is not in the table.
		return ExecResult{Proc: &Proc{
			TGID: tgid, PPID: img.PPID, StartTicks: img.StartTicks,
			InstanceID: InstanceID(t.bootID, img.StartTicks, tgid),
			Exe:        img.Exe, Argv: img.Argv, ArgvTruncated: img.ArgvTruncated,
			Cwd: img.Cwd, Comm: img.Comm, Partial: true,
		}, OldExe: res.OldExe, OldArgv: res.OldArgv}
	}
	if img.Exe != p.Exe {
		p.ExeKey, p.ExeDeleted, res.ExeStat = exehash.Key{}, false, nil
	}
	p.Exe, p.Argv, p.ArgvTruncated = img.Exe, img.Argv, img.ArgvTruncated
	if img.Cwd != "" {
		p.Cwd = img.Cwd
	}
	if img.Comm != "" {
		p.Comm, p.commAtExec = img.Comm, false
	}
	if img.HasIDs {
		p.Creds = Creds{
			UID: img.UID, EUID: img.EUID, SUID: img.EUID, FSUID: img.EUID,
			GID: img.GID, EGID: img.EGID, SGID: img.EGID, FSGID: img.EGID,
		}
		p.CredsKnown = true
		// /proc may have been gone already, but with the image and the
		// ids from the kernel and the rest inherited from a complete
		// fork copy (working directory, cgroup), nothing is missing.
		if p.Partial && knownBefore && img.Exe != "" && img.Cwd != "" {
			p.Partial = false
		}
	}
	return res
}

// execFromImage is ExecImage for a known process and a complete image:
// nothing is read from /proc, which may already be gone or show a later
// image. An exec keeps the process's identity, session, working directory
// (the image's is the same) and cgroup.
func (t *Table) execFromImage(p *Proc, img *Image) ExecResult {
	res := ExecResult{Proc: p, OldExe: p.Exe, OldArgv: p.Argv}
	if img.PPID != p.PPID {
		// Reparented since the fork (its parent died): the instance id
		// of the old parent no longer applies.
		p.PPID, p.ParentInstanceID = img.PPID, 0
		if parent := t.procs[p.PPID]; parent != nil && !parent.Exited() {
			p.ParentInstanceID = parent.InstanceID
		}
	}
	p.Exe, p.ExeDeleted, p.ExeKey = img.Exe, img.ExeDeleted, img.ExeKey
	p.Argv, p.ArgvTruncated = img.Argv, img.ArgvTruncated
	p.Cwd = img.Cwd
	if img.Comm != "" {
		p.Comm, p.commAtExec = img.Comm, false
	}
	p.Creds = Creds{
		UID: img.UID, EUID: img.EUID, SUID: img.EUID, FSUID: img.EUID,
		GID: img.GID, EGID: img.EGID, SGID: img.EGID, FSGID: img.EGID,
	}
	p.CredsKnown = true
	return res
}

// SetCreds records credentials the kernel reported in full (the eBPF
// collector's set-id events) and returns the entry with what it had
// before.
func (t *Table) SetCreds(tgid uint32, c Creds) IDChange {
	p := t.Lookup(tgid)
	res := IDChange{Proc: p, Old: p.Creds, OldKnown: p.CredsKnown}
	p.Creds, p.CredsKnown = c, true
	return res
}
