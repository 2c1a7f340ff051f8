package e2e

import (
	"os/exec"
	"syscall"
	"testing"
	"time"
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

// usage is the CPU time and peak RSS of an exited command.
func usage(p *proc) (cpu time.Duration, maxRSSKB int64) {
	ru := p.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime)), ru.Maxrss
}

// BenchmarkExecStorm runs the exec storm without the sensor (baseline),
// then with agent and aggregator running, and reports how many execs
// reached the bundle, the workload's slowdown against the baseline of the
// same run, the CPU the agent and aggregator spent per exec, and the
// agent's peak RSS. Run it with -benchtime 1x: each iteration is a whole
// scenario.
func BenchmarkExecStorm(b *testing.B) {
	needRoot(b)
	binaries(b)
	for _, method := range []string{"proc", "ebpf"} {
		b.Run(method, func(b *testing.B) { execStorm(b, method) })
	}
}

func execStorm(b *testing.B, method string) {
	for i := 0; i < b.N; i++ {
		_, base := storm(b, stormSize)

		s := startSensorMethod(b, method, "--raw-events", "all")
		pids, withSensor := storm(b, stormSize)
		time.Sleep(time.Second) // let the last events through
		s.stop()
		agentCPU, agentRSS := usage(s.agent)
		aggCPU, _ := usage(s.agg)

		evs := events(s.records())
		want := make(map[int]bool, len(pids))
		for _, pid := range pids {
			want[pid] = true
		}
		captured, partial := 0, 0
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
		b.Logf("baseline %v, with sensor %v, agent cpu %v, aggregator cpu %v, captured %d/%d (%d partial)",
			base, withSensor, agentCPU, aggCPU, captured, stormSize, partial)
		if captured != stormSize {
			b.Errorf("%d of %d execs missing from the bundle", stormSize-captured, stormSize)
		}
	}
}
