package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// run runs a workload command and returns its pid.
func run(t *testing.T, name string, args ...string) int {
	t.Helper()
	cmd := exec.Command(name, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return cmd.Process.Pid
}

func TestIntegrationProcessEvents(t *testing.T) {
	s := startSensor(t, "--raw-events", "all")
	marker := fmt.Sprintf("xdr-marker-%d", time.Now().UnixNano())

	// A process that lives long enough to be read from /proc, one that
	// exits at once, a uid change and a comm rename.
	livePID := run(t, "/bin/sh", "-c", "sleep 0.3", marker)
	quickPID := run(t, "/bin/true", marker+"-quick")
	setprivPID := run(t, "setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "/bin/sh", "-c", "sleep 0.2", marker+"-uid")
	renamePID := run(t, "/bin/sh", "-c", "printf xdrrenamed > /proc/self/comm; sleep 0.2", marker+"-comm")
	time.Sleep(500 * time.Millisecond) // let the aggregator flush
	s.stop()

	evs := events(s.records())
	self := os.Getpid()

	// fork: the test process created the shell.
	creates := find(evs, "PROCESS_CREATE", self)
	var created bool
	for _, e := range creates {
		if num(get(e, "process", "tgid")) == uint64(livePID) {
			created = true
			if got := e["event_type"]; got != "XDR_EVENT_TYPE_PROCESS" {
				t.Errorf("create: event_type %v", got)
			}
			if num(get(e, "process", "ppid")) != uint64(self) {
				t.Errorf("create: child ppid %v, want %d", get(e, "process", "ppid"), self)
			}
		}
	}
	if !created {
		t.Errorf("no PROCESS_CREATE of pid %d by pid %d", livePID, self)
	}

	// exec: subject with exe, argv and parent link; target the file.
	execs := find(evs, "PROCESS_EXECUTE", livePID)
	if len(execs) != 1 {
		t.Fatalf("PROCESS_EXECUTE events for pid %d: %d, want 1", livePID, len(execs))
	}
	e := execs[0]
	if got, want := strs(get(e, "subject", "argv")), []string{"/bin/sh", "-c", "sleep 0.3", marker}; !slices.Equal(got, want) {
		t.Errorf("exec argv %q, want %q", got, want)
	}
	exe, _ := filepath.EvalSymlinks("/bin/sh")
	if got := get(e, "subject", "exe"); got != exe {
		t.Errorf("exec exe %v, want %s", got, exe)
	}
	if got := get(e, "file", "path"); got != exe {
		t.Errorf("exec target file %v, want %s", got, exe)
	}
	if num(get(e, "subject", "ppid")) != uint64(self) {
		t.Errorf("exec ppid %v, want %d", get(e, "subject", "ppid"), self)
	}
	if anc := asSlice(get(e, "subject", "ancestors")); len(anc) == 0 || num(get(anc[0].(map[string]any), "pid")) != uint64(self) {
		t.Errorf("exec ancestry %v does not start with pid %d", anc, self)
	}
	if get(e, "subject", "exe_hashes", "sha256") == nil {
		t.Errorf("exec has no exe sha256: %v", get(e, "subject"))
	}
	if get(e, "subject", "instance_id") == nil {
		t.Error("exec has no instance id")
	}

	// The child's sleep: fork by the shell, exec of sleep, both exits.
	if len(find(evs, "PROCESS_TERMINATE", livePID)) != 1 {
		t.Errorf("no single PROCESS_TERMINATE for pid %d", livePID)
	}

	// A process gone before /proc could be read is still reported.
	if len(find(evs, "PROCESS_EXECUTE", quickPID)) != 1 {
		t.Errorf("no PROCESS_EXECUTE for the short-lived pid %d", quickPID)
	}
	if term := find(evs, "PROCESS_TERMINATE", quickPID); len(term) != 1 {
		t.Errorf("no PROCESS_TERMINATE for the short-lived pid %d", quickPID)
	}

	// uid change by setpriv.
	var uidChange bool
	for _, e := range find(evs, "ACCOUNT_IMPERSONATE", setprivPID) {
		if get(e, "id_change", "group") == true {
			continue
		}
		uidChange = true
		if e["event_type"] != "XDR_EVENT_TYPE_ACCOUNT" || num(get(e, "id_change", "new_real")) != 65534 || num(get(e, "account", "uid")) != 65534 {
			t.Errorf("uid change event %v", e)
		}
		if get(e, "account", "name") != "nobody" {
			t.Errorf("uid change account name %v, want nobody", get(e, "account", "name"))
		}
	}
	if !uidChange {
		t.Errorf("no uid ACCOUNT_IMPERSONATE for setpriv pid %d", setprivPID)
	}

	// comm rename.
	renames := find(evs, "MODIFIED_PROCESS_WRITE_PROCESS_NAME", renamePID)
	if len(renames) != 1 {
		t.Fatalf("rename events for pid %d: %d, want 1", renamePID, len(renames))
	}
	if got := get(renames[0], "comm_change", "new_comm"); got != "xdrrenamed" {
		t.Errorf("new comm %v", got)
	}
	if got := get(renames[0], "comm_change", "old_comm"); got != "sh" {
		t.Errorf("old comm %v, want sh", got)
	}

	// The agent reports nothing about itself.
	for _, e := range evs {
		if num(get(e, "subject", "tgid")) == uint64(s.agent.cmd.Process.Pid) {
			t.Fatalf("event about the agent itself: %v", e)
		}
	}
}

func TestIntegrationAggregatorRestart(t *testing.T) {
	s := startSensor(t, "--raw-events", "all")
	before := run(t, "/bin/sh", "-c", "sleep 0.1", "before-restart")
	time.Sleep(400 * time.Millisecond)
	s.agg.kill()

	// Events while the aggregator is away are queued or counted as
	// dropped, never block the agent.
	during := run(t, "/bin/sh", "-c", "sleep 0.1", "during-restart")
	s.startAggregator()
	s.agg.waitLog("agent connected")
	after := run(t, "/bin/sh", "-c", "sleep 0.1", "after-restart")
	time.Sleep(500 * time.Millisecond)
	s.stop()

	// The killed aggregator's unsealed bundle was recovered and sealed
	// by its successor.
	if parts, _ := filepath.Glob(filepath.Join(s.data, "*.part")); len(parts) != 0 {
		t.Errorf("unsealed bundles left: %v", parts)
	}
	var recovered bool
	recs := s.records()
	for _, r := range recs {
		if get(r, "trailer", "recovered") == true {
			recovered = true
		}
	}
	if !recovered {
		t.Error("no bundle with a recovered trailer after the aggregator was killed")
	}
	evs := events(recs)
	if len(find(evs, "PROCESS_EXECUTE", after)) != 1 {
		t.Errorf("no exec event for pid %d after the aggregator restarted", after)
	}
	// The killed aggregator had flushed its frame to the unsealed bundle
	// before the kill: a crash loses only what was not yet flushed.
	if len(find(evs, "PROCESS_EXECUTE", before)) != 1 {
		t.Errorf("no exec event for pid %d, flushed before the aggregator was killed", before)
	}
	// What happened while it was away was queued by the agent and
	// arrives over the new connection.
	if len(find(evs, "PROCESS_EXECUTE", during)) != 1 {
		t.Errorf("no exec event for pid %d run while the aggregator was down", during)
	}
	if n := strings.Count(s.agent.logText(), "connected to aggregator"); n < 2 {
		t.Errorf("agent connected %d times, want a reconnect:\n%s", n, s.agent.logText())
	}
}
