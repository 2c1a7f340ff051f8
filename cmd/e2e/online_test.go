package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xdr-sensor/xdr/aggregator/bundle"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// collector is a test upload server: it fails while failing is set, and
// otherwise stores what it is sent and acknowledges it.
type collector struct {
	srv *httptest.Server
	key string

	mu       sync.Mutex
	failing  bool
	attempts int
	stored   map[string][]byte
}

func newCollector(t *testing.T, key string) *collector {
	c := &collector{key: key, stored: map[string][]byte{}}
	c.srv = httptest.NewTLSServer(http.HandlerFunc(c.serve))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *collector) serve(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.attempts++
	failing := c.failing
	c.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+c.key {
		http.Error(w, "bad key", http.StatusUnauthorized)
		return
	}
	if failing {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	sum := sha256.Sum256(body)
	if hex.EncodeToString(sum[:]) != r.Header.Get("X-Xdr-Sha256") {
		http.Error(w, "checksum mismatch", http.StatusBadRequest)
		return
	}
	name := path.Base(r.URL.Path)
	c.mu.Lock()
	c.stored[name] = body
	c.mu.Unlock()
	json.NewEncoder(w).Encode(map[string]string{"name": name, "sha256": hex.EncodeToString(sum[:])})
}

func (c *collector) set(failing bool) {
	c.mu.Lock()
	c.failing = failing
	c.mu.Unlock()
}

func (c *collector) snapshot() (attempts int, stored map[string][]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	stored = make(map[string][]byte, len(c.stored))
	for k, v := range c.stored {
		stored[k] = v
	}
	return c.attempts, stored
}

// TestIntegrationOnlineUpload runs the sensor in online mode against a
// local HTTPS server that first returns 503: bundles wait in the data
// directory (status shows them pending and the failures), survive an
// aggregator restart, and once the server recovers are uploaded, byte for
// byte with the events in them, and deleted only then.
func TestIntegrationOnlineUpload(t *testing.T) {
	const key = "test-agent-key-123"
	srv := newCollector(t, key)
	srv.set(true)
	dir := t.TempDir()
	caFile, keyFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "agent.key")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.srv.Certificate().Raw}), 0o644)
	os.WriteFile(keyFile, []byte(key+"\n"), 0o600)

	s := startSensor(t, "--upload-url", srv.srv.URL, "--upload-ca", caFile, "--agent-key", keyFile,
		"--bundle-max-age", "1s", "--raw-events", "all", "--upload-backoff-max", "1s")
	marker := "xdr-online-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	for i := 0; i < 5; i++ {
		exec.Command("/bin/sh", "-c", "sleep 0.05", marker).Run() // lives long enough for /proc to be read
	}
	// While the server fails, sealed bundles stay and status says why.
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := s.statusJSON()
		if st.Upload != nil && st.Upload.Pending > 0 && st.Upload.Failures["server"] > 0 {
			if st.Mode != "online" || !strings.Contains(st.Upload.LastError, "503") {
				t.Errorf("status mode %q, last error %q", st.Mode, st.Upload.LastError)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pending bundle with server failures in status: %+v", st.Upload)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// A restart keeps the queue.
	s.agg.stop()
	pending, _ := bundle.ListSealed(s.data, "")
	if len(pending) == 0 {
		t.Fatal("no sealed bundle waits in the data directory after the restart")
	}
	s.startAggregator()
	srv.set(false)

	deadline = time.Now().Add(30 * time.Second)
	for {
		_, stored := srv.snapshot()
		left, _ := bundle.ListSealed(s.data, "")
		uploadedAll := true
		for _, p := range pending {
			if _, ok := stored[p.Name]; !ok {
				uploadedAll = false
			}
		}
		if uploadedAll && len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the server recovered: %d of %d pending bundles uploaded, %d left on disk", len(stored), len(pending), len(left))
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.stop()

	// The marker's execs are in what the server received.
	attempts, stored := srv.snapshot()
	found := 0
	for name, body := range stored {
		rd := bundle.NewReader(bytes.NewReader(body))
		for {
			r, err := rd.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Errorf("uploaded bundle %s does not read back: %v", name, err)
				break
			}
			if e := r.GetEvent(); e != nil && e.GetAccessType() == xdrv1.XdrAccessType_XDR_ACCESS_TYPE_PROCESS_EXECUTE &&
				strings.Contains(strings.Join(e.GetSubject().GetArgv(), " "), marker) {
				found++
			}
		}
	}
	if found != 5 {
		t.Errorf("uploaded bundles hold %d execs of the marker, want 5", found)
	}
	t.Logf("%d bundles uploaded in %d attempts", len(stored), attempts)
}
