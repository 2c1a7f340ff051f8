package ebpf

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
)

// Defaults and limits of Options.
const (
	// DefaultRingSize keeps the agent small: the kernel maps the ring's
	// data twice into the reader, so a ring of N bytes costs 2N of RSS
	// once the producer has wrapped around.
	DefaultRingSize = 2 << 20
	// DefaultPollInterval bounds how long a record waits in the ring
	// when fewer than WakeupBytes are queued; the transport batches for
	// as long again. Each poll wakes the runtime, whose monitor thread
	// then spins in short sleeps for about a millisecond: at 20 ms that
	// was a third of the agent's CPU in an exec storm.
	DefaultPollInterval = 100 * time.Millisecond
	DefaultArgvMax      = 32 << 10
	// DefaultRepeatHold is as long as the aggregator's default flush
	// interval: held counts reach it with the next footprints.
	DefaultRepeatHold = time.Second
	// MaxArgvMax is the largest ArgvMax: the BPF program emits at most 64
	// records of 4 KiB per exec.
	MaxArgvMax = 64 * argvChunk
)

// readBatch bounds the records one Read call takes from the ring; the rest
// are returned by the next call, without waiting.
const readBatch = 1024

// Options configure Open. A nil *Options means all defaults; so does a
// zero field.
type Options struct {
	// RingSize is the ring buffer's size in bytes: a power of two and a
	// multiple of the page size. Default DefaultRingSize.
	RingSize int
	// WakeupBytes is the ring fill from which the kernel wakes the reader
	// at once; below it, the reader collects events when its PollInterval
	// ends, which keeps the cost of wake-ups low. 1 wakes it on every
	// event. Default RingSize/4.
	WakeupBytes int
	// PollInterval is how long Read blocks, hence how late a low-rate
	// event can be. Default DefaultPollInterval.
	PollInterval time.Duration
	// RepeatHold is how long Read may hold the count of events that
	// repeat a process's recent ones before reporting it (see hold.go).
	// Default DefaultRepeatHold.
	RepeatHold time.Duration
	// ArgvMax is how many argv bytes are captured per exec, at most
	// MaxArgvMax. Default DefaultArgvMax.
	ArgvMax int
	// IgnoreTGIDs are processes whose activity is not reported (the agent
	// itself); the kernel filters them before building any event.
	IgnoreTGIDs []uint32
	// ExcludeReads are absolute, clean path prefixes (no trailing slash)
	// whose read-only opens are counted (Stats.FilteredReads) instead of
	// reported: opens of the prefix itself or of a path below it, which
	// neither created nor truncated the file and whose path is complete.
	// The kernel filters them before the event is built; a prefix longer
	// than MaxKernelPrefix bytes cannot be and is left to the caller
	// (KernelPrefixes says which were taken).
	ExcludeReads []string
	// BTFPath is a BTF file describing the running kernel that CO-RE
	// relocations use instead of /sys/kernel/btf/vmlinux (see
	// ProbeOptions.BTFPath). Default: the kernel's own.
	BTFPath string
	// Logger receives the collector's few log lines (group "ebpf"); nil
	// discards them.
	Logger *slog.Logger
}

