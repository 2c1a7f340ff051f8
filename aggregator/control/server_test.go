package control

import (
	"bufio"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func sample() *Status {
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	return &Status{
		Version: "v1.2.3", Mode: "online", PID: 42, StartedAt: t0, Socket: "/run/xdr/agent.sock", DataDir: "/var/lib/xdr",
		Agents: []Agent{{
			ID: "m1", Version: "v1.2.3", Hostname: "ecu", PID: 7, Method: "proc",
			MethodReason:   "eBPF collector unavailable: kernel BTF missing",
			KernelFeatures: []Feature{{Name: "btf", Detail: "no such file"}},
			ConnectedAt:    t0.Add(time.Second), Events: 1000,
		}},
		Events:     Events{Received: 1000, PerSecond: 12.5, Drops: map[string]uint64{"dropped_queue_full": 3}, Filtered: 40},
		Footprints: Footprints{Held: 10, Bytes: 4096, New: 10, Deduplicated: 990},
		Bundles:    Bundles{Sealed: 2, SealedBytes: 2 << 20, Critical: 1, DiskBytes: 3 << 20, QuotaBytes: 256 << 20, Records: 50},
		Upload: &Upload{URL: "https://x.example/", Pending: 2, PendingBytes: 2 << 20, Failures: map[string]uint64{"server": 4},
			LastError: "503 Service Unavailable", LastErrorAt: t0.Add(time.Minute), NextAttempt: t0.Add(2 * time.Minute)},
		Rules: Rules{Enabled: []string{"exec-tmp"}, Hits: 1},
	}
}

func listen(t *testing.T, opts Options) (*Server, string) {
	t.Helper()
	if opts.Socket == "" {
		opts.Socket = filepath.Join(t.TempDir(), "control.sock")
	}
	if opts.Status == nil {
		opts.Status = sample
	}
	s, err := Listen(&opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, opts.Socket
}

func TestQuery(t *testing.T) {
	_, sock := listen(t, Options{})
	got, err := Query(context.Background(), sock)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(sample(), got); d != "" {
		t.Errorf("status (-want +got):\n%s", d)
	}
}

func TestSocketModeAndStale(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "control.sock")
	if err := os.WriteFile(sock, nil, 0o600); err != nil { // a stale file
		t.Fatal(err)
	}
	listen(t, Options{Socket: sock, Mode: 0o660, Group: os.Getgid()})
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode = %v, want a socket with 0660", fi.Mode())
	}
	if gid := fi.Sys().(*syscall.Stat_t).Gid; int(gid) != os.Getgid() {
		t.Errorf("socket group = %d, want %d", gid, os.Getgid())
	}
}

func TestBadRequests(t *testing.T) {
	_, sock := listen(t, Options{})
	ask := func(req string) string {
		conn, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		conn.Write([]byte(req))
		line, _ := bufio.NewReader(conn).ReadString('\n')
		return line
	}
	if got := ask("reboot\n"); !strings.Contains(got, `"error":"unknown request \"reboot\"`) {
		t.Errorf("unknown request answered %q", got)
	}
	if got := ask(strings.Repeat("x", 1000)); got != "" {
		t.Errorf("an over-long request was answered %q, want the connection closed", got)
	}
	// The server still answers afterwards.
	if _, err := Query(context.Background(), sock); err != nil {
		t.Errorf("Query after bad requests: %v", err)
	}
}

func TestQueryNoDaemon(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "control.sock")
	_, err := Query(context.Background(), sock)
	if err == nil || !strings.Contains(err.Error(), "is xdr-aggregator running?") {
		t.Errorf("Query with no daemon: err = %v", err)
	}
}

func TestPrint(t *testing.T) {
	var b strings.Builder
	if err := Print(&b, sample()); err != nil {
		t.Fatal(err)
	}
	// Column widths vary by paragraph: compare with runs of blanks as one.
	out := strings.Join(strings.Fields(b.String()), " ")
	for _, want := range []string{
		"mode online",
		"collector proc: eBPF collector unavailable: kernel BTF missing",
		"kernel btf missing: no such file",
		"events received 1000 (12.5/s)",
		"drops queue_full 3",
		"filtered by the agents 40",
		"bundles 2 sealed (2.0 MiB, 1 critical), quota 256.0 MiB",
		"pending 2 bundles (2.0 MiB)",
		"failures server 4",
		"last error 2026-11-23T10:01:00Z: 503 Service Unavailable",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status text lacks %q:\n%s", want, out)
		}
	}
}

func TestListenRefusesLiveSocket(t *testing.T) {
	_, sock := listen(t, Options{})
	if _, err := Listen(&Options{Socket: sock, Status: sample}); err == nil || !strings.Contains(err.Error(), "another aggregator") {
		t.Errorf("second Listen on a live socket: err = %v", err)
	}
	if _, err := Query(context.Background(), sock); err != nil {
		t.Errorf("the first server stopped answering: %v", err)
	}
}
