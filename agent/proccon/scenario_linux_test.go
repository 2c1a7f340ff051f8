//go:build linux

package proccon

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// requireRoot skips t unless it runs as root, which the proc connector
// needs.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the proc connector requires CAP_NET_ADMIN")
	}
}

// scenario holds the ids of the processes runScenario started, so that
// the events about them can be picked out of the system-wide stream.
type scenario struct {
	self      uint32   // this test process's tgid, the parent of them all
	trueCmd   uint32   // /bin/true: fork, exec, exit 0
	setpriv   uint32   // setpriv: gid and uid change to 65534
	comm      uint32   // sh renaming itself to "renamed"
	setsid    uint32   // setsid(1) calling setsid(2) without forking
	exit3     uint32   // sh exiting with status 3
	core      uint32   // sh killing itself with SIGQUIT: coredump, then exit
	traced    uint32   // sleep attached to and detached from with ptrace, then killed
	tracerTID uint32   // the thread that attached to traced
	threads   []uint32 // threads of this process that exited (not the leader)
}

// runScenario runs the commands whose events the integration tests and
// the fixture capture look for.
func runScenario(t *testing.T) scenario {
	t.Helper()
	for _, bin := range []string{"/bin/true", "sh", "sleep", "setpriv", "setsid"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("scenario needs %s: %v", bin, err)
		}
	}
	s := scenario{self: uint32(os.Getpid())}
	s.trueCmd = runCmd(t, 0, "/bin/true")
	s.setpriv = runCmd(t, 0, "setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "/bin/true")
	s.comm = runCmd(t, 0, "sh", "-c", "printf renamed > /proc/self/comm; sleep 0.05")
	s.setsid = runCmd(t, 0, "setsid", "/bin/true")
	s.exit3 = runCmd(t, 3, "sh", "-c", "exit 3")
	// With RLIMIT_CORE 0 no core file is written, but the kernel still
	// reports the coredump-class signal.
	s.core = runCmd(t, -1, "sh", "-c", "ulimit -c 0; kill -QUIT $$")
	s.traced, s.tracerTID = runTraced(t)
	s.threads = exitThreads(4)
	return s
}

// exitThreads makes up to n threads of this process exit and returns their
// ids: a goroutine that ends while locked to its thread takes the thread
// with it. Locking n threads at once also makes the runtime start new ones.
func exitThreads(n int) []uint32 {
	tids := make([]uint32, n)
	var started, done sync.WaitGroup
	release := make(chan struct{})
	for i := range tids {
		started.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
			tids[i] = uint32(unix.Gettid())
			started.Done()
			<-release
		}()
	}
	started.Wait()
	close(release)
	done.Wait()
	// The runtime never ends the main thread; it parks it instead.
	return slices.DeleteFunc(tids, func(tid uint32) bool { return tid == uint32(os.Getpid()) })
}

// runCmd runs name with args and returns its pid. It fails t unless the
// command exits with wantCode (-1: killed by a signal).
func runCmd(t *testing.T, wantCode int, name string, args ...string) uint32 {
	t.Helper()
	cmd := exec.Command(name, args...)
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run %s: %v", name, err)
	}
	if got := cmd.ProcessState.ExitCode(); got != wantCode {
		t.Fatalf("run %s %q: exit code %d, want %d (%v)", name, args, got, wantCode, err)
	}
	return uint32(cmd.Process.Pid)
}

// runTraced starts sleep, attaches to it with ptrace from a locked thread,
// waits for the attach stop, detaches, then kills and reaps it. It returns
// the sleep's pid and the tracer thread's id.
func runTraced(t *testing.T) (pid, tracer uint32) {
	t.Helper()
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sleep: %v", err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	pid = uint32(cmd.Process.Pid)

	var wg sync.WaitGroup
	var err error
	wg.Add(1)
	go func() {
		defer wg.Done()
		// ptrace requests must come from the attaching thread.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tracer = uint32(unix.Gettid())
		if err = unix.PtraceAttach(int(pid)); err != nil {
			return
		}
		var ws unix.WaitStatus
		if _, err = unix.Wait4(int(pid), &ws, unix.WALL, nil); err != nil {
			return
		}
		if !ws.Stopped() {
			err = fmt.Errorf("traced sleep did not stop: wait status %#x", uint32(ws))
			return
		}
		err = unix.PtraceDetach(int(pid))
	}()
	wg.Wait()
	if err != nil {
		t.Fatalf("ptrace attach/detach of pid %d: %v", pid, err)
	}
	return pid, tracer
}
