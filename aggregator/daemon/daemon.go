package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/xdr-sensor/xdr/aggregator/bundle"
	"github.com/xdr-sensor/xdr/aggregator/control"
	"github.com/xdr-sensor/xdr/aggregator/rules"
	"github.com/xdr-sensor/xdr/aggregator/server"
	"github.com/xdr-sensor/xdr/aggregator/upload"
	"github.com/xdr-sensor/xdr/footprint"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
	"github.com/xdr-sensor/xdr/stats"
)

// RawEvents says which raw ActEvents go into bundles besides footprints.
type RawEvents string

// Raw event settings.
const (
	RawNone     RawEvents = "none"     // footprints and statistics only
	RawCritical RawEvents = "critical" // plus every event that hit a rule, in full (default)
	RawAll      RawEvents = "all"      // plus every event
)

// ParseRawEvents parses a RawEvents setting.
func ParseRawEvents(s string) (RawEvents, error) {
	switch r := RawEvents(s); r {
	case RawNone, RawCritical, RawAll:
		return r, nil
	}
	return "", fmt.Errorf("raw events %q: want none, critical or all", s)
}

// Options configure Run.
type Options struct {
	Socket      string      // agent socket path (required)
	SocketMode  os.FileMode // default 0600
	SocketGroup int         // 0 or less keeps the group
	AllowedUIDs []uint32    // peers allowed; default root and the daemon's own uid
	DataDir     string      // bundles and state (required)
	// ControlSocket, when set, is where `xdr-aggregator status` asks for
	// the daemon's status; it gets SocketMode and SocketGroup too.
	ControlSocket string
	// Offline keeps bundles in DataDir and never uploads them. Without
	// it, Upload is required: sealed bundles are uploaded and deleted once
	// the server acknowledges them.
	Offline bool
	// Upload configures online mode's uploader; Dir, AgentID, DeviceID,
	// Version and Logger are filled in by Run. Ignored when Offline.
	Upload *upload.Options

	BundleMaxBytes int64
	BundleMaxAge   time.Duration
	// DataMaxBytes is the disk quota of the sealed bundles (0: none): the
	// oldest go first, critical ones last.
	DataMaxBytes int64
	// FlushInterval bounds how long a received record may wait in memory
	// before it reaches the bundle file (default 1s).
	FlushInterval time.Duration

	// RawEvents selects the raw events kept (default RawCritical).
	RawEvents RawEvents
	// Footprint and statistics settings; zero values take the packages'
	// defaults.
	FootprintMaxEntries int
	FootprintMaxBytes   int64
	FootprintFlush      time.Duration
	FootprintReemit     time.Duration
	StatsWindow         time.Duration
	StatsHeartbeat      time.Duration
	Rules               *rules.Config

	// Identity fields written into statistics; the agent guid is
	// generated once and kept in DataDir.
	CustomerGUID, VehicleID, ModelID string

	DeviceID string
	Version  string
	// Ready, when set, is called once the socket listens.
	Ready  func()
	Logger *slog.Logger
}

// queueLen bounds the records between connection readers and the writer.
const queueLen = 4096

// Components under which the aggregator counts.
const (
	componentAggregator = "aggregator"
	componentFootprint  = "footprint"
)

