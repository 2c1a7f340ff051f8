package sensor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdr-sensor/xdr/agent/accounts"
	"github.com/xdr-sensor/xdr/agent/counters"
	"github.com/xdr-sensor/xdr/agent/ebpf"
	"github.com/xdr-sensor/xdr/agent/exehash"
	"github.com/xdr-sensor/xdr/agent/mapper"
	"github.com/xdr-sensor/xdr/agent/proccon"
	"github.com/xdr-sensor/xdr/agent/procfs"
	"github.com/xdr-sensor/xdr/agent/proctable"
	"github.com/xdr-sensor/xdr/agent/userdb"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// Sink receives finished events. It must not block (agent/transport's
// Client.Send does not).
type Sink interface {
	// SendWithSubject sends ev; subject, when not nil, is ev.Subject
	// encoded already (see agent/transport).
	SendWithSubject(ev *xdrv1.ActEvent, subject []byte) bool
	SetCounters(m *xdrv1.AgentCounters)
}

// Options configure Run.
type Options struct {
	Sink     Sink          // required
	Counters *counters.Set // required: drops and partial enrichments are counted here
	// Method is the kernel collector: COLLECTOR_METHOD_EBPF, or the proc
	// connector (COLLECTOR_METHOD_PROC_CONNECTOR, the default).
	Method xdrv1.CollectorMethod
	// ProcRoot is the /proc to read (default "/proc") and EtcRoot the
	// root holding etc/passwd, etc/group and etc/shadow (default "/"):
	// the names of ids, and the account files whose changes are reported.
	ProcRoot, EtcRoot string
	ArgvMax           int
	CaptureEnv        bool
	EnvMax            int
	// HashMaxSize caps the executables hashed (default 64 MiB).
	HashMaxSize int64
	// ReadBuffer is the proc connector's netlink receive buffer (default
	// 8 MiB).
	ReadBuffer int
	// RingSize is the eBPF ring buffer's size (default
	// ebpf.DefaultRingSize).
	RingSize int
	// BTFPath is passed to ebpf.Options.BTFPath.
	BTFPath string
	// CountersInterval is how often the agent's counters are reported
	// (default 1s).
	CountersInterval time.Duration
	// SelfPID is the agent's own tgid, whose activity is not reported
	// (default os.Getpid()).
	SelfPID int
	// ExcludeReads are path prefixes whose read-only opens are not
	// reported but counted as EVENT_STAT_TYPE_FILTERED (eBPF collector;
	// nil: none; see DefaultExcludeReads). The kernel filters them; the
	// agent filters those it cannot (longer than ebpf.MaxKernelPrefix).
	ExcludeReads []string
	// Ready, when set, is called once the collector listens and the
	// process table is seeded.
	Ready  func()
	Logger *slog.Logger
}

// queueBatches bounds the batches of at most chunkLen events between the
// collector and the hashing goroutine, and maxOpenExes the executables
// held open for hashing.
const (
	queueBatches = 16
	chunkLen     = 256 // events per queued batch: at most 4096 queued
	maxOpenExes  = 64
)

type job struct {
	ev      *xdrv1.ActEvent
	subject []byte // ev.Subject encoded, when the mapper shares it
	key     exehash.Key
	f       *os.File
}

type pipeline struct {
	o    Options
	log  *slog.Logger
	conn *proccon.Conn   // proc connector, or
	coll *ebpf.Collector // eBPF collector
	// kstats is the eBPF collector's counters as last reported.
	kstats ebpf.Stats
	table  *proctable.Table
	mapper *mapper.Mapper
	hashes *exehash.Cache
	accts  acctState
	self   uint32
	reads  readFilter
	jobs   chan []job

	// queued counts batches handed to the hashing goroutine and not yet
	// sent.
	queued atomic.Int32

	mu       sync.Mutex
	inflight map[exehash.Key]bool

	overrunLogged bool
}

