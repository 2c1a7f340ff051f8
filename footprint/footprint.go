package footprint

import (
	"time"

	"github.com/xdr-sensor/xdr/proto/objid"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// Defaults for the zero values of Options.
const (
	DefaultMaxEntries     = 100000
	DefaultMaxBytes       = 32 << 20
	DefaultFlushInterval  = 60 * time.Second
	DefaultReemitInterval = 24 * time.Hour
)

// Options configure a Generator. Emit is required; a zero value of any
// other field selects its default.
type Options struct {
	// MaxEntries bounds the number of footprints held in memory. When a
	// new footprint would exceed MaxEntries or MaxBytes, the most idle
	// footprints (those least recently added to) are evicted first;
	// those changed since their last emission are emitted before they go.
	MaxEntries int
	// MaxBytes bounds the estimated memory of the footprints held
	// (Stats.Bytes): the entries, their map slots, every string, argv
	// array and hash they keep at the size the allocator gives them, and
	// a quarter more for heap fragmentation. BenchmarkMillionDistinct
	// checks the estimate against the measured heap.
	MaxBytes int64
	// FlushInterval is how often footprints changed since their last
	// emission are emitted.
	FlushInterval time.Duration
	// ReemitInterval is how long after its last emission an unchanged
	// footprint is emitted again, so that every bundle period keeps a
	// record of long-lived activity.
	ReemitInterval time.Duration
	// Emit receives every emitted footprint. It is called synchronously
	// from Add, Tick and FlushAll. The footprint is freshly built for each
	// call and shares nothing mutable with the Generator: the receiver
	// owns it.
	Emit func(*xdrv1.Footprint)
	// Now is the clock used for events without a timestamp and for
	// emissions made outside Tick. Nil means time.Now.
	Now func() time.Time
}

// Result says what Add did with an event.
type Result int

// Results of Add.
const (
	// NewFootprint: the event started a new footprint.
	NewFootprint Result = iota + 1
	// Deduplicated: the event was folded into an existing footprint.
	Deduplicated
)

// Stats are a Generator's counts since New.
type Stats struct {
	Entries int   // footprints held
	Bytes   int64 // estimated memory of the footprints held, at most MaxBytes
	// Events that started a new footprint and that were folded into an
	// existing one.
	New, Deduplicated uint64
	Emitted           uint64 // footprints handed to Emit
	// Footprints dropped from memory to stay within MaxEntries and
	// MaxBytes. A changed footprint is emitted before it is dropped, so
	// an eviction loses no count.
	Evicted uint64
}

// Generator deduplicates activity into footprints.
//
// A Generator is not safe for concurrent use: one goroutine (the
// aggregator's writer) owns it and calls Add, Tick, FlushAll and Stats. It
// holds no resources beyond memory and needs no Close; call FlushAll at
// shutdown so that no count is lost.
type Generator struct {
	maxEntries     int
	maxBytes       int64
	flushInterval  time.Duration
	reemitInterval time.Duration
	emit           func(*xdrv1.Footprint)
	now            func() time.Time

	entries map[uint64]*entry
	// lru orders entries by their last Add, most idle first.
	lru list
	// changed holds the entries changed since their last emission; clean
	// holds the others, ordered by last emission, oldest first. Every
	// entry is on exactly one of them.
	changed, clean list
	bytes          int64
	lastFlush      time.Time
	stats          Stats
	scratch        []*string // for entry.pack
	// last is the subject strings made last, which the next new subject
	// shares if it has the same; nil once no entry points to them.
	last *subjectStrings
}

// New returns a Generator. It panics if opts or opts.Emit is nil: there is
// nowhere to send footprints.
func New(opts *Options) *Generator {
	if opts == nil || opts.Emit == nil {
		panic("footprint: Options.Emit is required")
	}
	g := &Generator{
		maxEntries:     opts.MaxEntries,
		maxBytes:       opts.MaxBytes,
		flushInterval:  opts.FlushInterval,
		reemitInterval: opts.ReemitInterval,
		emit:           opts.Emit,
		now:            opts.Now,
		entries:        make(map[uint64]*entry),
		lru:            list{link: lruLink},
		changed:        list{link: queueLink},
		clean:          list{link: queueLink},
	}
	if g.maxEntries <= 0 {
		g.maxEntries = DefaultMaxEntries
	}
	if g.maxBytes <= 0 {
		g.maxBytes = DefaultMaxBytes
	}
	if g.flushInterval <= 0 {
		g.flushInterval = DefaultFlushInterval
	}
	if g.reemitInterval <= 0 {
		g.reemitInterval = DefaultReemitInterval
	}
	if g.now == nil {
		g.now = time.Now
	}
	g.lastFlush = g.now()
	return g
}

// Add folds ev into its footprint, creating the footprint if ev is the
// first of its activity, and returns which of the two it did. ev must not
// be nil. Add keeps no reference to ev or to any of its messages and
// slices (it does keep its strings, which are immutable), so the caller
// may reuse ev afterwards.
//
// ev counts as repeat_count activities (0 counts as 1), seen at
// timestamp_ns (the Generator's clock when that is 0). The footprint's
// subject and object metadata become those of ev: the latest seen.
//
// Adding to an existing footprint costs O(1) and allocates nothing unless
// the subject's strings (executable, argv, names, hashes) differ from
// both the footprint's and the last new ones. Footprints share equal
// subject strings, counted once in MaxBytes. A new footprint may first
// evict the most idle ones (emitting those that changed) to stay within
// MaxEntries and MaxBytes.
func (g *Generator) Add(ev *xdrv1.ActEvent) Result {
	id := objid.Activity(ev)
	seen := g.eventTime(ev)
	n := ev.GetRepeatCount()
	if n == 0 {
		n = 1
	}
	if e := g.entries[id]; e != nil {
		g.stats.Deduplicated++
		e.count += n
		e.firstSeen = min(e.firstSeen, seen)
		e.lastSeen = max(e.lastSeen, seen)
		g.attach(e, g.load(e, ev))
		g.lru.moveToBack(e)
		if !e.changed {
			e.changed = true
			g.clean.remove(e)
			g.changed.pushBack(e)
		}
		size := e.estimate()
		g.bytes += size - e.size
		e.size = size
		for g.bytes > g.maxBytes {
			// e is the most recent entry, so it goes last, and only if
			// it alone exceeds the budget.
			g.evict(g.lru.front)
		}
		return Deduplicated
	}

	g.stats.New++
	e := &entry{id: id, count: n, firstSeen: seen, lastSeen: seen, changed: true}
	str := g.load(e, ev)
	g.scratch = e.pack(g.scratch)
	e.size = e.estimate()
	if alone := e.size + str.sizeOrZero(); alone > g.maxBytes {
		// It cannot be held even alone: emit it at once, counted as an
		// eviction like any footprint that leaves memory.
		g.attach(e, str)
		g.emit(e.footprint())
		g.release(str)
		g.stats.Emitted++
		g.stats.Evicted++
		return NewFootprint
	}
	for len(g.entries) >= g.maxEntries || g.bytes+e.size+extra(str) > g.maxBytes {
		g.evict(g.lru.front)
	}
	g.attach(e, str)
	g.entries[id] = e
	g.bytes += e.size
	g.lru.pushBack(e)
	g.changed.pushBack(e)
	return NewFootprint
}

// eventTime returns ev's time in Unix seconds.
func (g *Generator) eventTime(ev *xdrv1.ActEvent) int64 {
	if ns := ev.GetTimestampNs(); ns != 0 {
		return time.Unix(0, ns).Unix()
	}
	return g.now().Unix()
}

// Tick emits, once FlushInterval has passed since the last flush, every
// footprint changed since its last emission, and every unchanged footprint
// whose last emission is at least ReemitInterval before now. The caller
// calls it periodically (every second, say) with the current time.
func (g *Generator) Tick(now time.Time) {
	if now.Sub(g.lastFlush) < g.flushInterval {
		return
	}
	g.lastFlush = now
	at := now.UnixNano()
	g.emitChanged(at)
	cutoff := at - g.reemitInterval.Nanoseconds()
	for e := g.clean.front; e != nil && e.lastEmit <= cutoff; e = g.clean.front {
		g.emitEntry(e, at)
	}
}

// FlushAll emits every footprint changed since its last emission. Call it
// at shutdown: afterwards every count the Generator took has reached Emit.
func (g *Generator) FlushAll() {
	now := g.now()
	g.lastFlush = now
	g.emitChanged(now.UnixNano())
}

// Stats returns the Generator's counts.
func (g *Generator) Stats() Stats {
	s := g.stats
	s.Entries = len(g.entries)
	s.Bytes = g.bytes
	return s
}

func (g *Generator) emitChanged(at int64) {
	for e := g.changed.front; e != nil; e = g.changed.front {
		g.emitEntry(e, at)
	}
}

// emitEntry emits e and moves it to the back of the clean list.
func (g *Generator) emitEntry(e *entry, at int64) {
	g.emit(e.footprint())
	g.stats.Emitted++
	e.lastEmit = at
	if e.changed {
		e.changed = false
		g.changed.remove(e)
	} else {
		g.clean.remove(e)
	}
	g.clean.pushBack(e)
}

// evict drops e from memory, emitting it first if it changed since its
// last emission.
func (g *Generator) evict(e *entry) {
	if e.changed {
		g.emit(e.footprint())
		g.stats.Emitted++
		g.changed.remove(e)
	} else {
		g.clean.remove(e)
	}
	g.lru.remove(e)
	delete(g.entries, e.id)
	g.bytes -= e.size
	g.release(e.subject.str)
	g.stats.Evicted++
}