// Run serves until ctx is done, then writes out footprints and statistics,
// seals the open bundle and returns.
func Run(ctx context.Context, opts *Options) error {
	o := *opts
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if !o.Offline && (o.Upload == nil || o.Upload.URL == "") {
		return errors.New("online mode needs an upload URL (or run offline)")
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = time.Second
	}
	if o.RawEvents == "" {
		o.RawEvents = RawCritical
	}
	log := o.Logger.WithGroup("aggregator")
	engine, err := rules.New(o.Rules)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.DataDir, 0o750); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	guid, err := LoadOrCreateGUID(o.DataDir)
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	w, err := bundle.NewWriter(&bundle.WriterOptions{
		Dir:         o.DataDir,
		MaxBytes:    o.BundleMaxBytes,
		MaxAge:      o.BundleMaxAge,
		MaxDirBytes: o.DataMaxBytes,
		Logger:      o.Logger,
		Header: func() *xdrv1.BundleHeader {
			return &xdrv1.BundleHeader{AgentId: guid, DeviceId: o.DeviceID, AggregatorVersion: o.Version, Hostname: host}
		},
	})
	if err != nil {
		return err
	}
	mode := "offline"
	var up *upload.Uploader
	if !o.Offline {
		uo := *o.Upload
		uo.Dir, uo.AgentID, uo.DeviceID, uo.Version, uo.Logger = o.DataDir, guid, o.DeviceID, o.Version, o.Logger
		if up, err = upload.New(&uo); err != nil {
			w.Close()
			return err
		}
		mode = "online"
	}
	w.OnSeal(func(path string) {
		log.Info("bundle sealed", "path", path)
		if up != nil {
			up.Notify()
		}
	})
	if ws := w.Stats(); ws.Recovered > 0 || ws.SetAside > 0 {
		log.Warn("recovered bundles left by a crash", "bundles", ws.Recovered, "records", ws.RecoveredRecords,
			"bytes_cut", ws.RecoveredCutBytes, "set_aside", ws.SetAside)
	}

	p := &pipeline{w: w, rules: engine, raw: o.RawEvents, log: log}
	state := &daemonState{opts: &o, started: time.Now(), agents: new(agents), w: w, ruleIDs: engine.Enabled()}
	if up != nil {
		state.upload = func() *control.Upload { return uploadStatus(o.Upload.URL, up.Stats()) }
	}
	p.state = state
	p.stats = stats.New(&stats.Options{
		Identity: stats.Identity{CustomerGUID: o.CustomerGUID, AgentGUID: guid, VehicleID: o.VehicleID, ModelID: o.ModelID, Version: o.Version},
		Window:   o.StatsWindow, Heartbeat: o.StatsHeartbeat,
		Emit: func(s *xdrv1.Statistics) {
			p.write(&xdrv1.Record{Record: &xdrv1.Record_Statistics{Statistics: s}}, nil, false)
		},
	})
	p.fp = footprint.New(&footprint.Options{
		MaxEntries: o.FootprintMaxEntries, MaxBytes: o.FootprintMaxBytes,
		FlushInterval: o.FootprintFlush, ReemitInterval: o.FootprintReemit,
		Emit: func(f *xdrv1.Footprint) {
			p.stats.Add(componentFootprint, f.GetAccessType(), xdrv1.EventStatType_EVENT_STAT_TYPE_EMITTED, 1)
			p.write(&xdrv1.Record{Record: &xdrv1.Record_Footprint{Footprint: f}}, nil, false)
		},
	})

	state.stats = p.stats
	records := newRecordQueue(queueLen)
	srv, err := server.Listen(&server.Options{
		Socket:      o.Socket,
		Mode:        o.SocketMode,
		Group:       o.SocketGroup,
		AllowedUIDs: o.AllowedUIDs,
		Logger:      o.Logger,
		Handler: func(peer *server.Peer, m *xdrv1.AgentMessage) {
			switch msg := m.GetMessage().(type) {
			case *xdrv1.AgentMessage_Hello:
				state.agents.hello(peer)
			case *xdrv1.AgentMessage_Event:
				p.stats.Add(componentAggregator, msg.Event.GetAccessType(), xdrv1.EventStatType_EVENT_STAT_TYPE_RECEIVED, repeats(msg.Event))
				r := queued{rec: &xdrv1.Record{Record: &xdrv1.Record_Event{Event: msg.Event}}}
				if p.raw == RawAll {
					// Kept as received: no second encoding.
					r.enc = bytes.Clone(peer.EventRecord())
				}
				records.Put(r)
			case *xdrv1.AgentMessage_Counters:
				// The agent's own counts (sent, drops by reason,
				// partial enrichments) join the statistics.
				p.stats.AgentCounters(agentKey(peer), msg.Counters)
			}
			// The server logs hellos with their fields.
		},
		Idle: func(*server.Peer) { records.Signal() },
		OnClose: func(peer *server.Peer, err error) {
			if peer.Hello != nil {
				p.stats.Forget(agentKey(peer))
				state.agents.gone(peer)
			}
		},
	})
	if err != nil {
		w.Close()
		return err
	}
	p.srv = srv
	var ctl *control.Server
	if o.ControlSocket != "" {
		ctl, err = control.Listen(&control.Options{
			Socket: o.ControlSocket, Mode: o.SocketMode, Group: o.SocketGroup,
			Status: state.status, Logger: o.Logger,
		})
		if err != nil {
			srv.Close()
			w.Close()
			return err
		}
		ctlDone := make(chan struct{})
		go func() {
			defer close(ctlDone)
			if err := ctl.Serve(ctx); err != nil {
				log.Error("control socket", "err", err)
			}
		}()
		defer func() { ctl.Close(); <-ctlDone }()
	}
	if up != nil {
		// The uploader stops with ctx; what is sealed at shutdown goes
		// at the next start (the data directory is its queue).
		upDone := make(chan struct{})
		go func() {
			defer close(upDone)
			if err := up.Run(ctx); err != nil {
				log.Error("uploader", "err", err)
			}
		}()
		defer func() { <-upDone }()
	}
	log.Info("listening", "socket", o.Socket, "data_dir", o.DataDir, "mode", mode, "agent_guid", guid, "raw_events", o.RawEvents)
	if o.Ready != nil {
		o.Ready()
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ctx) }()

	p.loop(ctx, records, o.FlushInterval)
	// Stop the readers while still handling what they queue (a reader may
	// be waiting on a full queue), then what is left.
	srv.Close()
	var sErr error
	served := make(chan struct{})
	go func() { sErr = <-serveErr; close(served) }()
	for done := false; !done; {
		select {
		case <-records.Ready():
			p.handleAll(records.Take())
		case <-served:
			done = true
		}
	}
	p.handleAll(records.Take())
	p.fp.FlushAll()
	p.countDrops()
	p.stats.Flush(time.Now())
	cerr := w.Close()
	st, ws, fs := srv.Stats(), w.Stats(), p.fp.Stats()
	log.Info("stopped", "events", st.Events, "malformed", st.Malformed, "oversized", st.Oversized,
		"rejected", st.Rejected, "records", ws.Records, "bundles", ws.Sealed, "footprints_new", fs.New,
		"deduplicated", fs.Deduplicated, "evicted", fs.Evicted, "rule_hits", p.hits)
	return errors.Join(sErr, cerr)
}

