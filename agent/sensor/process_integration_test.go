package sensor

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// ptracerEnv makes the test binary a helper that attaches to the pid it
// names, waits for the stop and detaches: a tracer other than the test
// process, which is the agent and whose own activity is not reported.
const ptracerEnv = "XDR_SENSOR_TEST_PTRACER"

func TestMain(m *testing.M) {
	if v := os.Getenv(ptracerEnv); v != "" {
		os.Exit(ptracer(v))
	}
	os.Exit(m.Run())
}

func ptracer(target string) int {
	pid, err := strconv.Atoi(target)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	runtime.LockOSThread()
	if err := unix.PtraceAttach(pid); err != nil {
		fmt.Fprintln(os.Stderr, "attach:", err)
		return 1
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil {
		fmt.Fprintln(os.Stderr, "wait:", err)
		return 1
	}
	if err := unix.PtraceDetach(pid); err != nil {
		fmt.Fprintln(os.Stderr, "detach:", err)
		return 1
	}
	return 0
}

// TestIntegrationCoredumpAndDetach checks that both collectors report a
// death by a core-dumping signal as a COREDUMP before the exit, and a
// ptrace detach with the tracer as subject and the tracee as target.
func TestIntegrationCoredumpAndDetach(t *testing.T) {
	for _, method := range []xdrv1.CollectorMethod{
		xdrv1.CollectorMethod_COLLECTOR_METHOD_PROC_CONNECTOR,
		xdrv1.CollectorMethod_COLLECTOR_METHOD_EBPF,
	} {
		t.Run(method.String(), func(t *testing.T) {
			s := startSensorWith(t, &Options{Method: method})

			// No core file is written (RLIMIT_CORE 0); the kernel still
			// runs its core dump code for SIGQUIT.
			sh := exec.Command("/bin/sh", "-c", "ulimit -c 0; kill -QUIT $$")
			if err := sh.Run(); err == nil {
				t.Fatal("sh survived SIGQUIT")
			}
			pid := uint32(sh.Process.Pid)
			ofSh := func(pred func(*xdrv1.ActEvent) bool) func(*xdrv1.ActEvent) bool {
				return func(ev *xdrv1.ActEvent) bool { return ev.GetSubject().GetTgid() == pid && pred(ev) }
			}
			core := s.wait(t, "the core dump", nil, ofSh(func(ev *xdrv1.ActEvent) bool { return ev.GetCoredump() != nil }))
			exit := s.wait(t, "the exit", nil, ofSh(func(ev *xdrv1.ActEvent) bool { return ev.GetExit() != nil }))
			if core.GetAccessType() != xdrv1.XdrAccessType_XDR_ACCESS_TYPE_PROCESS_TERMINATE || core.GetSeq() > exit.GetSeq() {
				t.Errorf("core dump %v (seq %d), want PROCESS_TERMINATE before the exit (seq %d)", core.GetAccessType(), core.GetSeq(), exit.GetSeq())
			}
			if got := core.GetCoredump().GetParentTgid(); got != uint32(os.Getpid()) {
				t.Errorf("core dump parent tgid %d, want %d", got, os.Getpid())
			}
			if got := exit.GetExit().GetSignal(); got != uint32(unix.SIGQUIT) {
				t.Errorf("exit signal %d, want SIGQUIT", got)
			}

			tracee := exec.Command("/bin/sleep", "30")
			if err := tracee.Start(); err != nil {
				t.Fatal(err)
			}
			defer tracee.Wait()
			defer tracee.Process.Kill()
			helper := exec.Command(os.Args[0], "-test.run=^$")
			helper.Env = append(os.Environ(), ptracerEnv+"="+strconv.Itoa(tracee.Process.Pid))
			if out, err := helper.CombinedOutput(); err != nil {
				t.Fatalf("ptracer: %v: %s", err, out)
			}
			detach := s.wait(t, "the detach", nil, func(ev *xdrv1.ActEvent) bool {
				d := ev.GetPtrace()
				return d != nil && !d.GetAttach() && ev.GetProcess().GetTgid() == uint32(tracee.Process.Pid)
			})
			if got, want := detach.GetSubject().GetTgid(), uint32(helper.Process.Pid); got != want {
				t.Errorf("detach subject tgid %d, want the tracer %d", got, want)
			}
			if got := detach.GetAccessType(); got != xdrv1.XdrAccessType_XDR_ACCESS_TYPE_MODIFIED_PROCESS_WRITE_PROCESS {
				t.Errorf("detach access type %v", got)
			}
		})
	}
}
