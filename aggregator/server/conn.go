package server

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/xdr-sensor/xdr/proto/wire"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// serveConn reads conn's frames and hands them to the Handler until the
// stream ends or breaks. It counts and logs why a connection ended badly,
// and returns nil for a clean end after the Hello or a closed Server.
func (s *Server) serveConn(conn net.Conn, p *Peer) error {
	log := s.log.With("peer", p.ID, "pid", p.PID, "uid", p.UID)
	var src io.Reader = conn
	if cr := wire.NewConnReader(conn); cr != nil {
		src = cr
	}
	ir := &idleReader{r: src}
	r := wire.NewReader(ir, s.maxFrame)
	p.r = r
	// Setting a deadline fails only on a closed connection, which the
	// next read reports.
	_ = conn.SetReadDeadline(time.Now().Add(s.helloTimeout))
	m := new(xdrv1.AgentMessage)
	if err := r.Next(m); err != nil {
		return s.readFailed(log, r, err, true)
	}
	s.frames.Add(1)
	if err := checkHello(m); err != nil {
		s.helloErrors.Add(1)
		log.Warn("closing connection: bad hello", "err", err)
		return err
	}
	_ = conn.SetReadDeadline(time.Time{})
	h := m.GetHello()
	p.Hello = h
	log.Info("agent connected", "agent_id", h.GetAgentId(), "hostname", h.GetHostname(),
		"agent_version", h.GetAgentVersion(), "agent_pid", h.GetPid(), "method", h.GetMethod())
	s.handler(p, m)
	if s.idle != nil {
		ir.idle = func() { s.idle(p) }
		defer s.idle(p)
	}
	for {
		m := new(xdrv1.AgentMessage)
		if err := r.Next(m); err != nil {
			return s.readFailed(log, r, err, false)
		}
		s.frames.Add(1)
		if m.GetEvent() != nil {
			s.events.Add(1)
			p.Events.Add(1)
		}
		s.handler(p, m)
	}
}

func checkHello(m *xdrv1.AgentMessage) error {
	h := m.GetHello()
	if h == nil {
		what := "an event"
		if m.GetCounters() != nil {
			what = "a counters report"
		}
		return fmt.Errorf("first frame is %s, not a hello", what)
	}
	if v := h.GetSchemaVersion(); v != wire.SchemaVersion {
		return fmt.Errorf("agent speaks schema version %d, this aggregator %d (run agent and aggregator of the same release)", v, wire.SchemaVersion)
	}
	return nil
}

// readFailed classifies, counts and logs the error that ended a
// connection's stream, and returns what OnClose gets.
func (s *Server) readFailed(log *slog.Logger, r *wire.Reader, err error, beforeHello bool) error {
	off := r.Offset()
	switch {
	case errors.Is(err, net.ErrClosed):
		return nil // the Server is closing
	case err == io.EOF && !beforeHello:
		log.Info("agent disconnected", "offset", off)
		return nil
	case err == io.EOF:
		s.helloErrors.Add(1)
		log.Warn("connection closed before its hello")
		return errors.New("connection closed before its hello")
	case beforeHello && errors.Is(err, os.ErrDeadlineExceeded):
		s.helloErrors.Add(1)
		log.Warn("closing connection: no hello in time", "timeout", s.helloTimeout)
		return fmt.Errorf("no hello within %v", s.helloTimeout)
	case errors.Is(err, io.ErrUnexpectedEOF):
		s.truncated.Add(1)
		log.Warn("connection ended inside a frame", "offset", off)
		return fmt.Errorf("frame at offset %d: %w", off, err)
	case errors.Is(err, wire.ErrFrameTooLarge):
		s.oversized.Add(1)
		log.Warn("closing connection: frame too large", "offset", off, "err", err)
		return err
	case errors.Is(err, wire.ErrMalformed):
		s.malformed.Add(1)
		log.Warn("closing connection: malformed frame", "offset", off, "err", err)
		return err
	default:
		log.Warn("closing connection: read failed", "offset", off, "err", err)
		return fmt.Errorf("read frame at offset %d: %w", off, err)
	}
}

// idleReader calls idle, once set, before each read of the socket: every
// whole frame read before has then been handed to the Handler.
type idleReader struct {
	r    io.Reader
	idle func()
}

func (r *idleReader) Read(p []byte) (int, error) {
	if r.idle != nil {
		r.idle()
	}
	return r.r.Read(p)
}
