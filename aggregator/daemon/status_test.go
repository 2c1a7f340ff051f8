package daemon

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/xdr-sensor/xdr/agent/counters"
	"github.com/xdr-sensor/xdr/agent/transport"
	"github.com/xdr-sensor/xdr/aggregator/control"
	"github.com/xdr-sensor/xdr/proto/wire"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// The control socket reports the connected agent with its method and
// kernel features, the events received, drops by reason and the bundles.
func TestStatus(t *testing.T) {
	dir := t.TempDir()
	socket, ctlSocket := filepath.Join(dir, "agent.sock"), filepath.Join(dir, "control.sock")
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() {
		done <- Run(ctx, &Options{
			Socket: socket, ControlSocket: ctlSocket, DataDir: filepath.Join(dir, "data"), Offline: true,
			FlushInterval: 20 * time.Millisecond, Ready: func() { close(ready) }, Version: "v9",
			DataMaxBytes: 64 << 20, RawEvents: RawAll,
		})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("daemon did not start: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	hello := &xdrv1.Hello{
		AgentId: "agent-7", SchemaVersion: wire.SchemaVersion, AgentVersion: "v9", Hostname: "ecu-1", Pid: 77,
		Method: xdrv1.CollectorMethod_COLLECTOR_METHOD_PROC_CONNECTOR, MethodReason: "eBPF collector unavailable: no BTF",
		KernelFeatures: []*xdrv1.KernelFeature{{Name: "btf", Detail: "no BTF"}},
	}
	var counts counters.Set
	c, err := transport.New(&transport.Options{Socket: socket, Counters: &counts, Hello: func() *xdrv1.Hello { return hello }})
	if err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithCancel(context.Background())
	cdone := make(chan struct{})
	go func() { c.Run(cctx); close(cdone) }()
	defer func() { ccancel(); <-cdone }()
	const n = 50
	for i := uint64(1); i <= n; i++ {
		c.Send(sampleEvent(i))
	}
	// A malformed frame: counted as a drop, its connection closed.
	if conn, err := net.Dial("unix", socket); err == nil {
		conn.Write([]byte{0, 0, 0, 3, 0xff, 0xff, 0xff})
		conn.Close()
	}

	var st *control.Status
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err = control.Query(context.Background(), ctlSocket)
		if err != nil {
			t.Fatal(err)
		}
		if (st.Events.Received == n && st.Events.Drops["dropped_malformed"] == 1 && st.Bundles.Records >= n) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st.Events.Received != n || st.Events.Drops["dropped_malformed"] != 1 {
		t.Errorf("events = %+v, want %d received and 1 malformed", st.Events, n)
	}
	if st.Mode != "offline" || st.Version != "v9" || st.DataDir != filepath.Join(dir, "data") || st.Bundles.QuotaBytes != 64<<20 {
		t.Errorf("daemon fields: %+v", st)
	}
	if len(st.Agents) != 1 {
		t.Fatalf("agents = %+v, want one", st.Agents)
	}
	a := st.Agents[0]
	want := control.Agent{
		ID: "agent-7", Version: "v9", Hostname: "ecu-1", PID: 77, Method: "proc",
		MethodReason: "eBPF collector unavailable: no BTF", KernelFeatures: []control.Feature{{Name: "btf", Detail: "no BTF"}},
		Events: n,
	}
	a.UID, a.ConnectedAt = 0, time.Time{}
	if d := cmp.Diff(want, a); d != "" {
		t.Errorf("agent (-want +got):\n%s", d)
	}
	if len(st.Rules.Enabled) == 0 {
		t.Error("no rules reported enabled")
	}
	if st.Bundles.DiskBytes == 0 || st.Bundles.Open == "" {
		t.Errorf("bundles = %+v, want the open bundle on disk", st.Bundles)
	}
}
