package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdr-sensor/xdr/proto/wire"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

const (
	defaultMode         = 0o600
	defaultHelloTimeout = 5 * time.Second
	maxAcceptDelay      = time.Second
)

// Options configures a Server. Zero fields take the documented defaults.
type Options struct {
	// Socket is the path to listen on. A stale socket file there (one
	// nobody listens on, as a test connection shows) is replaced; a live
	// socket or any other file is left alone and Listen fails. Required.
	Socket string
	// Mode is the socket file's permission: 0600 (the default) or 0660,
	// which lets Group connect too. The file never has a wider mode than
	// this, not even while Listen sets it up.
	Mode os.FileMode
	// Group, if positive, is the gid the socket file is given. Zero or
	// negative keeps the group the file was created with (changing it to
	// gid 0 is not supported).
	Group int
	// AllowedUIDs are the peer uids accepted, checked with SO_PEERCRED
	// on every connection. Default: 0 and the server's effective uid.
	AllowedUIDs []uint32
	// MaxFrameSize bounds one frame's payload. Default
	// wire.DefaultMaxFrameSize.
	MaxFrameSize int
	// HelloTimeout bounds the wait for a connection's first frame, which
	// must be a Hello. Default 5s.
	HelloTimeout time.Duration
	// Handler is called with every frame of a connection, starting with
	// its Hello, from that connection's goroutine. It may block, which
	// pushes back on that agent through the socket. It owns m after the
	// call. Required.
	Handler func(p *Peer, m *xdrv1.AgentMessage)
	// Idle, if set, is called from the connection's goroutine when every
	// frame read from its socket so far has been handed to Handler, before
	// the socket is read again, and once more when the connection ends
	// (before OnClose). A Handler that passes frames to another goroutine
	// can wake it here once per socket read rather than once per frame.
	Idle func(p *Peer)
	// OnClose, if set, is called once a connection admitted by its uid has
	// ended, from its goroutine. err is nil when the agent closed the
	// connection cleanly after its Hello or the Server was closed, and
	// otherwise says why the connection ended.
	OnClose func(p *Peer, err error)
	// Logger receives connection events. Default: discard.
	Logger *slog.Logger
}

// Peer is one connected agent. Its fields but Events are set before the
// Handler first sees it and not changed afterwards, so it may be read from
// any goroutine; it must not be modified.
type Peer struct {
	ID  uint64 // unique within the Server, from 1
	PID int32  // process id of the peer when it connected
	UID uint32
	GID uint32
	// Hello is the connection's first frame; nil in OnClose when the
	// connection ended before a valid Hello.
	Hello *xdrv1.Hello
	// Events counts the connection's frames carrying an ActEvent; the
	// only field that changes, safe to read at any time.
	Events atomic.Uint64

	r *wire.Reader // the connection's
}

// EventRecord returns, during a Handler call for an event frame, the
// bundle Record holding that event already encoded (the frame's payload;
// see wire.Reader.EventRecord), or nil. The bytes are valid only until the
// Handler returns.
func (p *Peer) EventRecord() []byte {
	if p.r == nil {
		return nil
	}
	return p.r.EventRecord()
}

// Server accepts agent connections on a Unix socket. Its methods are safe
// for concurrent use. Whoever called Listen must call Close, which also
// removes the socket file.
type Server struct {
	path         string
	ln           *net.UnixListener
	allowed      []uint32
	maxFrame     int
	helloTimeout time.Duration
	handler      func(p *Peer, m *xdrv1.AgentMessage)
	idle         func(p *Peer)
	onClose      func(p *Peer, err error)
	log          *slog.Logger

	serving atomic.Bool
	nextID  atomic.Uint64
	wg      sync.WaitGroup // connection goroutines

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}

	accepted    atomic.Uint64
	rejected    atomic.Uint64
	active      atomic.Int64
	frames      atomic.Uint64
	events      atomic.Uint64
	malformed   atomic.Uint64
	oversized   atomic.Uint64
	truncated   atomic.Uint64
	helloErrors atomic.Uint64
}

// Stats counts what a Server has seen since Listen.
type Stats struct {
	Accepted    uint64 // connections admitted (uid allowed)
	Rejected    uint64 // connections refused by uid, or whose uid could not be read
	Active      uint64 // connections open now
	Frames      uint64 // frames decoded, Hellos included
	Events      uint64 // frames carrying an ActEvent
	Malformed   uint64 // connections closed for a frame that is no valid AgentMessage
	Oversized   uint64 // connections closed for a frame above MaxFrameSize
	Truncated   uint64 // connections that ended inside a frame
	HelloErrors uint64 // connections closed for a missing, late or wrong Hello
}

