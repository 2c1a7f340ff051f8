package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xdr-sensor/xdr/agent/counters"
	"github.com/xdr-sensor/xdr/agent/transport"
	"github.com/xdr-sensor/xdr/aggregator/bundle"
	"github.com/xdr-sensor/xdr/proto/wire"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// start runs the daemon in the background; the returned function stops
// it and returns Run's error.
func start(tb testing.TB, dir string, raw RawEvents) (socket string, stop func() error) {
	tb.Helper()
	socket = filepath.Join(dir, "agent.sock")
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, &Options{
			Socket: socket, DataDir: filepath.Join(dir, "data"), Offline: true,
			FlushInterval: 50 * time.Millisecond, Ready: func() { close(ready) }, RawEvents: raw,
			VehicleID: "vin-1", ModelID: "model-1", CustomerGUID: "cust-1",
		})
	}()
	select {
	case <-ready:
	case err := <-done:
		tb.Fatalf("daemon did not start: %v", err)
	}
	return socket, func() error { cancel(); return <-done }
}

func client(tb testing.TB, socket string, counts *counters.Set) (*transport.Client, func()) {
	tb.Helper()
	c, err := transport.New(&transport.Options{
		Socket: socket, Counters: counts, QueueSize: 1 << 16,
		Hello: func() *xdrv1.Hello { return &xdrv1.Hello{AgentId: "bench", SchemaVersion: wire.SchemaVersion} },
	})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	return c, func() { cancel(); <-done }
}

// sampleEvent is an exec event of typical size (about 600 bytes encoded).
func sampleEvent(seq uint64) *xdrv1.ActEvent {
	p := &xdrv1.Process{
		Pid: uint32(1000 + seq%30000), Tgid: uint32(1000 + seq%30000), Ppid: 999, InstanceId: seq * 7919,
		Exe: "/usr/bin/true", Argv: []string{"/bin/true", "--flag", "value"}, Cwd: "/home/user", Comm: "true",
		Creds:     &xdrv1.Credentials{Uid: 1000, Euid: 1000, UserName: "user", EuserName: "user", GroupName: "user", EgroupName: "user"},
		ExeHashes: &xdrv1.Hashes{Md5: strings.Repeat("a", 32), Sha1: strings.Repeat("b", 40), Sha256: strings.Repeat("c", 64), Entropy: 5.5},
		Ancestors: []*xdrv1.Ancestor{{Pid: 999, Exe: "/usr/bin/bash", Comm: "bash"}, {Pid: 1, Exe: "/sbin/init", Comm: "init"}},
		Cgroup:    "/user.slice/user-1000.slice/session-1.scope",
	}
	return &xdrv1.ActEvent{
		Seq: seq, TimestampNs: time.Now().UnixNano(), EventType: xdrv1.XdrEventType_XDR_EVENT_TYPE_PROCESS,
		AccessType: xdrv1.XdrAccessType_XDR_ACCESS_TYPE_PROCESS_EXECUTE, Subject: p,
		Target: &xdrv1.ActEvent_File{File: &xdrv1.File{Path: "/usr/bin/true", Size: 39272, Hashes: p.ExeHashes}},
	}
}

// bundleCounts are what the bundles in a directory hold.
type bundleCounts struct {
	events, sealed, footprints int
	// footprintEvents sums the latest count of each footprint.
	footprintEvents uint64
	stats           []*xdrv1.Statistics
}

// countEvents reads every bundle in dir and counts event records.
func countEvents(tb testing.TB, dir string) (events int, sealed int) {
	c := readAll(tb, dir)
	return c.events, c.sealed
}

