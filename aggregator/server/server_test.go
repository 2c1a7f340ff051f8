package server

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/xdr-sensor/xdr/proto/wire"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

func helloFrame(version uint32) []byte {
	b, err := wire.AppendFrame(nil, &xdrv1.AgentMessage{Message: &xdrv1.AgentMessage_Hello{Hello: &xdrv1.Hello{AgentId: "a", SchemaVersion: version}}})
	if err != nil {
		panic(err)
	}
	return b
}

func eventFrame(seq uint64) []byte {
	b, err := wire.AppendFrame(nil, &xdrv1.AgentMessage{Message: &xdrv1.AgentMessage_Event{Event: &xdrv1.ActEvent{
		Seq:        seq,
		AccessType: xdrv1.XdrAccessType_XDR_ACCESS_TYPE_PROCESS_EXECUTE,
		Subject:    &xdrv1.Process{Pid: 7, Exe: "/bin/sh", Argv: []string{"sh", "-c", "true"}},
	}}})
	if err != nil {
		panic(err)
	}
	return b
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// closed is what OnClose reported for one connection.
type closed struct {
	peer *Peer
	err  error
}

// testServer is a Server on a socket in a temporary directory, serving
// until the test ends. Handled messages and ended connections arrive on
// channels.
type testServer struct {
	*Server
	msgs   chan *xdrv1.AgentMessage
	closes chan closed
}

func startServer(t *testing.T, opts Options) *testServer {
	t.Helper()
	ts := &testServer{msgs: make(chan *xdrv1.AgentMessage, 1024), closes: make(chan closed, 16)}
	if opts.Socket == "" {
		opts.Socket = filepath.Join(t.TempDir(), "agent.sock")
	}
	if opts.Handler == nil {
		opts.Handler = func(_ *Peer, m *xdrv1.AgentMessage) { ts.msgs <- m }
	}
	opts.OnClose = func(p *Peer, err error) { ts.closes <- closed{p, err} }
	s, err := Listen(&opts)
	if err != nil {
		t.Fatal(err)
	}
	ts.Server = s
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background()) }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ts
}

func (ts *testServer) dial(t *testing.T) *net.UnixConn {
	t.Helper()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: ts.Addr(), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (ts *testServer) next(t *testing.T) *xdrv1.AgentMessage {
	t.Helper()
	select {
	case m := <-ts.msgs:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("handler got no message")
		return nil
	}
}

func (ts *testServer) closed(t *testing.T) closed {
	t.Helper()
	select {
	case c := <-ts.closes:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no connection ended")
		return closed{}
	}
}

func write(t *testing.T, c net.Conn, b []byte) {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

// wantEOF checks that the server closed c: reading gives EOF, or
// ECONNRESET when the server closed with data of c still unread.
func wantEOF(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read from closed connection: %d, %v; want EOF", n, err)
	}
}

func TestServerClosesOnlyTheBadConnection(t *testing.T) {
	garbage := cat(binary.BigEndian.AppendUint32(nil, 3), []byte{0xff, 0xff, 0xff})
	event := eventFrame(1)
	tests := []struct {
		name     string
		in       []byte
		want     Stats // of the bad connection alone
		wantErr  error
		handled  int  // messages of the bad connection the handler sees
		keepOpen bool // the client does not close its end (wait for the hello timeout)
	}{
		{"malformed", cat(helloFrame(wire.SchemaVersion), garbage), Stats{Frames: 1, Malformed: 1}, wire.ErrMalformed, 1, false},
		{"oversized", cat(helloFrame(wire.SchemaVersion), binary.BigEndian.AppendUint32(nil, 4096)), Stats{Frames: 1, Oversized: 1}, wire.ErrFrameTooLarge, 1, true},
		{"truncated", cat(helloFrame(wire.SchemaVersion), event[:len(event)-1]), Stats{Frames: 1, Truncated: 1}, io.ErrUnexpectedEOF, 1, false},
		{"event before hello", event, Stats{Frames: 1, HelloErrors: 1}, nil, 0, false},
		{"wrong schema version", helloFrame(wire.SchemaVersion + 1), Stats{Frames: 1, HelloErrors: 1}, nil, 0, true},
		{"closed before hello", nil, Stats{HelloErrors: 1}, nil, 0, false},
		{"no hello in time", nil, Stats{HelloErrors: 1}, nil, 0, true},
		{"clean", cat(helloFrame(wire.SchemaVersion), event), Stats{Frames: 2, Events: 1}, nil, 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, Options{MaxFrameSize: 1024, HelloTimeout: 200 * time.Millisecond})
			good := ts.dial(t)
			write(t, good, helloFrame(wire.SchemaVersion))
			ts.next(t)

			bad := ts.dial(t)
			write(t, bad, tt.in)
			if !tt.keepOpen {
				bad.CloseWrite()
			}
			for range tt.handled {
				ts.next(t)
			}
			c := ts.closed(t)
			if c.peer.ID != 2 {
				t.Fatalf("connection %d ended, want the bad one (2): %v", c.peer.ID, c.err)
			}
			clean := tt.name == "clean"
			if clean != (c.err == nil) || (tt.wantErr != nil && !errors.Is(c.err, tt.wantErr)) {
				t.Errorf("OnClose error %v, want %v (clean %v)", c.err, tt.wantErr, clean)
			}
			if (c.peer.Hello != nil) != (tt.handled > 0) {
				t.Errorf("peer hello %v after %d handled messages", c.peer.Hello, tt.handled)
			}
			wantEOF(t, bad)

			// The other connection still works.
			write(t, good, eventFrame(2))
			if got := ts.next(t).GetEvent().GetSeq(); got != 2 {
				t.Fatalf("good connection delivered event %d, want 2", got)
			}
			want := tt.want
			want.Accepted = 2
			want.Active = 1
			want.Frames += 2 // the good connection's hello and event
			want.Events++
			if d := cmp.Diff(want, ts.Stats()); d != "" {
				t.Errorf("stats (-want +got):\n%s", d)
			}
		})
	}
}

