package ebpf

import (
	"cmp"
	"math"
	"slices"
	"time"
)

// A process that repeats what it did lately, such as a shell that opens
// /dev/null for every child or a daemon that connects to the same peer in
// a loop, would send one event per repeat. Read keeps each process's last
// few reported file, memory (but image load) and network events. An identical event
// (Event.sameAs) is folded into the reported one while the same Read
// still returns it; after that, it is counted and held, and the count
// goes out as a copy of the event (Count = the events held) at the first
// of:
//   - Options.RepeatHold after the oldest count still held;
//   - an exec, exit, set*id, PR_SET_NAME or setsid of the process, whose
//     later events describe it differently (the count goes first);
//   - the table filling up (maxRecent events over all processes);
//   - Close.
//
// The first of a series is reported at once: the hold delays counts, never
// a new activity. Counts stay exact.

const (
	// recentPerProcess is how many of a process's last reported events
	// later ones are compared with.
	recentPerProcess = 4
	// maxRecent bounds the recent events kept over all processes.
	maxRecent = 4096
)

// recentEvent is one of a process's recent reported events and the
// identical events since that were not reported yet.
type recentEvent struct {
	ev    Event
	batch uint64 // readLocked call that returned ev
	idx   int    // index of ev in that call's events
	held  uint32 // identical events since, not reported yet
	time  uint64 // Header.Time of the latest of them
}

// holdable reports whether later identical events fold into this one.
// An image load is not: the kernel reports it once per process image and
// file already.
func (e *Event) holdable() bool {
	return e.File != nil || (e.Memory != nil && e.Kind != KindLoadImage) || e.Net != nil
}

// redescribes reports whether the process's events after this one
// describe it differently (another image, other credentials or name), so
// that counts held for it must go out first.
func (e *Event) redescribes() bool {
	switch e.Kind {
	case KindExec, KindExit, KindSetID, KindComm, KindSetsid:
		return true
	}
	return false
}

// note reports n events identical to ev: it folds them into the process's
// recent identical event (in dst if this Read returns it, else held), or
// appends ev with Count n to dst.
func (c *Collector) note(dst []Event, ev *Event, n uint32) []Event {
	tgid := ev.Header.TGID
	if ev.holdable() {
		rs := c.recent[tgid]
		for i := range rs {
			r := &rs[i]
			if !ev.sameAs(&r.ev) {
				continue
			}
			if r.batch == c.batch && r.idx < len(dst) && dst[r.idx].Count <= math.MaxUint32-n {
				dst[r.idx].Count += n
				c.merged.Add(uint64(n))
				return dst
			}
			if r.held > math.MaxUint32-n {
				dst = c.release(dst, r)
			}
			if r.held == 0 {
				if c.held == 0 {
					c.heldSince = time.Now()
				}
				c.held++
			}
			r.held += n
			r.time = ev.Header.Time
			return dst
		}
	} else if ev.redescribes() {
		dst = c.forget(dst, tgid)
	}
	i := len(dst)
	ev.Count = n
	dst = append(dst, *ev)
	c.events.Add(1)
	c.merged.Add(uint64(n - 1))
	if ev.holdable() {
		dst = c.remember(dst, recentEvent{ev: *ev, batch: c.batch, idx: i})
	}
	return dst
}

// remember adds r to its process's recent events, in place of the oldest
// when there are recentPerProcess.
func (c *Collector) remember(dst []Event, r recentEvent) []Event {
	tgid := r.ev.Header.TGID
	rs := c.recent[tgid]
	if len(rs) == recentPerProcess {
		dst = c.release(dst, &rs[0])
		copy(rs, rs[1:])
		rs[len(rs)-1] = r
		return dst
	}
	if c.nrecent >= maxRecent {
		dst = c.releaseAll(dst)
		clear(c.recent)
		c.nrecent = 0
		rs = nil
	}
	c.recent[tgid] = append(rs, r)
	c.nrecent++
	return dst
}

// release appends to dst the events held for r, as a copy of its event.
func (c *Collector) release(dst []Event, r *recentEvent) []Event {
	if r.held == 0 {
		return dst
	}
	ev := r.ev
	ev.Header.Time, ev.Count = r.time, r.held
	c.events.Add(1)
	c.merged.Add(uint64(r.held - 1))
	r.held = 0
	c.held--
	return append(dst, ev)
}

// forget releases what is held for process tgid and forgets its recent
// events.
func (c *Collector) forget(dst []Event, tgid uint32) []Event {
	rs, ok := c.recent[tgid]
	if !ok {
		return dst
	}
	for i := range rs {
		dst = c.release(dst, &rs[i])
	}
	delete(c.recent, tgid)
	c.nrecent -= len(rs)
	return dst
}

// releaseDue releases everything held once the oldest count has been held
// for the hold time.
func (c *Collector) releaseDue(dst []Event) []Event {
	if c.held == 0 || time.Since(c.heldSince) < c.hold {
		return dst
	}
	return c.releaseAll(dst)
}

// releaseAll appends to dst everything held, oldest first.
func (c *Collector) releaseAll(dst []Event) []Event {
	if c.held == 0 {
		return dst
	}
	from := len(dst)
	for _, rs := range c.recent {
		for i := range rs {
			dst = c.release(dst, &rs[i])
		}
	}
	slices.SortStableFunc(dst[from:], func(a, b Event) int { return cmp.Compare(a.Header.Time, b.Header.Time) })
	return dst
}
