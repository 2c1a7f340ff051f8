package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xdr-sensor/xdr/agent/procfs"
)

// stormSize is the number of fork+execs in the exec storm.
const stormSize = 5000

// storm runs n fork+execs of /bin/true one after another and returns
// their pids and the time it took.
func storm(tb testing.TB, n int) ([]int, time.Duration) {
	tb.Helper()
	pids := make([]int, 0, n)
	start := time.Now()
	for i := 0; i < n; i++ {
		cmd := exec.Command("/bin/true", "xdr-storm")
		if err := cmd.Run(); err != nil {
			tb.Fatal(err)
		}
		pids = append(pids, cmd.Process.Pid)
	}
	return pids, time.Since(start)
}

// cpuTime is the CPU time a running command has used so far, all its
// threads, user and system (from /proc/PID/stat, in clock ticks).
func cpuTime(tb testing.TB, p *proc) time.Duration {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		tb.Fatal(err)
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: utime and stime are the 12th and 13th.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		tb.Fatalf("short /proc/PID/stat: %q", b)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		tb.Fatalf("utime/stime in %q", b)
	}
	return time.Duration(ut+st) * time.Second / procfs.ClockTicks
}

// sensorCPU is the CPU time the agent and the aggregator have used so far.
func sensorCPU(tb testing.TB, s *sensor) (agent, agg time.Duration) {
	return cpuTime(tb, s.agent), cpuTime(tb, s.agg)
}

// settle waits until the sensor has finished starting up, so that a storm
// measures the storm: after "collector started" the agent still hashes
// the executables of the first processes it sees (among them the
// aggregator, whose bundle files are file events), about 0.1 s of CPU.
// Settled is agent and aggregator together under 20 ms of CPU in a
// second (they idle at about 4); it gives up, with a log line, after 15 s.
func settle(tb testing.TB, s *sensor) {
	tb.Helper()
	a0, g0 := sensorCPU(tb, s)
	for range 15 {
		time.Sleep(time.Second)
		a1, g1 := sensorCPU(tb, s)
		if used := a1 - a0 + g1 - g0; used < 20*time.Millisecond {
			return
		}
		a0, g0 = a1, g1
	}
	tb.Logf("sensor still busy 15 s after start; measuring anyway")
}

// peakRSS is a running command's peak resident set in KiB (VmHWM). Not
// getrusage's ru_maxrss: the kernel folds into that the memory of the
// process it was forked from, here this (large) test binary, whose
// address space Go's vfork-style exec shares until the exec.
func peakRSS(tb testing.TB, p *proc) int64 {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				tb.Fatalf("VmHWM %q: %v", v, err)
			}
			return kb
		}
	}
	tb.Fatal("no VmHWM in /proc/PID/status")
	return 0
}

// stormFlush gives the storms' aggregator its default flush interval, as
// a device runs it; the harness's shorter one is for tests that wait for
// records to reach the bundle.
var stormFlush = []string{"--flush-interval", "1s"}

// BenchmarkExecStorm runs the exec storm without the sensor (baseline),
// then with agent and aggregator running, then without again, and reports
// how many execs reached the bundle, the workload's slowdown against the
// mean of the two baselines, the CPU the agent and aggregator spent per
// exec, and the agent's peak RSS. Run it with -benchtime 1x: each
// iteration is a whole scenario.
//
// proc and ebpf keep every raw event (--raw-events all), so that each
// exec is checked by pid, with its exe and argv. ebpf-default runs the
// aggregator on its defaults (footprints; what a device runs): there the
// execs are counted by the PROCESS_EXECUTE footprint of the storm's
// command line.
func BenchmarkExecStorm(b *testing.B) {
	needRoot(b)
	binaries(b)
	for _, method := range []string{"proc", "ebpf", "ebpf-default"} {
		b.Run(method, func(b *testing.B) { execStorm(b, method) })
	}
}