func TestServerRejectsDisallowedUID(t *testing.T) {
	ts := startServer(t, Options{AllowedUIDs: []uint32{uint32(os.Geteuid()) + 1}})
	wantEOF(t, ts.dial(t))
	if d := cmp.Diff(Stats{Rejected: 1}, ts.Stats()); d != "" {
		t.Errorf("stats (-want +got):\n%s", d)
	}
	select {
	case m := <-ts.msgs:
		t.Errorf("handler got %v from a rejected peer", m)
	case c := <-ts.closes:
		t.Errorf("OnClose called for a rejected peer: %+v", c)
	default:
	}
}

func TestPeerCredentials(t *testing.T) {
	peers := make(chan *Peer, 1)
	ts := startServer(t, Options{Handler: func(p *Peer, _ *xdrv1.AgentMessage) { peers <- p }})
	c := ts.dial(t)
	write(t, c, helloFrame(wire.SchemaVersion))
	p := <-peers
	want := &Peer{ID: 1, PID: int32(os.Getpid()), UID: uint32(os.Geteuid()), GID: uint32(os.Getegid()),
		Hello: &xdrv1.Hello{AgentId: "a", SchemaVersion: wire.SchemaVersion}}
	// Events is a live counter, not part of the peer's identity.
	if d := cmp.Diff(want, p, protocmp.Transform(), cmpopts.IgnoreFields(Peer{}, "Events"), cmpopts.IgnoreUnexported(Peer{})); d != "" {
		t.Errorf("peer (-want +got):\n%s", d)
	}
}

func TestListenSocketFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.sock")

	ts := startServer(t, Options{Socket: path})
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket file mode %v, want a socket with 0600", fi.Mode())
	}
	if _, err := Listen(&Options{Socket: path, Handler: func(*Peer, *xdrv1.AgentMessage) {}}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second Listen on a live socket: %v, want an in-use error", err)
	}
	ts.closed(t) // the probe connection of the second Listen
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket file after Close: %v, want it removed", err)
	}

	// A stale socket (its listener died without removing it) is replaced.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	ts = startServer(t, Options{Socket: path})
	c := ts.dial(t)
	write(t, c, helloFrame(wire.SchemaVersion))
	ts.next(t)
}

