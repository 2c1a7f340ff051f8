package objid

import (
	"path"
	"strings"

	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

const (
	offset64 = 14695981039346656037
	prime64  = 1099511628211
)

// hasher is FNV-1a 64 with helpers for delimited fields. A value type so
// that hashing allocates nothing.
type hasher uint64

func newHasher(tag byte) hasher { return hasher(offset64).byte(tag) }

func (h hasher) byte(b byte) hasher { return (h ^ hasher(b)) * prime64 }

func (h hasher) str(s string) hasher {
	h = h.u64(uint64(len(s)))
	for i := 0; i < len(s); i++ {
		h = (h ^ hasher(s[i])) * prime64
	}
	return h
}

func (h hasher) u64(v uint64) hasher {
	for i := 0; i < 8; i++ {
		h = h.byte(byte(v >> (8 * i)))
	}
	return h
}

// CleanPath normalises a path for identity: lexical clean, no trailing
// slash. Relative paths are kept relative (the agent resolves them before
// they get here).
func CleanPath(p string) string {
	if p == "" {
		return ""
	}
	return path.Clean(p)
}

// File is the identity of a file by its path.
func File(p string) uint64 { return uint64(newHasher('f').str(CleanPath(p))) }

// Process is the identity of a process by what it is: its executable.
// Processes without a known executable (kernel threads, or enrichment that
// came too late) fall back to their comm, tagged so the two never collide.
func Process(exe, comm string) uint64 {
	if exe != "" {
		return uint64(newHasher('p').str(CleanPath(exe)))
	}
	return uint64(newHasher('k').str(comm))
}

// Connection is the identity of a connection: protocol, remote address and
// port, and direction. For a listening socket, where there is no remote
// end, the local address and port identify it.
func Connection(c *xdrv1.Connection) uint64 {
	h := newHasher('c').u64(uint64(c.GetProtocol())).u64(uint64(c.GetDirection()))
	if c.GetDirection() == xdrv1.Direction_DIRECTION_LISTEN {
		return uint64(h.str(c.GetLocalAddress()).u64(uint64(c.GetLocalPort())))
	}
	return uint64(h.str(c.GetRemoteAddress()).u64(uint64(c.GetRemotePort())))
}

// DNS is the identity of a name query: lowercased name (without a trailing
// dot) and query type.
func DNS(name string, qtype uint32) uint64 {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	return uint64(newHasher('d').str(name).u64(uint64(qtype)))
}

// Account is the identity of a user (or, with group set, a group) account.
func Account(a *xdrv1.Account) uint64 {
	tag := byte('u')
	id := a.GetUid()
	if a.GetGroup() {
		tag, id = 'g', a.GetGid()
	}
	return uint64(newHasher(tag).u64(uint64(id)).str(a.GetName()))
}

// Memory is the identity of a memory activity's object: the backing file
// (or anonymous memory) and the protection it got. Addresses are left out:
// they differ on every run.
func Memory(m *xdrv1.Memory) uint64 {
	return uint64(newHasher('m').str(CleanPath(m.GetPath())).u64(uint64(m.GetProt())))
}

// Rule is the identity of a detection rule.
func Rule(id string) uint64 { return uint64(newHasher('r').str(id)) }

// Target returns the identity of ev's target object, or 0 when it has none.
func Target(ev *xdrv1.ActEvent) uint64 {
	switch t := ev.GetTarget().(type) {
	case *xdrv1.ActEvent_Process:
		return Process(t.Process.GetExe(), t.Process.GetComm())
	case *xdrv1.ActEvent_File:
		return File(t.File.GetPath())
	case *xdrv1.ActEvent_Connection:
		return Connection(t.Connection)
	case *xdrv1.ActEvent_Dns:
		return DNS(t.Dns.GetName(), t.Dns.GetQueryType())
	case *xdrv1.ActEvent_Account:
		return Account(t.Account)
	case *xdrv1.ActEvent_Memory:
		return Memory(t.Memory)
	case *xdrv1.ActEvent_Rule:
		return Rule(t.Rule.GetId())
	}
	return 0
}

// Activity is the identity of a whole activity: who (the subject's
// executable), what (the access type) and to what (the target identity,
// computed when ev.target_hash_id is 0). It is the footprint hash id.
func Activity(ev *xdrv1.ActEvent) uint64 {
	target := ev.GetTargetHashId()
	if target == 0 {
		target = Target(ev)
	}
	s := ev.GetSubject()
	return uint64(newHasher('a').
		u64(Process(s.GetExe(), s.GetComm())).
		u64(uint64(ev.GetAccessType())).
		u64(target))
}
