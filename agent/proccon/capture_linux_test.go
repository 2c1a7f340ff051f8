//go:build linux

package proccon

import (
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var update = flag.Bool("update", false, "recapture the testdata/*.hex fixtures from the running kernel (as root)")

// rawMessage is one netlink message payload read off the socket, with its
// decoding.
type rawMessage struct {
	payload []byte
	ev      Event
	err     error
}

// readRaw reads datagrams from c (bypassing Receive) until c is closed,
// sending each kernel message's payload to out. It closes out when done.
func readRaw(c *Conn, out chan<- rawMessage) {
	defer close(out)
	for !c.closed.Load() {
		var msgs []rawMessage
		err := c.rc.Control(func(fd uintptr) {
			n, errno := c.recvmmsg(fd)
			if errno != 0 {
				return // the receive timeout, or an error Receive would report
			}
			for i := range n {
				b, from, truncated := c.datagram(i)
				if truncated || from.Pid != 0 {
					continue
				}
				for len(b) >= unix.NLMSG_HDRLEN {
					l := int(ne.Uint32(b[0:4]))
					if l < unix.NLMSG_HDRLEN || l > len(b) {
						break
					}
					p := bytes.Clone(b[unix.NLMSG_HDRLEN:l])
					ev, err := Decode(p)
					msgs = append(msgs, rawMessage{payload: p, ev: ev, err: err})
					b = b[min(len(b), (l+3)&^3):]
				}
			}
		})
		for _, m := range msgs {
			out <- m
		}
		if err != nil {
			return
		}
	}
}

// TestIntegrationCaptureFixtures rewrites testdata/*.hex from the messages
// this kernel sends for runScenario. It runs only with -update:
//
//	go test ./agent/proccon -run TestIntegrationCaptureFixtures -update
//
// The table in decode_test.go must then be updated to the new pids.
func TestIntegrationCaptureFixtures(t *testing.T) {
	if !*update {
		t.Skip("run with -update to recapture the fixtures")
	}
	requireRoot(t)
	c, err := Dial(nil)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan rawMessage, 1024)
	go readRaw(c, out)
	var (
		mu   sync.Mutex
		seen []rawMessage
	)
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for m := range out {
			mu.Lock()
			seen = append(seen, m)
			mu.Unlock()
		}
	}()

	s := runScenario(t)
	isThread := func(tid uint32) bool {
		for _, x := range s.threads {
			if x == tid {
				return true
			}
		}
		return false
	}
	fixtures := []struct {
		name, desc string
		match      func(e Event) bool
	}{
		{"ack", "acknowledgement of PROC_CN_MCAST_LISTEN", func(e Event) bool { return e.What == None }},
		{"fork", fmt.Sprintf("fork of /bin/true (pid %d) by the test process (tgid %d)", s.trueCmd, s.self),
			func(e Event) bool { return e.What == Fork && e.PID == s.trueCmd }},
		{"fork_thread", fmt.Sprintf("new thread of the test process (tgid %d)", s.self),
			func(e Event) bool { return e.What == Fork && e.TGID == s.self && e.PID != s.self }},
		{"exec", fmt.Sprintf("exec of /bin/true (pid %d)", s.trueCmd),
			func(e Event) bool { return e.What == Exec && e.PID == s.trueCmd }},
		{"uid", fmt.Sprintf("setpriv (pid %d) setting uid 65534", s.setpriv),
			func(e Event) bool { return e.What == UID && e.PID == s.setpriv }},
		{"gid", fmt.Sprintf("setpriv (pid %d) setting gid 65534", s.setpriv),
			func(e Event) bool { return e.What == GID && e.PID == s.setpriv }},
		{"sid", fmt.Sprintf("setsid (pid %d)", s.setsid),
			func(e Event) bool { return e.What == SID && e.PID == s.setsid }},
		{"comm", fmt.Sprintf("sh (pid %d) writing \"renamed\" to /proc/self/comm", s.comm),
			func(e Event) bool { return e.What == Comm && e.PID == s.comm }},
		{"ptrace_attach", fmt.Sprintf("thread %d of the test process (tgid %d) attaching to sleep (pid %d)", s.tracerTID, s.self, s.traced),
			func(e Event) bool { return e.What == Ptrace && e.PID == s.traced && e.TracerPID != 0 }},
		{"ptrace_detach", fmt.Sprintf("detach from sleep (pid %d)", s.traced),
			func(e Event) bool { return e.What == Ptrace && e.PID == s.traced && e.TracerPID == 0 }},
		{"coredump", fmt.Sprintf("sh (pid %d) killed by SIGQUIT with RLIMIT_CORE 0", s.core),
			func(e Event) bool { return e.What == Coredump && e.PID == s.core }},
		{"exit", fmt.Sprintf("sh (pid %d) exiting with status 3", s.exit3),
			func(e Event) bool { return e.What == Exit && e.PID == s.exit3 }},
		{"exit_signal", fmt.Sprintf("sleep (pid %d) killed by SIGKILL", s.traced),
			func(e Event) bool { return e.What == Exit && e.PID == s.traced }},
		{"exit_thread", fmt.Sprintf("exit of one of the threads %v of the test process (tgid %d)", s.threads, s.self),
			func(e Event) bool { return e.What == Exit && isThread(e.PID) }},
	}

	found := make(map[string]rawMessage)
	deadline := time.Now().Add(10 * time.Second)
	for len(found) < len(fixtures) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		mu.Lock()
		for _, f := range fixtures {
			if _, ok := found[f.name]; ok {
				continue
			}
			for _, m := range seen {
				if m.err == nil && f.match(m.ev) {
					found[f.name] = m
					break
				}
			}
		}
		mu.Unlock()
	}
	if err := c.Close(); err != nil {
		t.Error(err)
	}
	<-collected

	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		t.Fatal(err)
	}
	kernel := unix.ByteSliceToString(uts.Release[:])
	for _, f := range fixtures {
		m, ok := found[f.name]
		if !ok {
			t.Errorf("no message captured for fixture %s (%s)", f.name, f.desc)
			continue
		}
		text := fmt.Sprintf("# %s\n# captured on Linux %s %s by TestIntegrationCaptureFixtures; decodes to %+v\n%s\n",
			f.desc, kernel, runtime.GOARCH, m.ev, hex.EncodeToString(m.payload))
		if err := os.WriteFile(filepath.Join("testdata", f.name+".hex"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %+v", f.name, m.ev)
	}
}
