package stats

import (
	"testing"

	"google.golang.org/protobuf/proto"

	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// FuzzAgentCounters feeds reports decoded from arbitrary bytes (they come
// from another process) twice under one agent key: the first counts the
// accepted entries, the repeat counts nothing but its rejected entries
// again, and the state stays bounded.
func FuzzAgentCounters(f *testing.F) {
	for _, m := range []*xdrv1.AgentCounters{
		report(10, info("agent", exec, sent, 10), info("", none, full, 2)),
		report(1, info("agent", exec, sent, 5), info("agent", exec, sent, 3)),
		report(0, info("x", open, received, 1<<63)),
	} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "a")
	}
	f.Fuzz(func(t *testing.T, data []byte, agentKey string) {
		m := new(xdrv1.AgentCounters)
		if proto.Unmarshal(data, m) != nil {
			return
		}
		c, s := newCollector(Options{})
		c.AgentCounters(agentKey, m)
		c.Tick(sec(10))
		c.AgentCounters(agentKey, m)
		c.Tick(sec(20))

		rejected := func(r []*xdrv1.Statistics) (counted, rejected uint64) {
			for _, rec := range r {
				for _, ei := range rec.GetEventInfo() {
					if ei.GetComponent() == ComponentAggregator && ei.GetEventStatType() == bad {
						rejected += ei.GetCount()
					} else {
						counted += ei.GetCount()
					}
				}
			}
			return counted, rejected
		}
		got := s.take()
		var first, second []*xdrv1.Statistics
		for _, r := range got {
			if r.GetTimestamp() == sec(10).Unix() {
				first = append(first, r)
			} else {
				second = append(second, r)
			}
		}
		_, rej1 := rejected(first)
		counted2, rej2 := rejected(second)
		if counted2 != 0 || rej2 != rej1 {
			t.Errorf("repeated report counted %d and rejected %d entries, want 0 and %d", counted2, rej2, rej1)
		}
		st := c.agents[agentKey]
		if len(c.agents) != 1 || st == nil || len(st.last) > maxAgentCounters {
			t.Errorf("%d agent states, %d counters", len(c.agents), len(st.last))
		}
		for k := range st.last {
			if len(k.component) > maxComponentLen || k.component == "" {
				t.Errorf("kept component %q", k.component)
			}
		}
	})
}
