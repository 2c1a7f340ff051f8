package control

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Status is the state of a running aggregator and of the agents connected
// to it. Its JSON form (field names in snake_case) is what `xdr-aggregator
// status --json` prints; fields are only ever added.
type Status struct {
	Version   string    `json:"version"`
	Mode      string    `json:"mode"` // "offline" or "online"
	PID       int       `json:"pid"`
	StartedAt time.Time `json:"started_at"`
	Socket    string    `json:"socket"`
	DataDir   string    `json:"data_dir"`
	// Agents are the connected agents, in connection order.
	Agents     []Agent    `json:"agents"`
	Events     Events     `json:"events"`
	Footprints Footprints `json:"footprints"`
	Bundles    Bundles    `json:"bundles"`
	// Upload is set in online mode.
	Upload *Upload `json:"upload,omitempty"`
	Rules  Rules   `json:"rules"`
}

// Agent is one connected agent, as its hello describes it.
type Agent struct {
	ID       string `json:"id"`
	Version  string `json:"version"`
	Hostname string `json:"hostname"`
	PID      uint32 `json:"pid"`
	UID      uint32 `json:"uid"`
	// Method is the collector in use: "ebpf" or "proc".
	Method         string    `json:"method"`
	MethodReason   string    `json:"method_reason"`
	KernelFeatures []Feature `json:"kernel_features"`
	ConnectedAt    time.Time `json:"connected_at"`
	Events         uint64    `json:"events"`
}

// Feature is a kernel facility an agent probed.
type Feature struct {
	Name      string `json:"name"`
	Available bool   `json:"available"`
	Detail    string `json:"detail"`
}

// Events counts what the aggregator received and lost since it started.
type Events struct {
	Received uint64 `json:"received"`
	// PerSecond is the receive rate over the last ten seconds or so.
	PerSecond float64 `json:"per_second"`
	// Drops are the events lost anywhere, by reason (the EventStatType
	// name without its prefix, lower case: "dropped_queue_full", ...),
	// from this aggregator and from the agents' reports. Reasons with no
	// loss are left out.
	Drops map[string]uint64 `json:"drops"`
	// Filtered counts the events the agents left out as configured
	// (exclude-reads), not lost.
	Filtered uint64 `json:"filtered"`
}

// Footprints describes the footprints held in memory.
type Footprints struct {
	Held         int    `json:"held"`
	Bytes        int64  `json:"bytes"`
	New          uint64 `json:"new"`
	Deduplicated uint64 `json:"deduplicated"`
	Evicted      uint64 `json:"evicted"`
}

// Bundles describes the bundle files in the data directory.
type Bundles struct {
	Sealed      int    `json:"sealed"`
	SealedBytes int64  `json:"sealed_bytes"`
	Critical    int    `json:"critical"`
	Open        string `json:"open,omitempty"`
	// DiskBytes is what all bundle files take, the open one included;
	// QuotaBytes the limit of the sealed ones (0: none).
	DiskBytes  int64 `json:"disk_bytes"`
	QuotaBytes int64 `json:"quota_bytes"`
	// Since start: records written, bundles sealed, bundles deleted for
	// the quota, records lost to a failing disk.
	Records        uint64 `json:"records"`
	SealedSinceRun uint64 `json:"sealed_since_start"`
	QuotaDeleted   uint64 `json:"quota_deleted"`
	Lost           uint64 `json:"lost"`
}

// Upload describes online mode's uploader.
type Upload struct {
	URL           string            `json:"url"`
	Pending       int               `json:"pending"`
	PendingBytes  int64             `json:"pending_bytes"`
	Uploaded      uint64            `json:"uploaded"`
	UploadedBytes uint64            `json:"uploaded_bytes"`
	Failures      map[string]uint64 `json:"failures"`
	LastSuccess   time.Time         `json:"last_success,omitzero"`
	LastError     string            `json:"last_error,omitempty"`
	LastErrorAt   time.Time         `json:"last_error_at,omitzero"`
	NextAttempt   time.Time         `json:"next_attempt,omitzero"`
}

// Rules describes the critical-event rules.
type Rules struct {
	Enabled []string `json:"enabled"`
	Hits    uint64   `json:"hits"`
}

// Print writes st for a person to read, one component per paragraph.
func Print(w io.Writer, st *Status) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format+"\n", args...) }
	p("xdr-aggregator\t%s (pid %d), up %s", st.Version, st.PID, time.Since(st.StartedAt).Truncate(time.Second))
	p("mode\t%s", st.Mode)
	p("socket\t%s", st.Socket)
	p("data directory\t%s", st.DataDir)
	p("")
	if len(st.Agents) == 0 {
		p("agents\tnone connected")
	}
	for i, a := range st.Agents {
		p("agent %d\t%s %s on %s (pid %d, uid %d), connected %s", i+1, a.ID, a.Version, a.Hostname, a.PID, a.UID, a.ConnectedAt.Format(time.RFC3339))
		p("  collector\t%s: %s", a.Method, a.MethodReason)
		for _, f := range a.KernelFeatures {
			state := "missing"
			if f.Available {
				state = "ok"
			}
			p("  kernel %s\t%s: %s", f.Name, state, f.Detail)
		}
		p("  events\t%d", a.Events)
	}
	p("")
	p("events received\t%d (%.1f/s)", st.Events.Received, st.Events.PerSecond)
	if len(st.Events.Drops) == 0 {
		p("drops\tnone")
	}
	for _, r := range slices.Sorted(maps.Keys(st.Events.Drops)) {
		p("drops %s\t%d", strings.TrimPrefix(r, "dropped_"), st.Events.Drops[r])
	}
	if st.Events.Filtered > 0 {
		p("filtered by the agents\t%d", st.Events.Filtered)
	}
	f := st.Footprints
	p("footprints held\t%d (%s); new %d, deduplicated %d, evicted %d", f.Held, bytesText(f.Bytes), f.New, f.Deduplicated, f.Evicted)
	p("rules\t%d enabled, %d hits", len(st.Rules.Enabled), st.Rules.Hits)
	p("")
	b := st.Bundles
	quota := "no quota"
	if b.QuotaBytes > 0 {
		quota = "quota " + bytesText(b.QuotaBytes)
	}
	p("bundles\t%d sealed (%s, %d critical), %s", b.Sealed, bytesText(b.SealedBytes), b.Critical, quota)
	p("disk use\t%s", bytesText(b.DiskBytes))
	if b.Open != "" {
		p("open bundle\t%s", b.Open)
	}
	p("since start\t%d records, %d bundles sealed, %d deleted for the quota, %d records lost", b.Records, b.SealedSinceRun, b.QuotaDeleted, b.Lost)
	if u := st.Upload; u != nil {
		p("")
		p("upload\t%s", u.URL)
		p("  pending\t%d bundles (%s)", u.Pending, bytesText(u.PendingBytes))
		p("  uploaded\t%d bundles (%s)", u.Uploaded, bytesText(int64(u.UploadedBytes)))
		if !u.LastSuccess.IsZero() {
			p("  last success\t%s", u.LastSuccess.Format(time.RFC3339))
		}
		if u.LastError != "" {
			p("  last error\t%s: %s", u.LastErrorAt.Format(time.RFC3339), u.LastError)
		}
		if !u.NextAttempt.IsZero() {
			p("  next attempt\t%s", u.NextAttempt.Format(time.RFC3339))
		}
		for _, k := range slices.Sorted(maps.Keys(u.Failures)) {
			p("  failures %s\t%d", k, u.Failures[k])
		}
	}
	return tw.Flush()
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