func (o *Options) withDefaults() (Options, error) {
	var r Options
	if o != nil {
		r = *o
	}
	if r.RingSize == 0 {
		r.RingSize = DefaultRingSize
	}
	page := os.Getpagesize()
	if r.RingSize < page || r.RingSize&(r.RingSize-1) != 0 || r.RingSize > 1<<30 {
		return r, fmt.Errorf("ring size %d: want a power of two from the page size (%d) to 1 GiB", r.RingSize, page)
	}
	if r.WakeupBytes == 0 {
		r.WakeupBytes = r.RingSize / 4
	}
	if r.WakeupBytes < 0 || r.WakeupBytes > r.RingSize {
		return r, fmt.Errorf("wakeup bytes %d: want 1 to the ring size %d", r.WakeupBytes, r.RingSize)
	}
	if r.PollInterval == 0 {
		r.PollInterval = DefaultPollInterval
	}
	if r.PollInterval < 0 {
		return r, fmt.Errorf("poll interval %v: want a positive duration", r.PollInterval)
	}
	if r.RepeatHold == 0 {
		r.RepeatHold = DefaultRepeatHold
	}
	if r.RepeatHold < 0 {
		return r, fmt.Errorf("repeat hold %v: want a positive duration", r.RepeatHold)
	}
	if r.ArgvMax == 0 {
		r.ArgvMax = DefaultArgvMax
	}
	if r.ArgvMax < 0 || r.ArgvMax > MaxArgvMax {
		return r, fmt.Errorf("argv max %d: want 1 to %d bytes", r.ArgvMax, MaxArgvMax)
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	return r, nil
}

// Stats are the collector's cumulative counters. Events lost anywhere are
// RingFull + StateFull + Other + Missed + DecodeErrors.
type Stats struct {
	// Kernel side, summed over CPUs.

	// RingFull counts events lost because the ring buffer was full.
	RingFull uint64
	// StateFull counts events lost because the kernel had no memory for
	// a thread's system call state (its arguments, kept from entry to exit).
	StateFull uint64
	// Other counts events lost to other failures (such as an fd closed by
	// another thread before the call's exit was seen).
	Other uint64
	// ArgvRead counts exec events whose argv is incomplete in the kernel
	// (a read failed or a continuation did not fit the ring).
	ArgvRead uint64
	// ArgvTruncated counts exec events whose argv exceeded ArgvMax.
	ArgvTruncated uint64
	// PathTruncated counts paths delivered without their leading part.
	PathTruncated uint64
	// FilteredReads counts read-only opens under ExcludeReads that were
	// counted instead of reported (not a loss).
	FilteredReads uint64
	// Missed counts program runs the kernel skipped because another BPF
	// program was running on the CPU (recursion misses). Reading it costs
	// a system call per program, so Stats refreshes it at most every
	// MissedInterval (and at Close).
	Missed uint64

	// Reader side.

	// Records counts the records read from the ring.
	Records uint64
	// Events counts the events Read returned.
	Events uint64
	// Merged counts events folded into a previous identical one (the sum
	// of Count - 1 over all events).
	Merged uint64
	// DecodeErrors counts records that failed to decode and were skipped.
	DecodeErrors uint64
	// ArgvOrphans counts argv continuation records that never met their
	// exec record (its exec event, if it came, has ArgvIncomplete set).
	ArgvOrphans uint64
	// RepeatOrphans counts opens the kernel counted as repeats of an open
	// whose event Read no longer knew (lost to a full ring, or forgotten
	// past maxOpens threads): opens lost.
	RepeatOrphans uint64
}

// Collector runs the eBPF programs and reads their events. Read must be
// called from one goroutine at a time; Ignore, Stats and Close are safe
// for concurrent use. The caller must Close it.
type Collector struct {
	log      *slog.Logger
	poll     time.Duration
	links    []link.Link
	absent   []string // system call tracepoints this kernel lacks
	prefixes []string // ExcludeReads filtered in the kernel

	// objMu guards the kernel objects' lifetime: Ignore and Stats use them
	// under RLock, Close frees them under Lock.
	objMu   sync.RWMutex
	coll    *ebpf.Collection
	freed   bool
	final   Stats // kernel counters at Close
	closing sync.Once

	// mu serializes Read and Close's drain; Read holds it while it blocks.
	mu    sync.Mutex
	ring  *ring
	wait  *ringWaiter
	dec   *decoder
	opens map[uint32]openRef // by thread: its last reported open, for repeat records
	// recent holds each process's last reported file, memory and network
	// events, and counts of identical ones not reported yet (hold.go).
	recent    map[uint32][]recentEvent
	nrecent   int           // events in recent
	held      int           // events in recent with a count held
	heldSince time.Time     // when the oldest count held began
	hold      time.Duration // Options.RepeatHold
	batch     uint64        // readLocked calls
	tail      []Event       // drained by Close, returned by the Reads that follow
	closed    bool

	records, events, merged, decodeErrors, orphans atomic.Uint64
	repeatOrphans                                  atomic.Uint64
	missed                                         atomic.Uint64 // recursion misses as last read
	missedAt                                       atomic.Int64  // when (ns)
	loggedDecode                                   atomic.Bool
}

// ErrNotSupported is wrapped by the errors of Probe and Open when this
// kernel (or this process's privileges) cannot run the collector.
var ErrNotSupported = errors.New("eBPF collector not supported")

// Open loads the BPF programs, attaches them (system call tracepoints this
// kernel lacks are skipped and logged once) and starts collecting. Errors
// that come from the kernel lacking a feature or the process lacking
// privileges wrap ErrNotSupported.
func Open(opts *Options) (*Collector, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("ebpf options: %w", err)
	}
	log := o.Logger.WithGroup("ebpf")
	if err := prepareKernel(); err != nil {
		return nil, err
	}
	spec, err := loadCollector()
	if err != nil {
		return nil, fmt.Errorf("load embedded BPF object: %w", err)
	}
	spec.Maps["events"].MaxEntries = uint32(o.RingSize)
	if err := spec.Variables["wakeup_bytes"].Set(uint64(o.WakeupBytes)); err != nil {
		return nil, fmt.Errorf("set wakeup_bytes: %w", err)
	}
	if err := spec.Variables["argv_max"].Set(uint32(o.ArgvMax)); err != nil {
		return nil, fmt.Errorf("set argv_max: %w", err)
	}
	kernelTypes, _, err := loadBTF(o.BTFPath)
	if err != nil {
		return nil, err
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{
		Programs: ebpf.ProgramOptions{KernelTypes: kernelTypes},
	})
	if err != nil {
		return nil, notSupported("load BPF programs", err)
	}
	c := &Collector{
		log:    log,
		poll:   o.PollInterval,
		coll:   coll,
		dec:    newDecoder(o.ArgvMax),
		opens:  make(map[uint32]openRef),
		recent: make(map[uint32][]recentEvent),
		hold:   o.RepeatHold,
	}
	for _, tgid := range o.IgnoreTGIDs {
		if err := c.Ignore(tgid); err != nil {
			coll.Close()
			return nil, err
		}
	}
	if c.prefixes, err = excludeReads(coll.Maps["read_prefixes"], o.ExcludeReads); err != nil {
		coll.Close()
		return nil, err
	}
	c.ring, err = openRing(coll.Maps["events"].FD(), o.RingSize)
	if err != nil {
		coll.Close()
		return nil, err
	}
	if c.wait, err = newRingWaiter(coll.Maps["events"].FD()); err != nil {
		c.ring.close()
		coll.Close()
		return nil, fmt.Errorf("wait for the ring buffer: %w", err)
	}
	if !c.wait.polled {
		log.Warn("waiting for the ring buffer in a blocking system call instead", "err", c.wait.pollErr)
	}
	links, absent, err := attach(spec, coll)
	if err != nil {
		c.wait.close()
		c.ring.close()
		coll.Close()
		return nil, err
	}
	c.links, c.absent = links, absent
	if len(absent) > 0 {
		log.Info("system call tracepoints absent on this kernel, not attached", "tracepoints", absent)
	}
	log.Debug("collecting", "programs", len(links), "ring_bytes", o.RingSize, "wakeup_bytes", o.WakeupBytes,
		"poll", o.PollInterval, "argv_max", o.ArgvMax)
	return c, nil
}

