package mapper

import (
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/xdr-sensor/xdr/agent/exehash"
	"github.com/xdr-sensor/xdr/agent/proctable"
	"github.com/xdr-sensor/xdr/agent/userdb"
	"github.com/xdr-sensor/xdr/proto/objid"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// Options configure a Mapper.
type Options struct {
	Table *proctable.Table // required
	Users *userdb.DB       // names for ids; nil leaves names empty
	// Hashes supplies cached executable hashes; nil leaves them empty.
	Hashes *exehash.Cache
	// AncestorDepth bounds the ancestry chain (default 8).
	AncestorDepth int
	Collector     xdrv1.CollectorMethod
}

// Mapper builds ActEvents. It is not safe for concurrent use: it belongs
// to the collector goroutine, like the process table it reads.
type Mapper struct {
	o   Options
	seq uint64

	subjects    [subjectSlots]subjectSlot
	anc         []*proctable.Proc // scratch
	subjectHits uint64
}

// New returns a Mapper.
func New(opts *Options) *Mapper {
	m := &Mapper{o: *opts}
	if m.o.AncestorDepth <= 0 {
		m.o.AncestorDepth = 8
	}
	return m
}

// Seq is the last sequence number handed out.
func (m *Mapper) Seq() uint64 { return m.seq }

func (m *Mapper) event(k xdrv1.KernelEvent, variant string, ts int64, subject *xdrv1.Process) *xdrv1.ActEvent {
	r := rule(k, variant)
	m.seq++
	return &xdrv1.ActEvent{
		Seq:         m.seq,
		TimestampNs: ts,
		EventType:   r.EventType,
		AccessType:  r.AccessType,
		Subject:     subject,
		KernelEvent: k,
		Collector:   m.o.Collector,
	}
}

func setProcessTarget(ev *xdrv1.ActEvent, p *xdrv1.Process) {
	ev.Target = &xdrv1.ActEvent_Process{Process: p}
	ev.TargetHashId = objid.Process(p.GetExe(), p.GetComm())
}

// setSelfTarget makes the subject its own target, naming it by identity
// only: repeating the whole subject would double the event's size.
func setSelfTarget(ev *xdrv1.ActEvent, s *xdrv1.Process) {
	setProcessTarget(ev, &xdrv1.Process{
		Pid: s.GetPid(), Tgid: s.GetTgid(), Ppid: s.GetPpid(), InstanceId: s.GetInstanceId(),
		StartTimeNs: s.GetStartTimeNs(), Exe: s.GetExe(), Comm: s.GetComm(), Partial: s.GetPartial(),
	})
}

// Process converts a table entry into the ActEvent form, with ancestry,
// names and cached hashes. pid is the acting thread (0: the leader). The
// result is the caller's to change.
func (m *Mapper) Process(p *proctable.Proc, pid uint32) *xdrv1.Process {
	if pid == 0 {
		pid = p.TGID
	}
	out := &xdrv1.Process{
		Pid:              pid,
		Tgid:             p.TGID,
		Ppid:             p.PPID,
		InstanceId:       p.InstanceID,
		ParentInstanceId: p.ParentInstanceID,
		Exe:              cleanText(p.Exe),
		ExeDeleted:       p.ExeDeleted,
		Argv:             cleanList(p.Argv),
		ArgvTruncated:    p.ArgvTruncated,
		Cwd:              cleanText(p.Cwd),
		Comm:             cleanText(p.Comm),
		Cgroup:           cleanText(p.Cgroup),
		ContainerId:      p.ContainerID,
		Env:              cleanList(p.Env),
		EnvTruncated:     p.EnvTruncated,
		Partial:          p.Partial,
		SessionId:        p.SessionID,
	}
	if p.StartTicks != 0 {
		out.StartTimeNs = proctable.StartTimeNs(p.StartTicks)
	}
	if p.CredsKnown {
		c := p.Creds
		out.Creds = &xdrv1.Credentials{
			Uid: c.UID, Euid: c.EUID, Suid: c.SUID, Fsuid: c.FSUID,
			Gid: c.GID, Egid: c.EGID, Sgid: c.SGID, Fsgid: c.FSGID,
		}
		if u := m.o.Users; u != nil {
			out.Creds.UserName = cleanText(u.UserName(c.UID))
			out.Creds.EuserName = cleanText(u.UserName(c.EUID))
			out.Creds.GroupName = cleanText(u.GroupName(c.GID))
			out.Creds.EgroupName = cleanText(u.GroupName(c.EGID))
		}
	}
	if m.o.Hashes != nil && p.ExeKey != (exehash.Key{}) {
		out.ExeHashes, _ = m.o.Hashes.Lookup(p.ExeKey)
	}
	if anc := m.o.Table.Ancestors(p, m.o.AncestorDepth); len(anc) > 0 {
		out.Ancestors = make([]*xdrv1.Ancestor, len(anc))
		for i, a := range anc {
			out.Ancestors[i] = &xdrv1.Ancestor{Pid: a.TGID, InstanceId: a.InstanceID, Exe: cleanText(a.Exe), Comm: cleanText(a.Comm)}
		}
	}
	return out
}

// Fork maps a fork: the parent (thread parentPID) created child. The
// child is the parent's copy, so the target names it by identity, exe,
// comm and argv only: its credentials, working directory, cgroup, hashes
// and ancestry are the subject's, and its own events carry them in full.
// (The whole child doubled the event, and decoding it was the largest part
// of the aggregator's work on a fork.)
func (m *Mapper) Fork(ts int64, parent *proctable.Proc, parentPID uint32, child *proctable.Proc) *xdrv1.ActEvent {
	ev := m.event(xdrv1.KernelEvent_KERNEL_EVENT_FORK, "", ts, m.subject(parent, parentPID))
	t := &xdrv1.Process{
		Pid: child.TGID, Tgid: child.TGID, Ppid: child.PPID, InstanceId: child.InstanceID,
		ParentInstanceId: child.ParentInstanceID, Exe: cleanText(child.Exe), Comm: cleanText(child.Comm),
		Argv: cleanList(child.Argv), ArgvTruncated: child.ArgvTruncated, Partial: child.Partial,
	}
	if child.StartTicks != 0 {
		t.StartTimeNs = proctable.StartTimeNs(child.StartTicks)
	}
	setProcessTarget(ev, t)
	return ev
}

// Exec maps an exec; the target is the executed file.
func (m *Mapper) Exec(ts int64, res proctable.ExecResult) *xdrv1.ActEvent {
	subject := m.subject(res.Proc, 0)
	ev := m.event(xdrv1.KernelEvent_KERNEL_EVENT_EXEC, "", ts, subject)
	f := &xdrv1.File{Path: subject.GetExe(), Deleted: subject.GetExeDeleted(), Hashes: subject.GetExeHashes()}
	if res.ExeStat != nil {
		fillStat(f, res.ExeStat, m.o.Users)
	}
	f.Memfd = isMemfd(f.Path)
	ev.Target = &xdrv1.ActEvent_File{File: f}
	ev.TargetHashId = objid.File(f.Path)
	ev.Details = &xdrv1.ActEvent_Exec{Exec: &xdrv1.ExecDetails{OldExe: cleanText(res.OldExe), OldArgv: cleanList(res.OldArgv), Memfd: f.Memfd}}
	return ev
}

// isMemfd reports whether an exe path names a memfd ("/memfd:name").
func isMemfd(path string) bool {
	return len(path) > 7 && path[:7] == "/memfd:"
}

func fillStat(f *xdrv1.File, st *unix.Stat_t, users *userdb.DB) {
	f.Size = uint64(st.Size)
	f.Mode = uint32(st.Mode)
	f.Uid, f.Gid = st.Uid, st.Gid
	f.Device, f.Inode = uint64(st.Dev), uint64(st.Ino)
	f.ChangeTime = int64(st.Ctim.Sec)
	f.ModifyTime = int64(st.Mtim.Sec)
	if users != nil {
		f.OwnerName = cleanText(users.UserName(st.Uid))
		f.GroupName = cleanText(users.GroupName(st.Gid))
	}
}

// Exit maps an exit with the raw wait status and exit signal the kernel
// reported.
func (m *Mapper) Exit(ts int64, p *proctable.Proc, pid, status uint32) *xdrv1.ActEvent {
	subject := m.subject(p, pid)
	ev := m.event(xdrv1.KernelEvent_KERNEL_EVENT_EXIT, "", ts, subject)
	setSelfTarget(ev, subject)
	ws := syscall.WaitStatus(status)
	d := &xdrv1.ExitDetails{Status: status}
	switch {
	case ws.Exited():
		d.ExitCode = int32(ws.ExitStatus())
	case ws.Signaled():
		d.Signal = uint32(ws.Signal())
		d.CoreDumped = ws.CoreDump()
	}
	ev.Details = &xdrv1.ActEvent_Exit{Exit: d}
	return ev
}

// IDChange maps a uid (group false) or gid change. The target is the
// account the process now acts as (the new effective id).
func (m *Mapper) IDChange(ts int64, ch proctable.IDChange, pid uint32, group bool) *xdrv1.ActEvent {
	k := xdrv1.KernelEvent_KERNEL_EVENT_UID
	if group {
		k = xdrv1.KernelEvent_KERNEL_EVENT_GID
	}
	p := ch.Proc
	subject := m.Process(p, pid)
	if ch.CurrentExe != "" {
		// The change comes with an exec not reported yet: the new
		// program made it. Its hashes are not known yet.
		subject.Exe, subject.ExeHashes = cleanText(ch.CurrentExe), nil
	}
	ev := m.event(k, "", ts, subject)
	d := &xdrv1.IdChange{Group: group, OldUnknown: !ch.OldKnown}
	acct := &xdrv1.Account{Group: group}
	if group {
		d.OldReal, d.OldEffective = ch.Old.GID, ch.Old.EGID
		d.NewReal, d.NewEffective = p.Creds.GID, p.Creds.EGID
		acct.Gid = p.Creds.EGID
	} else {
		d.OldReal, d.OldEffective = ch.Old.UID, ch.Old.EUID
		d.NewReal, d.NewEffective = p.Creds.UID, p.Creds.EUID
		acct.Uid = p.Creds.EUID
	}
	if u := m.o.Users; u != nil {
		name := func(id uint32) string { return cleanText(u.UserName(id)) }
		if group {
			name = func(id uint32) string { return cleanText(u.GroupName(id)) }
		}
		if ch.OldKnown {
			d.OldName = name(d.OldEffective)
		}
		d.NewName = name(d.NewEffective)
		acct.Name = d.NewName
		if !group {
			if usr, ok := u.User(acct.Uid); ok {
				acct.Gid, acct.Home, acct.Shell = usr.GID, cleanText(usr.Home), cleanText(usr.Shell)
			}
		}
	}
	ev.Target = &xdrv1.ActEvent_Account{Account: acct}
	ev.TargetHashId = objid.Account(acct)
	ev.Details = &xdrv1.ActEvent_IdChange{IdChange: d}
	return ev
}

// Comm maps a rename of p (already renamed in the table) from old.
func (m *Mapper) Comm(ts int64, p *proctable.Proc, pid uint32, old string) *xdrv1.ActEvent {
	subject := m.subject(p, pid)
	ev := m.event(xdrv1.KernelEvent_KERNEL_EVENT_COMM, "", ts, subject)
	setSelfTarget(ev, subject)
	ev.Details = &xdrv1.ActEvent_CommChange{CommChange: &xdrv1.CommChange{OldComm: cleanText(old), NewComm: cleanText(p.Comm)}}
	return ev
}

// Ptrace maps an attach (tracer non-nil and attach true) or detach of
// tracee. On a detach the kernel does not name the tracer; the last known
// one is the subject when there is one, else the tracee itself.
func (m *Mapper) Ptrace(ts int64, tracee *proctable.Proc, tracer *proctable.Proc, tracerPID uint32, attach bool) *xdrv1.ActEvent {
	variant := "detach"
	if attach {
		variant = "attach"
	}
	subjectProc, subjectPID := tracee, uint32(0)
	if tracer != nil {
		subjectProc, subjectPID = tracer, tracerPID
	}
	ev := m.event(xdrv1.KernelEvent_KERNEL_EVENT_PTRACE, variant, ts, m.subject(subjectProc, subjectPID))
	setProcessTarget(ev, m.Process(tracee, 0))
	d := &xdrv1.PtraceDetails{Attach: attach}
	if tracer != nil {
		d.TracerPid, d.TracerTgid = tracerPID, tracer.TGID
		if d.TracerPid == 0 {
			d.TracerPid = tracer.TGID
		}
	}
	ev.Details = &xdrv1.ActEvent_Ptrace{Ptrace: d}
	return ev
}

// Session maps a setsid.
func (m *Mapper) Session(ts int64, p *proctable.Proc, pid uint32) *xdrv1.ActEvent {
	subject := m.subject(p, pid)
	ev := m.event(xdrv1.KernelEvent_KERNEL_EVENT_SID, "", ts, subject)
	setSelfTarget(ev, subject)
	ev.Details = &xdrv1.ActEvent_Session{Session: &xdrv1.SessionDetails{SessionId: p.SessionID}}
	return ev
}

// Coredump maps a core dump of p.
func (m *Mapper) Coredump(ts int64, p *proctable.Proc, pid, parentPID, parentTGID uint32) *xdrv1.ActEvent {
	subject := m.subject(p, pid)
	ev := m.event(xdrv1.KernelEvent_KERNEL_EVENT_COREDUMP, "", ts, subject)
	setSelfTarget(ev, subject)
	ev.Details = &xdrv1.ActEvent_Coredump{Coredump: &xdrv1.CoredumpDetails{ParentPid: parentPID, ParentTgid: parentTGID}}
	return ev
}
