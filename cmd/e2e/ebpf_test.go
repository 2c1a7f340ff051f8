package e2e

import (
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestIntegrationEBPFMatchesProcConnector runs an agent with each
// collector on the same exec workload: both must report each exec with
// the same executable, argv and instance id.
func TestIntegrationEBPFMatchesProcConnector(t *testing.T) {
	withEBPF := startSensorMethod(t, "ebpf", "--raw-events", "all")
	withProc := startSensorMethod(t, "proc", "--raw-events", "all")
	marker := fmt.Sprintf("xdr-ebpf-marker-%d", time.Now().UnixNano())
	pids := []int{
		// "; :" keeps the shell from exec'ing sleep in place, which
		// would leave the eBPF agent, reading its ring every 20ms,
		// no /proc/PID/exe to hash.
		run(t, "/bin/sh", "-c", "sleep 0.3; :", marker),
		run(t, "/bin/sh", "-c", "sleep 0.2; :", marker+"-b"),
		run(t, "/bin/true", marker+"-quick"),
	}
	setprivPID := run(t, "setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "/bin/sh", "-c", "sleep 0.2", marker+"-uid")
	// Not a process group leader, so setsid(1) calls setsid() itself.
	setsidPID := run(t, "setsid", "/bin/sh", "-c", "sleep 0.2; :", marker+"-sid")
	time.Sleep(500 * time.Millisecond)
	withEBPF.stop()
	withProc.stop()

	ebpfEvs, procEvs := events(withEBPF.records()), events(withProc.records())
	compared := 0
	for _, pid := range pids {
		a, b := find(ebpfEvs, "PROCESS_EXECUTE", pid), find(procEvs, "PROCESS_EXECUTE", pid)
		if len(a) != 1 || len(b) != 1 {
			t.Errorf("pid %d: %d PROCESS_EXECUTE with ebpf, %d with proc, want 1 each", pid, len(a), len(b))
			continue
		}
		if got := a[0]["collector"]; got != "COLLECTOR_METHOD_EBPF" {
			t.Errorf("pid %d: ebpf event collector %v", pid, got)
		}
		keys := [][]string{{"subject", "instance_id"}, {"subject", "ppid"}, {"subject", "parent_instance_id"}}
		if get(b[0], "subject", "partial") == true {
			// Gone before the proc connector's agent read /proc: only
			// the kernel record has the image.
			// the image, and the file at its path, checked against
			// the kernel's inode, can still be hashed.
			if get(a[0], "subject", "exe") == nil || len(strs(get(a[0], "subject", "argv"))) == 0 {
				t.Errorf("pid %d: ebpf exec without exe or argv: %v", pid, a[0])
			}
			if get(a[0], "subject", "exe_hashes", "sha256") == nil || get(a[0], "file", "inode") == nil {
				t.Errorf("pid %d: ebpf exec without hashes or file inode: %v", pid, a[0])
			}
		} else {
			keys = append(keys, []string{"subject", "exe"}, []string{"file", "path"}, []string{"subject", "exe_hashes", "sha256"})
			if x, y := strs(get(a[0], "subject", "argv")), strs(get(b[0], "subject", "argv")); !slices.Equal(x, y) || len(x) == 0 {
				t.Errorf("pid %d: argv %q with ebpf, %q with proc", pid, x, y)
			}
		}
		for _, key := range keys {
			if x, y := get(a[0], key...), get(b[0], key...); x != y || x == nil {
				t.Errorf("pid %d: %v is %v with ebpf, %v with proc", pid, key, x, y)
			}
		}
		compared++
	}
	// The uid and gid changes: same accounts, same new ids. (The old ids
	// may differ: the proc connector's come from the table, refreshed
	// from /proc after the fact, the eBPF collector's from the kernel.)
	a, b := find(ebpfEvs, "ACCOUNT_IMPERSONATE", setprivPID), find(procEvs, "ACCOUNT_IMPERSONATE", setprivPID)
	if len(a) != 2 || len(b) != 2 {
		t.Errorf("setpriv pid %d: %d ACCOUNT_IMPERSONATE with ebpf, %d with proc, want 2 each (gid, uid)", setprivPID, len(a), len(b))
	}
	for i := 0; i < min(len(a), len(b)); i++ {
		for _, key := range [][]string{{"id_change", "group"}, {"id_change", "new_real"}, {"id_change", "new_effective"}, {"account"}, {"subject", "instance_id"}} {
			if x, y := fmt.Sprint(get(a[i], key...)), fmt.Sprint(get(b[i], key...)); x != y {
				t.Errorf("setpriv change %d: %v is %s with ebpf, %s with proc", i, key, x, y)
			}
		}
	}
	if compared < 2 {
		t.Errorf("%d execs compared, want at least 2", compared)
	}
	// The new session: same process, same session id.
	a, b = find(ebpfEvs, "MODIFIED_PROCESS_WRITE_PROCESS", setsidPID), find(procEvs, "MODIFIED_PROCESS_WRITE_PROCESS", setsidPID)
	if len(a) != 1 || len(b) != 1 {
		t.Fatalf("setsid pid %d: %d session events with ebpf, %d with proc, want 1 each", setsidPID, len(a), len(b))
	}
	for _, key := range [][]string{{"session", "session_id"}, {"kernel_event"}, {"subject", "instance_id"}} {
		if x, y := fmt.Sprint(get(a[0], key...)), fmt.Sprint(get(b[0], key...)); x != y || x == "<nil>" {
			t.Errorf("setsid: %v is %s with ebpf, %s with proc", key, x, y)
		}
	}
	if got := num(get(a[0], "session", "session_id")); got != uint64(setsidPID) {
		t.Errorf("setsid: session id %d, want the pid %d", got, setsidPID)
	}
}

// TestIntegrationEBPFFileAndConnect checks that the eBPF collector
// reports a file created in a temporary directory and a TCP connect to a
// local listener.
func TestIntegrationEBPFFileAndConnect(t *testing.T) {
	s := startSensorMethod(t, "ebpf", "--raw-events", "all")
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	path := filepath.Join(t.TempDir(), "created-by-xdr-e2e")
	// The workload runs in child processes, so that it is not the test's
	// own Go runtime's file and socket calls being matched.
	createPID := run(t, "/bin/sh", "-c", "echo x > "+path)
	connectPID := run(t, "/bin/bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/127.0.0.1/%d", port))
	// The same open, repeated: merged into events with repeat counts.
	const opens = 20
	openPID := run(t, "python3", "-c", fmt.Sprintf("import sys\nfor _ in range(%d): open(sys.argv[1]).close()", opens), path)
	time.Sleep(500 * time.Millisecond)
	s.stop()
	evs := events(s.records())

	var opened, openEvents uint64
	for _, e := range find(evs, "FILE_OPEN", openPID) {
		if get(e, "file", "path") == path {
			openEvents++
			opened += max(num(e["repeat_count"]), 1)
		}
	}
	if opened != opens || openEvents >= opens {
		t.Errorf("pid %d opened %s %d times: %d FILE_OPEN events standing for %d opens, want fewer events for %d", openPID, path, opens, openEvents, opened, opens)
	}

	var created bool
	for _, e := range find(evs, "FILE_CREATE", createPID) {
		if get(e, "file", "path") == path {
			created = true
			if e["event_type"] != "XDR_EVENT_TYPE_FILE" || num(e["target_hash_id"]) == 0 {
				t.Errorf("file create event %v", e)
			}
		}
	}
	if !created {
		t.Errorf("no FILE_CREATE of %s by pid %d", path, createPID)
	}
	var connected bool
	for _, e := range find(evs, "CONNECTION_CONNECT_OUTBOUND", connectPID) {
		if get(e, "connection", "remote_address") == "127.0.0.1" && num(get(e, "connection", "remote_port")) == uint64(port) {
			connected = true
			if get(e, "connection", "protocol") != "XDR_CONNECTION_TYPE_TCP" || num(e["target_hash_id"]) == 0 {
				t.Errorf("connect event %v", e)
			}
		}
	}
	if !connected {
		t.Errorf("no CONNECTION_CONNECT_OUTBOUND to 127.0.0.1:%d by pid %d", port, connectPID)
	}
}
