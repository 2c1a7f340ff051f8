package procfs

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// realProc returns the host's /proc, skipping the test when it is not
// mounted.
func realProc(t testing.TB) FS {
	t.Helper()
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skipf("needs a mounted /proc: %v", err)
	}
	return New("")
}

// TestIntegrationSelf reads this test process from the real /proc and checks
// it against what the os package says.
func TestIntegrationSelf(t *testing.T) {
	p := realProc(t)
	pid := os.Getpid()
	comm := filepath.Base(os.Args[0])
	if len(comm) > 15 {
		comm = comm[:15]
	}

	st, err := p.Stat(pid)
	if err != nil {
		t.Fatal(err)
	}
	if st.PID != pid || st.PPID != os.Getppid() || st.Comm != comm || st.StartTicks == 0 {
		t.Errorf("Stat = %+v; want pid %d, ppid %d, comm %q, non-zero start", st, pid, os.Getppid(), comm)
	}
	if pgrp := unix.Getpgrp(); st.PGRP != pgrp {
		t.Errorf("Stat PGRP = %d, want %d", st.PGRP, pgrp)
	}
	if sid, err := unix.Getsid(0); err == nil && st.Session != sid {
		t.Errorf("Stat Session = %d, want %d", st.Session, sid)
	}

	status, err := p.Status(pid)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus := Status{Name: comm, TGID: pid, PPID: os.Getppid()}
	ruid, euid, suid := unix.Getresuid()
	rgid, egid, sgid := unix.Getresgid()
	wantStatus.UID = [4]uint32{uint32(ruid), uint32(euid), uint32(suid), uint32(os.Geteuid())}
	wantStatus.GID = [4]uint32{uint32(rgid), uint32(egid), uint32(sgid), uint32(os.Getegid())}
	if d := cmp.Diff(wantStatus, status); d != "" {
		t.Errorf("Status (-want +got):\n%s", d)
	}
	if status.UID[0] != uint32(os.Getuid()) || status.GID[0] != uint32(os.Getgid()) {
		t.Errorf("Status real ids %d/%d, want %d/%d", status.UID[0], status.GID[0], os.Getuid(), os.Getgid())
	}

	argv, truncated, err := p.Cmdline(pid, 0)
	if err != nil || truncated {
		t.Fatalf("Cmdline: truncated %v, %v", truncated, err)
	}
	if d := cmp.Diff(os.Args, argv); d != "" {
		t.Errorf("Cmdline (-os.Args +got):\n%s", d)
	}

	env, truncated, err := p.Environ(pid, 1<<20)
	if err != nil || truncated {
		t.Fatalf("Environ: truncated %v, %v", truncated, err)
	}
	if d := cmp.Diff(os.Environ(), env); d != "" {
		t.Errorf("Environ (-os.Environ +got):\n%s", d)
	}

	exe, deleted, err := p.Exe(pid)
	if err != nil {
		t.Fatal(err)
	}
	wantExe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if exe != wantExe || deleted {
		t.Errorf("Exe = %q, deleted %v; want %q", exe, deleted, wantExe)
	}

	cwd, err := p.Cwd(pid)
	if err != nil {
		t.Fatal(err)
	}
	if wd, err := os.Getwd(); err != nil || cwd != wd {
		t.Errorf("Cwd = %q, want %q (%v)", cwd, wd, err)
	}

	if got, err := p.Comm(pid); err != nil || got != comm {
		t.Errorf("Comm = %q, %v; want %q", got, err, comm)
	}

	cg, _, err := p.Cgroup(pid)
	if err != nil || !strings.HasPrefix(cg, "/") {
		t.Errorf("Cgroup = %q, %v; want an absolute path", cg, err)
	}

	// The executable opened through /proc is the file os.Executable names.
	f, err := p.OpenExe(pid)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var viaProc, viaPath unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &viaProc); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(wantExe, &viaPath); err != nil {
		t.Fatal(err)
	}
	if viaProc.Dev != viaPath.Dev || viaProc.Ino != viaPath.Ino {
		t.Errorf("OpenExe inode %d:%d, %s is %d:%d", viaProc.Dev, viaProc.Ino, wantExe, viaPath.Dev, viaPath.Ino)
	}

	pids, err := p.PIDs()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(pids, pid) || !slices.IsSorted(pids) {
		t.Errorf("PIDs (%d of them) lacks own pid %d or is unsorted", len(pids), pid)
	}

	id, err := p.BootID()
	if err != nil || len(id) != 36 || strings.Count(id, "-") != 4 {
		t.Errorf("BootID = %q, %v; want a UUID", id, err)
	}

	// This process started after boot and before now.
	boot, err := p.BootTime()
	if err != nil {
		t.Fatal(err)
	}
	started := boot.Add(time.Duration(st.StartTicks) * time.Second / ClockTicks)
	if now := time.Now(); boot.After(now) || started.After(now.Add(2*time.Second)) {
		t.Errorf("boot time %v, process start %v, now %v", boot, started, now)
	}
}