func readAll(tb testing.TB, dir string) bundleCounts {
	tb.Helper()
	var c bundleCounts
	latest := map[uint64]uint64{}
	files, _ := filepath.Glob(filepath.Join(dir, "*"+bundle.Ext))
	for _, f := range files {
		err := bundle.ReadFile(f, func(r *xdrv1.Record) error {
			switch {
			case r.GetEvent() != nil:
				c.events++
			case r.GetTrailer() != nil:
				c.sealed++
			case r.GetFootprint() != nil:
				c.footprints++
				latest[r.GetFootprint().GetHashId()] = r.GetFootprint().GetCount()
			case r.GetStatistics() != nil:
				c.stats = append(c.stats, r.GetStatistics())
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	for _, n := range latest {
		c.footprintEvents += n
	}
	return c
}

func TestRunWritesEventsAndSealsOnStop(t *testing.T) {
	dir := t.TempDir()
	socket, stop := start(t, dir, RawAll)
	var counts counters.Set
	c, stopClient := client(t, socket, &counts)
	const n = 2000
	for i := uint64(1); i <= n; i++ {
		if !c.Send(sampleEvent(i)) {
			t.Fatalf("event %d dropped", i)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.Stats().Sent < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	stopClient()
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	parts, _ := filepath.Glob(filepath.Join(dir, "data", "*"+bundle.PartExt))
	if len(parts) != 0 {
		t.Errorf("unsealed bundles left after stop: %v", parts)
	}
	got, sealed := countEvents(t, filepath.Join(dir, "data"))
	if got != n || sealed == 0 {
		t.Errorf("bundles hold %d events in %d sealed bundles, want %d in at least one", got, sealed, n)
	}
	guid, err := os.ReadFile(filepath.Join(dir, "data", agentGUIDFile))
	if err != nil || len(strings.TrimSpace(string(guid))) != 36 {
		t.Errorf("agent guid not persisted: %q, %v", guid, err)
	}
}

func TestRunOnlineNeedsURL(t *testing.T) {
	err := Run(context.Background(), &Options{Socket: filepath.Join(t.TempDir(), "s"), DataDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "upload URL") {
		t.Fatalf("Run online without an upload URL = %v, want an error saying so", err)
	}
}

func TestLoadOrCreateGUID(t *testing.T) {
	dir := t.TempDir()
	a, err := LoadOrCreateGUID(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadOrCreateGUID(dir)
	if err != nil || a != b {
		t.Fatalf("second load = %q, %v; want %q", b, err, a)
	}
	os.WriteFile(filepath.Join(dir, agentGUIDFile), []byte("garbage"), 0o600)
	if _, err := LoadOrCreateGUID(dir); err == nil {
		t.Fatal("damaged guid file accepted")
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime))
}

// BenchmarkPipeline measures ActEvents per second through the whole
// aggregation path: framing, Unix socket, server, bundle writer and zstd,
// with both ends in this process, and the CPU they spend per event.
func BenchmarkPipeline(b *testing.B) {
	dir := b.TempDir()
	socket, stop := start(b, dir, RawAll)
	var counts counters.Set
	c, stopClient := client(b, socket, &counts)
	evs := make([]*xdrv1.ActEvent, 1024)
	for i := range evs {
		evs[i] = sampleEvent(uint64(i + 1))
	}
	cpu0, t0 := cpuTime(), time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for !c.Send(evs[i%len(evs)]) {
			time.Sleep(time.Millisecond) // queue full: wait, never drop here
		}
	}
	for c.Stats().Sent < uint64(b.N) {
		time.Sleep(time.Millisecond)
	}
	stopClient()
	if err := stop(); err != nil && !errors.Is(err, context.Canceled) {
		b.Fatal(err)
	}
	b.StopTimer()
	elapsed, cpu := time.Since(t0), cpuTime()-cpu0
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "us-cpu/event")
	if got, _ := countEvents(b, filepath.Join(dir, "data")); got != b.N {
		b.Fatalf("bundles hold %d of %d events", got, b.N)
	}
}

// By default only footprints (and critical events) are kept: 2000 execs of
// 1024 distinct subjects become 1024 footprints whose counts add up to
// 2000, and the statistics carry the identity and the counts.
func TestRunFootprintsAndStatistics(t *testing.T) {
	dir := t.TempDir()
	socket, stop := start(t, dir, "")
	var counts counters.Set
	c, stopClient := client(t, socket, &counts)
	const n = 2000
	for i := uint64(1); i <= n; i++ {
		ev := sampleEvent(i)
		ev.Subject.Exe = fmt.Sprintf("/usr/bin/tool%d", i%1024)
		c.Send(ev)
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.Stats().Sent < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	stopClient()
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	got := readAll(t, filepath.Join(dir, "data"))
	if got.events != 0 || got.footprints != 1024 || got.footprintEvents != n {
		t.Errorf("bundles: %d raw events, %d footprints standing for %d events; want 0, 1024, %d", got.events, got.footprints, got.footprintEvents, n)
	}
	if len(got.stats) == 0 {
		t.Fatal("no statistics record")
	}
	var received uint64
	for _, st := range got.stats {
		if st.GetVehicleId() != "vin-1" || st.GetModelId() != "model-1" || st.GetCustomerGuid() != "cust-1" || len(st.GetAgentGuid()) != 36 {
			t.Errorf("statistics identity: %v", st)
		}
		for _, ei := range st.GetEventInfo() {
			if ei.GetComponent() == "aggregator" && ei.GetEventStatType() == xdrv1.EventStatType_EVENT_STAT_TYPE_RECEIVED {
				received += ei.GetCount()
			}
		}
	}
	if received != n {
		t.Errorf("statistics count %d received events, want %d", received, n)
	}
}
