package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// listen creates a listening Unix socket at path with the given mode and,
// if gid is positive, group.
//
// The socket's inode gets mode 0600 before bind, so bind creates the file
// with at most that mode (minus the umask): nobody else can connect while
// the group and the final mode are being set.
func listen(path string, mode os.FileMode, gid int) (*net.UnixListener, error) {
	if max := len(unix.RawSockaddrUnix{}.Path) - 1; len(path) > max {
		return nil, fmt.Errorf("socket %s: path is %d bytes, Unix sockets allow at most %d (choose a shorter path)", path, len(path), max)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var err error
		if cerr := rc.Control(func(fd uintptr) { err = unix.Fchmod(int(fd), 0o600) }); cerr != nil {
			return cerr
		}
		if err != nil {
			return fmt.Errorf("fchmod: %w", err)
		}
		return nil
	}}
	l, err := lc.Listen(context.Background(), "unix", path)
	if err != nil {
		return nil, explain(path, err)
	}
	ln := l.(*net.UnixListener)
	if gid > 0 {
		if err := os.Lchown(path, -1, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("socket %s: give it group %d: %w (run as root, or as a member of that group)", path, gid, err)
		}
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("set mode of %w", explain(path, err))
	}
	return ln, nil
}

// removeStale removes a socket file at path that nobody listens on. It
// refuses to remove anything else, or a socket in use.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return explain(path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("socket %s: a file that is not a socket (mode %v) is in the way; refusing to remove it (remove it yourself or choose another path)", path, fi.Mode())
	}
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		conn.Close()
		return fmt.Errorf("socket %s: in use by a running process (is another aggregator running?)", path)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil // removed meanwhile
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return explain(path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale %w", explain(path, err))
	}
	return nil
}

// explain turns err about path into "socket PATH: <errno> (<what to do>)".
func explain(path string, err error) error {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return fmt.Errorf("socket %s: %w", path, err)
	}
	hint := ""
	switch errno {
	case syscall.EACCES, syscall.EPERM:
		hint = fmt.Sprintf(" (run as root or give this user write access to %s)", filepath.Dir(path))
	case syscall.ENOENT:
		hint = fmt.Sprintf(" (create the directory %s first, e.g. with systemd's RuntimeDirectory=)", filepath.Dir(path))
	case syscall.EADDRINUSE:
		hint = " (is another aggregator running?)"
	}
	return fmt.Errorf("socket %s: %w%s", path, errno, hint)
}