// Listen creates the socket described by opts and returns a Server ready
// to Serve. Errors name the socket and, where there is one, the remedy.
func Listen(opts *Options) (*Server, error) {
	s, err := newServer(opts)
	if err != nil {
		return nil, err
	}
	if opts.Socket == "" {
		return nil, errors.New("server: no socket path")
	}
	mode := opts.Mode
	if mode == 0 {
		mode = defaultMode
	}
	if mode != 0o600 && mode != 0o660 {
		return nil, fmt.Errorf("socket %s: mode %#o not allowed (use 0600, or 0660 with a group)", opts.Socket, mode)
	}
	s.path = opts.Socket
	if s.ln, err = listen(opts.Socket, mode, opts.Group); err != nil {
		return nil, err
	}
	s.log.Info("listening", "socket", s.path, "mode", fmt.Sprintf("%#o", mode), "allowed_uids", s.allowed)
	return s, nil
}

// newServer returns a Server without a socket.
func newServer(opts *Options) (*Server, error) {
	if opts == nil || opts.Handler == nil {
		return nil, errors.New("server: no Handler")
	}
	s := &Server{
		allowed:      opts.AllowedUIDs,
		maxFrame:     opts.MaxFrameSize,
		helloTimeout: opts.HelloTimeout,
		handler:      opts.Handler,
		idle:         opts.Idle,
		onClose:      opts.OnClose,
		log:          opts.Logger,
		conns:        make(map[net.Conn]struct{}),
	}
	if s.maxFrame <= 0 {
		s.maxFrame = wire.DefaultMaxFrameSize
	}
	if s.helloTimeout <= 0 {
		s.helloTimeout = defaultHelloTimeout
	}
	if len(s.allowed) == 0 {
		s.allowed = []uint32{0}
		if euid := uint32(os.Geteuid()); euid != 0 {
			s.allowed = append(s.allowed, euid)
		}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.WithGroup("server")
	return s, nil
}

// Addr returns the socket path.
func (s *Server) Addr() string { return s.path }

// Serve accepts connections until ctx ends or Close is called, then closes
// the Server, waits for every connection goroutine (and so every running
// Handler) to return, and returns nil. It may be called once.
func (s *Server) Serve(ctx context.Context) error {
	if !s.serving.CompareAndSwap(false, true) {
		return errors.New("server: Serve called more than once")
	}
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	defer s.wg.Wait()
	var delay time.Duration
	for {
		conn, err := s.ln.AcceptUnix()
		if err != nil {
			if s.isClosed() {
				return nil
			}
			// Out of file descriptors or memory: wait for some to be freed.
			delay = min(max(2*delay, 5*time.Millisecond), maxAcceptDelay)
			s.log.Warn("accept failed; retrying", "socket", s.path, "err", err, "delay", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		s.admit(conn)
	}
}

// admit checks the peer's uid and starts the connection's goroutine.
func (s *Server) admit(conn *net.UnixConn) {
	cred, err := peerCred(conn)
	if err != nil {
		s.rejected.Add(1)
		s.log.Warn("rejected connection: cannot read peer credentials", "err", err)
		conn.Close()
		return
	}
	if !slices.Contains(s.allowed, cred.Uid) {
		s.rejected.Add(1)
		s.log.Warn("rejected connection from a disallowed user", "pid", cred.Pid, "uid", cred.Uid, "gid", cred.Gid)
		conn.Close()
		return
	}
	p := &Peer{ID: s.nextID.Add(1), PID: cred.Pid, UID: cred.Uid, GID: cred.Gid}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		conn.Close()
		return
	}
	s.conns[conn] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	s.accepted.Add(1)
	s.active.Add(1)
	go func() {
		defer s.wg.Done()
		err := s.serveConn(conn, p)
		conn.Close()
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
		s.active.Add(-1)
		if s.onClose != nil {
			s.onClose(p, err)
		}
	}()
}

func peerCred(conn *net.UnixConn) (*unix.Ucred, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	if cerr != nil {
		return nil, fmt.Errorf("getsockopt SO_PEERCRED: %w", cerr)
	}
	return cred, nil
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close stops accepting, closes every connection and removes the socket
// file. Handlers still running finish on their own; Serve waits for them.
// Calling Close again does nothing.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	if err := s.ln.Close(); err != nil { // also unlinks the socket file
		return fmt.Errorf("close socket %s: %w", s.path, err)
	}
	return nil
}

// Stats returns the Server's counts.
func (s *Server) Stats() Stats {
	return Stats{
		Accepted:    s.accepted.Load(),
		Rejected:    s.rejected.Load(),
		Active:      uint64(s.active.Load()),
		Frames:      s.frames.Load(),
		Events:      s.events.Load(),
		Malformed:   s.malformed.Load(),
		Oversized:   s.oversized.Load(),
		Truncated:   s.truncated.Load(),
		HelloErrors: s.helloErrors.Load(),
	}
}
