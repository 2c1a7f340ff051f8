package ebpf_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdr-sensor/xdr/agent/ebpf"
	"github.com/xdr-sensor/xdr/agent/sensor"
)

// floorExecs is the number of fork+exec of /bin/true in each storm of
// BenchmarkReadExecStorm.
const floorExecs = 3000

// BenchmarkReadExecStorm measures the floor of the eBPF method in an exec
// storm: the CPU this process spends only reading and decoding the storm's
// events (Collector.Read in a loop, the events dropped), per fork+exec of
// /bin/true from a shell loop in a child process, with the agent's options
// (its own pid ignored, its default read exclusions). The agent's mapping,
// encoding and transport, and the aggregator, all come on top.
//
// workload-us/exec is the storm's own CPU (the shell and its children),
// the baseline of the same run; reader_ratio is the reader's CPU over it.
// events/exec counts what Read returned (Event.Count summed).
func BenchmarkReadExecStorm(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("loading BPF programs needs root")
	}
	c, err := ebpf.Open(&ebpf.Options{
		IgnoreTGIDs:  []uint32{uint32(os.Getpid())},
		ExcludeReads: sensor.DefaultExcludeReads,
	})
	if err != nil {
		b.Fatal(err)
	}
	var events atomic.Int64
	done := make(chan error, 1)
	go func() {
		var evs []ebpf.Event
		for {
			var err error
			evs, err = c.Read(evs[:0])
			n := 0
			for i := range evs {
				n += int(evs[i].Count)
			}
			events.Add(int64(n))
			if err != nil {
				if errors.Is(err, os.ErrClosed) {
					err = nil
				}
				done <- err
				return
			}
		}
	}()
	// The start-up's cost is not the storm's.
	time.Sleep(time.Second)
	var reader, workload time.Duration
	var got int64
	for range b.N {
		var self0, self1 unix.Rusage
		unix.Getrusage(unix.RUSAGE_SELF, &self0)
		n0 := events.Load()
		workload += shellStorm(b, floorExecs)
		// The last events wait for the reader's next poll: wait until
		// the count stops moving.
		for last := int64(-1); events.Load() != last; {
			last = events.Load()
			time.Sleep(3 * ebpf.DefaultPollInterval)
		}
		unix.Getrusage(unix.RUSAGE_SELF, &self1)
		reader += rusageCPU(&self1) - rusageCPU(&self0)
		got += events.Load() - n0
	}
	b.StopTimer()
	if err := c.Close(); err != nil {
		b.Fatal(err)
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	if s := c.Stats(); s.RingFull+s.StateFull+s.Other+s.Missed+s.DecodeErrors > 0 {
		b.Errorf("losses: %+v", s)
	}
	n := float64(b.N * floorExecs)
	if float64(got) < 4*n {
		b.Errorf("%d events for %.0f execs, want at least 4 each (fork, exec, image load, exit)", got, n)
	}
	b.ReportMetric(float64(reader.Microseconds())/n, "reader-us/exec")
	b.ReportMetric(float64(workload.Microseconds())/n, "workload-us/exec")
	b.ReportMetric(float64(reader)/float64(workload), "reader_ratio")
	b.ReportMetric(float64(got)/n, "events/exec")
}

// shellStorm runs n fork+execs of /bin/true from a shell loop and returns
// their CPU time (the shell's and its children's).
func shellStorm(b *testing.B, n int) time.Duration {
	script := fmt.Sprintf("i=0; while [ $i -lt %d ]; do /bin/true; i=$((i+1)); done", n)
	var before, after unix.Rusage
	unix.Getrusage(unix.RUSAGE_CHILDREN, &before)
	if out, err := exec.Command("/bin/sh", "-c", script).CombinedOutput(); err != nil {
		b.Fatalf("storm: %v: %s", err, out)
	}
	unix.Getrusage(unix.RUSAGE_CHILDREN, &after)
	return rusageCPU(&after) - rusageCPU(&before)
}

func rusageCPU(r *unix.Rusage) time.Duration {
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}
