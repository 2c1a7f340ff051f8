package footprint

import (
	"slices"
	"strings"
	"unsafe"

	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// subject is the trimmed copy of the last process seen doing an activity:
// no ancestry, environment, cwd or cgroup, which can be large and are in
// the event stream anyway.
//
// Its numbers are the entry's own. Its strings (executable, argv, names,
// hashes) are in a subjectStrings that entries share: the activities of
// one process, or of every run of one program, repeat the same strings,
// and a storm of distinct activities by one process would otherwise copy
// them into every footprint.
type subject struct {
	set, partial, argvTruncated bool
	credsSet                    bool
	hashesSet, tooLarge         bool
	pid, ppid, tgid             uint32
	instanceID                  uint64
	ids                         [8]uint32 // uid, euid, suid, fsuid, gid, egid, sgid, fsgid
	entropy                     float64
	str                         *subjectStrings // nil when !set
}

// loadNumbers sets everything but the strings from p.
func (s *subject) loadNumbers(p *xdrv1.Process) {
	str := s.str
	*s = subject{str: str}
	if p == nil {
		return
	}
	s.set, s.partial, s.argvTruncated = true, p.Partial, p.ArgvTruncated
	s.pid, s.ppid, s.tgid, s.instanceID = p.Pid, p.Ppid, p.Tgid, p.InstanceId
	if c := p.Creds; c != nil {
		s.credsSet = true
		s.ids = [8]uint32{c.Uid, c.Euid, c.Suid, c.Fsuid, c.Gid, c.Egid, c.Sgid, c.Fsgid}
	}
	if h := p.ExeHashes; h != nil {
		s.hashesSet, s.tooLarge, s.entropy = true, h.TooLarge, h.Entropy
	}
}

func (s *subject) proto() *xdrv1.Process {
	if !s.set {
		return nil
	}
	t := s.str
	p := &xdrv1.Process{
		Pid: s.pid, Ppid: s.ppid, Tgid: s.tgid, InstanceId: s.instanceID,
		Partial: s.partial, ArgvTruncated: s.argvTruncated,
		Exe: t.exe, Comm: t.comm, Argv: slices.Clone(t.argv), ContainerId: t.containerID,
	}
	if s.credsSet {
		p.Creds = &xdrv1.Credentials{
			Uid: s.ids[0], Euid: s.ids[1], Suid: s.ids[2], Fsuid: s.ids[3],
			Gid: s.ids[4], Egid: s.ids[5], Sgid: s.ids[6], Fsgid: s.ids[7],
			UserName: t.userName, EuserName: t.euserName,
			GroupName: t.groupName, EgroupName: t.egroupName,
		}
	}
	if s.hashesSet {
		p.ExeHashes = &xdrv1.Hashes{Md5: t.md5, Sha1: t.sha1, Sha256: t.sha256, Entropy: s.entropy, TooLarge: s.tooLarge}
	}
	return p
}

// subjectStrings holds the strings of a subject, packed into one block.
// It never changes once made: an entry whose subject's strings change
// points to another one. refs counts the entries pointing to it, and its
// bytes (size) count in the Generator's budget while refs > 0.
type subjectStrings struct {
	exe, comm, containerID                     string
	argv                                       []string
	userName, euserName, groupName, egroupName string
	md5, sha1, sha256                          string
	block                                      string
	refs                                       int
	size                                       int64
}

// newSubjectStrings copies the strings of p (not nil) into one block.
func newSubjectStrings(p *xdrv1.Process) *subjectStrings {
	c, h := p.GetCreds(), p.GetExeHashes()
	t := &subjectStrings{
		exe: p.Exe, comm: p.Comm, containerID: p.ContainerId,
		userName: c.GetUserName(), euserName: c.GetEuserName(),
		groupName: c.GetGroupName(), egroupName: c.GetEgroupName(),
		md5: h.GetMd5(), sha1: h.GetSha1(), sha256: h.GetSha256(),
	}
	if len(p.Argv) > 0 {
		t.argv = slices.Clone(p.Argv)
	}
	ptrs := []*string{&t.exe, &t.comm, &t.containerID, &t.userName, &t.euserName,
		&t.groupName, &t.egroupName, &t.md5, &t.sha1, &t.sha256}
	for i := range t.argv {
		ptrs = append(ptrs, &t.argv[i])
	}
	t.block = packStrings(ptrs)
	t.size = withFragmentation(objSize(unsafe.Sizeof(*t)) + allocSize(len(t.block)) + objSize(uintptr(len(t.argv))*unsafe.Sizeof("")))
	return t
}

// matches reports whether p's strings are t's.
func (t *subjectStrings) matches(p *xdrv1.Process) bool {
	c, h := p.GetCreds(), p.GetExeHashes()
	return t.exe == p.GetExe() && t.comm == p.GetComm() && t.containerID == p.GetContainerId() &&
		slices.Equal(t.argv, p.GetArgv()) &&
		t.userName == c.GetUserName() && t.euserName == c.GetEuserName() &&
		t.groupName == c.GetGroupName() && t.egroupName == c.GetEgroupName() &&
		t.md5 == h.GetMd5() && t.sha1 == h.GetSha1() && t.sha256 == h.GetSha256()
}

// packStrings copies the strings ptrs point to into one allocation, points
// them into it, and returns it.
func packStrings(ptrs []*string) string {
	total := 0
	for _, p := range ptrs {
		total += len(*p)
	}
	var b strings.Builder
	b.Grow(total)
	for _, p := range ptrs {
		b.WriteString(*p)
	}
	block := b.String()
	rest := block
	for _, p := range ptrs {
		if n := len(*p); n > 0 {
			*p, rest = rest[:n], rest[n:]
		}
	}
	return block
}

// stringsFor returns the strings of subject p for an entry whose subject
// has the strings cur: cur itself or the strings made last when p has the
// same, else new ones. It attaches nothing (attach does).
func (g *Generator) stringsFor(cur *subjectStrings, p *xdrv1.Process) *subjectStrings {
	switch {
	case p == nil:
		return nil
	case cur != nil && cur.matches(p):
		return cur
	case g.last != nil && g.last.matches(p):
		return g.last
	}
	g.last = newSubjectStrings(p)
	return g.last
}

// attach points e's subject to t, counting t's bytes if it is the first
// entry to do so, and releases the strings e pointed to before.
func (g *Generator) attach(e *entry, t *subjectStrings) {
	old := e.subject.str
	if old == t {
		return
	}
	if t != nil {
		if t.refs == 0 {
			g.bytes += t.size
		}
		t.refs++
	}
	e.subject.str = t
	g.release(old)
}

// release drops an entry's reference to t, and t's bytes with the last.
func (g *Generator) release(t *subjectStrings) {
	if t == nil {
		return
	}
	if t.refs--; t.refs == 0 {
		g.bytes -= t.size
		if g.last == t {
			g.last = nil // no memory outside the budget
		}
	}
}

// extra returns the bytes that attaching t would add to the budget.
func extra(t *subjectStrings) int64 {
	if t == nil || t.refs > 0 {
		return 0
	}
	return t.size
}

// sizeOrZero is t's size, 0 for no strings.
func (t *subjectStrings) sizeOrZero() int64 {
	if t == nil {
		return 0
	}
	return t.size
}
