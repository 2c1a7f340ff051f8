package proctable

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdr-sensor/xdr/agent/exehash"
	"github.com/xdr-sensor/xdr/agent/procfs"
)

// Options configure a Table. The zero value of each field means its
// default.
type Options struct {
	// FS is the /proc to read (default procfs.New("/proc")).
	FS *procfs.FS
	// BootID goes into every instance id (default: read from FS).
	BootID string
	// ArgvMax caps the bytes of a command line read (default 32 KiB).
	ArgvMax int
	// CaptureEnv turns on environment capture, capped at EnvMax bytes
	// (default 4 KiB). Off by default: environments carry secrets.
	CaptureEnv bool
	EnvMax     int
	// Grace is how long exited processes stay (default 5s).
	Grace time.Duration
	// MaxEntries bounds the table (default 65536). Past it, exited
	// entries go first; a new process that still does not fit is
	// reported but not remembered.
	MaxEntries int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Table is the process table. It is not safe for concurrent use: the
// collector goroutine owns it.
type Table struct {
	fs      procfs.FS
	bootID  string
	argvMax int
	envMax  int
	grace   time.Duration
	max     int
	now     func() time.Time
	procs   map[uint32]*Proc
	exited  int
	full    uint64
	// exeStat is the stat of the executable read by the last readAll,
	// through the /proc magic link, which reaches the exact inode even
	// when the file was deleted or replaced.
	exeStat   unix.Stat_t
	exeStatOK bool
}

// New returns an empty table; call Seed to fill it from /proc.
func New(opts *Options) (*Table, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	t := &Table{
		argvMax: o.ArgvMax,
		grace:   o.Grace,
		max:     o.MaxEntries,
		now:     o.Now,
		bootID:  o.BootID,
		procs:   make(map[uint32]*Proc),
	}
	if o.FS != nil {
		t.fs = *o.FS
	} else {
		t.fs = procfs.New("")
	}
	if t.argvMax <= 0 {
		t.argvMax = 32 << 10
	}
	if o.CaptureEnv {
		t.envMax = o.EnvMax
		if t.envMax <= 0 {
			t.envMax = 4 << 10
		}
	}
	if t.grace <= 0 {
		t.grace = 5 * time.Second
	}
	if t.max <= 0 {
		t.max = 65536
	}
	if t.now == nil {
		t.now = time.Now
	}
	if t.bootID == "" {
		id, err := t.fs.BootID()
		if err != nil {
			return nil, fmt.Errorf("read boot id: %w", err)
		}
		t.bootID = id
	}
	return t, nil
}

// Len is the number of entries, exited ones included.
func (t *Table) Len() int { return len(t.procs) }

// NotRemembered counts new processes that did not fit in the table.
func (t *Table) NotRemembered() uint64 { return t.full }

// Get returns the entry for tgid, or nil.
func (t *Table) Get(tgid uint32) *Proc { return t.procs[tgid] }

// Seed fills the table from a scan of /proc. It returns how many
// processes it found.
func (t *Table) Seed() (int, error) {
	added, _, err := t.Resync()
	return added, err
}

// Resync reconciles the table with /proc after events were lost: it adds
// processes it did not know, replaces entries whose pid now belongs to a
// different process, and marks entries whose process is gone as exited.
// It returns how many entries it added (or replaced) and marked exited.
func (t *Table) Resync() (added, gone int, err error) {
	pids, err := t.fs.PIDs()
	if err != nil {
		return 0, 0, fmt.Errorf("list processes: %w", err)
	}
	seen := make(map[uint32]struct{}, len(pids))
	for _, pid := range pids {
		tgid := uint32(pid)
		seen[tgid] = struct{}{}
		st, err := t.fs.Stat(pid)
		if err != nil {
			continue // gone during the scan
		}
		if p := t.procs[tgid]; p != nil && !p.Exited() && p.StartTicks == st.StartTicks {
			continue
		}
		p := &Proc{TGID: tgid}
		t.fillFromStat(p, st)
		t.readAll(p)
		t.put(p)
		added++
	}
	for tgid, p := range t.procs {
		if _, ok := seen[tgid]; !ok && !p.Exited() {
			t.markExited(p)
			gone++
		}
	}
	return added, gone, nil
}

func (t *Table) fillFromStat(p *Proc, st procfs.Stat) {
	p.PPID = uint32(st.PPID)
	p.StartTicks = st.StartTicks
	p.InstanceID = InstanceID(t.bootID, st.StartTicks, p.TGID)
	p.SessionID = uint32(st.Session)
	if p.Comm == "" {
		p.Comm = st.Comm
	}
	if parent := t.procs[p.PPID]; parent != nil && !parent.Exited() {
		p.ParentInstanceID = parent.InstanceID
	}
}

// readAll reads everything /proc has on p. It marks p partial when the
// process vanished meanwhile, and checks that the pid still belongs to the
// same process afterwards, discarding what it read if not. It returns that
// final stat.
func (t *Table) readAll(p *Proc) (procfs.Stat, bool) { return t.read(p, false) }

// read is readAll; with imageOnly it skips what an exec does not change
// (working directory, cgroup): every /proc read counts in an exec storm.
func (t *Table) read(p *Proc, imageOnly bool) (procfs.Stat, bool) {
	pid := int(p.TGID)
	var gone bool
	note := func(err error) {
		if errors.Is(err, procfs.ErrGone) {
			gone = true
		}
	}
	exe, deleted, err := t.fs.Exe(pid)
	note(err)
	argv, trunc, err := t.fs.Cmdline(pid, t.argvMax)
	note(err)
	cwd, cg, cid := p.Cwd, p.Cgroup, p.ContainerID
	if !imageOnly {
		cwd, err = t.fs.Cwd(pid)
		note(err)
		cg, cid, err = t.fs.Cgroup(pid)
		note(err)
	}
	var key exehash.Key
	t.exeStatOK = false
	if exe != "" {
		if err := unix.Stat(t.fs.Root()+"/"+strconv.Itoa(pid)+"/exe", &t.exeStat); err == nil {
			key, t.exeStatOK = exehash.KeyOf(&t.exeStat), true
		}
	}
	// An exec changes credentials only through a set-user-id or
	// set-group-id executable; otherwise the ids inherited at fork stand
	// and the status read is saved.
	var status procfs.Status
	var serr error
	if !imageOnly || !p.CredsKnown || !t.exeStatOK || t.exeStat.Mode&(unix.S_ISUID|unix.S_ISGID) != 0 {
		status, serr = t.fs.Status(pid)
		note(serr)
	} else {
		status.Name, serr = "", errSkipped
	}
	var env []string
	var envTrunc bool
	if t.envMax > 0 {
		env, envTrunc, err = t.fs.Environ(pid, t.envMax)
		note(err)
	}
	// A reused pid: the stat start time no longer matches what we read
	// before. Keep nothing we just read.
	st, err := t.fs.Stat(pid)
	if err != nil || st.StartTicks != p.StartTicks {
		p.Partial = true
		t.exeStatOK = false
		return st, false
	}
	p.Exe, p.ExeDeleted, p.ExeKey = exe, deleted, key
	p.Argv, p.ArgvTruncated = argv, trunc
	p.Cwd = cwd
	p.Cgroup, p.ContainerID = cg, cid
	p.Env, p.EnvTruncated = env, envTrunc
	p.Comm = st.Comm
	if serr == nil {
		p.Comm = status.Name
		p.Creds = credsOf(status)
		p.CredsKnown = true
	}
	// Kernel threads have no exe and no cmdline: that is complete, not
	// partial. Anything else missing is.
	p.Partial = gone || (serr != nil && serr != errSkipped)
	return st, true
}

func credsOf(s procfs.Status) Creds {
	return Creds{
		UID: s.UID[0], EUID: s.UID[1], SUID: s.UID[2], FSUID: s.UID[3],
		GID: s.GID[0], EGID: s.GID[1], SGID: s.GID[2], FSGID: s.GID[3],
	}
}

// OpenExe opens the executable of a live process for hashing.
func (t *Table) OpenExe(tgid uint32) (*os.File, error) { return t.fs.OpenExe(int(tgid)) }

func (t *Table) put(p *Proc) {
	if old := t.procs[p.TGID]; old != nil {
		if old.Exited() {
			t.exited--
		}
		t.procs[p.TGID] = p
		return
	}
	if len(t.procs) >= t.max {
		t.evictExited(len(t.procs) - t.max + 1)
		if len(t.procs) >= t.max {
			t.full++
			return
		}
	}
	t.procs[p.TGID] = p
}

func (t *Table) markExited(p *Proc) {
	if !p.Exited() {
		p.exited = t.now()
		t.exited++
	}
}

// evictExited drops up to n exited entries, oldest exit first.
func (t *Table) evictExited(n int) {
	for ; n > 0 && t.exited > 0; n-- {
		var oldest *Proc
		for _, p := range t.procs {
			if p.Exited() && (oldest == nil || p.exited.Before(oldest.exited)) {
				oldest = p
			}
		}
		delete(t.procs, oldest.TGID)
		t.exited--
	}
}

// Sweep removes exited entries older than the grace period. Call it
// periodically (about once per grace period).
func (t *Table) Sweep() int {
	if t.exited == 0 {
		return 0
	}
	cutoff := t.now().Add(-t.grace)
	n := 0
	for tgid, p := range t.procs {
		if p.Exited() && p.exited.Before(cutoff) {
			delete(t.procs, tgid)
			t.exited--
			n++
		}
	}
	return n
}

// Ancestors returns p's ancestry, parent first, at most depth entries,
// stopping at pid 0 or a loop.
func (t *Table) Ancestors(p *Proc, depth int) []*Proc {
	return t.AppendAncestors(nil, p, depth)
}

// AppendAncestors appends p's ancestors, as Ancestors returns them, to dst.
func (t *Table) AppendAncestors(dst []*Proc, p *Proc, depth int) []*Proc {
	out := dst
	for cur := p; len(out)-len(dst) < depth; {
		parent := t.procs[cur.PPID]
		if parent == nil || parent == p || cur.PPID == 0 || parent.TGID == cur.TGID {
			break
		}
		out = append(out, parent)
		cur = parent
	}
	return out
}

// errSkipped marks a read left out on purpose.
var errSkipped = errors.New("not read")
