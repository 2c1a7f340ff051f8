package counters

import (
	"sort"
	"sync"
	"sync/atomic"

	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// Component is the component name agent counts are reported under.
const Component = "agent"

type key struct {
	stat   xdrv1.EventStatType
	access xdrv1.XdrAccessType
}

// Set is a set of monotonically increasing counters. The zero value is
// ready to use. It is safe for concurrent use.
type Set struct {
	mu sync.RWMutex
	m  map[key]*atomic.Uint64
}

func (s *Set) counter(k key) *atomic.Uint64 {
	s.mu.RLock()
	c := s.m[k]
	s.mu.RUnlock()
	if c != nil {
		return c
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[key]*atomic.Uint64)
	}
	if c = s.m[k]; c == nil {
		c = new(atomic.Uint64)
		s.m[k] = c
	}
	return c
}

// Add adds n to the count of stat for access type access (which may be
// XDR_ACCESS_TYPE_UNSPECIFIED when the access is unknown, e.g. a netlink
// overrun).
func (s *Set) Add(stat xdrv1.EventStatType, access xdrv1.XdrAccessType, n uint64) {
	if n == 0 {
		return
	}
	s.counter(key{stat, access}).Add(n)
}

// Get returns the count of stat for access.
func (s *Set) Get(stat xdrv1.EventStatType, access xdrv1.XdrAccessType) uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if c := s.m[key{stat, access}]; c != nil {
		return c.Load()
	}
	return 0
}

// Total returns the sum of stat over all access types.
func (s *Set) Total(stat xdrv1.EventStatType) uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var n uint64
	for k, c := range s.m {
		if k.stat == stat {
			n += c.Load()
		}
	}
	return n
}

// Snapshot returns every non-zero count as EventInfo entries for
// component, ordered by statistic type then access type.
func (s *Set) Snapshot(component string) []*xdrv1.EventInfo {
	s.mu.RLock()
	out := make([]*xdrv1.EventInfo, 0, len(s.m))
	for k, c := range s.m {
		if v := c.Load(); v != 0 {
			out = append(out, &xdrv1.EventInfo{Component: component, EventType: k.access, EventStatType: k.stat, Count: v})
		}
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].EventStatType != out[j].EventStatType {
			return out[i].EventStatType < out[j].EventStatType
		}
		return out[i].EventType < out[j].EventType
	})
	return out
}