func TestListenErrors(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "file")
	if err := os.WriteFile(regular, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	handler := func(*Peer, *xdrv1.AgentMessage) {}
	tests := []struct {
		name    string
		opts    *Options
		wantErr string
	}{
		{"nil options", nil, "no Handler"},
		{"no socket", &Options{Handler: handler}, "no socket path"},
		{"regular file in the way", &Options{Socket: regular, Handler: handler}, "not a socket"},
		{"missing directory", &Options{Socket: filepath.Join(dir, "missing", "s"), Handler: handler}, "no such file or directory (create the directory"},
		{"world-readable mode", &Options{Socket: filepath.Join(dir, "s"), Mode: 0o666, Handler: handler}, "mode 0666 not allowed"},
		{"path too long", &Options{Socket: "/" + strings.Repeat("x", 110), Handler: handler}, "Unix sockets allow at most 107"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Listen(tt.opts)
			if err == nil {
				s.Close()
				t.Fatal("Listen succeeded")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
		})
	}
	if b, err := os.ReadFile(regular); err != nil || string(b) != "keep me" {
		t.Errorf("regular file after Listen: %q, %v", b, err)
	}
}

func TestExplain(t *testing.T) {
	tests := []struct {
		name string
		in   error
		want string
	}{
		{"permission", &net.OpError{Op: "listen", Err: os.NewSyscallError("bind", syscall.EACCES)},
			"socket /run/xdr/agent.sock: permission denied (run as root or give this user write access to /run/xdr)"},
		{"no directory", &fs.PathError{Op: "lstat", Path: "/run/xdr/agent.sock", Err: syscall.ENOENT},
			"socket /run/xdr/agent.sock: no such file or directory (create the directory /run/xdr first, e.g. with systemd's RuntimeDirectory=)"},
		{"in use", syscall.EADDRINUSE,
			"socket /run/xdr/agent.sock: address already in use (is another aggregator running?)"},
		{"other", errors.New("boom"), "socket /run/xdr/agent.sock: boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := explain("/run/xdr/agent.sock", tt.in)
			if err.Error() != tt.want {
				t.Errorf("got  %q\nwant %q", err, tt.want)
			}
			if !errors.Is(err, errors.Unwrap(err)) || (tt.name == "permission" && !errors.Is(err, fs.ErrPermission)) {
				t.Errorf("%v does not wrap its cause", err)
			}
		})
	}
}

func TestServeStopsOnContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.sock")
	s, err := Listen(&Options{Socket: path, Handler: func(*Peer, *xdrv1.AgentMessage) {}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	write(t, c, helloFrame(wire.SchemaVersion))
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	wantEOF(t, c)
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket file after Serve returned: %v, want it removed", err)
	}
	if st := s.Stats(); st.Active != 0 {
		t.Errorf("%d connections active after Serve returned", st.Active)
	}
	if err := s.Serve(context.Background()); err == nil {
		t.Error("second Serve returned nil")
	}
}

// expect predicts, frame by frame with wire.Decode, the Stats of one
// connection that sends data and closes, and how many messages the
// handler sees.
func expect(data []byte, maxFrame int) (want Stats, handled uint64) {
	for off := 0; ; {
		m := new(xdrv1.AgentMessage)
		n, err := wire.Decode(data[off:], maxFrame, m)
		switch {
		case err == nil:
		case off == len(data) && off == 0:
			want.HelloErrors++ // nothing sent
			return want, handled
		case off == len(data):
			return want, handled // clean end
		case errors.Is(err, io.ErrUnexpectedEOF):
			want.Truncated++
			return want, handled
		case errors.Is(err, wire.ErrFrameTooLarge):
			want.Oversized++
			return want, handled
		default:
			want.Malformed++
			return want, handled
		}
		want.Frames++
		if off == 0 && checkHello(m) != nil {
			want.HelloErrors++
			return want, handled
		}
		if m.GetEvent() != nil {
			want.Events++
		}
		handled++
		off += n
	}
}

