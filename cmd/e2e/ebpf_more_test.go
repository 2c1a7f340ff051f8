package e2e

import (
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"
)

// TestIntegrationEBPFDNSAndTraceme checks two events only the eBPF
// collector sees: a DNS query sent over UDP, parsed into name and query
// type, and a PTRACE_TRACEME, whose target is the caller's parent.
func TestIntegrationEBPFDNSAndTraceme(t *testing.T) {
	s := startSensorMethod(t, "ebpf", "--raw-events", "all")
	// A query for xdr-e2e.example, type AAAA (28).
	query := []byte{0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
		7, 'x', 'd', 'r', '-', 'e', '2', 'e', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0, 0, 28, 0, 1}
	dnsPID := run(t, "python3", "-c", "import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "+
		"s.sendto(bytes.fromhex(sys.argv[1]), ('127.0.0.1', 53))", hex.EncodeToString(query))
	tracemePID := run(t, "python3", "-c", "import ctypes,sys; libc=ctypes.CDLL(None, use_errno=True); "+
		"sys.exit(0 if libc.ptrace(0, 0, 0, 0) == 0 else 1)")
	time.Sleep(500 * time.Millisecond)
	s.stop()
	evs := events(s.records())

	var queried bool
	for _, e := range find(evs, "DNS_QUERY", dnsPID) {
		if get(e, "dns", "name") == "xdr-e2e.example" {
			queried = true
			if num(get(e, "dns", "query_type")) != 28 || get(e, "dns", "server_address") != "127.0.0.1" || num(get(e, "dns", "server_port")) != 53 {
				t.Errorf("dns query event %v", e)
			}
		}
	}
	if !queried {
		t.Errorf("no DNS_QUERY for xdr-e2e.example by pid %d", dnsPID)
	}
	traceme := find(evs, "PROCESS_TRACME", tracemePID)
	if len(traceme) != 1 {
		t.Fatalf("PROCESS_TRACME events of pid %d: %d, want 1", tracemePID, len(traceme))
	}
	if e := traceme[0]; num(get(e, "process", "tgid")) != uint64(os.Getpid()) || e["event_type"] != "XDR_EVENT_TYPE_PROCESS" {
		t.Errorf("traceme target is not the caller's parent: %v", e)
	}
}

// TestIntegrationMethodAuto checks that --method auto picks the eBPF
// collector on a kernel that supports it, says so in one log line and
// names it in the hello.
func TestIntegrationMethodAuto(t *testing.T) {
	s := startSensorMethod(t, "auto")
	s.stop()
	if n := strings.Count(s.agent.logText(), `msg="collector method chosen"`); n != 1 {
		t.Errorf("%d method choice lines in the agent log, want 1", n)
	}
	if !strings.Contains(s.agent.logText(), "sensor.method=ebpf") {
		t.Errorf("agent did not start the eBPF collector")
	}
	if !strings.Contains(s.agg.logText(), "server.method=COLLECTOR_METHOD_EBPF") {
		t.Errorf("hello does not name the eBPF collector")
	}
}