// TestIntegrationExited checks ErrGone on a real zombie and on a reaped
// process.
func TestIntegrationExited(t *testing.T) {
	p := realProc(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$") // runs no test and exits
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	reaped := false
	defer func() {
		if !reaped {
			cmd.Wait()
		}
	}()

	// Not reaped yet, the child turns into a zombie.
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := p.Stat(pid)
		if err != nil {
			t.Fatal(err)
		}
		if st.State == 'Z' {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("child %d still in state %c", pid, st.State)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, _, err := p.Exe(pid); !errors.Is(err, ErrGone) {
		t.Errorf("Exe of a zombie: %v, want ErrGone", err)
	}
	if _, err := p.Cwd(pid); !errors.Is(err, ErrGone) {
		t.Errorf("Cwd of a zombie: %v, want ErrGone", err)
	}
	if f, err := p.OpenExe(pid); !errors.Is(err, ErrGone) {
		if f != nil {
			f.Close()
		}
		t.Errorf("OpenExe of a zombie: %v, want ErrGone", err)
	}
	if argv, _, err := p.Cmdline(pid, 0); err != nil || argv != nil {
		t.Errorf("Cmdline of a zombie = %q, %v; want nil, nil", argv, err)
	}
	if status, err := p.Status(pid); err != nil || status.TGID != pid {
		t.Errorf("Status of a zombie = %+v, %v", status, err)
	}

	cmd.Wait()
	reaped = true
	if _, err := p.Stat(pid); !errors.Is(err, ErrGone) {
		t.Errorf("Stat of a reaped process: %v, want ErrGone", err)
	}
	if _, err := p.Status(pid); !errors.Is(err, ErrGone) {
		t.Errorf("Status of a reaped process: %v, want ErrGone", err)
	}
	if _, _, err := p.Cmdline(pid, 0); !errors.Is(err, ErrGone) {
		t.Errorf("Cmdline of a reaped process: %v, want ErrGone", err)
	}
	if _, _, err := p.Exe(pid); !errors.Is(err, ErrGone) {
		t.Errorf("Exe of a reaped process: %v, want ErrGone", err)
	}
	if _, _, err := p.Cgroup(pid); !errors.Is(err, ErrGone) {
		t.Errorf("Cgroup of a reaped process: %v, want ErrGone", err)
	}
}

// TestIntegrationKernelThread checks that a kernel thread's missing exe is
// not reported as gone.
func TestIntegrationKernelThread(t *testing.T) {
	p := realProc(t)
	pids, err := p.PIDs()
	if err != nil {
		t.Fatal(err)
	}
	kthread := 0
	for _, pid := range pids {
		if _, flags, err := p.stat(pid); err == nil && flags&pfKthread != 0 {
			kthread = pid
			break
		}
	}
	if kthread == 0 {
		t.Skip("needs the initial pid namespace: no kernel thread visible")
	}
	_, _, err = p.Exe(kthread)
	if errors.Is(err, ErrGone) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Exe of kernel thread %d: %v, want ErrNotExist and not ErrGone", kthread, err)
	}
	if argv, _, err := p.Cmdline(kthread, 0); err != nil || argv != nil {
		t.Errorf("Cmdline of kernel thread %d = %q, %v; want nil, nil", kthread, argv, err)
	}
}

// BenchmarkSelf reads what the agent reads on every exec, for this process.
func BenchmarkSelf(b *testing.B) {
	p := realProc(b)
	pid := os.Getpid()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Stat(pid); err != nil {
			b.Fatal(err)
		}
		if _, err := p.Status(pid); err != nil {
			b.Fatal(err)
		}
		if _, _, err := p.Cmdline(pid, 0); err != nil {
			b.Fatal(err)
		}
		if _, _, err := p.Exe(pid); err != nil {
			b.Fatal(err)
		}
		if _, err := p.Cwd(pid); err != nil {
			b.Fatal(err)
		}
	}
}