func execStorm(b *testing.B, variant string) {
	method, aggArgs := variant, []string{"--raw-events", "all"}
	if variant == "ebpf-default" {
		method, aggArgs = "ebpf", nil
	}
	aggArgs = append(aggArgs, stormFlush...)
	for i := 0; i < b.N; i++ {
		_, base := storm(b, stormSize)

		s := startSensorMethod(b, method, aggArgs...)
		// The storm's cost, not the start-up's (loading the eBPF
		// programs alone takes about a second of CPU).
		settle(b, s)
		agent0, agg0 := sensorCPU(b, s)
		pids, withSensor := storm(b, stormSize)
		time.Sleep(time.Second) // let the last events through
		agent1, agg1 := sensorCPU(b, s)
		agentCPU, aggCPU := agent1-agent0, agg1-agg0
		agentRSS := peakRSS(b, s.agent)
		s.stop()
		// A second baseline after: the machine's speed drifts, and the
		// slowdown is against the mean of the two.
		_, base2 := storm(b, stormSize)
		base = (base + base2) / 2

		recs := s.records()
		evs := events(recs)
		want := make(map[int]bool, len(pids))
		for _, pid := range pids {
			want[pid] = true
		}
		captured, partial := 0, 0
		if variant == "ebpf-default" {
			captured = execFootprintCount(recs)
		}
		for _, e := range evs {
			if e["access_type"] != "XDR_ACCESS_TYPE_PROCESS_EXECUTE" || !want[int(num(get(e, "subject", "tgid")))] {
				continue
			}
			delete(want, int(num(get(e, "subject", "tgid"))))
			captured++
			if get(e, "subject", "partial") == true {
				partial++
			}
		}
		b.ReportMetric(100*float64(captured)/stormSize, "%captured")
		b.ReportMetric(float64(partial), "partial")
		b.ReportMetric(withSensor.Seconds()/base.Seconds(), "slowdown")
		b.ReportMetric(float64((agentCPU+aggCPU).Microseconds())/stormSize, "us-cpu/exec")
		b.ReportMetric(float64(agentRSS)/1024, "agent-MB")
		b.Logf("baseline %v, with sensor %v, agent cpu %v, aggregator cpu %v (during the storm and the second after), captured %d/%d (%d partial)",
			base, withSensor, agentCPU, aggCPU, captured, stormSize, partial)
		if captured != stormSize {
			b.Errorf("%d of %d execs missing from the bundle", stormSize-captured, stormSize)
		}
	}
}

// footprintCounts returns, by footprint, the count of the footprints
// that match (footprint counts are cumulative: the latest record of each
// counts).
func footprintCounts(recs []map[string]any, match func(fp map[string]any) bool) map[uint64]uint64 {
	latest := map[uint64]uint64{}
	for _, r := range recs {
		if fp, ok := r["footprint"].(map[string]any); ok && match(fp) {
			latest[num(fp["hash_id"])] = num(fp["count"])
		}
	}
	return latest
}

// execFootprintCount is how many execs of the storm's command line the
// PROCESS_EXECUTE footprints count.
func execFootprintCount(recs []map[string]any) int {
	var n uint64
	for _, c := range footprintCounts(recs, func(fp map[string]any) bool {
		return fp["access_type"] == "XDR_ACCESS_TYPE_PROCESS_EXECUTE" && slices.Contains(asSlice(get(fp, "subject", "argv")), any("xdr-storm"))
	}) {
		n += c
	}
	return int(n)
}

// createStormSize is the number of distinct files the create storm makes.
const createStormSize = 50000

