package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Stat is the part of /proc/PID/stat the agent uses.
type Stat struct {
	PID int
	// Comm is the command name (at most 15 bytes for user processes, up to
	// 63 for kernel threads). It may contain any byte but NUL.
	Comm    string
	State   byte // R, S, D, Z, T, t, X, I, ...
	PPID    int
	PGRP    int
	Session int
	// StartTicks is the start time after boot in clock ticks (field 22);
	// divide by ClockTicks for seconds.
	StartTicks uint64
}

// Status is the part of /proc/PID/status the agent uses.
type Status struct {
	Name string // as Comm, with the kernel's escaping of '\n' and '\\' undone
	TGID int
	PPID int
	UID  [4]uint32 // real, effective, saved, file system
	GID  [4]uint32 // real, effective, saved, file system
}

// Stat reads /proc/PID/stat.
func (fs FS) Stat(pid int) (Stat, error) {
	st, _, err := fs.stat(pid)
	return st, err
}

func (fs FS) stat(pid int) (Stat, uint64, error) {
	var arr [smallFileMax]byte
	b, _, err := readLimited(fs.pidPath(pid, "stat"), arr[:], len(arr))
	if err != nil {
		return Stat{}, 0, pidErr("stat", pid, err)
	}
	// The fields needed end well before 4 KiB, so a truncated read is fine.
	st, flags, err := parseStat(b)
	if err != nil {
		return Stat{}, 0, fmt.Errorf("read stat of pid %d: %w", pid, err)
	}
	return st, flags, nil
}

// Status reads /proc/PID/status.
func (fs FS) Status(pid int) (Status, error) {
	var arr [smallFileMax]byte
	b, truncated, err := readLimited(fs.pidPath(pid, "status"), arr[:], len(arr))
	if err != nil {
		return Status{}, pidErr("status", pid, err)
	}
	if truncated {
		// The lines needed come first; drop the cut-off last line.
		b = b[:bytes.LastIndexByte(b, '\n')+1]
	}
	st, err := parseStatus(b)
	if err != nil {
		return Status{}, fmt.Errorf("read status of pid %d: %w", pid, err)
	}
	return st, nil
}

// Cmdline reads the argument vector from /proc/PID/cmdline, at most max
// bytes (32 KiB when max <= 0). truncated reports that the command line was
// longer; its last element is then cut short. Kernel threads and zombies have
// an empty command line: nil argv and no error.
func (fs FS) Cmdline(pid, max int) (argv []string, truncated bool, err error) {
	argv, truncated, err = fs.readNULList(pid, "cmdline", max)
	if err != nil {
		return nil, false, pidErr("cmdline", pid, err)
	}
	return argv, truncated, nil
}

// Environ reads the initial environment from /proc/PID/environ, at most max
// bytes (32 KiB when max <= 0), like Cmdline. Reading another user's
// environment needs root (CAP_SYS_PTRACE).
func (fs FS) Environ(pid, max int) (env []string, truncated bool, err error) {
	env, truncated, err = fs.readNULList(pid, "environ", max)
	if err != nil {
		return nil, false, pidErr("environ", pid, err)
	}
	return env, truncated, nil
}

func (fs FS) readNULList(pid int, name string, max int) ([]string, bool, error) {
	if max <= 0 {
		max = defaultArgvBytes
	}
	var arr [smallFileMax]byte
	b, truncated, err := readLimited(fs.pidPath(pid, name), arr[:], max)
	if err != nil {
		return nil, false, err
	}
	return splitNUL(b), truncated, nil
}

// Exe reads the /proc/PID/exe link: the path of the executable, as the
// kernel last knew it. deleted reports that the file was unlinked (or
// replaced) since; the kernel's " (deleted)" suffix is removed from path. A
// file whose name really ends in " (deleted)" is indistinguishable.
//
// A kernel thread has no executable: the error then wraps fs.ErrNotExist,
// not ErrGone.
func (fs FS) Exe(pid int) (path string, deleted bool, err error) {
	path, err = readlink(fs.pidPath(pid, "exe"))
	if err != nil {
		return "", false, fs.linkErr("exe", pid, err)
	}
	path, deleted = strings.CutSuffix(path, " (deleted)")
	return path, deleted, nil
}

