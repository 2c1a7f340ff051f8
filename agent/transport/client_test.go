package transport

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/xdr-sensor/xdr/agent/counters"
	"github.com/xdr-sensor/xdr/proto/wire"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

const (
	sent       = xdrv1.EventStatType_EVENT_STAT_TYPE_SENT
	queueFull  = xdrv1.EventStatType_EVENT_STAT_TYPE_DROPPED_QUEUE_FULL
	socketDown = xdrv1.EventStatType_EVENT_STAT_TYPE_DROPPED_SOCKET_DOWN
	malformed  = xdrv1.EventStatType_EVENT_STAT_TYPE_DROPPED_MALFORMED
	execute    = xdrv1.XdrAccessType_XDR_ACCESS_TYPE_PROCESS_EXECUTE
	terminate  = xdrv1.XdrAccessType_XDR_ACCESS_TYPE_PROCESS_TERMINATE
)

// accessOf spreads events over two access types so per-type counts are
// checked, not just totals.
func accessOf(seq uint64) xdrv1.XdrAccessType {
	if seq%3 == 0 {
		return terminate
	}
	return execute
}

func event(seq uint64) *xdrv1.ActEvent {
	return &xdrv1.ActEvent{
		Seq:        seq,
		AccessType: accessOf(seq),
		Subject:    &xdrv1.Process{Pid: uint32(seq), Exe: "/usr/bin/true", Argv: []string{"true", "--flag"}},
	}
}

// perAccess returns the expected count of each access type among seqs
// [from, to).
func perAccess(from, to uint64) map[xdrv1.XdrAccessType]uint64 {
	m := map[xdrv1.XdrAccessType]uint64{}
	for s := from; s < to; s++ {
		m[accessOf(s)]++
	}
	return m
}

func countsOf(set *counters.Set, stat xdrv1.EventStatType) map[xdrv1.XdrAccessType]uint64 {
	m := map[xdrv1.XdrAccessType]uint64{}
	for _, a := range []xdrv1.XdrAccessType{execute, terminate} {
		if n := set.Get(stat, a); n != 0 {
			m[a] = n
		}
	}
	return m
}

// message is a frame the stub aggregator received, tagged with the
// number of the connection it came on.
type message struct {
	conn int
	msg  *xdrv1.AgentMessage
}

// stub is a minimal aggregator on a real Unix socket: it reads frames with
// proto/wire and hands them to the test. With read false it accepts
// connections but never reads, like a stalled aggregator.
type stub struct {
	ln    *net.UnixListener
	msgs  chan message
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func startStub(t *testing.T, path string, read bool) *stub {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	s := &stub{ln: ln, msgs: make(chan message, 1<<16)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for n := 1; ; n++ {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, conn)
			s.mu.Unlock()
			if !read {
				continue
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				r := wire.NewReader(conn, 0)
				for {
					m := new(xdrv1.AgentMessage)
					if err := r.Next(m); err != nil {
						return
					}
					s.msgs <- message{n, m}
				}
			}()
		}
	}()
	t.Cleanup(s.close)
	return s
}

