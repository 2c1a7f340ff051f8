package stats

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

const (
	exec     = xdrv1.XdrAccessType_XDR_ACCESS_TYPE_PROCESS_EXECUTE
	open     = xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_OPEN
	none     = xdrv1.XdrAccessType_XDR_ACCESS_TYPE_UNSPECIFIED
	received = xdrv1.EventStatType_EVENT_STAT_TYPE_RECEIVED
	newFp    = xdrv1.EventStatType_EVENT_STAT_TYPE_NEW_FOOTPRINT
	sent     = xdrv1.EventStatType_EVENT_STAT_TYPE_SENT
	full     = xdrv1.EventStatType_EVENT_STAT_TYPE_DROPPED_QUEUE_FULL
	bad      = xdrv1.EventStatType_EVENT_STAT_TYPE_DROPPED_MALFORMED
)

var (
	t0 = time.Unix(1700000000, 0)
	id = Identity{CustomerGUID: "cust", AgentGUID: "agent-1", VehicleID: "VIN1", ModelID: "model-x", Version: "1.2.3"}
)

func sec(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

type sink struct {
	mu  sync.Mutex
	got []*xdrv1.Statistics
}

func (s *sink) emit(r *xdrv1.Statistics) {
	s.mu.Lock()
	s.got = append(s.got, r)
	s.mu.Unlock()
}

func (s *sink) take() []*xdrv1.Statistics {
	s.mu.Lock()
	defer s.mu.Unlock()
	got := s.got
	s.got = nil
	return got
}

func newCollector(opts Options) (*Collector, *sink) {
	s := new(sink)
	opts.Identity = id
	opts.Emit = s.emit
	opts.Now = func() time.Time { return t0 }
	return New(&opts), s
}

// record is the Statistics want for a window ending at end (seconds after
// t0) of elapse seconds.
func record(end int, elapse uint32, critical bool, infos ...*xdrv1.EventInfo) *xdrv1.Statistics {
	return &xdrv1.Statistics{
		CustomerGuid: id.CustomerGUID, AgentGuid: id.AgentGUID, VehicleId: id.VehicleID, ModelId: id.ModelID, Version: id.Version,
		Timestamp: sec(end).Unix(), ElapseTime: elapse, HitCriticalEvent: critical, EventInfo: infos,
	}
}

func info(component string, access xdrv1.XdrAccessType, stat xdrv1.EventStatType, n uint64) *xdrv1.EventInfo {
	return &xdrv1.EventInfo{Component: component, EventType: access, EventStatType: stat, Count: n}
}

func TestWindows(t *testing.T) {
	type step struct {
		at   int                // seconds after t0
		do   func(c *Collector) // before Tick(at)
		want []*xdrv1.Statistics
	}
	add := func(comp string, access xdrv1.XdrAccessType, stat xdrv1.EventStatType, n uint64) func(*Collector) {
		return func(c *Collector) { c.Add(comp, access, stat, n) }
	}
	tests := []struct {
		name  string
		opts  Options
		steps []step
	}{
		{
			name: "counts land in their window, sorted",
			steps: []step{
				{at: 1, do: add("footprint", open, newFp, 1)},
				{at: 5, do: add("aggregator", open, received, 2)},
				{at: 9, do: add("aggregator", exec, received, 3)},
				{at: 10, want: []*xdrv1.Statistics{record(10, 10, false,
					info("aggregator", exec, received, 3),
					info("aggregator", open, received, 2),
					info("footprint", open, newFp, 1),
				)}},
				{at: 10, do: add("aggregator", open, received, 4)}, // the next window
				{at: 15, do: add("aggregator", open, received, 1)},
				{at: 19},
				{at: 20, want: []*xdrv1.Statistics{record(20, 10, false, info("aggregator", open, received, 5))}},
			},
		},
		{
			name: "zero counts are no counts",
			steps: []step{
				{at: 1, do: add("aggregator", open, received, 0)},
				{at: 10},
			},
		},
		{
			name: "empty windows skipped, a late Tick makes a longer window",
			steps: []step{
				{at: 10}, {at: 20},
				{at: 21, do: add("aggregator", open, received, 1)},
				{at: 35, want: []*xdrv1.Statistics{record(35, 15, false, info("aggregator", open, received, 1))}},
			},
		},
		{
			name: "critical flag only in its window",
			steps: []step{
				{at: 3, do: func(c *Collector) { c.HitCritical() }},
				{at: 10, want: []*xdrv1.Statistics{record(10, 10, true)}},
				{at: 11, do: add("aggregator", open, received, 1)},
				{at: 20, want: []*xdrv1.Statistics{record(20, 10, false, info("aggregator", open, received, 1))}},
				{at: 30},
			},
		},
		{
			name: "custom window",
			opts: Options{Window: 30 * time.Second},
			steps: []step{
				{at: 1, do: add("aggregator", open, received, 1)},
				{at: 29},
				{at: 30, want: []*xdrv1.Statistics{record(30, 30, false, info("aggregator", open, received, 1))}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, s := newCollector(tt.opts)
			for _, st := range tt.steps {
				if st.do != nil {
					st.do(c)
				}
				c.Tick(sec(st.at))
				if d := cmp.Diff(st.want, s.take(), protocmp.Transform()); d != "" {
					t.Errorf("Tick(t0+%ds) emitted (-want +got):\n%s", st.at, d)
				}
			}
		})
	}
}

func TestHeartbeat(t *testing.T) {
	c, s := newCollector(Options{})
	var got []*xdrv1.Statistics
	for i := 1; i <= 200; i++ { // Tick every second, no traffic
		c.Tick(sec(i))
		got = append(got, s.take()...)
	}
	want := []*xdrv1.Statistics{record(60, 10, false), record(120, 10, false), record(180, 10, false)}
	if d := cmp.Diff(want, got, protocmp.Transform()); d != "" {
		t.Errorf("records (-want +got):\n%s", d)
	}

	// A record with counts resets the heartbeat.
	c.Add("aggregator", open, received, 1)
	c.Tick(sec(210))
	for i := 211; i <= 280; i++ {
		c.Tick(sec(i))
	}
	want = []*xdrv1.Statistics{record(210, 10, false, info("aggregator", open, received, 1)), record(270, 10, false)}
	if d := cmp.Diff(want, s.take(), protocmp.Transform()); d != "" {
		t.Errorf("records after traffic (-want +got):\n%s", d)
	}
}

func TestFlush(t *testing.T) {
	c, s := newCollector(Options{})
	c.Flush(sec(3))
	if got := s.take(); len(got) != 0 {
		t.Errorf("Flush of an empty window emitted %d records", len(got))
	}
	c.Add("aggregator", open, received, 2)
	c.Flush(sec(4))
	c.Tick(sec(10)) // the window restarted at 4: not over yet
	c.Add("aggregator", open, received, 1)
	c.Tick(sec(14))
	want := []*xdrv1.Statistics{
		record(4, 4, false, info("aggregator", open, received, 2)),
		record(14, 10, false, info("aggregator", open, received, 1)),
	}
	if d := cmp.Diff(want, s.take(), protocmp.Transform()); d != "" {
		t.Errorf("records (-want +got):\n%s", d)
	}
}

// report is an agent report with last_seq seq and counts.
func report(seq uint64, counts ...*xdrv1.EventInfo) *xdrv1.AgentCounters {
	return &xdrv1.AgentCounters{LastSeq: seq, Counts: counts}
}

func TestAgentCounters(t *testing.T) {
	type step struct {
		agent  string
		report *xdrv1.AgentCounters
		forget bool
	}
	tests := []struct {
		name  string
		steps []step
		want  []*xdrv1.EventInfo // of the window
	}{
		{
			name: "differences across reports",
			steps: []step{
				{agent: "a", report: report(10, info("agent", exec, sent, 10), info("agent", none, full, 2))},
				{agent: "a", report: report(15, info("agent", exec, sent, 15), info("agent", none, full, 2))},
				{agent: "a", report: report(15, info("agent", exec, sent, 15), info("agent", none, full, 2))}, // repeated
				{agent: "a", report: report(18, info("agent", exec, sent, 18), info("agent", none, full, 3))},
			},
			want: []*xdrv1.EventInfo{info("agent", none, full, 3), info("agent", exec, sent, 18)},
		},
		{
			name: "component kept, empty read as agent",
			steps: []step{
				{agent: "a", report: report(1, info("", exec, sent, 1), info("agent-ebpf", exec, sent, 2))},
			},
			want: []*xdrv1.EventInfo{info("agent", exec, sent, 1), info("agent-ebpf", exec, sent, 2)},
		},
		{
			name: "restart: a counter went down",
			steps: []step{
				{agent: "a", report: report(100, info("agent", exec, sent, 100), info("agent", none, full, 1))},
				// Restarted: sent starts over, and full (higher than
				// before) counts in full too.
				{agent: "a", report: report(100, info("agent", exec, sent, 3), info("agent", none, full, 5))},
				{agent: "a", report: report(110, info("agent", exec, sent, 7), info("agent", none, full, 5))},
			},
			want: []*xdrv1.EventInfo{info("agent", none, full, 6), info("agent", exec, sent, 107)},
		},
		{
			name: "restart: last_seq went down",
			steps: []step{
				{agent: "a", report: report(100, info("agent", exec, sent, 100))},
				{agent: "a", report: report(50, info("agent", exec, sent, 150))},
			},
			want: []*xdrv1.EventInfo{info("agent", exec, sent, 250)},
		},
		{
			name: "two agents",
			steps: []step{
				{agent: "a", report: report(10, info("agent", exec, sent, 10))},
				{agent: "b", report: report(4, info("agent", exec, sent, 4))},
				{agent: "a", report: report(12, info("agent", exec, sent, 12))},
				{agent: "b", report: report(5, info("agent", exec, sent, 5))},
			},
			want: []*xdrv1.EventInfo{info("agent", exec, sent, 17)},
		},
		{
			name: "reconnect after Forget does not double count",
			steps: []step{
				{agent: "a", report: report(10, info("agent", exec, sent, 10))},
				{agent: "a", forget: true},
				{agent: "a", report: report(12, info("agent", exec, sent, 12))},
			},
			want: []*xdrv1.EventInfo{info("agent", exec, sent, 12)},
		},
		{
			name: "the same counter twice in a report",
			steps: []step{
				{agent: "a", report: report(1, info("agent", exec, sent, 5), info("agent", exec, sent, 3))},
				{agent: "a", report: report(1, info("agent", exec, sent, 5), info("agent", exec, sent, 3))},
			},
			want: []*xdrv1.EventInfo{info("agent", exec, sent, 5), info("aggregator", none, bad, 2)},
		},
		{
			name: "component too long",
			steps: []step{
				{agent: "a", report: report(1, info(strings.Repeat("x", 65), exec, sent, 9), info("agent", exec, sent, 1))},
			},
			want: []*xdrv1.EventInfo{info("agent", exec, sent, 1), info("aggregator", none, bad, 1)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, s := newCollector(Options{})
			for _, st := range tt.steps {
				if st.forget {
					c.Forget(st.agent)
				} else {
					c.AgentCounters(st.agent, st.report)
				}
			}
			c.Tick(sec(10))
			want := []*xdrv1.Statistics{record(10, 10, false, tt.want...)}
			if d := cmp.Diff(want, s.take(), protocmp.Transform()); d != "" {
				t.Errorf("records (-want +got):\n%s", d)
			}
		})
	}
}

func TestAgentCountersAcrossWindows(t *testing.T) {
	c, s := newCollector(Options{})
	c.AgentCounters("a", report(10, info("agent", exec, sent, 10)))
	c.Tick(sec(10))
	c.AgentCounters("a", report(25, info("agent", exec, sent, 25)))
	c.Tick(sec(20))
	want := []*xdrv1.Statistics{
		record(10, 10, false, info("agent", exec, sent, 10)),
		record(20, 10, false, info("agent", exec, sent, 15)),
	}
	if d := cmp.Diff(want, s.take(), protocmp.Transform()); d != "" {
		t.Errorf("records (-want +got):\n%s", d)
	}
}

func TestAgentStateBounded(t *testing.T) {
	c, s := newCollector(Options{})
	agent := func(i int) string { return fmt.Sprintf("agent-%d", i) }
	one := report(1, info("agent", exec, sent, 1))
	for i := range maxAgents {
		c.AgentCounters(agent(i), one)
	}
	c.Forget(agent(5))
	c.AgentCounters("new-1", one) // drops agent-5: its connection ended
	c.AgentCounters("new-2", one) // drops agent-0: the least recent
	if len(c.agents) != maxAgents {
		t.Errorf("%d agent states, want %d", len(c.agents), maxAgents)
	}
	c.Tick(sec(10))
	s.take()

	// Kept instances count nothing again. Dropped ones count in full, and
	// take the room of the least recent (agent-2, agent-3).
	for _, a := range []string{agent(1), agent(63), "new-1", "new-2", agent(0), agent(5)} {
		c.AgentCounters(a, one)
	}
	c.Tick(sec(20))
	want := []*xdrv1.Statistics{record(20, 10, false, info("agent", exec, sent, 2))}
	if d := cmp.Diff(want, s.take(), protocmp.Transform()); d != "" {
		t.Errorf("records (-want +got):\n%s", d)
	}
	for _, a := range []string{agent(0), agent(5), agent(1)} {
		if c.agents[a] == nil {
			t.Errorf("%s has no state after reporting again", a)
		}
	}
	for _, a := range []string{agent(2), agent(3)} {
		if c.agents[a] != nil {
			t.Errorf("%s still has state, want it dropped", a)
		}
	}
}

func TestAgentCountersBounded(t *testing.T) {
	c, s := newCollector(Options{})
	m := new(xdrv1.AgentCounters)
	for i := range maxAgentCounters + 10 {
		m.Counts = append(m.Counts, info(fmt.Sprintf("c%d", i), exec, sent, 1))
	}
	c.AgentCounters("a", m)
	c.AgentCounters("a", m) // the kept ones count nothing again; the others are rejected again
	c.Tick(sec(10))
	got := s.take()
	if len(got) != 1 {
		t.Fatalf("%d records, want 1", len(got))
	}
	var total, rejected uint64
	for _, ei := range got[0].GetEventInfo() {
		if ei.GetComponent() == ComponentAggregator {
			rejected += ei.GetCount()
		} else {
			total += ei.GetCount()
		}
	}
	if total != maxAgentCounters || rejected != 20 {
		t.Errorf("counted %d, rejected %d; want %d and 20", total, rejected, maxAgentCounters)
	}
	if n := len(c.agents["a"].last); n != maxAgentCounters {
		t.Errorf("agent state has %d counters, want %d", n, maxAgentCounters)
	}
}

// Run with -race: Add, HitCritical and AgentCounters from several
// goroutines while Tick closes windows; no count is lost or doubled.
func TestConcurrent(t *testing.T) {
	c, s := newCollector(Options{Window: time.Second})
	const goroutines, perG = 4, 5000
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			agent := fmt.Sprintf("agent-%d", g)
			for i := 1; i <= perG; i++ {
				c.Add(ComponentAggregator, open, received, 1)
				if i%100 == 0 {
					c.AgentCounters(agent, report(uint64(i), info("agent", exec, sent, uint64(i))))
					c.HitCritical()
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	tick := 0
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
			tick++
			c.Tick(sec(tick))
		}
	}
	c.Flush(sec(tick + 1))

	var received, sentTotal uint64
	for _, r := range s.take() {
		for _, ei := range r.GetEventInfo() {
			switch ei.GetEventStatType() {
			case xdrv1.EventStatType_EVENT_STAT_TYPE_RECEIVED:
				received += ei.GetCount()
			case sent:
				sentTotal += ei.GetCount()
			}
		}
	}
	if received != goroutines*perG || sentTotal != goroutines*perG {
		t.Errorf("received %d, sent %d; want %d each", received, sentTotal, goroutines*perG)
	}
}

func TestNewRequiresEmit(t *testing.T) {
	for _, opts := range []*Options{nil, {Window: time.Second}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New(%+v) did not panic", opts)
				}
			}()
			New(opts)
		}()
	}
}

func BenchmarkAdd(b *testing.B) {
	c := New(&Options{Emit: func(*xdrv1.Statistics) {}})
	b.ReportAllocs()
	for b.Loop() {
		c.Add(ComponentAggregator, open, received, 1)
	}
}

func BenchmarkAddParallel(b *testing.B) {
	c := New(&Options{Emit: func(*xdrv1.Statistics) {}})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Add(ComponentAggregator, open, received, 1)
		}
	})
}

// Totals add up closed windows and the open one, over access types, and
// include what agents reported.
func TestTotals(t *testing.T) {
	c, _ := newCollector(Options{})
	c.Add("aggregator", open, received, 2)
	c.Add("aggregator", exec, received, 3)
	c.AgentCounters("a", report(5, info("", open, full, 4)))
	c.Tick(sec(10))
	c.Add("aggregator", open, received, 1)
	c.AgentCounters("a", report(9, info("", open, full, 6)))
	want := map[Total]uint64{
		{"aggregator", received}: 6,
		{ComponentAgent, full}:   6,
	}
	if d := cmp.Diff(want, c.Totals()); d != "" {
		t.Errorf("Totals (-want +got):\n%s", d)
	}
}