// agentKey identifies one agent instance: a restarted agent starts its
// cumulative counters again.
func agentKey(p *server.Peer) string {
	h := p.Hello
	return h.GetAgentId() + "/" + strconv.FormatUint(uint64(h.GetPid()), 10) + "/" + strconv.FormatInt(h.GetStartTimeNs(), 10)
}

func repeats(ev *xdrv1.ActEvent) uint64 {
	if n := ev.GetRepeatCount(); n > 0 {
		return n
	}
	return 1
}

// pipeline is the writer goroutine's state: everything that turns
// received events into bundle records. Only that goroutine uses it
// (stats.Collector alone is shared with the connection readers).
type pipeline struct {
	w     *bundle.Writer
	srv   *server.Server
	fp    *footprint.Generator
	stats *stats.Collector
	rules *rules.Engine
	raw   RawEvents
	log   *slog.Logger
	state *daemonState
	rate  rate

	failing bool
	hits    uint64
	// Counters already turned into statistics, to add only what is new.
	seen struct {
		malformed, lost, evicted uint64
	}
}

// loop is the writer goroutine until ctx ends: events in, and once per
// interval a flush of the bundle, footprints and statistics due.
func (p *pipeline) loop(ctx context.Context, records *recordQueue, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-records.Ready():
			p.handleAll(records.Take())
		case now := <-tick.C:
			p.fp.Tick(now)
			p.publish(now)
			p.countDrops()
			p.stats.Tick(now)
			err := p.w.Flush()
			if err == nil {
				err = p.w.Tick(now)
			}
			p.report(err)
		}
	}
}

