package ebpf

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// marker returns an argument unique to this test run.
func marker(t testing.TB) string {
	return "xdr-" + strings.ReplaceAll(t.Name(), "/", "-") + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
}

func argvHas(ev *Event, arg string) bool {
	return ev.Kind == KindExec && slices.Contains(ev.Exec.Argv, arg)
}

func TestIntegrationLoadAll(t *testing.T) {
	h := sharedHub(t)
	spec, err := loadCollector()
	if err != nil {
		t.Fatal(err)
	}
	// Every program passed the verifier (Open loads them all); each one is
	// attached unless its system call does not exist on this kernel.
	var attached []string
	for name, p := range spec.Programs {
		sec := p.SectionName
		tp := sec[strings.LastIndexByte(sec, '/')+1:]
		if slices.Contains(h.c.absent, tp) {
			if _, err := os.Stat(filepath.Join(tracefsDir, "events/syscalls", tp)); err == nil {
				t.Errorf("%s skipped, but tracepoint %s exists", name, tp)
			}
			continue
		}
		attached = append(attached, name)
	}
	if len(attached) != len(h.c.links) {
		t.Errorf("%d programs attached, want %d", len(h.c.links), len(attached))
	}
	slices.Sort(attached)
	t.Logf("%d programs loaded, %d attached: %s", len(spec.Programs), len(attached), strings.Join(attached, " "))
	t.Logf("absent on this kernel: %v", h.c.absent)
}

func TestIntegrationProbe(t *testing.T) {
	needRoot(t)
	found, err := Probe(nil)
	if err != nil {
		t.Fatalf("Probe: %v", err)
	}
	var names []string
	for _, f := range found {
		if !f.Available {
			t.Errorf("feature %s reported missing without an error: %s", f.Name, f.Detail)
		}
		names = append(names, f.Name)
	}
	want := []string{"btf", "tracefs", "bpffs", "ringbuf", "verifier", "tracepoints"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("features probed (-want +got):\n%s", diff)
	}
}

// A BTF file that does not exist makes the collector unusable, and the
// probe says so naming the file.
func TestIntegrationProbeMissingBTF(t *testing.T) {
	needRoot(t)
	path := filepath.Join(t.TempDir(), "vmlinux")
	found, err := Probe(&ProbeOptions{BTFPath: path})
	if !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Probe with missing BTF: err = %v, want ErrNotSupported naming %s", err, path)
	}
	if len(found) != 1 || found[0].Name != "btf" || found[0].Available {
		t.Errorf("features = %+v, want btf missing only", found)
	}
	if _, err := Open(&Options{BTFPath: path}); !errors.Is(err, ErrNotSupported) {
		t.Errorf("Open with missing BTF: err = %v, want ErrNotSupported", err)
	}
}

