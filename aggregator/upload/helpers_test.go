package upload

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xdr-sensor/xdr/aggregator/bundle"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// testKey is the agent key the test server accepts.
const testKey = "k3y-Secret_value.for/tests+only=="

// basePath is the path of the test server's base URL.
const basePath = "/collector"

// action is what the test server does with a request.
type action int

const (
	actAck          action = iota // acknowledge (201), after checking the request
	actServerError                // 500
	actRetryAfter                 // 429 with Retry-After: 1
	actStall                      // never answer, until the test ends
	actCut                        // close the connection in the middle of the body
	actBadSum                     // 200 with another sha256 in the acknowledgement
	actBadName                    // 200 with another name in the acknowledgement
	actEmptyOK                    // 200 without body
	actNoContent                  // 204
	actRedirect                   // 307 to another path of the server
	actUnauthorized               // 401
	actTooLarge                   // 413
)

// hit is a request the test server received.
type hit struct {
	name   string
	act    action
	at     time.Time
	header http.Header
}

// testServer is a collection server over TLS for the tests. It answers
// each request as decide says, and checks and keeps the bundles it
// acknowledges.
type testServer struct {
	*httptest.Server
	t   *testing.T
	dir string // the uploader's directory

	mu      sync.Mutex
	decide  func(name string, n int) action // n counts the requests for name, from 1
	counts  map[string]int
	hits    []hit
	acked   []string          // names in acknowledgement order
	bodies  map[string][]byte // acknowledged bundles
	stalled chan string       // the names of stalled requests
	stop    chan struct{}     // ends stalls
}

// newTestServer starts a server that acknowledges every bundle. Pass a
// non-nil tlsConf to start it with that configuration.
func newTestServer(t *testing.T, dir string, tlsConf *tls.Config) *testServer {
	s := &testServer{
		t: t, dir: dir,
		decide:  func(string, int) action { return actAck },
		counts:  make(map[string]int),
		bodies:  make(map[string][]byte),
		stalled: make(chan string, 64),
		stop:    make(chan struct{}),
	}
	s.Server = httptest.NewUnstartedServer(s)
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	s.TLS = tlsConf
	s.StartTLS()
	t.Cleanup(s.Close)
	t.Cleanup(func() { close(s.stop) }) // runs before Close
	return s
}

func (s *testServer) setDecide(f func(name string, n int) action) {
	s.mu.Lock()
	s.decide = f
	s.mu.Unlock()
}