// publish makes what the status command needs from the writer
// goroutine's state readable by the control socket.
func (p *pipeline) publish(now time.Time) {
	p.state.snap.Store(&snapshot{
		footprints: p.fp.Stats(), hits: p.hits,
		perSecond: p.rate.add(now, p.srv.Stats().Events),
	})
}

func (p *pipeline) handleAll(recs []queued) {
	for _, r := range recs {
		p.handle(r.rec, r.enc)
	}
}

// handle runs the rules on one event, keeps it raw when the setting asks
// for it, folds it (and any rule hit) into footprints, and on a hit forces
// the bundle to disk. enc, when not nil, is rec's encoding.
func (p *pipeline) handle(rec *xdrv1.Record, enc []byte) {
	ev := rec.GetEvent()
	hits := p.rules.Evaluate(ev)
	critical := len(hits) > 0
	if p.raw == RawAll || (p.raw == RawCritical && critical) {
		p.write(rec, enc, critical)
	}
	p.addFootprint(ev)
	for _, h := range hits {
		p.write(&xdrv1.Record{Record: &xdrv1.Record_Event{Event: h}}, nil, true)
		p.addFootprint(h)
	}
	if critical {
		p.hits += uint64(len(hits))
		p.stats.HitCritical()
		p.report(p.w.Sync())
	}
}

func (p *pipeline) addFootprint(ev *xdrv1.ActEvent) {
	stat := xdrv1.EventStatType_EVENT_STAT_TYPE_DEDUPLICATED
	if p.fp.Add(ev) == footprint.NewFootprint {
		stat = xdrv1.EventStatType_EVENT_STAT_TYPE_NEW_FOOTPRINT
	}
	p.stats.Add(componentFootprint, ev.GetAccessType(), stat, repeats(ev))
}

// write writes r; a critical record marks the bundle it went into (a
// write may rotate, so each one marks its own).
// enc, when not nil, is r's encoding.
func (p *pipeline) write(r *xdrv1.Record, enc []byte, critical bool) {
	p.report(p.w.WriteEncoded(r, enc))
	if critical {
		p.w.MarkCritical()
	}
}

// report logs a failing bundle write once per episode; the writer keeps
// trying and counts what each failure lost (see countDrops).
func (p *pipeline) report(err error) {
	if err != nil && !p.failing {
		p.log.Error("bundle write failing (records are being lost and counted)", "err", err)
	} else if err == nil && p.failing {
		p.log.Info("bundle writes recovered")
	}
	p.failing = err != nil
}

// countDrops moves the aggregator's loss counters (bad frames, records a
// failing disk lost, footprints evicted) into the statistics.
func (p *pipeline) countDrops() {
	ss, ws, fs := p.srv.Stats(), p.w.Stats(), p.fp.Stats()
	add := func(seen *uint64, now uint64, stat xdrv1.EventStatType, component string) {
		if now > *seen {
			p.stats.Add(component, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_UNSPECIFIED, stat, now-*seen)
			*seen = now
		}
	}
	add(&p.seen.malformed, ss.Malformed+ss.Oversized+ss.Truncated+ss.HelloErrors, xdrv1.EventStatType_EVENT_STAT_TYPE_DROPPED_MALFORMED, componentAggregator)
	add(&p.seen.lost, ws.Lost, xdrv1.EventStatType_EVENT_STAT_TYPE_DROPPED_DISK_FULL, componentAggregator)
	add(&p.seen.evicted, fs.Evicted, xdrv1.EventStatType_EVENT_STAT_TYPE_EVICTED, componentFootprint)
}
