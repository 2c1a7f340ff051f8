//go:build linux

package proccon

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// stormExecs is the number of fork+exec of /bin/true in each storm of
// BenchmarkReceiveExecStorm.
const stormExecs = 3000

// BenchmarkReceiveExecStorm measures the floor of the proc connector
// method: the CPU a reader spends only receiving the events of an exec
// storm, per fork+exec of /bin/true from a shell loop in a child process.
// The agent's enrichment, mapping and transport, and the aggregator, all
// come on top.
//
//   - go: this package's Receive in a loop, the events dropped.
//   - c: testdata/recvfloor.c, a blocking recv(2) loop that only counts
//     datagrams, built with the C compiler found (skipped without one).
//
// workload-us/exec is the storm's own CPU (the shell and its children), the
// baseline of the same run; reader_ratio is the reader's CPU over it.
func BenchmarkReceiveExecStorm(b *testing.B) {
	requireRoot(b)
	b.Run("go", benchReceiveGo)
	b.Run("c", benchReceiveC)
}

func benchReceiveGo(b *testing.B) {
	c, err := Dial(nil)
	if err != nil {
		b.Fatalf("Dial: %v", err)
	}
	var events atomic.Int64
	done := make(chan error, 1)
	go func() {
		var evs []Event
		for {
			var err error
			evs, err = c.Receive(evs[:0])
			events.Add(int64(len(evs)))
			switch {
			case errors.Is(err, net.ErrClosed):
				done <- nil
				return
			case err != nil && !errors.Is(err, ErrOverrun):
				done <- err
				return
			}
		}
	}()
	var reader, workload time.Duration
	var got int64
	for range b.N {
		var self0, self1 unix.Rusage
		unix.Getrusage(unix.RUSAGE_SELF, &self0)
		n0 := events.Load()
		workload += storm(b)
		// The last events are in the socket or being decoded: wait until
		// the count stops moving.
		for last := int64(-1); events.Load() != last; {
			last = events.Load()
			time.Sleep(50 * time.Millisecond)
		}
		unix.Getrusage(unix.RUSAGE_SELF, &self1)
		reader += cpu(&self1) - cpu(&self0)
		got += events.Load() - n0
	}
	if err := c.Close(); err != nil {
		b.Fatal(err)
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	if st := c.Stats(); st.Overruns > 0 {
		b.Logf("%d overruns: events were lost, the figures are low", st.Overruns)
	}
	report(b, reader, workload, got)
}

func benchReceiveC(b *testing.B) {
	cc := ""
	for _, name := range []string{"cc", "clang-19", "clang", "gcc"} {
		if p, err := exec.LookPath(name); err == nil {
			cc = p
			break
		}
	}
	if cc == "" {
		b.Skip("no C compiler (cc, clang-19, clang, gcc) to build testdata/recvfloor.c")
	}
	bin := filepath.Join(b.TempDir(), "recvfloor")
	if out, err := exec.Command(cc, "-O2", "-o", bin, "testdata/recvfloor.c").CombinedOutput(); err != nil {
		b.Fatalf("%s testdata/recvfloor.c: %v\n%s", cc, err, out)
	}
	var reader, workload time.Duration
	var got int64
	for range b.N {
		cmd := exec.Command(bin)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		lines := bufio.NewScanner(stdout)
		if !lines.Scan() || lines.Text() != "ready" {
			cmd.Process.Kill()
			b.Fatalf("recvfloor did not start: %q %v", lines.Text(), cmd.Wait())
		}
		workload += storm(b)
		time.Sleep(200 * time.Millisecond) // let it drain the socket
		cmd.Process.Signal(unix.SIGTERM)
		var datagrams, us int64
		if !lines.Scan() {
			b.Fatalf("recvfloor printed no figures: %v", cmd.Wait())
		}
		if _, err := fmt.Sscanf(strings.TrimSpace(lines.Text()), "%d %d", &datagrams, &us); err != nil {
			b.Fatalf("recvfloor figures %q: %v", lines.Text(), err)
		}
		if err := cmd.Wait(); err != nil {
			b.Fatalf("recvfloor: %v", err)
		}
		reader += time.Duration(us) * time.Microsecond
		got += datagrams
	}
	report(b, reader, workload, got)
}

// storm runs the exec storm and returns its CPU time (the shell's and
// its children's).
func storm(b *testing.B) time.Duration {
	script := fmt.Sprintf("i=0; while [ $i -lt %d ]; do /bin/true; i=$((i+1)); done", stormExecs)
	var before, after unix.Rusage
	unix.Getrusage(unix.RUSAGE_CHILDREN, &before)
	if out, err := exec.Command("/bin/sh", "-c", script).CombinedOutput(); err != nil {
		b.Fatalf("storm: %v: %s", err, out)
	}
	unix.Getrusage(unix.RUSAGE_CHILDREN, &after)
	return cpu(&after) - cpu(&before)
}

func report(b *testing.B, reader, workload time.Duration, events int64) {
	n := float64(b.N * stormExecs)
	b.ReportMetric(float64(reader.Microseconds())/n, "reader-us/exec")
	b.ReportMetric(float64(workload.Microseconds())/n, "workload-us/exec")
	b.ReportMetric(float64(reader)/float64(workload), "reader_ratio")
	b.ReportMetric(float64(events)/n, "events/exec")
}

// cpu is the user and system time in r.
func cpu(r *unix.Rusage) time.Duration {
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}
