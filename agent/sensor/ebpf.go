package sensor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdr-sensor/xdr/agent/counters"
	"github.com/xdr-sensor/xdr/agent/ebpf"
	"github.com/xdr-sensor/xdr/agent/exehash"
	"github.com/xdr-sensor/xdr/agent/proctable"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// collectEBPF is the collector goroutine's loop for the eBPF collector.
// The agent's own process is filtered in the kernel. After closeSource,
// Read returns what was left in the ring and then os.ErrClosed.
func (p *pipeline) collectEBPF(ctx context.Context) error {
	events := make([]ebpf.Event, 0, 256)
	tick := time.NewTicker(p.o.CountersInterval)
	defer tick.Stop()
	var clk clocks
	clk.update()
	for {
		var err error
		start := monotonic()
		events, err = p.coll.Read(events[:0])
		p.accts.readEvents(events, start)
		p.housekeep(tick, &clk)
		batch := make([]job, 0, len(events))
		for i := range events {
			if e := &events[i]; e.Kind == ebpf.KindExit && dumpsCore(e.Exit.Code) {
				// The proc connector reports the dump before the exit.
				h := &e.Header
				subject := p.table.Lookup(h.TGID)
				ev := p.mapper.Coredump(int64(h.Time)+clk.wall, subject, h.PID, h.PPID, h.PPID)
				batch = append(batch, p.newJob(ev, subject))
			}
			if j, ok := p.handleEBPF(&events[i], &clk); ok {
				batch = append(batch, j)
				if events[i].File != nil {
					batch = p.accountFile(&events[i], j.ev, batch)
				}
			}
		}
		p.dispatch(batch)
		if errors.Is(err, os.ErrClosed) && ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read ebpf events: %w", err)
		}
	}
}

// countKernelDrops adds what the eBPF collector lost since the last call,
// and the reads it filtered in the kernel, to the agent's counters.
func (p *pipeline) countKernelDrops() {
	s := p.coll.Stats()
	addKernelDrops(p.o.Counters, p.kstats, s)
	p.kstats = s
}

// addKernelDrops adds the losses between two readings of the eBPF
// collector's cumulative counters to c: ring buffer full, other kernel
// side losses (no memory for a call's state, other failures, recursion
// misses) and undecodable records.
func addKernelDrops(c *counters.Set, last, now ebpf.Stats) {
	none := xdrv1.XdrAccessType_XDR_ACCESS_TYPE_UNSPECIFIED
	// The counters only grow; a reading that went back (none should)
	// adds nothing rather than wrapping around.
	add := func(stat xdrv1.EventStatType, before, after uint64) {
		if after > before {
			c.Add(stat, none, after-before)
		}
	}
	add(xdrv1.EventStatType_EVENT_STAT_TYPE_DROPPED_RINGBUF_FULL, last.RingFull, now.RingFull)
	add(xdrv1.EventStatType_EVENT_STAT_TYPE_DROPPED_KERNEL, last.StateFull+last.Other+last.Missed+last.RepeatOrphans,
		now.StateFull+now.Other+now.Missed+now.RepeatOrphans)
	add(xdrv1.EventStatType_EVENT_STAT_TYPE_DROPPED_MALFORMED, last.DecodeErrors, now.DecodeErrors)
	if now.FilteredReads > last.FilteredReads {
		c.Add(xdrv1.EventStatType_EVENT_STAT_TYPE_FILTERED, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_OPEN, now.FilteredReads-last.FilteredReads)
	}
}