// close stops the stub: the listener (removing the socket file) and every
// connection.
func (s *stub) close() {
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// next returns the next message, failing the test if none comes in time.
func (s *stub) next(t *testing.T) message {
	t.Helper()
	select {
	case m := <-s.msgs:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message from the client")
		return message{}
	}
}

// nextEvent skips counters reports and returns the next event.
func (s *stub) nextEvent(t *testing.T) message {
	t.Helper()
	for {
		m := s.next(t)
		if m.msg.GetCounters() == nil {
			return m
		}
	}
}

func testHello() *xdrv1.Hello {
	return &xdrv1.Hello{AgentId: "test-agent", Hostname: "host"}
}

func newClient(t *testing.T, opts Options) (*Client, *counters.Set) {
	t.Helper()
	if opts.Hello == nil {
		opts.Hello = testHello
	}
	if opts.Counters == nil {
		opts.Counters = new(counters.Set)
	}
	c, err := New(&opts)
	if err != nil {
		t.Fatal(err)
	}
	return c, opts.Counters
}

// run starts c.Run and returns a function that stops it and waits.
func run(t *testing.T, c *Client) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond; the timeout only keeps a broken test from hanging.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func wantHello(t *testing.T, m message) {
	t.Helper()
	want := &xdrv1.Hello{AgentId: "test-agent", Hostname: "host", SchemaVersion: wire.SchemaVersion}
	if d := cmp.Diff(want, m.msg.GetHello(), protocmp.Transform()); d != "" {
		t.Fatalf("first frame of connection %d is not the hello (-want +got):\n%s", m.conn, d)
	}
}

func TestNew(t *testing.T) {
	hello := func() *xdrv1.Hello { return nil }
	set := new(counters.Set)
	tests := []struct {
		name    string
		opts    *Options
		wantErr bool
	}{
		{"nil options", nil, true},
		{"no socket", &Options{Hello: hello, Counters: set}, true},
		{"no hello", &Options{Socket: "/s", Counters: set}, true},
		{"no counters", &Options{Socket: "/s", Hello: hello}, true},
		{"negative queue", &Options{Socket: "/s", Hello: hello, Counters: set, QueueSize: -1}, true},
		{"backoff inverted", &Options{Socket: "/s", Hello: hello, Counters: set, MinBackoff: time.Second, MaxBackoff: time.Millisecond}, true},
		{"defaults", &Options{Socket: "/s", Hello: hello, Counters: set}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.opts)
			if (err != nil) != tt.wantErr {
				t.Fatalf("New: err %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && len(c.ring) != defaultQueueSize {
				t.Errorf("queue size %d, want default %d", len(c.ring), defaultQueueSize)
			}
		})
	}
}

func TestDeliversInOrderAfterHello(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.sock")
	s := startStub(t, path, true)
	c, set := newClient(t, Options{Socket: path, BatchBytes: 4096})
	report := &xdrv1.AgentCounters{LastSeq: 77}
	c.SetCounters(report)
	run(t, c)
	const n = 3000
	for seq := uint64(0); seq < n; seq++ {
		if !c.Send(event(seq)) {
			t.Fatalf("Send dropped event %d", seq)
		}
	}
	wantHello(t, s.next(t))
	gotReport := false
	for seq := uint64(0); seq < n; {
		m := s.next(t)
		if r := m.msg.GetCounters(); r != nil {
			if d := cmp.Diff(report, r, protocmp.Transform()); d != "" {
				t.Errorf("counters report (-want +got):\n%s", d)
			}
			gotReport = true
			continue
		}
		if got := m.msg.GetEvent().GetSeq(); got != seq || m.conn != 1 {
			t.Fatalf("got event %d on connection %d, want %d on 1", got, m.conn, seq)
		}
		seq++
	}
	if !gotReport {
		if r := s.next(t).msg.GetCounters(); r.GetLastSeq() != report.LastSeq {
			t.Errorf("got %v after the events, want the counters report", r)
		}
	}
	waitFor(t, "sent count", func() bool { return c.Stats().Sent == n })
	if d := cmp.Diff(perAccess(0, n), countsOf(set, sent)); d != "" {
		t.Errorf("SENT counts (-want +got):\n%s", d)
	}
	want := Stats{Connected: true, Connects: 1, Sent: n}
	if d := cmp.Diff(want, c.Stats()); d != "" {
		t.Errorf("stats (-want +got):\n%s", d)
	}
}