func FuzzServerConn(f *testing.F) {
	hello := helloFrame(wire.SchemaVersion)
	f.Add(cat(hello, eventFrame(1), eventFrame(2)))
	f.Add(cat(hello, eventFrame(1)[:9]))
	f.Add(cat(hello, []byte{0, 0, 0, 0}))
	f.Add(cat(hello, []byte{0xff, 0xff, 0xff, 0xff}))
	f.Add(helloFrame(0))
	f.Add(eventFrame(1))
	f.Add([]byte{})
	const maxFrame = 4096
	f.Fuzz(func(t *testing.T, data []byte) {
		var handled uint64
		s, err := newServer(&Options{MaxFrameSize: maxFrame, Handler: func(p *Peer, m *xdrv1.AgentMessage) {
			if handled == 0 && (p.Hello == nil || p.Hello != m.GetHello()) {
				t.Errorf("first message %v is not the peer's hello %v", m, p.Hello)
			}
			handled++
		}})
		if err != nil {
			t.Fatal(err)
		}
		client, server := net.Pipe()
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			if len(data) > 0 {
				client.Write(data) // fails once the server stops reading
			}
			client.Close()
		}()
		err = s.serveConn(server, &Peer{ID: 1})
		server.Close()
		<-wrote

		want, wantHandled := expect(data, maxFrame)
		if d := cmp.Diff(want, s.Stats()); d != "" {
			t.Fatalf("stats (-want +got):\n%s", d)
		}
		if handled != wantHandled {
			t.Fatalf("handler saw %d messages, want %d", handled, wantHandled)
		}
		clean := want.Malformed+want.Oversized+want.Truncated+want.HelloErrors == 0
		if clean != (err == nil) {
			t.Fatalf("serveConn returned %v, want error %v", err, !clean)
		}
	})
}

// TestServerIdle checks that Idle comes once all frames read from the
// socket have been handled, not per frame, and once more at the end.
func TestServerIdle(t *testing.T) {
	type call struct {
		handled int // frames handled before this call
	}
	calls := make(chan call, 64)
	handled := 0
	ts := startServer(t, Options{
		Handler: func(_ *Peer, m *xdrv1.AgentMessage) { handled++ },
		Idle:    func(*Peer) { calls <- call{handled} },
	})
	c := ts.dial(t)
	// The hello and 20 events in one write: one read of the socket.
	frames := [][]byte{helloFrame(wire.SchemaVersion)}
	for i := range 20 {
		frames = append(frames, eventFrame(uint64(i)))
	}
	write(t, c, cat(frames...))
	select {
	case got := <-calls:
		if got.handled != 21 {
			t.Fatalf("Idle after %d frames, want after all 21 of the first write", got.handled)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no Idle call")
	}
	write(t, c, cat(eventFrame(20), eventFrame(21)))
	c.Close()
	ts.closed(t) // the last Idle comes before OnClose
	// One Idle once both were read (two if they came in two reads), and
	// one as the connection ended.
	var after []int
	for len(calls) > 0 {
		after = append(after, (<-calls).handled)
	}
	if n := len(after); n < 2 || n > 3 || after[n-1] != 23 || after[n-2] != 23 {
		t.Errorf("Idle calls after the second write saw %v frames handled, want [(22) 23 23]", after)
	}
}

// TestServerIdleFrameCut checks Idle when a read ends inside a frame: the
// whole frames before it are handed on before the socket is read again.
func TestServerIdleFrameCut(t *testing.T) {
	idled := make(chan int, 64)
	handled := 0
	ts := startServer(t, Options{
		Handler: func(_ *Peer, m *xdrv1.AgentMessage) { handled++ },
		Idle:    func(*Peer) { idled <- handled },
	})
	c := ts.dial(t)
	last := eventFrame(3)
	write(t, c, cat(helloFrame(wire.SchemaVersion), eventFrame(1), eventFrame(2), last[:len(last)/2]))
	select {
	case n := <-idled:
		if n != 3 {
			t.Fatalf("Idle after %d frames, want after the hello and both whole events", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no Idle while the rest of a frame was awaited")
	}
	write(t, c, last[len(last)/2:])
	c.Close()
	ts.closed(t)
	if handled != 4 {
		t.Errorf("%d frames handled, want 4", handled)
	}
}
