package stats

import (
	"cmp"
	"slices"
	"sync"
	"time"

	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// Component names used in EventInfo.component.
const (
	// ComponentAgent is the agent's own counts; AgentCounters uses it for
	// entries the agent sent without a component.
	ComponentAgent = "agent"
	// ComponentAggregator is the aggregator's own counts.
	ComponentAggregator = "aggregator"
	// ComponentFootprint is the footprint generator's counts.
	ComponentFootprint = "footprint"
)

// Defaults for the zero values of Options.
const (
	DefaultWindow    = 10 * time.Second
	DefaultHeartbeat = 60 * time.Second
)

// Bounds on the state kept for agent reports, which come from another
// process: at most maxAgents agent instances, at most maxAgentCounters
// counters each (an agent has a few per access type it saw: some hundred
// at most), component names of at most maxComponentLen bytes. Entries
// beyond them are counted, not kept (see AgentCounters). At worst, agent
// state and window together hold a few megabytes.
const (
	maxAgents        = 64
	maxAgentCounters = 512
	maxComponentLen  = 64
)

// Identity is the device identity written into every record.
type Identity struct {
	CustomerGUID, AgentGUID, VehicleID, ModelID, Version string
}

// Options configure a Collector. Emit is required; a zero value of any
// other field selects its default.
type Options struct {
	Identity Identity
	// Window is the length of a statistics window.
	Window time.Duration
	// Heartbeat bounds the time between two records: a window without any
	// count is skipped unless the last record is this old, in which case
	// a record with no counts is written, so that a reader can tell a
	// quiet device from a dead one.
	Heartbeat time.Duration
	// Emit receives every record, called from Tick and Flush, never
	// concurrently with itself. The receiver owns the record.
	Emit func(*xdrv1.Statistics)
	// Now is the clock at which the first window starts. Nil means
	// time.Now.
	Now func() time.Time
}

type key struct {
	component string
	access    xdrv1.XdrAccessType
	stat      xdrv1.EventStatType
}

// agentState is what an agent instance last reported.
type agentState struct {
	last      map[key]reported
	lastSeq   uint64
	connected bool
	used      uint64 // Collector.clock at the last report, for dropping the oldest
}

// reported is the last value of one agent counter.
type reported struct {
	count   uint64
	report  uint64 // Collector.clock of the report that set it
	checked uint64 // Collector.clock of the report that compared it (restart check)
}

// Collector counts into windows and emits a Statistics record per window.
//
// A Collector is safe for concurrent use: connection goroutines may call
// Add and AgentCounters while the writer goroutine calls Add, Tick and
// Flush. It holds no resources beyond memory and needs no Close; call
// Flush at shutdown so that the last partial window is not lost.
type Collector struct {
	identity  Identity
	window    time.Duration
	heartbeat time.Duration
	emit      func(*xdrv1.Statistics)

	// emitMu serialises Tick and Flush and is held while Emit runs, so
	// records reach Emit in order and Add never waits for Emit.
	emitMu   sync.Mutex
	lastEmit time.Time // guarded by emitMu

	mu       sync.Mutex
	counts   map[key]uint64
	critical bool
	start    time.Time // of the current window
	agents   map[string]*agentState
	clock    uint64 // counts agent reports, orders agentState.used
	// totals adds up the closed windows per component and stat type.
	totals map[Total]uint64
}

// Total names one cumulative count of Totals.
type Total struct {
	Component string
	Stat      xdrv1.EventStatType
}

// New returns a Collector whose first window starts now. It panics if opts
// or opts.Emit is nil: there is nowhere to send records.
func New(opts *Options) *Collector {
	if opts == nil || opts.Emit == nil {
		panic("stats: Options.Emit is required")
	}
	c := &Collector{
		identity:  opts.Identity,
		window:    opts.Window,
		heartbeat: opts.Heartbeat,
		emit:      opts.Emit,
		counts:    make(map[key]uint64),
		agents:    make(map[string]*agentState),
		totals:    make(map[Total]uint64),
	}
	if c.window <= 0 {
		c.window = DefaultWindow
	}
	if c.heartbeat <= 0 {
		c.heartbeat = DefaultHeartbeat
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	c.start = now()
	c.lastEmit = c.start
	return c
}

// Add adds n to the current window's count of stat for access type access
// (XDR_ACCESS_TYPE_UNSPECIFIED when the access is unknown) seen by
// component. It costs a map update under a mutex and allocates nothing
// once the Collector has seen the key (the window's map keeps its room
// from one window to the next).
func (c *Collector) Add(component string, access xdrv1.XdrAccessType, stat xdrv1.EventStatType, n uint64) {
	if n == 0 {
		return
	}
	c.mu.Lock()
	c.counts[key{component, access, stat}] += n
	c.mu.Unlock()
}

// HitCritical marks the current window as having hit a critical event.
func (c *Collector) HitCritical() {
	c.mu.Lock()
	c.critical = true
	c.mu.Unlock()
}

// AgentCounters folds an agent report into the current window. Reports
// carry counts cumulative since the agent started, so the window gets the
// difference from the previous report of the same agent instance,
// identified by agentKey (the caller's choice, e.g. agent id, pid and
// start time). The first report of an instance counts in full.
//
// A report in which any counter, or last_seq, went down comes from a
// restarted agent reusing the key: its counts started again from zero, so
// each counts in full.
//
// Entries with an empty component are counted as ComponentAgent. Entries
// that are malformed (the same counter twice in one report) or cannot be
// kept (a component name longer than 64 bytes, or more than 512 distinct
// counters from one agent) are left out; their number is added to
// ComponentAggregator's EVENT_STAT_TYPE_DROPPED_MALFORMED count with
// access type unspecified.
//
// The Collector keeps the state of at most 64 agent instances. When a
// 65th reports, the least recently reporting instance whose connection
// ended (see Forget) is dropped, or if every connection is live, the least
// recently reporting one; should that instance report again, its counts
// are counted in full once more.
func (c *Collector) AgentCounters(agentKey string, m *xdrv1.AgentCounters) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.agents[agentKey]
	if st == nil {
		if len(c.agents) >= maxAgents {
			c.dropOldestAgent()
		}
		st = &agentState{last: make(map[key]reported)}
		c.agents[agentKey] = st
	}
	c.clock++
	st.used = c.clock
	st.connected = true

	restarted := m.GetLastSeq() < st.lastSeq
	for _, ei := range m.GetCounts() {
		k := countKey(ei)
		prev, ok := st.last[k]
		if !ok || prev.checked == c.clock { // new, or a duplicate
			continue
		}
		if ei.GetCount() < prev.count {
			restarted = true
			break
		}
		prev.checked = c.clock
		st.last[k] = prev
	}
	if restarted {
		clear(st.last)
	}
	st.lastSeq = m.GetLastSeq()

	var rejected uint64
	for _, ei := range m.GetCounts() {
		k := countKey(ei)
		prev, ok := st.last[k]
		switch {
		case ok && prev.report == c.clock: // the same counter twice in one report
			rejected++
			continue
		case !ok && (len(k.component) > maxComponentLen || len(st.last) >= maxAgentCounters):
			rejected++
			continue
		}
		cur := ei.GetCount()
		st.last[k] = reported{count: cur, report: c.clock}
		if cur > prev.count {
			c.counts[k] += cur - prev.count
		}
	}
	if rejected > 0 {
		c.counts[key{ComponentAggregator, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_UNSPECIFIED, xdrv1.EventStatType_EVENT_STAT_TYPE_DROPPED_MALFORMED}] += rejected
	}
}

// countKey is the counting key of an agent's entry.
func countKey(ei *xdrv1.EventInfo) key {
	comp := ei.GetComponent()
	if comp == "" {
		comp = ComponentAgent
	}
	return key{comp, ei.GetEventType(), ei.GetEventStatType()}
}

// dropOldestAgent drops the least recently reporting agent state,
// preferring one whose connection ended. c.mu must be held.
func (c *Collector) dropOldestAgent() {
	var oldest string
	var victim *agentState
	for k, st := range c.agents {
		if victim == nil || dropsBefore(st, victim) {
			oldest, victim = k, st
		}
	}
	delete(c.agents, oldest)
}

// dropsBefore reports whether a is to be dropped before b.
func dropsBefore(a, b *agentState) bool {
	if a.connected != b.connected {
		return !a.connected
	}
	return a.used < b.used
}

// Forget tells the Collector that the connection of agent instance
// agentKey ended. Its state is kept, so that a reconnect of the same
// instance continues from its last report instead of counting everything
// again, but it becomes the first to be dropped when room is needed.
func (c *Collector) Forget(agentKey string) {
	c.mu.Lock()
	if st := c.agents[agentKey]; st != nil {
		st.connected = false
	}
	c.mu.Unlock()
}

// Tick closes the current window once Window has passed since it started,
// and starts the next one at now. The closed window is emitted if it has
// any count or a critical hit, or, with no counts, if Heartbeat has passed
// since the last record. The record's timestamp is now (Unix seconds) and
// its elapse_time the window's length in whole seconds: longer than
// Window when Tick comes late. The caller calls Tick periodically (every
// second, say) with the current time.
func (c *Collector) Tick(now time.Time) {
	c.emitMu.Lock()
	defer c.emitMu.Unlock()
	c.mu.Lock()
	if now.Sub(c.start) < c.window {
		c.mu.Unlock()
		return
	}
	rec := c.closeWindow(now)
	c.mu.Unlock()
	if len(rec.EventInfo) > 0 || rec.HitCriticalEvent || now.Sub(c.lastEmit) >= c.heartbeat {
		c.emit(rec)
		c.lastEmit = now
	}
}

// Flush emits the current, partial window if it has any count or a
// critical hit, and starts a new window at now. Call it at shutdown.
func (c *Collector) Flush(now time.Time) {
	c.emitMu.Lock()
	defer c.emitMu.Unlock()
	c.mu.Lock()
	if len(c.counts) == 0 && !c.critical {
		c.mu.Unlock()
		return
	}
	rec := c.closeWindow(now)
	c.mu.Unlock()
	c.emit(rec)
	c.lastEmit = now
}

// Totals returns every count since the Collector started, the current
// window included, added up over access types. The map is the caller's.
// It holds one entry per component and stat type seen, a few dozen.
func (c *Collector) Totals() map[Total]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[Total]uint64, len(c.totals)+len(c.counts))
	for k, n := range c.totals {
		out[k] = n
	}
	for k, n := range c.counts {
		out[Total{k.component, k.stat}] += n
	}
	return out
}

