package sensor

import (
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdr-sensor/xdr/agent/accounts"
	"github.com/xdr-sensor/xdr/agent/ebpf"
	"github.com/xdr-sensor/xdr/agent/proctable"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// acctWriter is a process seen modifying an account file (writing to it,
// truncating, copying into, unlinking or renaming it away) whose change
// has not been compared yet: a change the poll finds is attributed to it.
type acctWriter struct {
	proc *proctable.Proc // nil: none (or unknown)
	pid  uint32
	// seq, access and ts are those of the file activity.
	seq    uint64
	access xdrv1.XdrAccessType
	ts     int64
	// tick is the housekeeping tick during which it was seen.
	tick uint64
}

// acctState is what the collector goroutine keeps about the account
// files between events.
type acctState struct {
	w       *accounts.Watcher
	writers [accounts.NumFiles]acctWriter
	// seen is when (CLOCK_MONOTONIC ns) a poll found a file changed that
	// has not been compared since, 0 for none; a later poll compares it.
	seen [accounts.NumFiles]int64
	tick uint64
	// readUpTo is the CLOCK_MONOTONIC time up to which the eBPF
	// collector's events have been read: a rename or close that ended a
	// change made before then has been handled.
	readUpTo int64
}

// monotonic returns CLOCK_MONOTONIC in nanoseconds, the clock of eBPF
// event times, at most a microsecond or so behind. It costs no system
// call: the runtime's monotonic clock is CLOCK_MONOTONIC read through the
// vDSO, and only its origin is unknown, so it is measured once (the
// kernel's reading taken first, so that the error is never ahead).
func monotonic() int64 {
	return monoBase.ns + int64(time.Since(monoBase.at))
}

var monoBase = func() (b struct {
	ns int64
	at time.Time
}) {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	b.at = time.Now()
	b.ns = ts.Nano()
	return b
}()

// readEvents records that the eBPF collector read events up to the last
// of events, or, when it read none, that the ring held nothing at start
// (CLOCK_MONOTONIC ns), when the read began.
func (a *acctState) readEvents(events []ebpf.Event, start int64) {
	if len(events) == 0 {
		a.readUpTo = max(a.readUpTo, start)
		return
	}
	a.readUpTo = max(a.readUpTo, int64(events[len(events)-1].Header.Time))
}

// accountFile handles an eBPF file event e, mapped to ev, that may touch
// an account file. A rename onto one or the close of a written one is
// the end of a change: the file is compared now. Writes, truncating
// opens, copies, unlinks and renames away are only remembered, for the
// poll to attribute the change to (the close that ends a write is not
// seen when the writer exits without closing).
func (p *pipeline) accountFile(e *ebpf.Event, ev *xdrv1.ActEvent, batch []job) []job {
	fo := e.File
	switch e.Kind {
	case ebpf.KindFileRename:
		batch = p.accountTouched(fo.Path2, true, e, ev, batch)
		return p.accountTouched(fo.Path, false, e, ev, batch)
	case ebpf.KindFileClose:
		return p.accountTouched(fo.Path, true, e, ev, batch)
	case ebpf.KindFileWrite, ebpf.KindFileCopy, ebpf.KindFileUnlink:
		return p.accountTouched(fo.Path, false, e, ev, batch)
	case ebpf.KindFileOpen:
		if fo.Flags&unix.O_TRUNC != 0 || fo.Created {
			return p.accountTouched(fo.Path, false, e, ev, batch)
		}
	}
	return batch
}

// accountTouched compares the account file at path now, or remembers e's
// process as its writer, and appends the events of what changed to batch.
// Other paths are left alone.
func (p *pipeline) accountTouched(path string, now bool, e *ebpf.Event, ev *xdrv1.ActEvent, batch []job) []job {
	f, ok := p.accts.w.Match(path)
	if !ok {
		return batch
	}
	w := acctWriter{
		proc: p.table.Lookup(e.Header.TGID), pid: e.Header.PID,
		seq: ev.GetSeq(), access: ev.GetAccessType(), ts: ev.GetTimestampNs(), tick: p.accts.tick,
	}
	if !now {
		p.accts.writers[f] = w
		return batch
	}
	return p.compareAccounts(f, w, batch)
}

// pollAccounts is the housekeeping of the account files: a file found
// changed is compared by a later poll, if no event did meanwhile: one
// counters interval later, and for the eBPF collector once it has read
// the events from before the change was found, so that a rename or close
// that ended it has been handled (and the writer is known). Its change is
// attributed to the last writer seen, if any; without one (always for the
// proc connector, which sees no file activity) the subject is unknown. A
// writer whose file did not change for a whole interval is forgotten.
func (p *pipeline) pollAccounts() {
	a := &p.accts
	a.tick++
	now := monotonic()
	var batch []job
	for f := range accounts.NumFiles {
		w := &a.writers[f]
		if !a.w.Changed(f) {
			a.seen[f] = 0
			if w.proc != nil && w.tick+1 < a.tick {
				*w = acctWriter{}
			}
			continue
		}
		if a.seen[f] == 0 {
			a.seen[f] = now
			continue
		}
		if p.coll != nil && a.readUpTo < a.seen[f] {
			continue
		}
		wr := *w
		if wr.proc == nil {
			wr.ts = time.Now().UnixNano()
		}
		batch = p.compareAccounts(f, wr, batch)
	}
	p.dispatch(batch)
}

// compareAccounts compares account file f with its snapshot and appends
// an event per change, made by w, to batch. When the file cannot be
// compared yet (a read error, which the watcher logs, or contents that
// look incomplete), w stays its writer and the poll tries again.
func (p *pipeline) compareAccounts(f accounts.File, w acctWriter, batch []job) []job {
	a := &p.accts
	res, err := a.w.Diff(f)
	if err != nil || res.Deferred {
		if w.proc != nil {
			a.writers[f] = w
		}
		return batch
	}
	a.writers[f], a.seen[f] = acctWriter{}, 0
	for i := range res.Changes {
		ev := p.mapper.Account(w.ts, w.proc, w.pid, &res.Changes[i], w.seq, w.access)
		if i == len(res.Changes)-1 && res.Unreported > 0 {
			ev.GetAccount().UnreportedChanges = uint32(res.Unreported)
		}
		if ev.GetSubject().GetPartial() {
			p.o.Counters.Add(xdrv1.EventStatType_EVENT_STAT_TYPE_PARTIAL_ENRICHMENT, ev.GetAccessType(), 1)
		}
		batch = append(batch, p.newJob(ev, w.proc))
	}
	if res.Unreported > 0 {
		p.log.Warn("account file changed in more entries than are reported; the last event counts the rest",
			"path", a.w.Path(f), "reported", len(res.Changes), "unreported", res.Unreported)
	}
	return batch
}
