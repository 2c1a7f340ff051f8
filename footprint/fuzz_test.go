package footprint

import (
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// checkInvariants verifies the Generator's bookkeeping: every entry on
// the LRU list and on exactly one of the changed and clean queues, the
// byte count the sum of the entries' estimates and of the subject strings
// they point to (each once, with the right reference count), both bounds
// held.
func checkInvariants(t *testing.T, g *Generator) {
	t.Helper()
	count := func(l *list) (n int) {
		for e := l.front; e != nil; e = e.links[l.link].next {
			n++
		}
		return n
	}
	var bytes int64
	refs := make(map[*subjectStrings]int)
	for e := g.lru.front; e != nil; e = e.links[lruLink].next {
		bytes += e.size
		if g.entries[e.id] != e {
			t.Fatalf("entry %#x on the LRU list but not in the map", e.id)
		}
		if e.subject.set != (e.subject.str != nil) {
			t.Fatalf("entry %#x: subject set %v, strings %p", e.id, e.subject.set, e.subject.str)
		}
		if str := e.subject.str; str != nil {
			if refs[str] == 0 {
				bytes += str.size
			}
			refs[str]++
		}
	}
	for str, n := range refs {
		if str.refs != n {
			t.Fatalf("subject strings %q counted %d references, %d entries point to them", str.exe, str.refs, n)
		}
	}
	if g.last != nil && g.last.refs == 0 {
		t.Fatalf("last subject strings %q kept with no entry pointing to them", g.last.exe)
	}
	n := len(g.entries)
	if lru, changed, clean := count(&g.lru), count(&g.changed), count(&g.clean); lru != n || changed+clean != n {
		t.Fatalf("%d entries: %d on the LRU list, %d changed + %d clean", n, lru, changed, clean)
	}
	for e := g.changed.front; e != nil; e = e.links[queueLink].next {
		if !e.changed {
			t.Fatalf("entry %#x on the changed queue is not marked changed", e.id)
		}
	}
	if bytes != g.bytes || g.bytes > g.maxBytes || n > g.maxEntries {
		t.Fatalf("bytes %d (entries sum to %d), budget %d; %d entries, max %d", g.bytes, bytes, g.maxBytes, n, g.maxEntries)
	}
}

// FuzzAdd adds an event decoded from arbitrary bytes and variants of it
// (other pids, repeat counts, paths) to a small Generator. Without Tick,
// every footprint is emitted exactly once, when evicted or by FlushAll,
// so the emitted counts must add up to the events' counts: nothing is
// lost or doubled, whatever the eviction.
func FuzzAdd(f *testing.F) {
	seeds := []*xdrv1.ActEvent{
		execEvent(10, "/usr/bin/id", at(1)),
		connEvent(10, 443, 40000, at(2)),
		dnsEvent("Example.COM", at(3)),
		{AccessType: query, Subject: &xdrv1.Process{Comm: "kworker", Argv: make([]string, 40)}},
	}
	for i, ev := range seeds {
		b, err := proto.Marshal(ev)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint8(i*5), uint8(i), uint16(i*700))
	}
	f.Fuzz(func(t *testing.T, data []byte, variants, maxEntries uint8, maxBytes uint16) {
		ev := new(xdrv1.ActEvent)
		if proto.Unmarshal(data, ev) != nil {
			return
		}
		var emittedCount uint64
		g := New(&Options{
			MaxEntries: int(maxEntries%8) + 1,
			MaxBytes:   int64(maxBytes) + 1,
			Emit: func(fp *xdrv1.Footprint) {
				emittedCount += fp.GetCount()
				if _, err := proto.Marshal(fp); err != nil {
					t.Fatalf("emitted footprint does not marshal: %v", err)
				}
			},
			Now: func() time.Time { return t0 },
		})
		var want uint64
		add := func(ev *xdrv1.ActEvent) {
			g.Add(ev)
			want += max(ev.GetRepeatCount(), 1)
			checkInvariants(t, g)
		}
		add(ev)
		for i := range int(variants % 32) {
			v := proto.Clone(ev).(*xdrv1.ActEvent)
			if v.Subject != nil {
				v.Subject.Pid = uint32(i)
			}
			v.RepeatCount = uint64(i % 3)
			if f := v.GetFile(); f != nil {
				f.Path += strconv.Itoa(i % 4)
			}
			add(v)
			add(ev)
		}
		g.FlushAll()
		checkInvariants(t, g)
		if emittedCount != want {
			t.Errorf("emitted counts add up to %d, want %d", emittedCount, want)
		}
		st := g.Stats()
		if st.New+st.Deduplicated != uint64(2*(variants%32)+1) {
			t.Errorf("stats %+v after %d events", st, 2*(variants%32)+1)
		}
	})
}