// Run collects with the chosen method until ctx is done, then drains its
// queue into the sink and returns. It returns an error wrapping
// proccon.ErrNotSupported or ebpf.ErrNotSupported when the kernel lacks
// the method.
func Run(ctx context.Context, opts *Options) error {
	o := *opts
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.SelfPID == 0 {
		o.SelfPID = os.Getpid()
	}
	if o.CountersInterval <= 0 {
		o.CountersInterval = time.Second
	}
	if o.Method == xdrv1.CollectorMethod_COLLECTOR_METHOD_UNSPECIFIED {
		o.Method = xdrv1.CollectorMethod_COLLECTOR_METHOD_PROC_CONNECTOR
	}
	log := o.Logger.WithGroup("sensor")
	fs := procfs.New(o.ProcRoot)
	reads, err := newReadFilter(o.ExcludeReads)
	if err != nil {
		return err
	}
	p := &pipeline{
		o: o, log: log, self: uint32(o.SelfPID), reads: reads,
		jobs:     make(chan []job, queueBatches),
		inflight: make(map[exehash.Key]bool),
	}

	// The account files' snapshot comes first: a change made before the
	// collector listens is still found by the poll.
	p.accts.w = accounts.New(&accounts.Options{Root: o.EtcRoot, Logger: o.Logger})
	// Listen before seeding, so that nothing that starts during the
	// scan is missed.
	method, err := p.open()
	if err != nil {
		return err
	}
	table, err := proctable.New(&proctable.Options{FS: &fs, ArgvMax: o.ArgvMax, CaptureEnv: o.CaptureEnv, EnvMax: o.EnvMax})
	if err != nil {
		p.closeSource()
		return err
	}
	n, err := table.Seed()
	if err != nil {
		p.closeSource()
		return fmt.Errorf("seed process table: %w", err)
	}
	p.table = table
	p.hashes = exehash.New(&exehash.Options{MaxFileSize: o.HashMaxSize})
	p.mapper = mapper.New(&mapper.Options{
		Table: table, Users: userdb.New(&userdb.Options{Root: o.EtcRoot}), Hashes: p.hashes,
		Collector: o.Method,
	})
	// Loading the eBPF programs decodes the kernel's BTF, tens of MB of
	// garbage by now: hand it back to the system at once rather than
	// keeping it mapped until the runtime's scavenger gets to it (the
	// agent's idle RSS went from 30 to ~20 MB on the development VM).
	debug.FreeOSMemory()
	log.Info("collector started", "method", method, "processes", n)
	if o.Ready != nil {
		o.Ready()
	}

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.hashLoop()
	}()
	stop := context.AfterFunc(ctx, p.closeSource)
	defer stop()
	if p.coll != nil {
		err = p.collectEBPF(ctx)
	} else {
		err = p.collect(ctx)
	}
	p.closeSource()
	close(p.jobs)
	wg.Wait()
	p.reportCounters()
	log.Info("collector stopped", "events", p.mapper.Seq(), "subjects_reused", p.mapper.SubjectHits())
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// open starts the kernel collector that o.Method names and returns its
// name for the logs.
func (p *pipeline) open() (string, error) {
	switch p.o.Method {
	case xdrv1.CollectorMethod_COLLECTOR_METHOD_PROC_CONNECTOR:
		conn, err := proccon.Dial(&proccon.Options{ReadBuffer: p.o.ReadBuffer, Logger: p.o.Logger})
		if err != nil {
			return "", fmt.Errorf("proc connector: %w", err)
		}
		p.conn = conn
		return "proc", nil
	case xdrv1.CollectorMethod_COLLECTOR_METHOD_EBPF:
		coll, err := ebpf.Open(&ebpf.Options{
			RingSize: p.o.RingSize, ArgvMax: min(p.o.ArgvMax, ebpf.MaxArgvMax),
			IgnoreTGIDs: []uint32{p.self}, BTFPath: p.o.BTFPath, Logger: p.o.Logger,
			ExcludeReads: p.reads.prefixes,
		})
		if err != nil {
			return "", fmt.Errorf("ebpf collector: %w", err)
		}
		p.coll = coll
		// Only what the kernel could not filter is looked at per event.
		p.reads = p.reads.without(coll.KernelPrefixes())
		return "ebpf", nil
	}
	return "", fmt.Errorf("collector method %v: want PROC_CONNECTOR or EBPF", p.o.Method)
}

// closeSource stops the kernel collector, which ends the collect loop;
// it may be called more than once.
func (p *pipeline) closeSource() {
	if p.conn != nil {
		p.conn.Close()
	}
	if p.coll != nil {
		if err := p.coll.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			p.log.Warn("close ebpf collector", "err", err)
		}
	}
}

// collect is the collector goroutine's loop.
func (p *pipeline) collect(ctx context.Context) error {
	events := make([]proccon.Event, 0, 64)
	tick := time.NewTicker(p.o.CountersInterval)
	defer tick.Stop()
	var clk clocks
	clk.update()
	for {
		var err error
		events, err = p.conn.Receive(events[:0])
		if ctx.Err() != nil {
			return nil
		}
		p.housekeep(tick, &clk)
		if errors.Is(err, proccon.ErrOverrun) {
			p.overrun()
			continue
		}
		if err != nil {
			return fmt.Errorf("receive: %w", err)
		}
		// One hand-off per kernel read, not per event: waking the
		// hashing goroutine costs more than most events.
		batch := make([]job, 0, len(events))
		for i := range events {
			if j, ok := p.handle(&events[i], &clk); ok {
				batch = append(batch, j)
			}
		}
		p.dispatch(batch)
	}
}