// handleEBPF turns one eBPF event into an ActEvent, keeping the process
// table up to date as handle does for the proc connector. Process events
// produce the same ActEvents as the proc connector's, with the image
// (exe, argv, cwd) from the kernel record rather than /proc.
func (p *pipeline) handleEBPF(e *ebpf.Event, clk *clocks) (job, bool) {
	if p.reads.excludes(e) {
		p.o.Counters.Add(xdrv1.EventStatType_EVENT_STAT_TYPE_FILTERED, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_OPEN, uint64(max(e.Count, 1)))
		return job{}, false
	}
	h := &e.Header
	ts := int64(h.Time) + clk.wall
	var ev *xdrv1.ActEvent
	var subject *proctable.Proc
	switch e.Kind {
	case ebpf.KindFork:
		parent := p.table.Lookup(h.TGID)
		child := p.table.ForkExact(h.TGID, e.Fork.ChildTGID, e.Fork.ChildStartTime)
		subject, ev = parent, p.mapper.Fork(ts, parent, h.PID, child)
	case ebpf.KindExec:
		x := e.Exec
		res := p.table.ExecImage(h.TGID, proctable.Image{
			StartTicks: h.StartTicks(), PPID: h.PPID, Exe: x.Exe, Argv: x.Argv,
			ArgvTruncated: x.ArgvTruncated || x.ArgvIncomplete, Cwd: x.Cwd, Comm: h.Comm,
			UID: h.UID, EUID: h.EUID, GID: h.GID, EGID: h.EGID, HasIDs: true,
			ExeKey: exeKey(&x.ExeFile), ExeDeleted: x.ExeFile.Inode != 0 && x.ExeFile.Links == 0,
		})
		subject, ev = res.Proc, p.mapper.ExecImage(ts, res, &x.ExeFile)
	case ebpf.KindExit:
		subject = p.table.Exit(h.TGID)
		ev = p.mapper.Exit(ts, subject, h.PID, e.Exit.Code)
	case ebpf.KindSetID:
		group := e.SetID.Op >= ebpf.OpSetgid && e.SetID.Op <= ebpf.OpSetfsgid
		n := e.SetID.New
		ch := p.table.SetCreds(h.TGID, proctable.Creds{
			UID: n.UID, EUID: n.EUID, SUID: n.SUID, FSUID: n.FSUID,
			GID: n.GID, EGID: n.EGID, SGID: n.SGID, FSGID: n.FSGID,
		})
		o := e.SetID.Old
		ch.Old = proctable.Creds{
			UID: o.UID, EUID: o.EUID, SUID: o.SUID, FSUID: o.FSUID,
			GID: o.GID, EGID: o.EGID, SGID: o.SGID, FSGID: o.FSGID,
		}
		ch.OldKnown = true
		subject, ev = ch.Proc, p.mapper.IDChange(ts, ch, h.PID, group)
	case ebpf.KindPtrace:
		if e.Ptrace.Ret != 0 {
			// Refused requests change nothing; the proc connector does
			// not report them either.
			return job{}, false
		}
		switch e.Ptrace.Request {
		case unix.PTRACE_TRACEME:
			tracee, _ := p.table.SetTracer(h.TGID, e.Ptrace.Target)
			tracer := p.table.Lookup(e.Ptrace.Target)
			subject, ev = tracee, p.mapper.Traceme(ts, tracee, h.PID, tracer)
		case unix.PTRACE_ATTACH, unix.PTRACE_SEIZE:
			tracer := p.table.Lookup(h.TGID)
			tracee, _ := p.table.SetTracer(e.Ptrace.Target, h.TGID)
			subject, ev = tracer, p.mapper.Ptrace(ts, tracee, tracer, h.PID, true)
			ev.GetPtrace().Request = e.Ptrace.Request
		case unix.PTRACE_DETACH:
			// The tracer's call, as the proc connector's detach event.
			tracer := p.table.Lookup(h.TGID)
			tracee, _ := p.table.SetTracer(e.Ptrace.Target, 0)
			subject, ev = tracer, p.mapper.Ptrace(ts, tracee, tracer, h.PID, false)
			ev.GetPtrace().Request = e.Ptrace.Request
		default:
			tracer := p.table.Lookup(h.TGID)
			tracee := p.table.Lookup(e.Ptrace.Target)
			subject, ev = tracer, p.mapper.PtraceModify(ts, tracer, h.PID, tracee, e.Ptrace.Request)
		}
	case ebpf.KindComm:
		if h.PID != h.TGID {
			// Thread renames are not reported (as with the proc
			// connector).
			return job{}, false
		}
		var old string
		subject, old = p.table.SetComm(h.TGID, h.Comm)
		if e.Comm.Old != "" {
			old = e.Comm.Old
		}
		ev = p.mapper.Comm(ts, subject, h.PID, old)
	case ebpf.KindSetsid:
		subject = p.table.SetSession(h.TGID)
		ev = p.mapper.Session(ts, subject, h.PID)
	case ebpf.KindProcAccess:
		if e.ProcAccess.Ret < 0 {
			return job{}, false
		}
		subject = p.table.Lookup(h.TGID)
		target := p.table.Lookup(e.ProcAccess.Target)
		ev = p.mapper.ProcAccess(ts, subject, h.PID, target, e.ProcAccess.Op)
		if ev == nil {
			return job{}, false
		}
	default:
		subject = p.table.Lookup(h.TGID)
		ev = p.mapper.Activity(ts, subject, h.PID, e)
		if ev == nil {
			return job{}, false
		}
	}
	if e.Count > 1 {
		ev.RepeatCount = uint64(e.Count)
	}
	if ev.GetSubject().GetPartial() {
		p.o.Counters.Add(xdrv1.EventStatType_EVENT_STAT_TYPE_PARTIAL_ENRICHMENT, ev.GetAccessType(), 1)
	}
	j := p.newJob(ev, subject)
	if e.Kind == ebpf.KindExec && j.f == nil && ev.GetSubject().GetExeHashes() == nil {
		j = p.imageJob(j, &e.Exec.ExeFile)
	}
	return j, true
}

