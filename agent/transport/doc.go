// Package transport is the agent's client for the aggregator's Unix socket.
//
// The kernel readers hand events to Client.Send, which never blocks: it
// encodes the event as a proto/wire frame and puts the frame on an
// in-memory queue bounded in events and in bytes (so a queue of large exec
// events costs no more memory than one of small ones) or, when the queue
// is full, drops it and counts the drop. One goroutine (Client.Run) owns
// the connection: it connects with exponential backoff, opens every
// connection with a Hello frame and writes the queued frames in batches,
// one write per batch.
//
// # Delivery semantics
//
// Delivery is at most once, and every event handed to Send ends up in
// exactly one of the agent's counters (agent/counters), by access type:
//
//   - EVENT_STAT_TYPE_SENT: the batch holding the event was completely
//     written to the socket. The aggregator may still lose it (for example
//     when it closes the connection with unread data); the aggregator
//     counts what it receives, and ActEvent.seq lets it see gaps.
//   - EVENT_STAT_TYPE_DROPPED_QUEUE_FULL: the queue was full while the
//     aggregator was connected, i.e. the aggregator did not keep up.
//   - EVENT_STAT_TYPE_DROPPED_SOCKET_DOWN: the queue was full while no
//     connection was up; or the write of the event's batch failed; or the
//     event was still queued when Run stopped without a connection (or its
//     final flush failed); or Send was called after Run returned. A failed
//     write may have delivered part of its batch, so counting the whole
//     batch as dropped is conservative: the aggregator may have received
//     some of those events.
//   - EVENT_STAT_TYPE_DROPPED_MALFORMED: the event could not be encoded
//     (for example a string field with invalid UTF-8) or its frame exceeds
//     wire.DefaultMaxFrameSize.
//
// Events leave the agent in the order Send accepted them; after a
// reconnect, the new connection starts with a new Hello and continues
// with the events still queued.
//
// The latest counters report (Client.SetCounters) is written after the
// events of the next batch, within a second when no events flow, and again
// on every new connection. Reports are cumulative, so only the latest one
// is kept and none is ever counted as dropped.
package transport