// closeWindow builds the record of the current window, ending at now, and
// starts the next window. c.mu must be held.
func (c *Collector) closeWindow(now time.Time) *xdrv1.Statistics {
	rec := &xdrv1.Statistics{
		CustomerGuid:     c.identity.CustomerGUID,
		AgentGuid:        c.identity.AgentGUID,
		Timestamp:        now.Unix(),
		Version:          c.identity.Version,
		VehicleId:        c.identity.VehicleID,
		ModelId:          c.identity.ModelID,
		ElapseTime:       uint32(max(now.Sub(c.start), 0) / time.Second),
		HitCriticalEvent: c.critical,
	}
	if len(c.counts) > 0 {
		rec.EventInfo = make([]*xdrv1.EventInfo, 0, len(c.counts))
		for k, n := range c.counts {
			c.totals[Total{k.component, k.stat}] += n
			rec.EventInfo = append(rec.EventInfo, &xdrv1.EventInfo{Component: k.component, EventType: k.access, EventStatType: k.stat, Count: n})
		}
		slices.SortFunc(rec.EventInfo, func(a, b *xdrv1.EventInfo) int {
			return cmp.Or(
				cmp.Compare(a.Component, b.Component),
				cmp.Compare(a.EventType, b.EventType),
				cmp.Compare(a.EventStatType, b.EventStatType),
			)
		})
	}
	clear(c.counts)
	c.critical = false
	c.start = now
	return rec
}