func (s *testServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutPrefix(r.URL.Path, basePath+"/v1/bundles/")
	if !ok || r.Method != http.MethodPut {
		s.t.Errorf("server: unexpected request %s %s", r.Method, r.URL.Path)
		http.Error(w, "no such thing", http.StatusNotFound)
		return
	}
	s.mu.Lock()
	s.counts[name]++
	act := s.decide(name, s.counts[name])
	s.hits = append(s.hits, hit{name: name, act: act, at: time.Now(), header: r.Header.Clone()})
	s.mu.Unlock()

	switch act {
	case actStall:
		s.stalled <- name
		select {
		case <-r.Context().Done():
		case <-s.stop:
		}
		return
	case actCut:
		if _, err := io.ReadFull(r.Body, make([]byte, 100)); err != nil {
			s.t.Errorf("server: read the start of %s: %v", name, err)
		}
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			s.t.Errorf("server: hijack: %v", err)
			return
		}
		conn.Close()
		return
	case actUnauthorized:
		http.Error(w, "unknown agent key", http.StatusUnauthorized)
		return
	case actTooLarge:
		http.Error(w, "bundle too large", http.StatusRequestEntityTooLarge)
		return
	case actRedirect:
		http.Redirect(w, r, basePath+"/elsewhere/v1/bundles/"+name, http.StatusTemporaryRedirect)
		return
	}

	body, err := io.ReadAll(r.Body)
	if err != nil {
		s.t.Errorf("server: read %s: %v", name, err)
		return
	}
	sum := sha256.Sum256(body)
	hexSum := hex.EncodeToString(sum[:])
	switch act {
	case actServerError:
		http.Error(w, "database unavailable", http.StatusInternalServerError)
	case actRetryAfter:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "slow down", http.StatusTooManyRequests)
	case actBadSum:
		fmt.Fprintf(w, `{"name": %q, "sha256": %q}`, name, strings.Repeat("0", 64))
	case actBadName:
		fmt.Fprintf(w, `{"name": %q, "sha256": %q}`, "xdr-other.gpbz", hexSum)
	case actEmptyOK:
		w.WriteHeader(http.StatusOK)
	case actNoContent:
		w.WriteHeader(http.StatusNoContent)
	case actAck:
		if err := s.check(r, name, body, hexSum); err != nil {
			s.t.Errorf("server: %s: %v", name, err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.acked = append(s.acked, name)
		s.bodies[name] = body
		s.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"name": %q, "sha256": %q}`, name, hexSum)
	default:
		s.t.Errorf("server: unknown action %d", act)
	}
}

// check verifies an upload to acknowledge: headers and body, and that the
// file is still in the directory.
func (s *testServer) check(r *http.Request, name string, body []byte, hexSum string) error {
	wantHeader := map[string]string{
		"Authorization":   "Bearer " + testKey,
		"Content-Type":    "application/vnd.xdr.gpbz",
		"X-Xdr-Sha256":    hexSum,
		"X-Xdr-Critical":  fmt.Sprint(strings.HasSuffix(name, bundle.CritExt)),
		"X-Xdr-Agent-Id":  "agent-guid-1",
		"X-Xdr-Device-Id": "device-1",
		"User-Agent":      "xdr-aggregator/1.2.3",
	}
	for k, v := range wantHeader {
		if got := r.Header.Get(k); got != v {
			return fmt.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if r.ContentLength != int64(len(body)) {
		return fmt.Errorf("Content-Length %d, body %d bytes", r.ContentLength, len(body))
	}
	if _, err := os.Stat(filepath.Join(s.dir, name)); err != nil {
		return fmt.Errorf("bundle not in the directory while being uploaded: %v", err)
	}
	return nil
}

// Accessors taking the lock.

func (s *testServer) ackedNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.acked...)
}

func (s *testServer) hitsFor(name string) []hit {
	s.mu.Lock()
	defer s.mu.Unlock()
	var hs []hit
	for _, h := range s.hits {
		if h.name == name || name == "" {
			hs = append(hs, h)
		}
	}
	return hs
}

func (s *testServer) body(name string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bodies[name]
}

// rootCAs returns a pool holding the test server's certificate.
func (s *testServer) rootCAs() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(s.Certificate())
	return pool
}

// options returns Options for an Uploader of dir talking to s, with short
// backoffs.
func (s *testServer) options(t *testing.T, dir string) *Options {
	return &Options{
		URL: s.URL + basePath, Dir: dir, Key: []byte(testKey),
		TLS:     &tls.Config{RootCAs: s.rootCAs()},
		AgentID: "agent-guid-1", DeviceID: "device-1", Version: "1.2.3",
		Timeout:    10 * time.Second,
		BackoffMin: 5 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
		Logger: testLogger(t),
	}
}

// logBuffer collects log output from any goroutine.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testLogger returns a debug logger whose output is checked, when the
// test ends, not to hold the agent key, and shown if the test failed.
func testLogger(t *testing.T) *slog.Logger {
	b := &logBuffer{}
	t.Cleanup(func() {
		out := b.String()
		if strings.Contains(out, testKey) {
			t.Errorf("the log holds the agent key:\n%s", out)
		}
		if t.Failed() {
			t.Logf("log:\n%s", out)
		}
	})
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newUploader returns an Uploader whose backoff always draws the longest
// wait, so that waits can be bounded from below.
func newUploader(t *testing.T, o *Options) *Uploader {
	t.Helper()
	u, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	u.rand = func(n int64) int64 { return n - 1 }
	return u
}

// start runs u until the test ends or the returned stop is called; stop
// fails the test if Run does not return within 5 seconds of the cancel.
func start(t *testing.T, u *Uploader) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Error("Run did not return within 5s of its context being canceled")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond until it holds, failing the test after 10 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// t0 is the time of the first test bundle.
var t0 = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

// writeBundles writes one sealed bundle per element of crit into dir with
// bundle.Writer, critical where crit says, and returns their paths in
// creation order. The bundles are a few KiB, of incompressible data. The
// writer names a later call's bundles after the earlier ones.
func writeBundles(t *testing.T, dir string, crit ...bool) []string {
	t.Helper()
	now := t0
	w, err := bundle.NewWriter(&bundle.WriterOptions{Dir: dir, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	w.OnSeal(func(path string) { paths = append(paths, path) })
	for i, c := range crit {
		for j := range 20 {
			if err := w.Write(testRecord(uint64(i*100 + j))); err != nil {
				t.Fatal(err)
			}
		}
		if c {
			w.MarkCritical()
		}
		if err := w.Rotate(); err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Second)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return paths
}

// testRecord returns an event record with 100 random bytes in it.
func testRecord(seq uint64) *xdrv1.Record {
	return &xdrv1.Record{Record: &xdrv1.Record_Event{Event: &xdrv1.ActEvent{
		Seq:         seq,
		TimestampNs: t0.UnixNano() + int64(seq),
		EventType:   xdrv1.XdrEventType_XDR_EVENT_TYPE_FILE,
		AccessType:  xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_OPEN,
		Subject:     &xdrv1.Process{Pid: 42, Exe: "/usr/bin/worker", Argv: []string{rand.Text(), rand.Text(), rand.Text(), rand.Text()}},
	}}}
}

// readFiles returns the content of the files by base name.
func readFiles(t *testing.T, paths []string) map[string][]byte {
	t.Helper()
	m := make(map[string][]byte)
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		m[filepath.Base(p)] = b
	}
	return m
}

// exists reports whether path exists.
func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func names(paths []string) []string {
	var ns []string
	for _, p := range paths {
		ns = append(ns, filepath.Base(p))
	}
	return ns
}
