package daemon

import (
	"sync"

	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// recordQueue carries records from the connection readers to the writer
// goroutine. It is bounded: Put waits while it is full, which pushes back
// through the socket to the agent. The writer takes everything queued at
// once, so it is woken once per burst, not once per record (a wake-up
// costs more than writing a record). Safe for concurrent use.
type recordQueue struct {
	mu    sync.Mutex
	space sync.Cond
	items []queued
	spare []queued
	max   int
	ready chan struct{} // holds a token while items is non-empty
}

func newRecordQueue(max int) *recordQueue {
	q := &recordQueue{max: max, ready: make(chan struct{}, 1)}
	q.space.L = &q.mu
	return q
}

// queued is a received event's record and, when it is to be kept raw,
// its encoding as received.
type queued struct {
	rec *xdrv1.Record
	enc []byte
}

// Put queues r, waiting while the queue is full. It does not wake the
// writer: Signal does, once a burst has been put (a wake-up per record
// would cost a thread hand-off per record), and so does a full queue.
func (q *recordQueue) Put(r queued) {
	q.mu.Lock()
	for len(q.items) >= q.max {
		q.signal()
		q.space.Wait()
	}
	q.items = append(q.items, r)
	q.mu.Unlock()
}

// Signal wakes the writer if records are queued.
func (q *recordQueue) Signal() {
	q.mu.Lock()
	if len(q.items) > 0 {
		q.signal()
	}
	q.mu.Unlock()
}

// signal leaves the writer's token in ready unless one is there.
func (q *recordQueue) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// Ready is signalled when records are queued and Signal was called or
// the queue is full.
func (q *recordQueue) Ready() <-chan struct{} { return q.ready }

// Take returns every queued record, oldest first. The slice is valid
// until the next Take.
func (q *recordQueue) Take() []queued {
	q.mu.Lock()
	out := q.items
	clear(q.spare)
	q.items, q.spare = q.spare[:0], out
	q.mu.Unlock()
	q.space.Broadcast()
	return out
}
