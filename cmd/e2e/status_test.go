package e2e

import (
	"encoding/json"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xdr-sensor/xdr/aggregator/control"
)

// status runs `xdr-aggregator status` against s's daemon.
func (s *sensor) status(args ...string) (string, error) {
	s.tb.Helper()
	cmd := exec.Command(filepath.Join(binaries(s.tb), "xdr-aggregator"), append([]string{"status", "--control-socket", s.control}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (s *sensor) statusJSON() *control.Status {
	s.tb.Helper()
	out, err := s.status("--json")
	if err != nil {
		s.tb.Fatalf("xdr-aggregator status --json: %v\n%s", err, out)
	}
	var st control.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		s.tb.Fatalf("status --json is not a Status document: %v\n%s", err, out)
	}
	return &st
}

// TestIntegrationStatusFallbackNoBTF forces the eBPF collector to be
// unusable (a BTF file that does not exist): --method auto falls back to
// the proc connector with one log line, and `xdr-aggregator status` shows
// the method, the reason and the missing feature, and the events flowing.
func TestIntegrationStatusFallbackNoBTF(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-vmlinux")
	s := startSensorWith(t, []string{"--method", "auto", "--btf", missing})
	defer s.stop()
	if n := strings.Count(s.agent.logText(), `msg="collector method chosen"`); n != 1 {
		t.Errorf("%d method choice lines in the agent log, want 1:\n%s", n, s.agent.logText())
	}
	for i := 0; i < 20; i++ {
		exec.Command("/bin/true").Run()
	}
	var st *control.Status
	deadline := time.Now().Add(15 * time.Second)
	for {
		st = s.statusJSON()
		if (len(st.Agents) == 1 && st.Events.Received >= 20) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(st.Agents) != 1 {
		t.Fatalf("status shows %d agents, want 1: %+v", len(st.Agents), st.Agents)
	}
	a := st.Agents[0]
	if a.Method != "proc" || !strings.Contains(a.MethodReason, missing) {
		t.Errorf("agent method %q (%q), want proc with a reason naming %s", a.Method, a.MethodReason, missing)
	}
	if len(a.KernelFeatures) != 1 || a.KernelFeatures[0].Name != "btf" || a.KernelFeatures[0].Available {
		t.Errorf("kernel features %+v, want btf missing", a.KernelFeatures)
	}
	if st.Events.Received < 20 || a.Events < 20 {
		t.Errorf("events received %d (agent %d), want at least the 20 execs", st.Events.Received, a.Events)
	}
	if st.Mode != "offline" || st.DataDir != s.data {
		t.Errorf("mode %q data dir %q", st.Mode, st.DataDir)
	}

	text, err := s.status()
	if err != nil {
		t.Fatalf("xdr-aggregator status: %v\n%s", err, text)
	}
	flat := strings.Join(strings.Fields(text), " ")
	for _, want := range []string{"mode offline", "collector proc: eBPF collector unavailable", "kernel btf missing"} {
		if !strings.Contains(flat, want) {
			t.Errorf("status text lacks %q:\n%s", want, text)
		}
	}
}

// TestIntegrationStatusEBPF checks the features an agent on this kernel
// reports, and that status fails clearly once the daemon is gone.
func TestIntegrationStatusEBPF(t *testing.T) {
	s := startSensorMethod(t, "auto")
	st := s.statusJSON()
	if len(st.Agents) != 1 || st.Agents[0].Method != "ebpf" {
		t.Fatalf("agents %+v, want one using ebpf", st.Agents)
	}
	var names []string
	for _, f := range st.Agents[0].KernelFeatures {
		if !f.Available {
			t.Errorf("feature %s missing: %s", f.Name, f.Detail)
		}
		names = append(names, f.Name)
	}
	if got := strings.Join(names, ","); got != "btf,tracefs,bpffs,ringbuf,verifier,tracepoints" {
		t.Errorf("features %s", got)
	}
	// The default exclude-reads leaves out the loader's reads of a
	// dynamically linked program; the agent's count of them reaches the
	// aggregator's status and the statistics in the bundle.
	var filtered uint64
	for deadline := time.Now().Add(15 * time.Second); filtered == 0 && time.Now().Before(deadline); {
		if err := exec.Command("/bin/true").Run(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		filtered = s.statusJSON().Events.Filtered
	}
	if filtered == 0 {
		t.Error("status shows no events filtered by the agent")
	}
	s.stop()
	var inStats uint64
	for _, r := range s.records() {
		for _, ei := range asSlice(get(r, "statistics", "event_info")) {
			if get(ei.(map[string]any), "event_stat_type") == "EVENT_STAT_TYPE_FILTERED" {
				inStats += num(get(ei.(map[string]any), "count"))
			}
		}
	}
	if inStats < filtered {
		t.Errorf("statistics count %d filtered events, status showed %d", inStats, filtered)
	}
	out, err := s.status()
	if err == nil || !strings.Contains(out, "is xdr-aggregator running?") {
		t.Errorf("status with the daemon stopped: err %v, output %q", err, out)
	}
}

// TestIntegrationSystemdNotify gives both binaries a notification socket,
// as systemd does for Type=notify units, and checks that each says READY=1
// once serving and STOPPING=1 on SIGTERM.
func TestIntegrationSystemdNotify(t *testing.T) {
	needRoot(t)
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	var got []string
	read := func(n int) {
		buf := make([]byte, 4096)
		conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		for i := 0; i < n; i++ {
			m, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("notifications so far %q: %v", got, err)
			}
			got = append(got, string(buf[:m]))
		}
	}
	s := startSensor(t)
	read(3) // READY=1 from each, the agent's STATUS
	s.stop()
	read(2)
	count := func(msg string) int {
		n := 0
		for _, g := range got {
			if g == msg {
				n++
			}
		}
		return n
	}
	if count("READY=1") != 2 || count("STOPPING=1") != 2 || count("STATUS=collecting with proc") != 1 {
		t.Errorf("notifications %q, want READY=1 and STOPPING=1 from each binary and the agent's status", got)
	}
}