// exeKey is the hash cache key of the executable the kernel reported, or
// zero when it reported none or not a regular file.
func exeKey(fi *ebpf.FileInfo) exehash.Key {
	if fi.Inode == 0 || fi.Mode&unix.S_IFMT != unix.S_IFREG {
		return exehash.Key{}
	}
	return exehash.Key{
		Dev: fi.Dev, Ino: fi.Inode, Size: fi.Size,
		MtimeNs: fi.ModTime*1e9 + int64(fi.ModTimeNsec),
		CtimeNs: fi.ChangeTime*1e9 + int64(fi.ChangeTimeNsec),
	}
}

// imageJob completes j, an exec whose executable /proc could not show
// (the process was gone or had exec'd again), with the file at the path
// the kernel reported, provided it is the very file the kernel ran: same
// device, inode, size and times. A process in another mount namespace
// sees other files at that path; those do not match and are not hashed.
func (p *pipeline) imageJob(j job, fi *ebpf.FileInfo) job {
	path := j.ev.GetSubject().GetExe()
	want := exeKey(fi)
	if want == (exehash.Key{}) || path == "" || path[0] != '/' {
		return j
	}
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return j
	}
	var st unix.Stat_t
	// The same key is the same inode, a regular file (exeKey checked).
	if err := unix.Fstat(int(f.Fd()), &st); err != nil || exehash.KeyOf(&st) != want {
		f.Close()
		return j
	}
	if h, ok := p.hashes.Lookup(want); ok {
		f.Close()
		fillHashes(j.ev, h)
		return j
	}
	j.key = want
	p.mu.Lock()
	open := !p.inflight[want] && len(p.inflight) < maxOpenExes
	if open {
		p.inflight[want] = true
	}
	p.mu.Unlock()
	if !open {
		// Being hashed for an earlier event (the hashing goroutine
		// keeps the order, so the result is cached by then), or too
		// many files open.
		f.Close()
		return j
	}
	j.f = f
	return j
}

// dumpsCore reports whether a process that ended with wait status code
// was killed by a signal whose default action dumps core. The kernel runs
// its core dump code for these (the proc connector reports a COREDUMP
// then) whether or not a core file is written, which only the 0x80 bit
// tells.
func dumpsCore(code uint32) bool {
	switch unix.Signal(code & 0x7f) {
	case unix.SIGQUIT, unix.SIGILL, unix.SIGTRAP, unix.SIGABRT, unix.SIGBUS, unix.SIGFPE,
		unix.SIGSEGV, unix.SIGSYS, unix.SIGXCPU, unix.SIGXFSZ:
		return true
	}
	return false
}