// Cwd reads the /proc/PID/cwd link, the current working directory. It is
// returned as the kernel prints it, with a " (deleted)" suffix if the
// directory was removed.
func (fs FS) Cwd(pid int) (string, error) {
	cwd, err := readlink(fs.pidPath(pid, "cwd"))
	if err != nil {
		return "", fs.linkErr("cwd", pid, err)
	}
	return cwd, nil
}

// Comm reads /proc/PID/comm, the command name.
func (fs FS) Comm(pid int) (string, error) {
	var arr [256]byte
	b, _, err := readLimited(fs.pidPath(pid, "comm"), arr[:], len(arr))
	if err != nil {
		return "", pidErr("comm", pid, err)
	}
	return string(bytes.TrimSuffix(b, []byte("\n"))), nil
}

// Cgroup reads /proc/PID/cgroup and returns the process's cgroup path and,
// when the path names a container, its 64-hex-digit id (else "").
//
// The path is the cgroup v2 one ("0::/path") unless that is the root "/"
// while a v1 hierarchy places the process deeper (hybrid setups, where
// systemd or a container runtime manage only v1); then it is the first v1
// path other than "/". The container id comes from the chosen path, else
// from any other line.
func (fs FS) Cgroup(pid int) (path string, containerID string, err error) {
	var arr [smallFileMax]byte
	b, truncated, err := readLimited(fs.pidPath(pid, "cgroup"), arr[:], cgroupMax)
	if err != nil {
		return "", "", pidErr("cgroup", pid, err)
	}
	if truncated {
		return "", "", fmt.Errorf("read cgroup of pid %d: longer than %d bytes", pid, cgroupMax)
	}
	path, containerID = parseCgroup(b)
	return path, containerID, nil
}

// OpenExe opens /proc/PID/exe read-only (and close-on-exec). The magic link
// reaches the exact inode the process runs, even when the file was deleted
// or replaced since, so this is the file to hash. The caller must close it.
func (fs FS) OpenExe(pid int) (*os.File, error) {
	path := fs.pidPath(pid, "exe")
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fs.linkErr("exe", pid, err)
	}
	return f, nil
}

// Kernel task flags from include/linux/sched.h, in field 9 of stat.
const (
	pfExiting = 0x00000004
	pfKthread = 0x00200000
)

// linkErr classifies an error from the exe or cwd link of pid. ENOENT there
// does not mean the process is gone: kernel threads have no exe, and a
// process that is exiting has neither. So look at its stat to tell.
func (fs FS) linkErr(name string, pid int, err error) error {
	if err != unix.ENOENT {
		return pidErr(name, pid, err)
	}
	st, flags, serr := fs.stat(pid)
	switch {
	case errors.Is(serr, ErrGone):
		return pidErr(name, pid, err)
	case serr != nil:
		return fmt.Errorf("read %s of pid %d: %w (and %w)", name, pid, err, serr)
	case flags&pfKthread != 0:
		return fmt.Errorf("read %s of pid %d: kernel thread: %w", name, pid, err)
	case st.State == 'Z' || st.State == 'X' || flags&pfExiting != 0:
		return fmt.Errorf("read %s of pid %d: %w (exiting, state %c)", name, pid, ErrGone, st.State)
	default:
		return fmt.Errorf("read %s of pid %d: %w", name, pid, err)
	}
}

// pidErr wraps an error from reading a file of pid, adding ErrGone when the
// error says the process no longer exists.
func pidErr(name string, pid int, err error) error {
	if err == unix.ENOENT || err == unix.ESRCH {
		return fmt.Errorf("read %s of pid %d: %w (%w)", name, pid, ErrGone, err)
	}
	return fmt.Errorf("read %s of pid %d: %w", name, pid, err)
}
