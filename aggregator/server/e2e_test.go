package server_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"

	"github.com/xdr-sensor/xdr/agent/counters"
	"github.com/xdr-sensor/xdr/agent/transport"
	"github.com/xdr-sensor/xdr/aggregator/server"
	"github.com/xdr-sensor/xdr/proto/wire"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

const (
	sent       = xdrv1.EventStatType_EVENT_STAT_TYPE_SENT
	queueFull  = xdrv1.EventStatType_EVENT_STAT_TYPE_DROPPED_QUEUE_FULL
	socketDown = xdrv1.EventStatType_EVENT_STAT_TYPE_DROPPED_SOCKET_DOWN
)

var accessTypes = []xdrv1.XdrAccessType{
	xdrv1.XdrAccessType_XDR_ACCESS_TYPE_PROCESS_CREATE,
	xdrv1.XdrAccessType_XDR_ACCESS_TYPE_PROCESS_EXECUTE,
	xdrv1.XdrAccessType_XDR_ACCESS_TYPE_PROCESS_TERMINATE,
}

func accessOf(seq uint64) xdrv1.XdrAccessType { return accessTypes[seq%uint64(len(accessTypes))] }

func event(seq uint64) *xdrv1.ActEvent {
	return &xdrv1.ActEvent{
		Seq:         seq,
		TimestampNs: 1_700_000_000_000_000_000 + int64(seq),
		EventType:   xdrv1.XdrEventType_XDR_EVENT_TYPE_PROCESS,
		AccessType:  accessOf(seq),
		Subject: &xdrv1.Process{
			Pid: 4242, Tgid: 4242, Ppid: 1, Exe: "/usr/bin/curl", Comm: "curl", Cwd: "/home/user",
			Argv: []string{"curl", "-fsSL", "https://example.com/install.sh"},
		},
	}
}

// perAccess is the expected count by access type of the seqs in [from, to).
func perAccess(from, to uint64) map[xdrv1.XdrAccessType]uint64 {
	m := map[xdrv1.XdrAccessType]uint64{}
	for s := from; s < to; s++ {
		m[accessOf(s)]++
	}
	return m
}

func countsOf(set *counters.Set, stat xdrv1.EventStatType) map[xdrv1.XdrAccessType]uint64 {
	m := map[xdrv1.XdrAccessType]uint64{}
	for _, a := range accessTypes {
		if n := set.Get(stat, a); n != 0 {
			m[a] = n
		}
	}
	return m
}

// aggregator is a server.Server that records what its handler gets.
type aggregator struct {
	*server.Server
	mu     sync.Mutex
	msgs   []*xdrv1.AgentMessage
	events int
	// recordErrs lists frames whose Peer.EventRecord was not the record
	// of their event.
	recordErrs []string
	stop       func() // closes the server and waits for Serve
}

