package daemon

import (
	"cmp"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xdr-sensor/xdr/aggregator/bundle"
	"github.com/xdr-sensor/xdr/aggregator/control"
	"github.com/xdr-sensor/xdr/aggregator/server"
	"github.com/xdr-sensor/xdr/aggregator/upload"
	"github.com/xdr-sensor/xdr/footprint"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
	"github.com/xdr-sensor/xdr/stats"
)

// agents tracks the connected agents for the status command. Connection
// goroutines register and remove them; the control socket's goroutines
// read it.
type agents struct {
	mu sync.Mutex
	m  map[uint64]*agentEntry // by server.Peer.ID
}

type agentEntry struct {
	peer  *server.Peer
	since time.Time
}

// hello registers a connection once its hello arrived.
func (a *agents) hello(p *server.Peer) {
	a.mu.Lock()
	if a.m == nil {
		a.m = make(map[uint64]*agentEntry)
	}
	a.m[p.ID] = &agentEntry{peer: p, since: time.Now()}
	a.mu.Unlock()
}

func (a *agents) gone(p *server.Peer) {
	a.mu.Lock()
	delete(a.m, p.ID)
	a.mu.Unlock()
}

func (a *agents) status() []control.Agent {
	a.mu.Lock()
	entries := make([]*agentEntry, 0, len(a.m))
	for _, e := range a.m {
		entries = append(entries, e)
	}
	a.mu.Unlock()
	slices.SortFunc(entries, func(x, y *agentEntry) int { return cmp.Compare(x.peer.ID, y.peer.ID) })
	out := make([]control.Agent, 0, len(entries))
	for _, e := range entries {
		h := e.peer.Hello
		ag := control.Agent{
			ID: h.GetAgentId(), Version: h.GetAgentVersion(), Hostname: h.GetHostname(),
			PID: h.GetPid(), UID: e.peer.UID, Method: methodName(h.GetMethod()), MethodReason: h.GetMethodReason(),
			ConnectedAt: e.since, Events: e.peer.Events.Load(),
		}
		for _, f := range h.GetKernelFeatures() {
			ag.KernelFeatures = append(ag.KernelFeatures, control.Feature{Name: f.GetName(), Available: f.GetAvailable(), Detail: f.GetDetail()})
		}
		out = append(out, ag)
	}
	return out
}

func methodName(m xdrv1.CollectorMethod) string {
	switch m {
	case xdrv1.CollectorMethod_COLLECTOR_METHOD_EBPF:
		return "ebpf"
	case xdrv1.CollectorMethod_COLLECTOR_METHOD_PROC_CONNECTOR:
		return "proc"
	}
	return "unknown"
}

// snapshot is what only the writer goroutine can read (the footprint
// generator and the rules engine are its own), published once per tick.
type snapshot struct {
	footprints footprint.Stats
	hits       uint64
	perSecond  float64
}

// rateWindow is the span over which the receive rate is measured.
const rateWindow = 10 * time.Second

// rate measures events per second from a cumulative count sampled on
// every tick. Only the writer goroutine uses it.
type rate struct {
	samples []rateSample
}

type rateSample struct {
	at    time.Time
	count uint64
}

// add records count at now and returns the rate over the last
// rateWindow (or since the first sample).
func (r *rate) add(now time.Time, count uint64) float64 {
	r.samples = append(r.samples, rateSample{now, count})
	i := 0
	for i < len(r.samples)-2 && now.Sub(r.samples[i+1].at) >= rateWindow {
		i++
	}
	r.samples = r.samples[i:]
	first := r.samples[0]
	if d := now.Sub(first.at); d > 0 {
		return float64(count-first.count) / d.Seconds()
	}
	return 0
}

// status builds the control socket's answer; it runs on a control
// connection's goroutine.
func (d *daemonState) status() *control.Status {
	o := d.opts
	st := &control.Status{
		Version: o.Version, Mode: "offline", PID: os.Getpid(), StartedAt: d.started,
		Socket: o.Socket, DataDir: o.DataDir, Agents: d.agents.status(),
	}
	if !o.Offline {
		st.Mode = "online"
	}
	snap := d.snap.Load()
	if snap == nil {
		snap = new(snapshot)
	}
	totals := d.stats.Totals()
	st.Events = control.Events{PerSecond: snap.perSecond, Drops: make(map[string]uint64)}
	for k, n := range totals {
		switch {
		case k.Component == componentAggregator && k.Stat == xdrv1.EventStatType_EVENT_STAT_TYPE_RECEIVED:
			st.Events.Received += n
		case k.Stat == xdrv1.EventStatType_EVENT_STAT_TYPE_FILTERED:
			st.Events.Filtered += n
		}
		if name := k.Stat.String(); strings.HasPrefix(name, "EVENT_STAT_TYPE_DROPPED_") {
			st.Events.Drops[strings.ToLower(strings.TrimPrefix(name, "EVENT_STAT_TYPE_"))] += n
		}
	}
	f := snap.footprints
	st.Footprints = control.Footprints{Held: f.Entries, Bytes: f.Bytes, New: f.New, Deduplicated: f.Deduplicated, Evicted: f.Evicted}
	st.Rules = control.Rules{Enabled: d.ruleIDs, Hits: snap.hits}

	ws := d.w.Stats()
	st.Bundles = control.Bundles{
		QuotaBytes: o.DataMaxBytes, Records: ws.Records, SealedSinceRun: ws.Sealed,
		QuotaDeleted: ws.QuotaDeleted, Lost: ws.Lost,
	}
	if sealed, err := bundle.ListSealed(o.DataDir, ""); err == nil {
		for _, b := range sealed {
			st.Bundles.Sealed++
			st.Bundles.SealedBytes += b.Size
			if b.Critical {
				st.Bundles.Critical++
			}
		}
	}
	st.Bundles.DiskBytes = st.Bundles.SealedBytes
	if parts, err := filepath.Glob(filepath.Join(o.DataDir, "*"+bundle.PartExt)); err == nil {
		for _, p := range parts {
			if fi, err := os.Stat(p); err == nil {
				st.Bundles.DiskBytes += fi.Size()
				st.Bundles.Open = filepath.Base(p)
			}
		}
	}
	if d.upload != nil {
		st.Upload = d.upload()
	}
	return st
}

// daemonState is what the status command reads.
type daemonState struct {
	opts    *Options
	started time.Time
	agents  *agents
	stats   *stats.Collector
	w       *bundle.Writer
	ruleIDs []string
	snap    atomic.Pointer[snapshot]
	// upload reports the uploader's state in online mode.
	upload func() *control.Upload
}

func uploadStatus(url string, s upload.Stats) *control.Upload {
	u := &control.Upload{
		URL: url, Pending: s.Pending, PendingBytes: s.PendingBytes, Uploaded: s.Uploaded, UploadedBytes: s.UploadedBytes,
		LastSuccess: s.LastSuccess, LastError: s.LastError, LastErrorAt: s.LastErrorTime, NextAttempt: s.NextAttempt,
		Failures: make(map[string]uint64),
	}
	f := s.Failures
	for name, n := range map[string]uint64{
		"network": f.Network, "timeout": f.Timeout, "server": f.Server, "auth": f.Auth,
		"bad_ack": f.BadAck, "rejected": f.Rejected, "local": f.Local,
	} {
		if n > 0 {
			u.Failures[name] = n
		}
	}
	return u
}