func TestSendDropsWhileDisconnected(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.sock")
	const queue = 100
	c, set := newClient(t, Options{Socket: path, QueueSize: queue, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	const n = 250
	accepted := 0
	for seq := uint64(0); seq < n; seq++ {
		if c.Send(event(seq)) {
			accepted++
		}
	}
	if accepted != queue {
		t.Errorf("Send accepted %d events, want %d", accepted, queue)
	}
	if d := cmp.Diff(perAccess(queue, n), countsOf(set, socketDown)); d != "" {
		t.Errorf("SOCKET_DOWN drops (-want +got):\n%s", d)
	}
	if got := countsOf(set, queueFull); len(got) != 0 {
		t.Errorf("QUEUE_FULL drops %v, want none", got)
	}

	// Run without an aggregator: still nothing leaves the queue.
	run(t, c)
	waitFor(t, "a failed connection attempt", func() bool { return c.Stats().Queued == queue })
	if st := c.Stats(); st.Connected || st.Connects != 0 || st.Dropped != n-queue {
		t.Errorf("stats without aggregator: %+v", st)
	}

	s := startStub(t, path, true)
	wantHello(t, s.next(t))
	for seq := uint64(0); seq < queue; seq++ {
		if got := s.nextEvent(t).msg.GetEvent().GetSeq(); got != seq {
			t.Fatalf("got queued event %d, want %d", got, seq)
		}
	}
	if !c.Send(event(n)) {
		t.Fatal("Send dropped an event with an empty queue")
	}
	if got := s.nextEvent(t).msg.GetEvent().GetSeq(); got != n {
		t.Fatalf("got event %d after connecting, want %d", got, n)
	}
}

func TestReconnectSendsHelloAndReportAgain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.sock")
	s := startStub(t, path, true)
	c, set := newClient(t, Options{Socket: path, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	report := &xdrv1.AgentCounters{LastSeq: 5}
	c.SetCounters(report)
	run(t, c)
	wantHello(t, s.next(t))
	c.Send(event(1))
	if got := s.nextEvent(t).msg.GetEvent().GetSeq(); got != 1 {
		t.Fatalf("got event %d, want 1", got)
	}
	waitFor(t, "sent count", func() bool { return c.Stats().Sent == 1 })

	s.close() // aggregator goes away; the client notices without writing
	waitFor(t, "disconnect", func() bool { return c.Stats().Disconnects == 1 })
	s = startStub(t, path, true)
	m := s.next(t)
	if m.conn != 1 {
		t.Fatalf("first message on connection %d", m.conn)
	}
	wantHello(t, m)
	// The new aggregator gets the latest report although it did not change.
	if r := s.next(t).msg.GetCounters(); r.GetLastSeq() != 5 {
		t.Fatalf("after reconnecting got %v, want the counters report", r)
	}
	c.Send(event(2))
	if got := s.nextEvent(t).msg.GetEvent().GetSeq(); got != 2 {
		t.Fatalf("got event %d, want 2", got)
	}
	waitFor(t, "sent count", func() bool { return c.Stats().Sent == 2 })
	if got := set.Total(socketDown) + set.Total(queueFull); got != 0 {
		t.Errorf("%d drops, want none", got)
	}
}

func TestStalledAggregator(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.sock")
	startStub(t, path, false)
	const queue = 64
	c, set := newClient(t, Options{Socket: path, QueueSize: queue, WriteTimeout: 300 * time.Millisecond,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	stop := run(t, c)
	waitFor(t, "connection", func() bool { return c.Stats().Connected })

	// Nobody reads: the socket buffer fills, the write stalls, the queue
	// fills. Send keeps returning at once, dropping as QUEUE_FULL while
	// the connection is up, until the stalled write times out: its batch
	// counts as SOCKET_DOWN and the client reconnects.
	var seq uint64
	for set.Total(socketDown) == 0 {
		c.Send(event(seq))
		seq++
		if seq%queue == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	if set.Total(queueFull) == 0 {
		t.Error("no QUEUE_FULL drop while the write was stalled")
	}
	waitFor(t, "reconnect", func() bool { return c.Stats().Connects > 1 })
	stop() // the final flush fails too: nobody reads
	st := c.Stats()
	if st.Queued != 0 || st.Sent+st.Dropped != seq {
		t.Errorf("sent %d + dropped %d (+ queued %d) != %d sends", st.Sent, st.Dropped, st.Queued, seq)
	}
	if got := set.Total(sent) + set.Total(queueFull) + set.Total(socketDown); got != st.Sent+st.Dropped {
		t.Errorf("counters total %d, stats say %d", got, st.Sent+st.Dropped)
	}
}

func TestRunFlushesOnCancel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.sock")
	s := startStub(t, path, true)
	// A long flush interval and large batches: only the final flush can
	// send these events.
	c, set := newClient(t, Options{Socket: path, FlushInterval: time.Hour, BatchBytes: 1 << 20})
	stop := run(t, c)
	wantHello(t, s.next(t))
	const n = 500
	for seq := uint64(0); seq < n; seq++ {
		c.Send(event(seq))
	}
	stop()
	for seq := uint64(0); seq < n; seq++ {
		if got := s.nextEvent(t).msg.GetEvent().GetSeq(); got != seq {
			t.Fatalf("got event %d, want %d", got, seq)
		}
	}
	if c.Send(event(n)) {
		t.Error("Send accepted an event after Run returned")
	}
	want := Stats{Connects: 1, Sent: n, Dropped: 1}
	if d := cmp.Diff(want, c.Stats()); d != "" {
		t.Errorf("stats (-want +got):\n%s", d)
	}
	if d := cmp.Diff(perAccess(n, n+1), countsOf(set, socketDown)); d != "" {
		t.Errorf("SOCKET_DOWN drops (-want +got):\n%s", d)
	}
}

func TestRunStopsWithoutConnection(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.sock")
	c, set := newClient(t, Options{Socket: path})
	stop := run(t, c)
	const n = 10
	for seq := uint64(0); seq < n; seq++ {
		c.Send(event(seq))
	}
	stop()
	if d := cmp.Diff(perAccess(0, n), countsOf(set, socketDown)); d != "" {
		t.Errorf("SOCKET_DOWN drops (-want +got):\n%s", d)
	}
	if st := c.Stats(); st.Queued != 0 || st.Dropped != n {
		t.Errorf("stats %+v, want all %d dropped", st, n)
	}
	if err := c.Run(context.Background()); err == nil {
		t.Error("second Run returned nil")
	}
}

func TestUnencodableEventDropped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.sock")
	s := startStub(t, path, true)
	c, set := newClient(t, Options{Socket: path})
	run(t, c)
	wantHello(t, s.next(t))
	bad := event(1)
	bad.Subject.Exe = "/tmp/\xff\xfe" // proto3 strings must be UTF-8
	huge := event(2)
	huge.Subject.Argv = []string{string(make([]byte, wire.DefaultMaxFrameSize))}
	c.Send(bad)
	c.Send(huge)
	c.Send(event(3))
	if got := s.nextEvent(t).msg.GetEvent().GetSeq(); got != 3 {
		t.Fatalf("got event %d, want 3", got)
	}
	waitFor(t, "sent count", func() bool { return c.Stats().Sent == 1 })
	want := map[xdrv1.XdrAccessType]uint64{execute: 2}
	if d := cmp.Diff(want, countsOf(set, malformed)); d != "" {
		t.Errorf("MALFORMED drops (-want +got):\n%s", d)
	}
}

func TestHelloFuncReturningNil(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.sock")
	startStub(t, path, true)
	c, _ := newClient(t, Options{Socket: path, Hello: func() *xdrv1.Hello { return nil }})
	if _, err := c.connect(context.Background()); err == nil {
		t.Fatal("connect succeeded without a hello")
	}
	if st := c.Stats(); st.Connects != 0 {
		t.Errorf("stats %+v, want no connection", st)
	}
}

// BenchmarkSend measures Send: enqueueing into a queue with room, and
// dropping when the queue is full (the path taken under overload).
func BenchmarkSend(b *testing.B) {
	ev := event(1)
	b.Run("enqueue", func(b *testing.B) {
		c, err := New(&Options{Socket: "/nonexistent", Hello: testHello, Counters: new(counters.Set)})
		if err != nil {
			b.Fatal(err)
		}
		scratch := make([]queued, takeChunk)
		b.ReportAllocs()
		for i := range b.N {
			if i%len(c.ring) == 0 {
				b.StopTimer()
				for c.take(scratch) > 0 {
				}
				b.StartTimer()
			}
			c.Send(ev)
		}
		if d := c.Stats().Dropped; d != 0 {
			b.Fatalf("%d drops", d)
		}
	})
	b.Run("drop", func(b *testing.B) {
		c, err := New(&Options{Socket: "/nonexistent", Hello: testHello, Counters: new(counters.Set), QueueSize: 1})
		if err != nil {
			b.Fatal(err)
		}
		c.Send(ev)
		b.ReportAllocs()
		for b.Loop() {
			c.Send(ev)
		}
	})
}

// The queue holds encoded events and is bounded by their bytes too: big
// events fill it long before the event count does, and what does not fit
// is dropped and counted. The caller may change an event once Send
// returned: what was queued is its encoding at the time.
func TestQueueBytesBound(t *testing.T) {
	c, set := newClient(t, Options{Socket: "/nonexistent", QueueSize: 1000, QueueBytes: 16 << 10})
	big := func(seq uint64) *xdrv1.ActEvent {
		ev := event(seq)
		ev.Subject.Argv = []string{strings.Repeat("a", 4000)}
		return ev
	}
	sent := 0
	for seq := uint64(0); seq < 10; seq++ {
		ev := big(seq)
		if c.Send(ev) {
			sent++
		}
		ev.Subject.Argv = nil // must not change what was queued
	}
	if sent != 4 {
		t.Errorf("%d events of ~4 KB fit a 16 KiB queue, want 4", sent)
	}
	if got := set.Total(socketDown); got != 6 {
		t.Errorf("%d drops counted, want 6", got)
	}
	var q [8]queued
	k := c.take(q[:])
	for _, e := range q[:k] {
		var m xdrv1.AgentMessage
		frame := append(e.head, e.subject...)
		if err := proto.Unmarshal(frame[wire.HeaderSize:], &m); err != nil || len(m.GetEvent().GetSubject().GetArgv()) != 1 {
			t.Errorf("queued frame does not hold the event as sent: %v", err)
		}
	}
	if c.bytes != 0 || c.n != 0 {
		t.Errorf("queue after take: %d events, %d bytes", c.n, c.bytes)
	}
}

// An event sent with its subject encoded already arrives as if sent
// whole, and the caller's event is left as it was.
func TestSendWithSubject(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.sock")
	s := startStub(t, path, true)
	c, _ := newClient(t, Options{Socket: path})
	run(t, c)
	ev := event(1)
	ev.Subject = &xdrv1.Process{Pid: 9, Tgid: 9, Exe: "/usr/bin/cat", Argv: []string{"cat", "x"}}
	want := proto.Clone(ev)
	subject, err := wire.EncodeSubject(ev.Subject)
	if err != nil {
		t.Fatal(err)
	}
	if !c.SendWithSubject(ev, subject) {
		t.Fatal("dropped")
	}
	if !proto.Equal(ev, want) {
		t.Fatal("SendWithSubject changed the event")
	}
	wantHello(t, s.next(t))
	if d := cmp.Diff(want, s.nextEvent(t).msg.GetEvent(), protocmp.Transform()); d != "" {
		t.Errorf("(-sent +received):\n%s", d)
	}
}

// A subject shared by consecutive events is held, and counted against the
// byte bound, once: events of one process with a big subject fit where
// whole copies would not, and each still arrives whole.
func TestQueueCountsSharedSubjectOnce(t *testing.T) {
	c, set := newClient(t, Options{Socket: "/nonexistent", QueueSize: 1000, QueueBytes: 16 << 10})
	ev := event(1)
	ev.Subject.Argv = []string{strings.Repeat("a", 4000)}
	subject, err := wire.EncodeSubject(ev.Subject)
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 20; seq++ {
		ev.Seq = seq
		if !c.SendWithSubject(ev, subject) {
			t.Fatalf("event %d dropped: 20 events sharing a 4 KB subject fit a 16 KiB queue", seq)
		}
	}
	// The same subject in a copy of its own counts again.
	own := append([]byte(nil), subject...)
	sent := 0
	for range 10 {
		if c.SendWithSubject(ev, own) {
			sent++
		}
		own = append([]byte(nil), own...)
	}
	if sent == 10 || set.Total(socketDown) == 0 {
		t.Errorf("%d events with their own 4 KB subject fit beside the others, and %d were dropped", sent, set.Total(socketDown))
	}
	var q [64]queued
	k := c.take(q[:])
	for _, e := range q[:k] {
		var m xdrv1.AgentMessage
		frame := append(append([]byte(nil), e.head...), e.subject...)
		if err := proto.Unmarshal(frame[wire.HeaderSize:], &m); err != nil || !proto.Equal(m.GetEvent().GetSubject(), ev.Subject) {
			t.Fatalf("queued frame does not decode to the event: %v", err)
		}
	}
	if c.bytes != 0 {
		t.Errorf("%d bytes counted after everything was taken", c.bytes)
	}
}
