package mapper

import (
	"unsafe"

	"github.com/xdr-sensor/xdr/agent/proctable"
	"github.com/xdr-sensor/xdr/proto/wire"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// subjectSlots is the size of the subject cache, direct-mapped on the
// acting thread's pid: a process's events mostly come in runs, and a
// collision costs a rebuild only.
const subjectSlots = 256

// subjectSlot holds the subject last built for one acting thread, with
// everything it was built from, so that a later event of the same thread
// can tell whether it may reuse it.
type subjectSlot struct {
	proc  *proctable.Proc
	pid   uint32
	img   proctable.Proc // *proc when msg was built
	anc   []ancestorSnap
	users uint64
	msg   *xdrv1.Process
	enc   []byte // wire.EncodeSubject(msg), made on first use
}

type ancestorSnap struct {
	proc       *proctable.Proc
	tgid       uint32
	instanceID uint64
	exe, comm  string
}

// subject returns the subject for p acting through thread pid: the one
// built for the previous event when nothing it shows has changed since,
// else a new one. The result is shared between events and must not be
// changed; Process returns one the caller owns.
//
// Only subjects with their executable's hashes are kept: one without is
// completed later by the hashing goroutine, which writes to it.
func (m *Mapper) subject(p *proctable.Proc, pid uint32) *xdrv1.Process {
	if pid == 0 {
		pid = p.TGID
	}
	s := &m.subjects[pid%subjectSlots]
	var users uint64
	if m.o.Users != nil {
		users = m.o.Users.Generation()
	}
	m.anc = m.o.Table.AppendAncestors(m.anc[:0], p, m.o.AncestorDepth)
	if s.msg != nil && s.proc == p && s.pid == pid && s.users == users && sameImage(&s.img, p) && sameAncestors(s.anc, m.anc) {
		m.subjectHits++
		return s.msg
	}
	msg := m.Process(p, pid)
	if msg.ExeHashes == nil {
		return msg
	}
	*s = subjectSlot{proc: p, pid: pid, img: *p, anc: s.anc[:0], users: users, msg: msg}
	for _, a := range m.anc {
		s.anc = append(s.anc, ancestorSnap{proc: a, tgid: a.TGID, instanceID: a.InstanceID, exe: a.Exe, comm: a.Comm})
	}
	return msg
}

// EncodedSubject returns ev's subject encoded for wire.AppendEventFrame
// when it is a shared subject, encoding it once; nil otherwise. The bytes
// never change: they may be queued with the event.
func (m *Mapper) EncodedSubject(ev *xdrv1.ActEvent) []byte {
	msg := ev.GetSubject()
	if msg == nil {
		return nil
	}
	s := &m.subjects[msg.GetPid()%subjectSlots]
	if s.msg != msg {
		return nil
	}
	if s.enc == nil {
		enc, err := wire.EncodeSubject(msg)
		if err != nil {
			return nil // the event's own encoding reports it
		}
		s.enc = enc
	}
	return s.enc
}

// SubjectHits is how many events reused a subject (for tests and
// benchmarks).
func (m *Mapper) SubjectHits() uint64 { return m.subjectHits }

// sameImage reports whether a subject built from a shows b as it is: every
// field that goes into it is equal. Lists compare by identity (the table
// replaces them, never edits them in place). TracerTGID is not shown.
func sameImage(a, b *proctable.Proc) bool {
	return a.TGID == b.TGID && a.PPID == b.PPID && a.StartTicks == b.StartTicks &&
		a.InstanceID == b.InstanceID && a.ParentInstanceID == b.ParentInstanceID &&
		a.Exe == b.Exe && a.ExeDeleted == b.ExeDeleted && a.ExeKey == b.ExeKey &&
		sameList(a.Argv, b.Argv) && a.ArgvTruncated == b.ArgvTruncated &&
		a.Cwd == b.Cwd && a.Comm == b.Comm && a.Creds == b.Creds && a.CredsKnown == b.CredsKnown &&
		a.SessionID == b.SessionID && a.Cgroup == b.Cgroup && a.ContainerID == b.ContainerID &&
		sameList(a.Env, b.Env) && a.EnvTruncated == b.EnvTruncated && a.Partial == b.Partial
}

func sameList(a, b []string) bool {
	return len(a) == len(b) && unsafe.SliceData(a) == unsafe.SliceData(b)
}

func sameAncestors(snap []ancestorSnap, now []*proctable.Proc) bool {
	if len(snap) != len(now) {
		return false
	}
	for i, a := range now {
		s := &snap[i]
		if s.proc != a || s.tgid != a.TGID || s.instanceID != a.InstanceID || s.exe != a.Exe || s.comm != a.Comm {
			return false
		}
	}
	return true
}