// startAggregator serves on path until stop or the end of the test.
// block, if set, is called for every event before it is recorded.
func startAggregator(t testing.TB, path string, block func()) *aggregator {
	t.Helper()
	a := &aggregator{}
	s, err := server.Listen(&server.Options{Socket: path, Handler: func(p *server.Peer, m *xdrv1.AgentMessage) {
		if m.GetEvent() != nil && block != nil {
			block()
		}
		recErr := checkEventRecord(p.EventRecord(), m)
		a.mu.Lock()
		defer a.mu.Unlock()
		if recErr != "" {
			a.recordErrs = append(a.recordErrs, recErr)
		}
		a.msgs = append(a.msgs, m)
		if m.GetEvent() != nil {
			a.events++
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	a.Server = s
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background()) }()
	a.stop = sync.OnceFunc(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	t.Cleanup(a.stop)
	return a
}

// checkEventRecord says what is wrong with rec as the bundle record of
// m's event: it must decode to it, and be nil for other messages.
func checkEventRecord(rec []byte, m *xdrv1.AgentMessage) string {
	if m.GetEvent() == nil {
		if rec != nil {
			return "a record for a message that is not an event"
		}
		return ""
	}
	var r xdrv1.Record
	if err := proto.Unmarshal(rec, &r); err != nil {
		return fmt.Sprintf("event %d: record does not decode: %v", m.GetEvent().GetSeq(), err)
	}
	if !proto.Equal(r.GetEvent(), m.GetEvent()) {
		return fmt.Sprintf("event %d: record holds another event", m.GetEvent().GetSeq())
	}
	return ""
}

func (a *aggregator) eventCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.events
}

// seqs checks that the messages start with a hello, that the other
// messages are events or counters reports, and returns the events' seqs.
func (a *aggregator) seqs(t *testing.T) []uint64 {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, e := range a.recordErrs {
		t.Error(e)
	}
	if len(a.msgs) == 0 || a.msgs[0].GetHello().GetSchemaVersion() != wire.SchemaVersion {
		t.Fatalf("first message is not a hello: %v", a.msgs)
	}
	var seqs []uint64
	for _, m := range a.msgs[1:] {
		switch {
		case m.GetEvent() != nil:
			seqs = append(seqs, m.GetEvent().GetSeq())
		case m.GetCounters() == nil:
			t.Fatalf("unexpected message %v", m)
		}
	}
	return seqs
}

// client is a transport.Client running until stop or the end of the test.
type client struct {
	*transport.Client
	counts *counters.Set
	stop   func()
}

func startClient(t testing.TB, opts transport.Options) *client {
	t.Helper()
	opts.Counters = new(counters.Set)
	opts.Hello = func() *xdrv1.Hello { return &xdrv1.Hello{AgentId: "agent-1", Hostname: "host"} }
	c, err := transport.New(&opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	stop := sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	t.Cleanup(stop)
	return &client{Client: c, counts: opts.Counters, stop: stop}
}

// waitFor polls cond; the timeout only keeps a broken test from hanging.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func wantSeqs(t *testing.T, got []uint64, from, to uint64) {
	t.Helper()
	want := make([]uint64, 0, to-from)
	for s := from; s < to; s++ {
		want = append(want, s)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("event seqs (-want +got):\n%s", d)
	}
}

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.sock")
	agg := startAggregator(t, path, nil)
	c := startClient(t, transport.Options{Socket: path})
	const n = 10000
	for seq := range uint64(n) {
		if !c.Send(event(seq)) {
			t.Fatalf("Send dropped event %d", seq)
		}
	}
	waitFor(t, "all events", func() bool { return agg.eventCount() == n })
	wantSeqs(t, agg.seqs(t), 0, n)
	waitFor(t, "sent count", func() bool { return c.Stats().Sent == n })
	if d := cmp.Diff(perAccess(0, n), countsOf(c.counts, sent)); d != "" {
		t.Errorf("SENT counts (-want +got):\n%s", d)
	}
	if st := agg.Stats(); st.Events != n || st.Frames != n+1 || st.Malformed+st.Oversized+st.Truncated+st.HelloErrors != 0 {
		t.Errorf("server stats %+v", st)
	}
}

func TestAggregatorAbsent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.sock")
	const queue = 1000
	c := startClient(t, transport.Options{Socket: path, QueueSize: queue, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	const n = 2500
	accepted := 0
	for seq := range uint64(n) {
		if c.Send(event(seq)) {
			accepted++
		}
	}
	if accepted != queue {
		t.Errorf("Send accepted %d events without an aggregator, want %d", accepted, queue)
	}
	if d := cmp.Diff(perAccess(queue, n), countsOf(c.counts, socketDown)); d != "" {
		t.Errorf("SOCKET_DOWN drops (-want +got):\n%s", d)
	}
	if st := c.Stats(); st.Connected || st.Connects != 0 || st.Queued != queue {
		t.Errorf("client stats %+v before the aggregator started", st)
	}

	agg := startAggregator(t, path, nil)
	waitFor(t, "queued events", func() bool { return agg.eventCount() == queue })
	const later = 100
	for seq := uint64(n); seq < n+later; seq++ {
		if !c.Send(event(seq)) {
			t.Fatalf("Send dropped event %d while connected", seq)
		}
	}
	waitFor(t, "later events", func() bool { return agg.eventCount() == queue+later })
	seqs := agg.seqs(t)
	wantSeqs(t, seqs[:queue], 0, queue)
	wantSeqs(t, seqs[queue:], n, n+later)
	if len(countsOf(c.counts, queueFull)) != 0 {
		t.Errorf("QUEUE_FULL drops %v, want none", countsOf(c.counts, queueFull))
	}
}

func TestAggregatorRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.sock")
	agg1 := startAggregator(t, path, nil)
	c := startClient(t, transport.Options{Socket: path, QueueSize: 2000, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	var seq uint64
	send := func(n int) {
		for range n {
			c.Send(event(seq))
			seq++
			if seq%100 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}
	send(5000)
	waitFor(t, "first events", func() bool { return agg1.eventCount() > 0 })
	agg1.stop() // mid-stream: the client still has events queued
	send(5000)
	agg2 := startAggregator(t, path, nil)
	waitFor(t, "reconnect", func() bool { return c.Stats().Connects == 2 })
	send(5000)
	c.stop()

	st := c.Stats()
	t.Logf("client: %+v after %d sends", st, seq)
	if st.Queued != 0 || st.Sent+st.Dropped != seq {
		t.Errorf("sent %d + dropped %d (+ queued %d) != %d sends", st.Sent, st.Dropped, st.Queued, seq)
	}
	if got := c.counts.Total(sent) + c.counts.Total(queueFull) + c.counts.Total(socketDown); got != seq {
		t.Errorf("counters add up to %d, want %d sends", got, seq)
	}
	// The new aggregator got a Hello first, then events in order, among
	// them events sent after it started. Once its connection has ended
	// (the client closed it after the final flush) it has read them all.
	waitFor(t, "end of the new connection", func() bool { st := agg2.Stats(); return st.Accepted == 1 && st.Active == 0 })
	seqs := agg2.seqs(t)
	if len(seqs) == 0 || seqs[len(seqs)-1] < 10000 {
		t.Fatalf("new aggregator got %d events, none of the last 5000", len(seqs))
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("events out of order: %d after %d", seqs[i], seqs[i-1])
		}
	}
	// Events sent to the first aggregator but still unread when it closed
	// are lost without a client-side count; none appear from nowhere.
	if total := uint64(agg1.eventCount() + len(seqs)); total > st.Sent {
		t.Errorf("aggregators received %d events, client sent only %d", total, st.Sent)
	}
}

func TestSlowHandler(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.sock")
	release := make(chan struct{})
	agg := startAggregator(t, path, func() { <-release })
	const queue = 256
	// A long write timeout: the stalled connection must not count as broken.
	c := startClient(t, transport.Options{Socket: path, QueueSize: queue, WriteTimeout: time.Minute})
	waitFor(t, "connection", func() bool { return c.Stats().Connected })

	// The handler blocks, the socket fills, the client's write stalls and
	// its queue fills: Send keeps returning, dropping as QUEUE_FULL. The
	// pace lets the writer keep up until the socket is full.
	var seq uint64
	for c.counts.Total(queueFull) < 1000 {
		c.Send(event(seq))
		seq++
		if seq%32 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	if n := agg.eventCount(); n != 0 {
		t.Fatalf("blocked handler recorded %d events", n)
	}
	close(release)
	c.stop()

	st := c.Stats()
	t.Logf("client: %+v after %d sends", st, seq)
	if st.Queued != 0 || st.Sent+st.Dropped != seq {
		t.Errorf("sent %d + dropped %d (+ queued %d) != %d sends", st.Sent, st.Dropped, st.Queued, seq)
	}
	if st.Sent <= queue {
		t.Errorf("sent %d events, want more than the queue (%d): the socket should absorb some before the queue fills", st.Sent, queue)
	}
	if got := countsOf(c.counts, socketDown); len(got) != 0 {
		t.Errorf("SOCKET_DOWN drops %v, want none: the connection stayed up", got)
	}
	if got := c.counts.Total(sent) + c.counts.Total(queueFull); got != seq {
		t.Errorf("SENT + QUEUE_FULL = %d, want %d sends", got, seq)
	}
	waitFor(t, "every sent event", func() bool { return uint64(agg.eventCount()) == st.Sent })
	seqs := agg.seqs(t)
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("events out of order: %d after %d", seqs[i], seqs[i-1])
		}
	}
}

// BenchmarkPipeline measures events per second from Client.Send through
// the socket to a Server handler that only counts. The sender backs off
// while the queue is more than half full, like a steady producer, and
// retries the rare dropped event, so every event makes it through.
func BenchmarkPipeline(b *testing.B) {
	path := filepath.Join(b.TempDir(), "agent.sock")
	var received atomic.Int64
	s, err := server.Listen(&server.Options{Socket: path, Handler: func(_ *server.Peer, m *xdrv1.AgentMessage) {
		if m.GetEvent() != nil {
			received.Add(1)
		}
	}})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background()) }()
	defer func() { s.Close(); <-done }()
	const queue = 16384
	c := startClient(b, transport.Options{Socket: path, QueueSize: queue})
	waitFor(b, "connection", func() bool { return c.Stats().Connected })
	ev := event(1)

	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i%256 == 0 {
			for c.Stats().Queued > queue/2 {
				time.Sleep(50 * time.Microsecond)
			}
		}
		for !c.Send(ev) {
			runtime.Gosched()
		}
	}
	for received.Load() < int64(b.N) {
		runtime.Gosched()
	}
	b.StopTimer()
	elapsed := b.Elapsed()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(b.N), "ns/event")
	b.ReportMetric(float64(c.Stats().Dropped), "drops")
}
