package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Request is the one command the control socket knows.
const Request = "status"

// Limits of a control connection: a slow or idle client holds at most
// maxConns connections for connTimeout each.
const (
	maxRequest  = 64
	connTimeout = 5 * time.Second
	maxConns    = 4
)

// Options configure Listen.
type Options struct {
	Socket string // path (required)
	// Mode is the socket file's mode: 0600 (default) or 0660 with Group,
	// so that members of the group may ask for the status.
	Mode  os.FileMode
	Group int // 0 or less keeps the group
	// Status returns the current status (required). It is called from
	// connection goroutines, concurrently with the daemon's work.
	Status func() *Status
	Logger *slog.Logger
}

// Server answers status queries. Its methods are safe for concurrent use;
// whoever called Listen must call Close, which removes the socket file.
type Server struct {
	ln     *net.UnixListener
	path   string
	status func() *Status
	log    *slog.Logger
	slots  chan struct{}
	wg     sync.WaitGroup
}

// Listen creates the control socket, replacing a stale one (a file
// nobody answers on) but never a live one.
func Listen(opts *Options) (*Server, error) {
	if opts == nil || opts.Socket == "" || opts.Status == nil {
		return nil, errors.New("control socket: no path or status function given")
	}
	mode := opts.Mode
	if mode == 0 {
		mode = 0o600
	}
	if err := os.MkdirAll(filepath.Dir(opts.Socket), 0o750); err != nil {
		return nil, fmt.Errorf("control socket %s: %w", opts.Socket, err)
	}
	if c, err := net.Dial("unix", opts.Socket); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s: another aggregator answers on it", opts.Socket)
	}
	if err := os.Remove(opts.Socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("control socket %s: remove stale socket: %w", opts.Socket, err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: opts.Socket, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", opts.Socket, err)
	}
	ln.SetUnlinkOnClose(true)
	if err := os.Chmod(opts.Socket, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket %s: %w", opts.Socket, err)
	}
	if opts.Group > 0 {
		if err := os.Chown(opts.Socket, -1, opts.Group); err != nil {
			ln.Close()
			return nil, fmt.Errorf("control socket %s: set group %d: %w", opts.Socket, opts.Group, err)
		}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{ln: ln, path: opts.Socket, status: opts.Status, log: log.WithGroup("control"),
		slots: make(chan struct{}, maxConns)}, nil
}

// Serve answers queries until ctx is done or Close is called, then waits
// for the connections in progress.
func (s *Server) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.ln.Close() })
	defer stop()
	defer s.wg.Wait()
	for {
		conn, err := s.ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("control socket %s: accept: %w", s.path, err)
		}
		select {
		case s.slots <- struct{}{}:
		default:
			s.log.Warn("too many status queries at once; closing one")
			conn.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.slots }()
			defer conn.Close()
			if err := s.answer(conn); err != nil {
				s.log.Debug("status query", "err", err)
			}
		}()
	}
}

func (s *Server) answer(conn net.Conn) error {
	conn.SetDeadline(time.Now().Add(connTimeout))
	line, err := bufio.NewReader(&limited{conn, maxRequest}).ReadString('\n')
	if err != nil {
		return fmt.Errorf("read request: %w", err)
	}
	enc := json.NewEncoder(conn)
	if cmd := strings.TrimSpace(line); cmd != Request {
		return enc.Encode(map[string]string{"error": fmt.Sprintf("unknown request %q (want %q)", cmd, Request)})
	}
	return enc.Encode(s.status())
}

// limited reads at most n bytes from r, then reports io.EOF.
type limited struct {
	r net.Conn
	n int
}

func (l *limited) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errors.New("request too long")
	}
	if len(p) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= n
	return n, err
}

// Close stops the Server and removes the socket file.
func (s *Server) Close() error {
	if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("close control socket %s: %w", s.path, err)
	}
	return nil
}

// Query asks the aggregator listening on socket for its status.
func Query(ctx context.Context, socket string) (*Status, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("control socket %s: %w (is xdr-aggregator running?)", socket, err)
		}
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("control socket %s: %w (run as root or as a member of the socket's group)", socket, err)
		}
		return nil, fmt.Errorf("control socket %s: %w", socket, err)
	}
	defer conn.Close()
	deadline := time.Now().Add(connTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	conn.SetDeadline(deadline)
	if _, err := conn.Write([]byte(Request + "\n")); err != nil {
		return nil, fmt.Errorf("control socket %s: send request: %w", socket, err)
	}
	var reply struct {
		Status
		Error string `json:"error"`
	}
	if err := json.NewDecoder(conn).Decode(&reply); err != nil {
		return nil, fmt.Errorf("control socket %s: read status: %w", socket, err)
	}
	if reply.Error != "" {
		return nil, fmt.Errorf("control socket %s: %s", socket, reply.Error)
	}
	return &reply.Status, nil
}