// Read appends to dst the events in the ring buffer and returns the
// extended slice. When the ring is empty it waits for events up to the
// poll interval (the kernel wakes it early once the ring holds WakeupBytes),
// so it can return no new event. Argv continuations are already folded
// into their exec events, and events repeating a process's recent ones
// are merged (Event.Count; their counts may be held for up to
// Options.RepeatHold). After Close, Read returns the events Close drained
// from the ring and every count held, then an error wrapping os.ErrClosed.
func (c *Collector) Read(dst []Event) ([]Event, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		if len(c.tail) == 0 {
			return dst, fmt.Errorf("ebpf collector: %w", os.ErrClosed)
		}
		dst = append(dst, c.tail...)
		c.tail = nil
		return dst, nil
	}
	if c.ring.available() == 0 {
		if _, err := c.wait.wait(time.Now().Add(c.poll)); err != nil {
			return dst, fmt.Errorf("wait for the ring buffer: %w", err)
		}
	}
	return c.readLocked(dst, readBatch), nil
}

// readLocked takes up to max records from the ring, without waiting.
// Records are decoded in place, then their space is given back.
func (c *Collector) readLocked(dst []Event, max int) []Event {
	c.batch++
	dst = c.releaseDue(dst)
	defer c.ring.release()
	for range max {
		raw, ok, err := c.ring.peek()
		if err != nil {
			// The kernel writes the ring; this does not happen. Skip
			// what it holds rather than stop reading.
			c.ring.skipAll()
			c.decodeErrors.Add(1)
			c.log.Error("ring buffer records skipped", "err", err)
			return dst
		}
		if !ok {
			return dst
		}
		dst = c.add(dst, raw)
	}
	return dst
}

