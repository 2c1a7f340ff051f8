package counters

import (
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

const (
	sent    = xdrv1.EventStatType_EVENT_STAT_TYPE_SENT
	full    = xdrv1.EventStatType_EVENT_STAT_TYPE_DROPPED_QUEUE_FULL
	exec    = xdrv1.XdrAccessType_XDR_ACCESS_TYPE_PROCESS_EXECUTE
	create  = xdrv1.XdrAccessType_XDR_ACCESS_TYPE_PROCESS_CREATE
	unknown = xdrv1.XdrAccessType_XDR_ACCESS_TYPE_UNSPECIFIED
)

func TestSetConcurrentAdds(t *testing.T) {
	var s Set
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				s.Add(sent, exec, 1)
				s.Add(sent, create, 2)
			}
		}()
	}
	wg.Wait()
	s.Add(full, unknown, 5)
	s.Add(full, exec, 0) // zero adds create no entry
	want := []*xdrv1.EventInfo{
		{Component: "agent", EventType: create, EventStatType: sent, Count: 16000},
		{Component: "agent", EventType: exec, EventStatType: sent, Count: 8000},
		{Component: "agent", EventType: unknown, EventStatType: full, Count: 5},
	}
	if d := cmp.Diff(want, s.Snapshot(Component), protocmp.Transform()); d != "" {
		t.Errorf("snapshot (-want +got):\n%s", d)
	}
	if got := s.Total(sent); got != 24000 {
		t.Errorf("Total(sent) = %d, want 24000", got)
	}
	if got := s.Get(full, exec); got != 0 {
		t.Errorf("Get(full, exec) = %d, want 0", got)
	}
}
