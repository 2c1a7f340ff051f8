package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/xdr-sensor/xdr/aggregator/bundle"
	"github.com/xdr-sensor/xdr/aggregator/server"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// Options configure Run.
type Options struct {
	Socket      string      // agent socket path (required)
	SocketMode  os.FileMode // default 0600
	SocketGroup int         // -1 keeps the group
	AllowedUIDs []uint32    // peers allowed; default root and the daemon's own uid
	DataDir     string      // bundles and state (required)
	// Offline keeps bundles in DataDir. Online upload is not part of this
	// build; Run refuses to start without Offline rather than pretend.
	Offline bool

	BundleMaxBytes int64
	BundleMaxAge   time.Duration
	// FlushInterval bounds how long a received record may wait in memory
	// before it reaches the bundle file (default 1s).
	FlushInterval time.Duration

	DeviceID string
	Version  string
	// Ready, when set, is called once the socket listens.
	Ready  func()
	Logger *slog.Logger
}

// queueLen bounds the records between connection readers and the writer.
const queueLen = 4096

// Run serves until ctx is done, then seals the open bundle and returns.
func Run(ctx context.Context, opts *Options) error {
	o := *opts
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if !o.Offline {
		return errors.New("online mode (upload) is not available in this build: run with --offline")
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = time.Second
	}
	log := o.Logger.WithGroup("aggregator")
	if err := os.MkdirAll(o.DataDir, 0o750); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	guid, err := LoadOrCreateGUID(o.DataDir)
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	w, err := bundle.NewWriter(&bundle.WriterOptions{
		Dir:      o.DataDir,
		MaxBytes: o.BundleMaxBytes,
		MaxAge:   o.BundleMaxAge,
		Logger:   o.Logger,
		Header: func() *xdrv1.BundleHeader {
			return &xdrv1.BundleHeader{AgentId: guid, DeviceId: o.DeviceID, AggregatorVersion: o.Version, Hostname: host}
		},
	})
	if err != nil {
		return err
	}
	w.OnSeal(func(path string) { log.Info("bundle sealed", "path", path) })

	records := newRecordQueue(queueLen)
	var lastCounters sync.Map // peer id -> *xdrv1.AgentCounters last written
	srv, err := server.Listen(&server.Options{
		Socket:      o.Socket,
		Mode:        o.SocketMode,
		Group:       o.SocketGroup,
		AllowedUIDs: o.AllowedUIDs,
		Logger:      o.Logger,
		Handler: func(p *server.Peer, m *xdrv1.AgentMessage) {
			switch msg := m.GetMessage().(type) {
			case *xdrv1.AgentMessage_Hello:
				// The server logs the connection with the hello's fields.
			case *xdrv1.AgentMessage_Event:
				records.Put(&xdrv1.Record{Record: &xdrv1.Record_Event{Event: msg.Event}})
			case *xdrv1.AgentMessage_Counters:
				// Counters are cumulative and resent every second:
				// keep only changes.
				prev, _ := lastCounters.Load(p.ID)
				if prev != nil && proto.Equal(countsOnly(prev.(*xdrv1.AgentCounters)), countsOnly(msg.Counters)) {
					return
				}
				lastCounters.Store(p.ID, msg.Counters)
				records.Put(&xdrv1.Record{Record: &xdrv1.Record_AgentCounters{AgentCounters: msg.Counters}})
			}
		},
		OnClose: func(p *server.Peer, err error) { lastCounters.Delete(p.ID) },
	})
	if err != nil {
		w.Close()
		return err
	}
	log.Info("listening", "socket", o.Socket, "data_dir", o.DataDir, "mode", "offline", "agent_guid", guid)
	if o.Ready != nil {
		o.Ready()
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ctx) }()

	werr := writeLoop(ctx, w, records, o.FlushInterval, log)
	// Stop the readers while still writing what they queue (a reader may
	// be waiting on a full queue), then what is left.
	srv.Close()
	var sErr error
	served := make(chan struct{})
	go func() { sErr = <-serveErr; close(served) }()
	for done := false; !done; {
		select {
		case <-records.Ready():
			if err := writeRecords(w, records.Take()); err != nil {
				log.Error("write bundle", "err", err)
			}
		case <-served:
			done = true
		}
	}
	if err := writeRecords(w, records.Take()); err != nil {
		log.Error("write bundle", "err", err)
	}
	cerr := w.Close()
	st, ws := srv.Stats(), w.Stats()
	log.Info("stopped", "events", st.Events, "malformed", st.Malformed, "oversized", st.Oversized,
		"rejected", st.Rejected, "records", ws.Records, "bundles", ws.Sealed)
	return errors.Join(werr, sErr, cerr)
}

// countsOnly strips the timestamp, which changes with every report.
func countsOnly(c *xdrv1.AgentCounters) *xdrv1.AgentCounters {
	return &xdrv1.AgentCounters{Counts: c.GetCounts(), LastSeq: c.GetLastSeq()}
}

// writeRecords writes records into the bundle and returns the first
// error (the bundle writer counts what each failure lost).
func writeRecords(w *bundle.Writer, recs []*xdrv1.Record) error {
	var first error
	for _, r := range recs {
		if err := w.Write(r); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// writeLoop is the writer goroutine: records into the bundle, a flush per
// interval, rotation by age.
func writeLoop(ctx context.Context, w *bundle.Writer, records *recordQueue, every time.Duration, log *slog.Logger) error {
	tick := time.NewTicker(every)
	defer tick.Stop()
	var failing bool
	report := func(err error) {
		// A full disk or I/O error is reported once per episode, and
		// the writer keeps trying; the bundle package counts losses.
		if err != nil && !failing {
			log.Error("bundle write failing (records are being lost and counted)", "err", err)
		} else if err == nil && failing {
			log.Info("bundle writes recovered")
		}
		failing = err != nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-records.Ready():
			report(writeRecords(w, records.Take()))
		case now := <-tick.C:
			err := w.Flush()
			if err == nil {
				err = w.Tick(now)
			}
			report(err)
		}
	}
}
