package procfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ClockTicks is USER_HZ (always 100 in the Linux user ABI) used by
// /proc/PID/stat start times.
const ClockTicks = 100

// ErrGone reports that the process no longer exists (ENOENT/ESRCH on its
// /proc entries). All per-pid methods return an error wrapping it in that
// case so callers can tell "process gone" apart from other failures
// (errors.Is). A zombie, or a process that is exiting and has already
// released its memory and files, also counts as gone.
var ErrGone = errors.New("process gone")

// Size caps of the files read. The small ones fit a stack buffer.
const (
	smallFileMax     = 4 << 10 // stat, status, comm, boot_id
	cgroupMax        = 64 << 10
	procStatMax      = 4 << 20 // /proc/stat, scanned for btime
	linkMax          = 64 << 10
	defaultArgvBytes = 32 << 10
)

// FS is a /proc file system mounted at a root directory. It is a small value
// type, safe for concurrent use, and holds no open files: nothing to close.
type FS struct {
	root string
}

// New returns the FS rooted at root; "" means "/proc".
func New(root string) FS {
	if root == "" {
		root = "/proc"
	}
	return FS{root: strings.TrimSuffix(root, "/")}
}

// Root returns the root directory of fs.
func (fs FS) Root() string {
	if fs.root == "" {
		return "/proc"
	}
	return fs.root
}

// PIDs returns the process ids (thread group ids: /proc does not list
// threads) present under the root, in ascending order.
func (fs FS) PIDs() ([]int, error) {
	d, err := os.Open(fs.Root())
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	defer d.Close()
	var pids []int
	for {
		names, err := d.Readdirnames(512)
		for _, name := range names {
			if pid, ok := parsePID([]byte(name)); ok {
				pids = append(pids, pid)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("list processes in %s: %w", fs.Root(), err)
		}
	}
	slices.Sort(pids)
	return pids, nil
}

// BootID returns the random id of the running boot
// (sys/kernel/random/boot_id under the root), trimmed.
func (fs FS) BootID() (string, error) {
	var arr [128]byte
	b, _, err := readLimited(fs.Root()+"/sys/kernel/random/boot_id", arr[:], len(arr))
	if err != nil {
		return "", fmt.Errorf("read boot id: %w", err)
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return "", errors.New("read boot id: file is empty")
	}
	return string(b), nil
}

// BootTime returns the boot time from the "btime" line of /proc/stat
// (whole seconds).
func (fs FS) BootTime() (time.Time, error) {
	f, err := os.Open(fs.Root() + "/stat")
	if err != nil {
		return time.Time{}, fmt.Errorf("read boot time: %w", err)
	}
	defer f.Close()
	sec, err := scanBtime(io.LimitReader(f, procStatMax))
	if err != nil {
		return time.Time{}, fmt.Errorf("read boot time from %s: %w", f.Name(), err)
	}
	return time.Unix(int64(sec), 0), nil
}

// scanBtime finds the btime line in r. Lines longer than the reader's buffer
// (the intr line on large machines) are skipped in pieces, so memory stays
// bounded whatever the file size.
func scanBtime(r io.Reader) (uint64, error) {
	br := bufio.NewReaderSize(r, 4096)
	inLongLine := false
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			inLongLine = true
			continue
		}
		if !inLongLine {
			if v, ok := bytes.CutPrefix(line, []byte("btime ")); ok {
				sec, ok := parseUint(bytes.TrimSpace(v))
				if !ok {
					return 0, fmt.Errorf("malformed btime line %q", line)
				}
				return sec, nil
			}
		}
		inLongLine = false
		if err == io.EOF {
			return 0, fmt.Errorf("no btime line in the first %d bytes", procStatMax)
		}
		if err != nil {
			return 0, err
		}
	}
}

// pidPath returns root/pid/name.
func (fs FS) pidPath(pid int, name string) string {
	var arr [20]byte
	return fs.Root() + "/" + string(strconv.AppendInt(arr[:0], int64(pid), 10)) + "/" + name
}

// readLimited reads the file at path into buf[:0], growing it as needed, until
// end of file or limit bytes. truncated reports that the file held more than
// limit bytes. The returned slice aliases buf when it was large enough.
func readLimited(path string, buf []byte, limit int) (data []byte, truncated bool, err error) {
	fd, err := open(path)
	if err != nil {
		return nil, false, err
	}
	defer unix.Close(fd)
	b := buf[:0]
	for {
		// Read up to limit+1 bytes: the extra byte tells a file of exactly
		// limit bytes apart from a longer one.
		end := min(cap(b), limit+1)
		if len(b) == end {
			if len(b) > limit {
				return b[:limit], true, nil
			}
			b = slices.Grow(b, min(2*cap(b)+512, limit+1)-len(b))
			end = min(cap(b), limit+1)
		}
		n, err := unix.Read(fd, b[len(b):end])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, false, err
		}
		if n == 0 {
			return b, false, nil
		}
		b = b[:len(b)+n]
		if len(b) < end {
			// A short read is the end of the file: true of regular
			// files and of the /proc and /sys files read here (their
			// readers fill the buffer until their end). It saves the
			// read that would return 0, a system call per file.
			return b, false, nil
		}
	}
}

func open(path string) (int, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// readlink reads a symbolic link, starting with a stack buffer and growing
// up to linkMax (proc links can be as long as a page).
func readlink(path string) (string, error) {
	var arr [512]byte
	buf := arr[:]
	for {
		n, err := unix.Readlink(path, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return "", err
		}
		if n < len(buf) {
			return string(buf[:n]), nil
		}
		if len(buf) >= linkMax {
			return "", fmt.Errorf("link target longer than %d bytes", linkMax)
		}
		buf = make([]byte, 8*len(buf))
	}
}
