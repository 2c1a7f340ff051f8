package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xdr-sensor/xdr/agent/counters"
	"github.com/xdr-sensor/xdr/proto/wire"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

const (
	defaultQueueSize     = 16384
	defaultQueueBytes    = 8 << 20
	defaultBatchBytes    = 64 << 10
	defaultFlushInterval = 20 * time.Millisecond
	defaultMinBackoff    = 100 * time.Millisecond
	defaultMaxBackoff    = 5 * time.Second
	defaultWriteTimeout  = 5 * time.Second
)

// Options configures a Client. Zero fields take the documented defaults.
type Options struct {
	// Socket is the path of the aggregator's SOCK_STREAM Unix socket.
	// Required.
	Socket string
	// Hello returns the Hello written as the first frame of every
	// connection. Run calls it once per new connection; it must return a
	// non-nil message. A zero SchemaVersion is filled in with
	// wire.SchemaVersion. Required.
	Hello func() *xdrv1.Hello
	// QueueSize bounds the number of events waiting to be written, and
	// QueueBytes their encoded size: Send encodes each event and the queue
	// holds the frames, so its memory is bounded whatever the events hold.
	// Defaults 16384 events and 8 MiB.
	QueueSize  int
	QueueBytes int
	// BatchBytes: a batch is written once this many frame bytes are
	// pending. Default 64 KiB.
	BatchBytes int
	// FlushInterval: a batch is written at the latest this long after its
	// first event was taken from the queue. Default 20ms.
	FlushInterval time.Duration
	// MinBackoff and MaxBackoff bound the delay between connection
	// attempts, which doubles after each failure and is jittered.
	// Defaults 100ms and 5s.
	MinBackoff, MaxBackoff time.Duration
	// WriteTimeout: a batch write not complete after this long (the
	// aggregator stopped reading) counts as a broken connection.
	// Default 5s.
	WriteTimeout time.Duration
	// Counters receives the SENT and DROPPED_* counts, by access type.
	// Required.
	Counters *counters.Set
	// Logger receives connection state changes. Default: discard.
	Logger *slog.Logger
}

// Client sends ActEvents to the aggregator. Send, SetCounters and Stats are
// safe for concurrent use; Run must be called exactly once, and owns the
// connection until it returns. A Client holds no resources once Run has
// returned, so there is nothing to close.
type Client struct {
	socket        string
	hello         func() *xdrv1.Hello
	batchBytes    int
	flushInterval time.Duration
	minBackoff    time.Duration
	maxBackoff    time.Duration
	writeTimeout  time.Duration
	counts        *counters.Set
	log           *slog.Logger

	// mu guards the queue: a ring of n encoded events starting at head,
	// about bytes long together (a subject shared by consecutive events
	// counts once).
	mu          sync.Mutex
	ring        []queued
	head        int
	n           int
	bytes       int
	maxBytes    int
	lastSubject []byte // of the event queued last
	wakeAt      int    // Send signals wake when n reaches wakeAt
	closed      bool   // Run has returned or is doing its final flush
	wake        chan struct{}

	loggedBad   atomic.Bool // an unencodable event was logged at warning level
	running     atomic.Bool
	connected   atomic.Bool
	pending     atomic.Int64 // taken off the queue, neither written nor dropped yet
	connects    atomic.Uint64
	disconnects atomic.Uint64
	sent        atomic.Uint64
	dropped     atomic.Uint64

	reportMu  sync.Mutex
	report    *xdrv1.AgentCounters
	reportGen uint64 // incremented by SetCounters; 0 means no report yet
}

// queued is an event on the queue: its frame, and its access type for the
// counts.
type queued struct {
	// The frame is head followed by subject: a subject shared by
	// consecutive events is held once (see wire.AppendEventHead).
	head, subject []byte
	access        xdrv1.XdrAccessType
	// bytes is what the event counts against Options.QueueBytes: its
	// head, and its subject unless the event before shares it.
	bytes int
}

// size is the frame's length.
func (q *queued) size() int { return len(q.head) + len(q.subject) }

