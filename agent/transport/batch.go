package transport

import (
	"fmt"
	"net"
	"time"

	"github.com/xdr-sensor/xdr/proto/wire"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// batch holds the frames encoded and not yet written, with the count of
// their events by access type. It outlives connections: events encoded
// before a connection was lost go out on the next one. Only Run's
// goroutine uses it.
type batch struct {
	c         *Client
	conn      *net.UnixConn
	buf       []byte
	events    int
	tally     []accessCount
	frameSize int // running estimate of an event frame's size
	timer     *time.Timer
	reportGen uint64    // generation of the report last written on conn
	deadline  time.Time // if set, no write may last beyond it
	scratch   []queued
}

type accessCount struct {
	access xdrv1.XdrAccessType
	n      uint64
}

func (c *Client) newBatch() *batch {
	b := &batch{
		c:         c,
		frameSize: 512,
		timer:     time.NewTimer(time.Hour),
		scratch:   make([]queued, takeChunk),
	}
	b.timer.Stop()
	return b
}

// fill moves every queued event into the batch, writing whenever
// BatchBytes are pending. After a failed write it still takes in the rest
// of the events it had taken off the queue, then returns the error.
func (b *batch) fill() error {
	for {
		k := b.c.take(b.scratch)
		if k == 0 {
			return nil
		}
		var err error
		for i, q := range b.scratch[:k] {
			b.scratch[i] = queued{}
			b.add(q)
			if err == nil && len(b.buf) >= b.c.batchBytes {
				err = b.write()
			}
		}
		if err != nil {
			return err
		}
	}
}

// flush moves every queued event into the batch and writes it all.
func (b *batch) flush() error {
	if err := b.fill(); err != nil {
		return err
	}
	return b.write()
}

// add appends an encoded event to the batch.
func (b *batch) add(q queued) {
	b.buf = append(append(b.buf, q.head...), q.subject...)
	if b.events == 0 {
		b.timer.Reset(b.c.flushInterval)
	}
	b.events++
	b.frameSize += (q.size() - b.frameSize) / 8
	for i := range b.tally {
		if b.tally[i].access == q.access {
			b.tally[i].n++
			return
		}
	}
	b.tally = append(b.tally, accessCount{q.access, 1})
}

// wakeAt returns how many queued events should wake the writer: the first
// one when the batch is empty, else about as many as fill the batch
// (the flush timer covers the rest), and never more than half the queue.
func (b *batch) wakeAt() int {
	if b.events == 0 {
		return 1
	}
	k := (b.c.batchBytes-len(b.buf))/max(b.frameSize, 1) + 1
	return max(1, min(k, len(b.c.ring)/2))
}

// write writes the batch, followed by the latest counters report if this
// connection has not had it yet, in one write, and settles the counts of its events: SENT on success, else
// DROPPED_SOCKET_DOWN (conservatively: part of them may have arrived).
func (b *batch) write() error {
	gen, report := b.c.latestReport()
	withReport := report != nil && gen != b.reportGen
	if withReport {
		var err error
		b.buf, err = wire.AppendFrame(b.buf, &xdrv1.AgentMessage{Message: &xdrv1.AgentMessage_Counters{Counters: report}})
		if err != nil {
			b.c.log.Error("cannot encode counters report; skipped", "err", err)
			b.reportGen = gen
			withReport = false
		}
	}
	if len(b.buf) == 0 {
		return nil
	}
	deadline := time.Now().Add(b.c.writeTimeout)
	if !b.deadline.IsZero() && b.deadline.Before(deadline) {
		deadline = b.deadline
	}
	err := b.conn.SetWriteDeadline(deadline)
	if err == nil {
		_, err = wire.WriteConn(b.conn, b.buf)
	}
	if err != nil {
		events, size := b.events, len(b.buf)
		b.settle(xdrv1.EventStatType_EVENT_STAT_TYPE_DROPPED_SOCKET_DOWN)
		return fmt.Errorf("write batch of %d events (%d bytes): %w", events, size, err)
	}
	if withReport {
		b.reportGen = gen
	}
	b.settle(xdrv1.EventStatType_EVENT_STAT_TYPE_SENT)
	return nil
}

// settle counts the batch's events as stat and empties the batch.
func (b *batch) settle(stat xdrv1.EventStatType) {
	for _, t := range b.tally {
		b.c.counts.Add(stat, t.access, t.n)
	}
	n := uint64(b.events)
	if stat == xdrv1.EventStatType_EVENT_STAT_TYPE_SENT {
		b.c.sent.Add(n)
	} else {
		b.c.dropped.Add(n)
	}
	b.c.pending.Add(-int64(n))
	b.events = 0
	b.tally = b.tally[:0]
	if cap(b.buf) > 4*b.c.batchBytes {
		b.buf = nil // an outsized event grew it; do not keep that memory
	} else {
		b.buf = b.buf[:0]
	}
	b.timer.Stop()
}