// createStorm creates n distinct empty files in a new directory under
// parent, one open(O_CREAT|O_EXCL)+close each, and returns the directory
// and the time it took.
func createStorm(tb testing.TB, parent string, n int) (string, time.Duration) {
	tb.Helper()
	dir, err := os.MkdirTemp(parent, "storm-")
	if err != nil {
		tb.Fatal(err)
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		fd, err := syscall.Open(dir+"/f"+strconv.Itoa(i), syscall.O_CREAT|syscall.O_EXCL|syscall.O_WRONLY|syscall.O_CLOEXEC, 0o644)
		if err != nil {
			tb.Fatal(err)
		}
		syscall.Close(fd)
	}
	return dir, time.Since(start)
}

// BenchmarkCreateStorm creates 50,000 distinct files without the sensor
// (baseline), then with the eBPF agent and an aggregator on its default
// settings (footprints, statistics, critical events raw), and reports how
// many creates the footprints account for, the slowdown against the mean
// of a baseline before and one after, the agent + aggregator CPU per
// create and the agent's peak RSS. Run it with -benchtime 1x.
func BenchmarkCreateStorm(b *testing.B) {
	needRoot(b)
	binaries(b)
	// On tmpfs: the journal of a disk file system makes the same storm
	// vary several-fold from one run to the next.
	fs := b.TempDir()
	if err := syscall.Mount("tmpfs", fs, "tmpfs", 0, "size=256m"); err != nil {
		b.Fatalf("mount tmpfs: %v", err)
	}
	b.Cleanup(func() { syscall.Unmount(fs, syscall.MNT_DETACH) })
	for i := 0; i < b.N; i++ {
		_, base := createStorm(b, fs, createStormSize)

		s := startSensorMethod(b, "ebpf", append([]string{"--footprint-max-entries", "200000", "--footprint-max-bytes", strconv.Itoa(128 << 20)}, stormFlush...)...)
		settle(b, s)
		agent0, agg0 := sensorCPU(b, s)
		dir, withSensor := createStorm(b, fs, createStormSize)
		time.Sleep(time.Second) // let the last events through
		agent1, agg1 := sensorCPU(b, s)
		agentCPU, aggCPU := agent1-agent0, agg1-agg0
		agentRSS := peakRSS(b, s.agent)
		s.stop()
		_, base2 := createStorm(b, fs, createStormSize)
		base = (base + base2) / 2

		recs := s.records()
		latest := footprintCounts(recs, func(fp map[string]any) bool {
			return fp["access_type"] == "XDR_ACCESS_TYPE_FILE_CREATE" && strings.HasPrefix(fmt.Sprint(get(fp, "file", "filename")), dir+"/")
		})
		var evicted uint64
		dropped := map[string]uint64{} // anything, by reason
		for _, r := range recs {
			for _, ei := range asSlice(get(r, "statistics", "event_info")) {
				stat := fmt.Sprint(get(ei.(map[string]any), "event_stat_type"))
				switch {
				case stat == "EVENT_STAT_TYPE_EVICTED":
					evicted += num(get(ei.(map[string]any), "count"))
				case strings.HasPrefix(stat, "EVENT_STAT_TYPE_DROPPED_"):
					dropped[strings.TrimPrefix(stat, "EVENT_STAT_TYPE_")] += num(get(ei.(map[string]any), "count"))
				}
			}
		}
		var created uint64
		for _, n := range latest {
			created += n
		}
		b.ReportMetric(float64(created), "creates-seen")
		b.ReportMetric(float64(len(latest)), "footprints")
		b.ReportMetric(withSensor.Seconds()/base.Seconds(), "slowdown")
		b.ReportMetric(float64((agentCPU+aggCPU).Microseconds())/createStormSize, "us-cpu/create")
		b.ReportMetric(float64(agentRSS)/1024, "agent-MB")
		b.Logf("baseline %v, with sensor %v, agent cpu %v, aggregator cpu %v, creates seen %d/%d in %d footprints (%d evicted), drops %v",
			base, withSensor, agentCPU, aggCPU, created, createStormSize, len(latest), evicted, dropped)
		if created != createStormSize {
			b.Errorf("the footprints account for %d of %d creates", created, createStormSize)
		}
	}
}