// Stats is a snapshot of a Client's state.
type Stats struct {
	Connected   bool   // a connection is up and its Hello was written
	Connects    uint64 // connections established
	Disconnects uint64 // established connections lost
	Sent        uint64 // events written to the socket
	Dropped     uint64 // events dropped, for any reason
	Queued      int    // events accepted by Send and neither sent nor dropped yet
}

// never disarms the wake-up in Send.
const never = math.MaxInt

// New returns a Client for opts. It does not connect; Run does.
func New(opts *Options) (*Client, error) {
	if opts == nil {
		opts = &Options{}
	}
	if opts.Socket == "" {
		return nil, errors.New("transport: no socket path")
	}
	if opts.Hello == nil {
		return nil, errors.New("transport: no Hello function")
	}
	if opts.Counters == nil {
		return nil, errors.New("transport: no counters set")
	}
	if opts.QueueSize < 0 || opts.QueueBytes < 0 || opts.BatchBytes < 0 {
		return nil, fmt.Errorf("transport: negative queue size %d, queue bytes %d or batch size %d", opts.QueueSize, opts.QueueBytes, opts.BatchBytes)
	}
	c := &Client{
		socket:        opts.Socket,
		hello:         opts.Hello,
		batchBytes:    orDefault(opts.BatchBytes, defaultBatchBytes),
		flushInterval: orDefault(opts.FlushInterval, defaultFlushInterval),
		minBackoff:    orDefault(opts.MinBackoff, defaultMinBackoff),
		maxBackoff:    orDefault(opts.MaxBackoff, defaultMaxBackoff),
		writeTimeout:  orDefault(opts.WriteTimeout, defaultWriteTimeout),
		counts:        opts.Counters,
		log:           opts.Logger,
		ring:          make([]queued, orDefault(opts.QueueSize, defaultQueueSize)),
		maxBytes:      orDefault(opts.QueueBytes, defaultQueueBytes),
		wakeAt:        never,
		wake:          make(chan struct{}, 1),
	}
	if c.minBackoff > c.maxBackoff {
		return nil, fmt.Errorf("transport: MinBackoff %v exceeds MaxBackoff %v", c.minBackoff, c.maxBackoff)
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.WithGroup("transport")
	return c, nil
}

func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// Send encodes ev and queues it for the aggregator without blocking; the
// caller may reuse ev once Send returns. When the queue is full, in events
// or bytes (or Run has returned), Send drops ev, counts it under ev's
// access type as EVENT_STAT_TYPE_DROPPED_QUEUE_FULL if a connection is up
// and as EVENT_STAT_TYPE_DROPPED_SOCKET_DOWN otherwise, and returns false.
// An event that cannot be encoded, or whose frame exceeds what the
// aggregator accepts, is dropped as EVENT_STAT_TYPE_DROPPED_MALFORMED.
func (c *Client) Send(ev *xdrv1.ActEvent) bool { return c.SendWithSubject(ev, nil) }

// SendWithSubject is Send for an event whose subject is already encoded:
// subject, when not nil, is wire.EncodeSubject(ev.Subject), and is used
// instead of encoding the subject again. It must not change afterwards.
func (c *Client) SendWithSubject(ev *xdrv1.ActEvent, subject []byte) bool {
	// Under overload, drop before spending an encoding.
	c.mu.Lock()
	full := c.closed || c.n == len(c.ring) || c.bytes >= c.maxBytes
	c.mu.Unlock()
	if full {
		return c.drop(ev)
	}
	head, err := encode(ev, subject)
	if err != nil {
		c.counts.Add(xdrv1.EventStatType_EVENT_STAT_TYPE_DROPPED_MALFORMED, ev.GetAccessType(), 1)
		c.dropped.Add(1)
		level := slog.LevelDebug // the counter has them all; warn once
		if !c.loggedBad.Swap(true) {
			level = slog.LevelWarn
		}
		c.log.Log(context.Background(), level, "dropped an event that cannot be sent", "seq", ev.GetSeq(), "access", ev.GetAccessType(), "err", err)
		return false
	}
	q := queued{head: head, subject: subject, access: ev.GetAccessType(), bytes: len(head) + len(subject)}
	c.mu.Lock()
	if c.n > 0 && subject != nil && sameBytes(subject, c.lastSubject) {
		q.bytes = len(head)
	}
	if c.closed || c.n == len(c.ring) || (c.n > 0 && c.bytes+q.bytes > c.maxBytes) {
		c.mu.Unlock()
		return c.drop(ev)
	}
	i := c.head + c.n
	if i >= len(c.ring) {
		i -= len(c.ring)
	}
	c.ring[i] = q
	c.lastSubject = subject
	c.n++
	c.bytes += q.bytes
	wake := c.n >= c.wakeAt
	if wake {
		c.wakeAt = never
	}
	c.mu.Unlock()
	if wake {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// drop counts ev as dropped because the queue is full or closed.
func (c *Client) drop(ev *xdrv1.ActEvent) bool {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	stat := xdrv1.EventStatType_EVENT_STAT_TYPE_DROPPED_QUEUE_FULL
	if closed || !c.connected.Load() {
		stat = xdrv1.EventStatType_EVENT_STAT_TYPE_DROPPED_SOCKET_DOWN
	}
	c.counts.Add(stat, ev.GetAccessType(), 1)
	c.dropped.Add(1)
	return false
}

// encode returns ev's frame, or with subject (ev.Subject encoded) its head:
// the frame is then the head followed by subject.
func encode(ev *xdrv1.ActEvent, subject []byte) ([]byte, error) {
	var head []byte
	var err error
	if subject == nil {
		head, err = wire.AppendEventFrame(nil, ev, nil)
	} else {
		head, err = wire.AppendEventHead(nil, ev, subject)
	}
	if err != nil {
		return nil, err
	}
	if n := len(head) + len(subject) - wire.HeaderSize; n > wire.DefaultMaxFrameSize {
		return nil, fmt.Errorf("frame of %d bytes exceeds the limit of %d", n, wire.DefaultMaxFrameSize)
	}
	return head, nil
}

// sameBytes reports whether a and b are the same slice of memory.
func sameBytes(a, b []byte) bool {
	return len(a) == len(b) && len(a) > 0 && &a[0] == &b[0]
}

// take moves up to len(dst) events, oldest first, from the queue to dst
// and returns how many it moved. They count as pending until written or
// dropped.
func (c *Client) take(dst []queued) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := min(c.n, len(dst))
	for i := range k {
		dst[i] = c.ring[c.head]
		c.bytes -= dst[i].bytes
		c.ring[c.head] = queued{}
		if c.head++; c.head == len(c.ring) {
			c.head = 0
		}
	}
	c.n -= k
	c.pending.Add(int64(k))
	return k
}

// arm makes Send signal wake once k events are queued. It arms nothing
// and returns false when k events are queued already.
func (c *Client) arm(k int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n >= k {
		return false
	}
	c.wakeAt = k
	return true
}

// closeQueue makes every later Send drop its event.
func (c *Client) closeQueue() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
}

// SetCounters replaces the pending counters report with m, which the
// Client owns from then on. Only the latest report is kept; see the
// package documentation for when it is written.
func (c *Client) SetCounters(m *xdrv1.AgentCounters) {
	c.reportMu.Lock()
	c.report = m
	c.reportGen++
	c.reportMu.Unlock()
}

// latestReport returns the latest counters report and its generation.
func (c *Client) latestReport() (uint64, *xdrv1.AgentCounters) {
	c.reportMu.Lock()
	defer c.reportMu.Unlock()
	return c.reportGen, c.report
}

// Stats returns a snapshot of the Client's state.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	queued := c.n + int(c.pending.Load()) // under mu: take moves events atomically
	c.mu.Unlock()
	return Stats{
		Connected:   c.connected.Load(),
		Connects:    c.connects.Load(),
		Disconnects: c.disconnects.Load(),
		Sent:        c.sent.Load(),
		Dropped:     c.dropped.Load(),
		Queued:      queued,
	}
}
