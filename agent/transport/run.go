package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/xdr-sensor/xdr/proto/wire"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

const (
	// reportInterval is how often an idle connection checks for a counters
	// report that has not been written yet.
	reportInterval = time.Second
	// shutdownTimeout bounds the final flush when Run's context ends.
	shutdownTimeout = 2 * time.Second
	// takeChunk is how many events the writer takes off the queue per lock.
	takeChunk = 64
)

var errPeerClosed = errors.New("aggregator closed the connection")

// Run connects to the aggregator and writes queued events until ctx ends,
// reconnecting with backoff whenever the connection fails. It logs the
// first failed attempt and every established or lost connection, not each
// retry. When ctx ends it flushes what is queued if a connection is up
// (giving up after 2s, plus at most WriteTimeout for a write already under
// way), counts everything left as EVENT_STAT_TYPE_DROPPED_SOCKET_DOWN,
// and returns nil. Later Sends are dropped and counted the same way. Run
// returns an error only when it is called a second time.
func (c *Client) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("transport: Run called more than once")
	}
	b := c.newBatch()
	delay := c.minBackoff
	failing := false // an attempt failed and none succeeded since
	for {
		conn, err := c.connect(ctx)
		switch {
		case err == nil:
			c.log.Info("connected to aggregator", "socket", c.socket)
			failing = false
			up := time.Now()
			err = c.serve(ctx, conn, b)
			if err == nil {
				return nil // ctx ended; serve flushed
			}
			c.disconnects.Add(1)
			c.log.Warn("connection to aggregator lost; reconnecting", "socket", c.socket, "err", err)
			if time.Since(up) >= c.maxBackoff {
				delay = c.minBackoff
			}
		case ctx.Err() == nil && !failing:
			failing = true
			c.log.Warn("cannot connect to aggregator; retrying with backoff", "socket", c.socket, "err", err)
		}
		if !sleep(ctx, delay/2+rand.N(delay/2+1)) {
			if n := c.abandon(b); n > 0 {
				c.log.Warn("stopped without a connection; dropped queued events", "events", n)
			}
			return nil
		}
		delay = min(2*delay, c.maxBackoff)
	}
}

// sleep waits for d or until ctx ends, and reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// connect dials the aggregator and writes the Hello.
func (c *Client) connect(ctx context.Context) (*net.UnixConn, error) {
	dctx, cancel := context.WithTimeout(ctx, c.writeTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(dctx, "unix", c.socket)
	if err != nil {
		return nil, err // names the socket already
	}
	conn := nc.(*net.UnixConn)
	if err := c.writeHello(conn); err != nil {
		conn.Close()
		return nil, err
	}
	c.connects.Add(1)
	c.connected.Store(true)
	return conn, nil
}

func (c *Client) writeHello(conn *net.UnixConn) error {
	h := c.hello()
	if h == nil {
		return errors.New("hello function returned nil")
	}
	if h.GetSchemaVersion() == 0 {
		h = proto.CloneOf(h)
		h.SchemaVersion = wire.SchemaVersion
	}
	frame, err := wire.AppendFrame(nil, &xdrv1.AgentMessage{Message: &xdrv1.AgentMessage_Hello{Hello: h}})
	if err != nil {
		return fmt.Errorf("encode hello: %w", err)
	}
	if err := conn.SetWriteDeadline(time.Now().Add(c.writeTimeout)); err != nil {
		return fmt.Errorf("set write deadline: %w", err)
	}
	if _, err := conn.Write(frame); err != nil {
		return fmt.Errorf("write hello: %w", err)
	}
	return nil
}

// serve writes batches on conn until the connection fails, which it
// returns, or ctx ends, when it flushes and returns nil. Events taken off
// the queue but not yet written stay in b for the next connection.
func (c *Client) serve(ctx context.Context, conn *net.UnixConn, b *batch) error {
	// The aggregator never writes; a read returns when it goes away, so a
	// lost connection is noticed even when no events flow.
	gone := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, conn)
		close(gone)
	}()
	defer func() {
		c.connected.Store(false)
		conn.Close()
		<-gone
	}()
	b.conn = conn
	b.reportGen = 0 // a new aggregator gets the latest report again
	tick := time.NewTicker(reportInterval)
	defer tick.Stop()
	for {
		if err := b.fill(); err != nil {
			return err
		}
		if !c.arm(b.wakeAt()) {
			continue
		}
		select {
		case <-c.wake:
		case <-b.timer.C:
			if err := b.flush(); err != nil {
				return err
			}
		case <-tick.C:
			if gen, r := c.latestReport(); r != nil && gen != b.reportGen {
				if err := b.flush(); err != nil {
					return err
				}
			}
		case <-gone:
			return errPeerClosed
		case <-ctx.Done():
			c.closeQueue()
			b.deadline = time.Now().Add(shutdownTimeout)
			err := b.flush()
			n := c.abandon(b)
			if err != nil {
				c.log.Warn("final flush failed; dropped queued events", "err", err, "events", n)
			}
			return nil
		}
	}
}

// abandon closes the queue and drops everything in it and in b as
// EVENT_STAT_TYPE_DROPPED_SOCKET_DOWN. It returns how many events it
// dropped, not counting those of a write that already failed.
func (c *Client) abandon(b *batch) uint64 {
	c.closeQueue()
	n := uint64(b.events)
	b.settle(xdrv1.EventStatType_EVENT_STAT_TYPE_DROPPED_SOCKET_DOWN)
	for {
		k := c.take(b.scratch)
		if k == 0 {
			return n
		}
		for i, q := range b.scratch[:k] {
			c.counts.Add(xdrv1.EventStatType_EVENT_STAT_TYPE_DROPPED_SOCKET_DOWN, q.access, 1)
			b.scratch[i] = queued{}
		}
		c.dropped.Add(uint64(k))
		c.pending.Add(-int64(k))
		n += uint64(k)
	}
}
