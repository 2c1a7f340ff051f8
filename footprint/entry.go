package footprint

import (
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// entry is one footprint in memory. It holds the metadata in compact form
// (no proto messages, whose per-message overhead would cost more than the
// fields) and builds a fresh xdrv1.Footprint for each emission.
type entry struct {
	links [2]links // lruLink and queueLink

	id                  uint64
	count               uint64
	firstSeen, lastSeen int64 // Unix seconds
	lastEmit            int64 // Unix nanoseconds, 0 before the first emission
	size                int64 // estimate() when last computed, included in Generator.bytes
	eventType           xdrv1.XdrEventType
	accessType          xdrv1.XdrAccessType
	changed             bool

	subject subject
	object  object // nil when the activity has no target
	// block holds the bytes of the object's strings when the entry was
	// created (see pack). Later events may point some fields elsewhere.
	block string
}

// load refreshes the entry's metadata from ev (the latest event of its
// activity), all but its subject's strings: it returns those the entry
// must point to, for the caller to attach.
func (g *Generator) load(e *entry, ev *xdrv1.ActEvent) *subjectStrings {
	e.eventType = ev.GetEventType()
	e.accessType = ev.GetAccessType()
	e.subject.loadNumbers(ev.GetSubject())
	if e.object == nil || !e.object.load(ev) {
		// First event, or (only on a hash collision) a target of another
		// kind.
		e.object = newObject(ev)
	}
	return g.stringsFor(e.subject.str, ev.GetSubject())
}

// footprint builds the record to emit.
func (e *entry) footprint() *xdrv1.Footprint {
	fp := &xdrv1.Footprint{
		HashId:     e.id,
		FirstSeen:  e.firstSeen,
		LastSeen:   e.lastSeen,
		Count:      e.count,
		EventType:  e.eventType,
		AccessType: e.accessType,
		Subject:    e.subject.proto(),
	}
	if e.object != nil {
		e.object.put(fp)
	}
	return fp
}

// Intrusive doubly linked lists: an entry is on the LRU list and on one
// of the changed/clean queues at the same time, through two link pairs,
// so that moving it costs no allocation.
const (
	lruLink = iota
	queueLink
)

type links struct{ prev, next *entry }

type list struct {
	front, back *entry
	link        int // index into entry.links
}

func (l *list) pushBack(e *entry) {
	ln := &e.links[l.link]
	ln.prev, ln.next = l.back, nil
	if l.back != nil {
		l.back.links[l.link].next = e
	} else {
		l.front = e
	}
	l.back = e
}

func (l *list) remove(e *entry) {
	ln := &e.links[l.link]
	if ln.prev != nil {
		ln.prev.links[l.link].next = ln.next
	} else {
		l.front = ln.next
	}
	if ln.next != nil {
		ln.next.links[l.link].prev = ln.prev
	} else {
		l.back = ln.prev
	}
	ln.prev, ln.next = nil, nil
}

func (l *list) moveToBack(e *entry) {
	if l.back == e {
		return
	}
	l.remove(e)
	l.pushBack(e)
}