// add decodes one record and appends its event to dst, or merges it into
// the same process's previous event when it repeats it.
func (c *Collector) add(dst []Event, raw []byte) []Event {
	c.records.Add(1)
	orphans := c.dec.orphans
	ev, ok, err := c.dec.decode(raw)
	c.orphans.Add(c.dec.orphans - orphans)
	if err != nil {
		if errors.Is(err, errArgvOrphan) {
			return dst // counted in ArgvOrphans
		}
		c.decodeErrors.Add(1)
		if !c.loggedDecode.Swap(true) {
			c.log.Warn("undecodable ring buffer record skipped (logged once, see Stats.DecodeErrors)", "err", err)
		}
		return dst
	}
	if !ok {
		return dst
	}
	if ev.Kind == kindRepeat {
		return c.repeat(dst, &ev, c.dec.gen)
	}
	gen := c.dec.gen
	dst = c.note(dst, &ev, 1)
	if ev.Kind == KindFileOpen && gen != 0 {
		if len(c.opens) >= maxOpens {
			clear(c.opens) // repeats of the forgotten ones become orphans
		}
		c.opens[ev.Header.PID] = openRef{gen: gen, ev: ev}
	}
	return dst
}

// maxOpens bounds the threads whose last reported open Read remembers for
// the kernel's repeat records.
const maxOpens = 4096

// openRef is a thread's last reported open and its kernel generation.
type openRef struct {
	gen uint32
	ev  Event
}

// repeat counts a kernel repeat record (rep.Count more opens by its
// thread identical to the thread's open number gen) as that many events
// identical to the open.
func (c *Collector) repeat(dst []Event, rep *Event, gen uint32) []Event {
	ref, ok := c.opens[rep.Header.PID]
	if !ok || ref.gen != gen {
		c.repeatOrphans.Add(uint64(rep.Count))
		return dst
	}
	ev := ref.ev
	ev.Header.Time = rep.Header.Time
	return c.note(dst, &ev, rep.Count)
}

// Ignore stops reporting the process tgid (its events are dropped in the
// kernel, before they cost anything).
func (c *Collector) Ignore(tgid uint32) error {
	c.objMu.RLock()
	defer c.objMu.RUnlock()
	if c.freed {
		return fmt.Errorf("ignore tgid %d: %w", tgid, os.ErrClosed)
	}
	if err := c.coll.Maps["ignored_tgids"].Put(tgid, uint8(1)); err != nil {
		return fmt.Errorf("ignore tgid %d: %w", tgid, err)
	}
	return nil
}

// Stats returns the cumulative counters. After Close the kernel counters
// are those at Close.
func (c *Collector) Stats() Stats {
	c.objMu.RLock()
	s := c.final
	if !c.freed {
		s = c.kernelStats(false)
	}
	c.objMu.RUnlock()
	s.Records = c.records.Load()
	s.Events = c.events.Load()
	s.Merged = c.merged.Load()
	s.DecodeErrors = c.decodeErrors.Load()
	s.ArgvOrphans = c.orphans.Load()
	s.RepeatOrphans = c.repeatOrphans.Load()
	return s
}

// kernelStats sums the per-CPU drop counters and the programs' recursion
// misses (read again only when full or MissedInterval has passed).
// Called with objMu held.
func (c *Collector) kernelStats(full bool) Stats {
	var s Stats
	drops := c.coll.Maps["drops"]
	for reason, dst := range map[collectorXdrDrop]*uint64{
		collectorXdrDropXDR_DROP_RINGBUF:        &s.RingFull,
		collectorXdrDropXDR_DROP_ARGV_READ:      &s.ArgvRead,
		collectorXdrDropXDR_DROP_ARGV_TRUNCATED: &s.ArgvTruncated,
		collectorXdrDropXDR_DROP_PATH_TRUNCATED: &s.PathTruncated,
		collectorXdrDropXDR_DROP_STATE_FULL:     &s.StateFull,
		collectorXdrDropXDR_DROP_OTHER:          &s.Other,
		collectorXdrDropXDR_DROP_FILTERED_READ:  &s.FilteredReads,
	} {
		var perCPU []uint64
		if err := drops.Lookup(uint32(reason), &perCPU); err != nil {
			c.log.Warn("read drop counter", "reason", reason, "err", err)
			continue
		}
		for _, n := range perCPU {
			*dst += n
		}
	}
	s.Missed = c.missed.Load()
	if now := time.Now().UnixNano(); full || now-c.missedAt.Load() >= int64(MissedInterval) {
		c.missedAt.Store(now)
		s.Missed = 0
		for _, p := range c.coll.Programs {
			if ps, err := p.Stats(); err == nil {
				s.Missed += ps.RecursionMisses
			}
		}
		c.missed.Store(s.Missed)
	}
	return s
}