// housekeep does the periodic work of either collect loop when its
// ticker is due: sweep exited processes, report the counters, refresh the
// clock offsets, poll the account files.
func (p *pipeline) housekeep(tick *time.Ticker, clk *clocks) {
	select {
	case <-tick.C:
		p.table.Sweep()
		p.reportCounters()
		clk.update()
		p.pollAccounts()
	default:
	}
}

// overrun counts a netlink overrun and resynchronises the process table:
// the kernel dropped events, and the table may have missed processes.
func (p *pipeline) overrun() {
	p.o.Counters.Add(xdrv1.EventStatType_EVENT_STAT_TYPE_DROPPED_NETLINK_OVERRUN, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_UNSPECIFIED, 1)
	added, gone, err := p.table.Resync()
	lvl := slog.LevelDebug
	if !p.overrunLogged {
		lvl, p.overrunLogged = slog.LevelWarn, true
	}
	p.log.Log(context.Background(), lvl, "netlink receive buffer overrun: kernel events lost, process table resynchronised (further overruns are counted, logged at debug level)",
		"added", added, "gone", gone, "err", err)
}

func (p *pipeline) reportCounters() {
	if p.coll != nil {
		p.countKernelDrops()
	}
	p.o.Sink.SetCounters(&xdrv1.AgentCounters{
		TimestampNs: time.Now().UnixNano(),
		Counts:      p.o.Counters.Snapshot(counters.Component),
		LastSeq:     p.mapper.Seq(),
	})
}

// clocks converts the proc connector's CLOCK_MONOTONIC timestamps to wall
// time and to CLOCK_BOOTTIME (the clock of process start times). The
// offsets change only when the wall clock is set or the machine resumes,
// so they are refreshed once per counters interval, not per event (these
// clock reads are real system calls).
type clocks struct{ wall, boot int64 }

func (c *clocks) update() {
	var mono, boot unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono)
	wall := time.Now().UnixNano()
	unix.ClockGettime(unix.CLOCK_BOOTTIME, &boot)
	c.wall = wall - mono.Nano()
	c.boot = boot.Nano() - mono.Nano()
}

func (p *pipeline) handle(e *proccon.Event, clk *clocks) (job, bool) {
	ts := int64(e.Timestamp) + clk.wall
	var ev *xdrv1.ActEvent
	var subject *proctable.Proc
	switch e.What {
	case proccon.Fork:
		if e.IsThread() || e.ParentTGID == p.self {
			return job{}, false
		}
		parent := p.table.Lookup(e.ParentTGID)
		child := p.table.Fork(e.ParentTGID, e.TGID, uint64(int64(e.Timestamp)+clk.boot))
		subject, ev = parent, p.mapper.Fork(ts, parent, e.ParentPID, child)
	case proccon.Exec:
		if e.TGID == p.self {
			return job{}, false
		}
		res := p.table.Exec(e.TGID)
		subject, ev = res.Proc, p.mapper.Exec(ts, res)
	case proccon.Exit, proccon.NonzeroExit:
		if e.IsThread() || e.TGID == p.self {
			return job{}, false
		}
		subject = p.table.Exit(e.TGID)
		ev = p.mapper.Exit(ts, subject, e.PID, e.ExitCode)
	case proccon.UID, proccon.GID:
		if e.IsThread() || e.TGID == p.self {
			return job{}, false
		}
		group := e.What == proccon.GID
		ch := p.table.SetIDs(e.TGID, group, e.RealID, e.EffectiveID)
		subject, ev = ch.Proc, p.mapper.IDChange(ts, ch, e.PID, group)
	case proccon.SID:
		if e.TGID == p.self {
			return job{}, false
		}
		subject = p.table.SetSession(e.TGID)
		ev = p.mapper.Session(ts, subject, e.PID)
	case proccon.Ptrace:
		if e.TracerTGID == p.self {
			return job{}, false
		}
		tracee, old := p.table.SetTracer(e.TGID, e.TracerTGID)
		attach := e.TracerTGID != 0
		var tracer *proctable.Proc
		tracerPID := e.TracerPID
		if attach {
			tracer = p.table.Lookup(e.TracerTGID)
		} else if old != 0 {
			tracer, tracerPID = p.table.Get(old), old
		}
		subject = tracee
		if tracer != nil {
			subject = tracer
		}
		ev = p.mapper.Ptrace(ts, tracee, tracer, tracerPID, attach)
	case proccon.Comm:
		if e.IsThread() || e.TGID == p.self {
			return job{}, false
		}
		var old string
		subject, old = p.table.SetComm(e.TGID, e.Comm)
		ev = p.mapper.Comm(ts, subject, e.PID, old)
	case proccon.Coredump:
		if e.TGID == p.self {
			return job{}, false
		}
		subject = p.table.Lookup(e.TGID)
		ev = p.mapper.Coredump(ts, subject, e.PID, e.ParentPID, e.ParentTGID)
	default:
		if e.What == proccon.None && e.Err != 0 {
			p.log.Warn("proc connector refused the subscription", "err", unix.Errno(e.Err))
		}
		return job{}, false
	}
	if ev.GetSubject().GetPartial() {
		p.o.Counters.Add(xdrv1.EventStatType_EVENT_STAT_TYPE_PARTIAL_ENRICHMENT, ev.GetAccessType(), 1)
	}
	return p.newJob(ev, subject), true
}

