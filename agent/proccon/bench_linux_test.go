//go:build linux

package proccon

import (
	"errors"
	"fmt"
	"net"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkReceiveExecStorm measures the floor of the proc connector
// method: the CPU this process spends only receiving and decoding the
// events of an exec storm (Receive in a loop, the events dropped), per
// fork+exec of /bin/true from a shell loop in a child process. The agent's
// enrichment, mapping and transport, and the aggregator, all come on top.
// workload-us/exec is the storm's own CPU (the shell and its children), the
// baseline of the same run; reader_ratio is the reader's CPU over it.
func BenchmarkReceiveExecStorm(b *testing.B) {
	requireRoot(b)
	const execs = 3000
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
	script := fmt.Sprintf("i=0; while [ $i -lt %d ]; do /bin/true; i=$((i+1)); done", execs)
	var reader, workload time.Duration
	var got int64
	for range b.N {
		var self0, self1, kids0, kids1 unix.Rusage
		unix.Getrusage(unix.RUSAGE_SELF, &self0)
		unix.Getrusage(unix.RUSAGE_CHILDREN, &kids0)
		n0 := events.Load()
		if out, err := exec.Command("/bin/sh", "-c", script).CombinedOutput(); err != nil {
			b.Fatalf("storm: %v: %s", err, out)
		}
		// The last events are in the socket or being decoded: wait until
		// the count stops moving.
		for last := int64(-1); events.Load() != last; {
			last = events.Load()
			time.Sleep(50 * time.Millisecond)
		}
		unix.Getrusage(unix.RUSAGE_SELF, &self1)
		unix.Getrusage(unix.RUSAGE_CHILDREN, &kids1)
		reader += cpu(&self1) - cpu(&self0)
		workload += cpu(&kids1) - cpu(&kids0)
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
	n := float64(b.N * execs)
	b.ReportMetric(float64(reader.Microseconds())/n, "reader-us/exec")
	b.ReportMetric(float64(workload.Microseconds())/n, "workload-us/exec")
	b.ReportMetric(float64(reader)/float64(workload), "reader_ratio")
	b.ReportMetric(float64(got)/n, "events/exec")
}

// cpu is the user and system time in r.
func cpu(r *unix.Rusage) time.Duration {
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}