// When tracefs is not mounted, the probe mounts it and says so.
func TestIntegrationProbeMountsTracefs(t *testing.T) {
	needRoot(t)
	// The loader remembers the tracefs it found first, so only the one
	// at tracefsDir is taken away and put back by the probe.
	if isMounted("/sys/kernel/debug/tracing", unix.TRACEFS_MAGIC) || !isMounted(tracefsDir, unix.TRACEFS_MAGIC) {
		t.Skip("tracefs is not (only) at " + tracefsDir + ": not unmounting it")
	}
	if err := unix.Unmount(tracefsDir, 0); err != nil {
		t.Skipf("cannot unmount %s to test mounting it (%v)", tracefsDir, err)
	}
	t.Cleanup(func() {
		if !isMounted(tracefsDir, unix.TRACEFS_MAGIC) {
			unix.Mount("tracefs", tracefsDir, "tracefs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
		}
	})
	found, err := Probe(nil)
	if err != nil {
		t.Fatalf("Probe: %v", err)
	}
	if !isMounted(tracefsDir, unix.TRACEFS_MAGIC) {
		t.Fatalf("tracefs not mounted at %s after Probe", tracefsDir)
	}
	for _, f := range found {
		if f.Name == "tracefs" && f.Detail != "mounted by the agent at "+tracefsDir {
			t.Errorf("tracefs feature = %+v, want it to say the agent mounted it", f)
		}
	}
}

func TestIntegrationExec(t *testing.T) {
	h := sharedHub(t)
	m := marker(t)
	w := h.watch(t, func(ev *Event) bool { return argvHas(ev, m) })

	// sh blocks reading stdin, so its /proc entry is there to compare with.
	cmd := exec.Command("/bin/sh", "-c", "read x", m)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()

	ev := w.next(t, waitTimeout)
	pid := uint32(cmd.Process.Pid)
	if ev.Header.PID != pid || ev.Header.TGID != pid || ev.Header.PPID != uint32(os.Getpid()) {
		t.Errorf("pid/tgid/ppid = %d/%d/%d, want %d/%d/%d", ev.Header.PID, ev.Header.TGID, ev.Header.PPID, pid, pid, os.Getpid())
	}
	if got, want := ev.Header.StartTicks(), startTicks(t, cmd.Process.Pid); got != want {
		t.Errorf("start ticks %d, /proc says %d", got, want)
	}
	exe, err := filepath.EvalSymlinks("/bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(exe, &st); err != nil {
		t.Fatal(err)
	}
	cwd, _ := os.Getwd()
	want := Exec{
		Filename: "/bin/sh",
		Exe:      exe,
		ExeFile: FileInfo{
			Inode: uint64(st.Ino), Dev: uint64(st.Dev), Mode: uint32(st.Mode), UID: st.Uid, GID: st.Gid,
			Size: int64(st.Size), ModTime: int64(st.Mtim.Sec), ChangeTime: int64(st.Ctim.Sec),
			ModTimeNsec: uint32(st.Mtim.Nsec), ChangeTimeNsec: uint32(st.Ctim.Nsec), Links: uint32(st.Nlink),
		},
		Cwd:      cwd,
		Argv:     []string{"/bin/sh", "-c", "read x", m},
		ArgvSize: uint32(len("/bin/sh") + len("-c") + len("read x") + len(m) + 4),
		OldPID:   pid,
	}
	if diff := cmp.Diff(want, *ev.Exec); diff != "" {
		t.Errorf("exec (-want +got):\n%s", diff)
	}
	if ev.Header.Comm != "sh" || ev.Header.UID != 0 || ev.Header.EUID != 0 {
		t.Errorf("header %+v", ev.Header)
	}
}

func TestIntegrationExecScript(t *testing.T) {
	h := sharedHub(t)
	script := filepath.Join(tempDir(t), "script")
	if err := os.WriteFile(script, []byte("#!/bin/sh -e\ntrue\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	m := marker(t)
	w := h.watch(t, func(ev *Event) bool { return argvHas(ev, m) })
	if err := exec.Command(script, m).Run(); err != nil {
		t.Fatal(err)
	}
	ev := w.next(t, waitTimeout)
	sh, err := filepath.EvalSymlinks("/bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	// The file named is the script, the image running is its interpreter,
	// and argv is what the kernel made of the #! line (as /proc shows it).
	x := ev.Exec
	if x.Filename != script || x.Exe != sh {
		t.Errorf("filename %q exe %q, want %q %q", x.Filename, x.Exe, script, sh)
	}
	if diff := cmp.Diff([]string{"/bin/sh", "-e", script, m}, x.Argv); diff != "" {
		t.Errorf("argv (-want +got):\n%s", diff)
	}
}

func TestIntegrationExecArgv(t *testing.T) {
	h := sharedHub(t)
	for _, tc := range []struct {
		name      string
		args      int // arguments of argLen bytes after the marker
		argLen    int
		truncated bool
	}{
		{"one record", 3, 100, false},
		{"continuations", 10, 3000, false}, // about 30 KiB: 8 records
		{"exactly the limit", 1, 0, false}, // one argument padding argv to ArgvMax
		{"truncated", 20, 3000, true},      // about 60 KiB, 32 KiB kept
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := marker(t)
			argv := []string{"/bin/true", m}
			for i := range tc.args {
				argv = append(argv, strings.Repeat(string(rune('a'+i%26)), tc.argLen))
			}
			if tc.name == "exactly the limit" {
				// Pad so that the NUL-terminated argv is exactly ArgvMax.
				used := len("/bin/true") + 1 + len(m) + 1 + 1
				argv[2] = strings.Repeat("x", DefaultArgvMax-used)
			}
			w := h.watch(t, func(ev *Event) bool {
				return ev.Kind == KindExec && len(ev.Exec.Argv) > 1 && ev.Exec.Argv[1] == m
			})
			if err := exec.Command(argv[0], argv[1:]...).Run(); err != nil {
				t.Fatal(err)
			}
			ev := w.next(t, waitTimeout)
			x := ev.Exec
			size := 0
			for _, a := range argv {
				size += len(a) + 1
			}
			if int(x.ArgvSize) != size {
				t.Errorf("ArgvSize %d, want %d", x.ArgvSize, size)
			}
			if x.ArgvTruncated != tc.truncated || x.ArgvIncomplete {
				t.Errorf("truncated %v incomplete %v, want %v false", x.ArgvTruncated, x.ArgvIncomplete, tc.truncated)
			}
			want := argv
			if tc.truncated {
				// The first DefaultArgvMax bytes, the last argument cut.
				joined := strings.Join(argv, "\x00")[:DefaultArgvMax]
				want = strings.Split(joined, "\x00")
			}
			if diff := cmp.Diff(want, x.Argv); diff != "" {
				t.Errorf("argv (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIntegrationExecFailedNotReported(t *testing.T) {
	h := sharedHub(t)
	dir := t.TempDir()
	notExec := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := marker(t)
	w := h.watch(t, func(ev *Event) bool {
		return ev.Kind == KindExec && (ev.Exec.Filename == notExec || argvHas(ev, m))
	})
	if err := exec.Command(notExec).Run(); err == nil {
		t.Fatal("exec of a file without execute permission succeeded")
	}
	if err := exec.Command("/bin/true", m).Run(); err != nil {
		t.Fatal(err)
	}
	if ev := w.next(t, waitTimeout); !argvHas(&ev, m) {
		t.Fatalf("failed exec reported: %+v", ev.Exec)
	}
}

func TestIntegrationForkExit(t *testing.T) {
	h := sharedHub(t)
	self := uint32(os.Getpid())
	var mu sync.Mutex
	var child uint32
	w := h.watch(t, func(ev *Event) bool {
		mu.Lock()
		defer mu.Unlock()
		return (ev.Kind == KindFork && ev.Header.TGID == self) || (ev.Kind == KindExit && ev.Header.TGID == child && child != 0)
	})
	cmd := exec.Command("/bin/sh", "-c", "read x; exit 7")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := uint32(cmd.Process.Pid)
	mu.Lock()
	child = pid
	mu.Unlock()
	ticks := startTicks(t, cmd.Process.Pid)
	stdin.Close()
	if err := cmd.Wait(); err == nil {
		t.Fatal("sh exited 0, want 7")
	}

	var fork, exit *Event
	for fork == nil || exit == nil {
		ev := w.next(t, waitTimeout)
		switch {
		case ev.Kind == KindFork && ev.Fork.ChildPID == pid:
			fork = &ev
		case ev.Kind == KindExit:
			exit = &ev
		}
	}
	if fork.Fork.ChildTGID != pid || fork.Fork.ChildStartTime/10_000_000 != ticks {
		t.Errorf("fork %+v, want child %d started at tick %d", *fork.Fork, pid, ticks)
	}
	if exit.Header.PID != pid || exit.Exit.Code != 7<<8 || exit.Header.StartTicks() != ticks {
		t.Errorf("exit %+v %+v, want pid %d code %#x start tick %d", exit.Header, *exit.Exit, pid, 7<<8, ticks)
	}
}

func TestIntegrationForkSkipsThreads(t *testing.T) {
	h := sharedHub(t)
	self := uint32(os.Getpid())
	tasks := func() map[string]bool {
		ents, err := os.ReadDir("/proc/self/task")
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]bool{}
		for _, e := range ents {
			m[e.Name()] = true
		}
		return m
	}
	before := tasks()
	w := h.watch(t, func(ev *Event) bool { return ev.Kind == KindFork && ev.Header.TGID == self })
	// More goroutines locked to blocked OS threads than there are threads:
	// the runtime must start new ones for the rest to run.
	release := make(chan struct{})
	locked := make(chan struct{})
	var wg sync.WaitGroup
	for range len(before) + 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			locked <- struct{}{}
			<-release
		}()
	}
	for range len(before) + 2 {
		<-locked
	}
	var created []string
	for tid := range tasks() {
		if !before[tid] {
			created = append(created, tid)
		}
	}
	close(release)
	wg.Wait()
	if len(created) == 0 {
		t.Fatal("no thread was created")
	}
	for _, ev := range w.drain(settle) {
		if slices.Contains(created, strconv.Itoa(int(ev.Fork.ChildPID))) {
			t.Errorf("thread %d reported as a fork", ev.Fork.ChildPID)
		}
	}
}

func TestIntegrationExitMultithreaded(t *testing.T) {
	h := sharedHub(t)
	child := childWatch(t, h, func(ev *Event) bool { return ev.Kind == KindExit })
	w := child.w
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=threads-exit")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.start(cmd); err != nil {
		t.Fatal(err)
	}
	stdin.Close() // the helper exits at end of input
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 5 {
		t.Fatalf("helper: %v, want exit status 5", err)
	}
	ev := w.next(t, waitTimeout)
	if ev.Exit.Code != 5<<8 {
		t.Errorf("exit code %#x, want %#x", ev.Exit.Code, 5<<8)
	}
	if more := w.drain(settle); len(more) > 0 {
		t.Errorf("process exit reported %d more times", len(more))
	}
}

func TestIntegrationSetID(t *testing.T) {
	h := sharedHub(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("needs setpriv(1) (util-linux)")
	}
	m := marker(t)
	child := childWatch(t, h, func(ev *Event) bool { return ev.Kind == KindSetID })
	w := child.w
	cmd := exec.Command(setpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups", "/bin/sh", "-c", "read x", m)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.start(cmd); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()

	got := map[Op]SetID{}
	for len(got) < 2 {
		ev := w.next(t, waitTimeout)
		got[ev.SetID.Op] = *ev.SetID
		if ev.SetID.Op == OpSetresuid && (ev.Header.UID != 65534 || ev.Header.EUID != 65534) {
			t.Errorf("header after setresuid has uid %d euid %d", ev.Header.UID, ev.Header.EUID)
		}
	}
	// setpriv keeps its capabilities across the uid change, so it changes
	// the uid first.
	nobody := Creds{UID: 65534, EUID: 65534, SUID: 65534, FSUID: 65534}
	want := map[Op]SetID{
		OpSetresuid: {Op: OpSetresuid, Old: Creds{}, New: nobody},
		OpSetresgid: {
			Op:  OpSetresgid,
			Old: nobody,
			New: Creds{UID: 65534, EUID: 65534, SUID: 65534, FSUID: 65534, GID: 65534, EGID: 65534, SGID: 65534, FSGID: 65534},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("setid events (-want +got):\n%s", diff)
	}
}

func TestIntegrationPtrace(t *testing.T) {
	h := sharedHub(t)
	self := uint32(os.Getpid())

	t.Run("attach", func(t *testing.T) {
		cmd := exec.Command("/bin/sleep", "30")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Wait()
		defer cmd.Process.Kill()
		pid := cmd.Process.Pid
		w := h.watch(t, func(ev *Event) bool {
			return ev.Kind == KindPtrace && ev.Header.TGID == self && ev.Ptrace.Target == uint32(pid)
		})
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := unix.PtraceAttach(pid); err != nil {
			t.Fatal(err)
		}
		var ws unix.WaitStatus
		if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil {
			t.Fatal(err)
		}
		if err := unix.PtraceDetach(pid); err != nil {
			t.Fatal(err)
		}
		ev := w.next(t, waitTimeout)
		if diff := cmp.Diff(Ptrace{Request: unix.PTRACE_ATTACH, Target: uint32(pid)}, *ev.Ptrace); diff != "" {
			t.Errorf("ptrace (-want +got):\n%s", diff)
		}
		ev = w.next(t, waitTimeout)
		if diff := cmp.Diff(Ptrace{Request: unix.PTRACE_DETACH, Target: uint32(pid)}, *ev.Ptrace); diff != "" {
			t.Errorf("ptrace detach (-want +got):\n%s", diff)
		}
	})

	t.Run("traceme", func(t *testing.T) {
		child := childWatch(t, h, func(ev *Event) bool { return ev.Kind == KindPtrace })
		w := child.w
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		cmd := exec.Command("/bin/true")
		cmd.SysProcAttr = &syscall.SysProcAttr{Ptrace: true} // PTRACE_TRACEME in the child
		if err := child.start(cmd); err != nil {
			t.Fatal(err)
		}
		var ws unix.WaitStatus
		if _, err := unix.Wait4(cmd.Process.Pid, &ws, 0, nil); err != nil || !ws.Stopped() {
			t.Fatalf("wait for the child's exec stop: %v, status %#x", err, ws)
		}
		if err := unix.PtraceDetach(cmd.Process.Pid); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
		ev := w.next(t, waitTimeout)
		// The child called TRACEME after fork, before exec: tracer is us.
		if diff := cmp.Diff(Ptrace{Request: unix.PTRACE_TRACEME, Target: self}, *ev.Ptrace); diff != "" {
			t.Errorf("ptrace (-want +got):\n%s", diff)
		}
	})
}

func TestIntegrationProcAccess(t *testing.T) {
	h := sharedHub(t)
	self := uint32(os.Getpid())
	cmd := exec.Command("/bin/sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	child := uint32(cmd.Process.Pid)
	w := h.watch(t, func(ev *Event) bool { return ev.Kind == KindProcAccess && ev.Header.TGID == self })

	// Read our own memory through process_vm_readv, as another process would.
	src := []byte("secret")
	dst := make([]byte, len(src))
	local := []unix.Iovec{{Base: &dst[0]}}
	local[0].SetLen(len(dst))
	remote := []unix.RemoteIovec{{Base: uintptr(unsafe.Pointer(&src[0])), Len: len(src)}}
	n, err := unix.ProcessVMReadv(int(self), local, remote, 0)
	if err != nil || n != len(src) {
		t.Fatalf("process_vm_readv: %d, %v", n, err)
	}
	fd, err := unix.PidfdOpen(int(child), 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)

	want := []ProcAccess{
		{Op: OpProcessVMReadv, Target: self, Ret: int64(len(src))},
		{Op: OpPidfdOpen, Target: child, Ret: int64(fd)},
	}
	var got []ProcAccess
	for len(got) < len(want) {
		ev := w.next(t, waitTimeout)
		got = append(got, *ev.ProcAccess)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestIntegrationComm(t *testing.T) {
	h := sharedHub(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := uint32(unix.Gettid())
	w := h.watch(t, func(ev *Event) bool { return ev.Kind == KindComm && ev.Header.PID == tid })
	old, err := os.ReadFile("/proc/thread-self/comm")
	if err != nil {
		t.Fatal(err)
	}
	oldName := strings.TrimSuffix(string(old), "\n")
	name := []byte("xdr-renamed\x00")
	if err := unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&name[0])), 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	back := append([]byte(oldName), 0)
	defer unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&back[0])), 0, 0, 0)
	ev := w.next(t, waitTimeout)
	if ev.Header.Comm != "xdr-renamed" || ev.Comm.Old != oldName {
		t.Errorf("comm %q, old %q; want %q, %q", ev.Header.Comm, ev.Comm.Old, "xdr-renamed", oldName)
	}
}

func TestIntegrationIgnore(t *testing.T) {
	needRoot(t)
	// A collector of its own that ignores this process from the start and a
	// child after its first event.
	h, err := newHub(&Options{IgnoreTGIDs: []uint32{uint32(os.Getpid())}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := h.close(); err != nil {
			t.Error(err)
		}
	}()
	self := uint32(os.Getpid())
	dir := t.TempDir()
	w := h.watch(t, func(ev *Event) bool {
		return ev.Header.TGID == self || (ev.File != nil && strings.HasPrefix(ev.File.Path, dir))
	})
	cmd := exec.Command("/bin/sh", "-c", "read x; touch "+filepath.Join(dir, "after")+"; true")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "self"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := h.c.Ignore(uint32(cmd.Process.Pid)); err != nil {
		t.Fatal(err)
	}
	io.WriteString(stdin, "\n")
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	// touch runs in a child of sh, which is not ignored: its file is seen.
	ev := w.next(t, waitTimeout)
	if ev.Header.TGID == self || ev.Header.TGID == uint32(cmd.Process.Pid) {
		t.Errorf("event of an ignored process: %v %+v", ev.Kind, ev.Header)
	}
	for _, ev := range w.drain(settle) {
		if ev.Header.TGID == self || ev.Header.TGID == uint32(cmd.Process.Pid) {
			t.Errorf("event of an ignored process: %v %+v", ev.Kind, ev.Header)
		}
	}
}

// TestIntegrationSetsid runs setsid(1), which, not being a process group
// leader, calls setsid() itself: one record names it, with its new
// session's id equal to its pid.
func TestIntegrationSetsid(t *testing.T) {
	h := sharedHub(t)
	w := h.watch(t, func(ev *Event) bool { return ev.Kind == KindSetsid && ev.Header.Comm == "setsid" })
	cmd := exec.Command("setsid", "/bin/true")
	if err := cmd.Run(); err != nil {
		t.Skipf("setsid(1) did not run: %v", err)
	}
	ev := w.next(t, waitTimeout)
	if ev.Header.TGID != uint32(cmd.Process.Pid) {
		t.Errorf("setsid record for tgid %d, want %d", ev.Header.TGID, cmd.Process.Pid)
	}
}