// newJob, called right after ev is mapped, attaches the encoding of a
// shared subject, and what the hashing goroutine needs when the subject's
// executable has no cached hashes yet: its identity and, for the first
// event that meets it, a descriptor of the exact file.
func (p *pipeline) newJob(ev *xdrv1.ActEvent, subject *proctable.Proc) job {
	j := job{ev: ev, subject: p.mapper.EncodedSubject(ev)}
	if subject == nil || subject.ExeKey == (exehash.Key{}) || ev.GetSubject().GetExeHashes() != nil ||
		ev.GetSubject().GetExe() != subject.Exe {
		// No key, already hashed, or the event names another executable
		// than the table's (a set-id exec in progress).
		return j
	}
	j.key = subject.ExeKey
	p.mu.Lock()
	open := !p.inflight[j.key] && len(p.inflight) < maxOpenExes
	if open {
		p.inflight[j.key] = true
	}
	p.mu.Unlock()
	if open && !subject.Exited() {
		if f, err := p.table.OpenExe(subject.TGID); err == nil {
			j.f = f
		} else {
			p.mu.Lock()
			delete(p.inflight, j.key)
			p.mu.Unlock()
		}
	}
	return j
}

// dispatch sends a batch straight to the sink when none of its events
// waits for a hash and the hashing goroutine has nothing queued (the
// common case: executables are hashed once), and through the hashing
// goroutine otherwise, which keeps the order.
func (p *pipeline) dispatch(batch []job) {
	if len(batch) == 0 {
		return
	}
	direct := p.queued.Load() == 0
	for i := 0; direct && i < len(batch); i++ {
		direct = batch[i].key == (exehash.Key{})
	}
	if direct {
		for _, j := range batch {
			p.o.Sink.SendWithSubject(j.ev, j.subject)
		}
		return
	}
	// In chunks, so that the queue bounds events, not kernel reads (an
	// eBPF read returns up to thousands of events).
	for len(batch) > 0 {
		n := min(len(batch), chunkLen)
		p.queued.Add(1)
		p.jobs <- batch[:n:n]
		batch = batch[n:]
	}
}

// hashLoop is the hashing goroutine: it completes events in order and
// sends them.
func (p *pipeline) hashLoop() {
	for batch := range p.jobs {
		for _, j := range batch {
			p.complete(j)
		}
		p.queued.Add(-1)
	}
}

// complete fills in j's hashes and sends its event.
func (p *pipeline) complete(j job) {
	if j.key != (exehash.Key{}) {
		h, ok := p.hashes.Lookup(j.key)
		if !ok && j.f != nil {
			var err error
			if h, _, err = p.hashes.Hash(j.f); err != nil {
				p.log.Debug("hash executable", "exe", j.ev.GetSubject().GetExe(), "err", err)
			}
		}
		if j.f != nil {
			j.f.Close()
			p.mu.Lock()
			delete(p.inflight, j.key)
			p.mu.Unlock()
		}
		if h != nil {
			fillHashes(j.ev, h)
			j.subject = nil // (a shared subject has its hashes: not one of these)
		}
	}
	p.o.Sink.SendWithSubject(j.ev, j.subject)
}

// fillHashes sets h on the subject and on a target that is the same
// executable (the child of a fork, the file of an exec, the process
// itself).
func fillHashes(ev *xdrv1.ActEvent, h *xdrv1.Hashes) {
	s := ev.GetSubject()
	s.ExeHashes = h
	switch t := ev.GetTarget().(type) {
	case *xdrv1.ActEvent_Process:
		if t.Process.ExeHashes == nil && t.Process.GetExe() == s.GetExe() {
			t.Process.ExeHashes = h
		}
	case *xdrv1.ActEvent_File:
		if t.File.Hashes == nil && t.File.GetPath() == s.GetExe() {
			t.File.Hashes = h
		}
	}
}