// MissedInterval is how often Stats reads the programs' recursion misses.
const MissedInterval = 30 * time.Second

// Close detaches the programs, so no new events are produced, drains the
// ring buffer (Read returns those events next) and frees the kernel
// objects. Read may keep running while Close detaches. Detaching takes a
// kernel grace period per system call tracepoint, serialized by the
// kernel: a few seconds in all. Close returns the errors met; calling it
// again returns nil.
func (c *Collector) Close() error {
	var errs []error
	c.closing.Do(func() {
		// Concurrent detaches overlap part of the grace periods.
		var wg sync.WaitGroup
		var emu sync.Mutex
		for _, l := range c.links {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := l.Close(); err != nil {
					emu.Lock()
					errs = append(errs, fmt.Errorf("detach program: %w", err))
					emu.Unlock()
				}
			}()
		}
		wg.Wait()
		// Wake a Read waiting (at worst it starts its wait just after
		// this and ends it at its poll interval), then drain after it.
		c.wait.interrupt()
		c.mu.Lock()
		for {
			before := c.ring.next
			if c.tail = c.readLocked(c.tail, readBatch); c.ring.next == before {
				break
			}
		}
		c.tail = c.releaseAll(c.tail)
		c.orphans.Add(uint64(len(c.dec.pending)))
		c.dec.pending = nil
		c.closed = true
		if err := c.ring.close(); err != nil {
			errs = append(errs, fmt.Errorf("unmap ring buffer: %w", err))
		}
		if err := c.wait.close(); err != nil {
			errs = append(errs, fmt.Errorf("close ring buffer waiter: %w", err))
		}
		c.mu.Unlock()

		c.objMu.Lock()
		c.final = c.kernelStats(true)
		c.freed = true
		c.coll.Close()
		c.objMu.Unlock()
	})
	return errors.Join(errs...)
}

// notSupported wraps a failure to load or attach with ErrNotSupported and
// says what to do about missing privileges.
func notSupported(what string, err error) error {
	if errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("%w: %s: %w (run as root, or with CAP_BPF and CAP_PERFMON)", ErrNotSupported, what, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrNotSupported, what, err)
}

// removeMemlock lifts the locked-memory limit older kernels charge BPF
// objects to.
func removeMemlock() error {
	if err := rlimit.RemoveMemlock(); err != nil {
		return notSupported("remove the locked memory limit", err)
	}
	return nil
}

// prepareKernel lifts the locked-memory limit and makes sure tracefs is
// mounted.
func prepareKernel() error {
	if err := removeMemlock(); err != nil {
		return err
	}
	if _, err := ensureTracefs(); err != nil {
		return notSupported("tracefs", err)
	}
	return nil
}

// MaxKernelPrefix is the longest ExcludeReads prefix the kernel filters.
const MaxKernelPrefix = len(collectorPrefixKey{}.Data) - 1

// excludeReads fills the kernel's prefix table and returns the prefixes
// it took.
func excludeReads(m *ebpf.Map, prefixes []string) ([]string, error) {
	var taken []string
	for _, p := range prefixes {
		if len(p) > MaxKernelPrefix || !strings.HasPrefix(p, "/") || p == "/" || strings.HasSuffix(p, "/") {
			continue
		}
		var k collectorPrefixKey
		n := copy(k.Data[:], p+"/")
		k.Bits = uint32(8 * n)
		if err := m.Put(&k, uint8(1)); err != nil {
			return nil, fmt.Errorf("exclude reads under %s: %w", p, err)
		}
		taken = append(taken, p)
	}
	return taken, nil
}

// KernelPrefixes returns the ExcludeReads prefixes the kernel filters.
func (c *Collector) KernelPrefixes() []string { return c.prefixes }
