package server

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/xdr-sensor/xdr/proto/wire"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

const nobody = 65534

// dialAs connects to the Unix socket at path as uid and gid.
//
// SO_PEERCRED records the credentials of the connecting thread, so the
// connect runs on an OS thread that drops root for itself only: raw
// setresgid/setresuid calls, not Go's wrappers, which change every thread.
// The goroutine keeps the thread locked until it exits, and the runtime
// then ends the thread instead of reusing it.
func dialAs(path string, uid, gid int) (net.Conn, error) {
	type result struct {
		fd  int
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked, see above
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(gid), uintptr(gid), uintptr(gid)); e != 0 {
			ch <- result{-1, os.NewSyscallError("setresgid", e)}
			return
		}
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(uid), uintptr(uid), uintptr(uid)); e != 0 {
			ch <- result{-1, os.NewSyscallError("setresuid", e)}
			return
		}
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err == nil {
			if err = unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
				unix.Close(fd)
			}
		}
		ch <- result{fd, err}
	}()
	r := <-ch
	if r.err != nil {
		return nil, r.err
	}
	f := os.NewFile(uintptr(r.fd), "peer")
	defer f.Close()
	return net.FileConn(f)
}

func TestIntegrationOtherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: connects as uid 65534 and chowns the socket")
	}
	dir := t.TempDir()
	// Let nobody reach the socket: the test's directories are 0700.
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("mode 0600 keeps others out", func(t *testing.T) {
		ts := startServer(t, Options{Socket: filepath.Join(dir, "private.sock")})
		c, err := dialAs(ts.Addr(), nobody, nobody)
		if err == nil {
			c.Close()
		}
		if !errors.Is(err, syscall.EACCES) {
			t.Fatalf("connect as nobody to a 0600 socket: %v, want EACCES", err)
		}
		if st := ts.Stats(); st.Accepted+st.Rejected != 0 {
			t.Errorf("stats %+v, want no connection", st)
		}
	})

	t.Run("group may connect, uid check rejects", func(t *testing.T) {
		ts := startServer(t, Options{Socket: filepath.Join(dir, "group.sock"), Mode: 0o660, Group: nobody})
		fi, err := os.Lstat(ts.Addr())
		if err != nil {
			t.Fatal(err)
		}
		if gid := fi.Sys().(*syscall.Stat_t).Gid; fi.Mode().Perm() != 0o660 || gid != nobody {
			t.Errorf("socket mode %v group %d, want 0660 and %d", fi.Mode(), gid, nobody)
		}
		c, err := dialAs(ts.Addr(), nobody, nobody)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		wantEOF(t, c)
		if d := cmp.Diff(Stats{Rejected: 1}, ts.Stats()); d != "" {
			t.Errorf("stats (-want +got):\n%s", d)
		}

		// Root, allowed by default, still gets in.
		good := ts.dial(t)
		write(t, good, helloFrame(wire.SchemaVersion))
		ts.next(t)
		if d := cmp.Diff(Stats{Rejected: 1, Accepted: 1, Active: 1, Frames: 1}, ts.Stats()); d != "" {
			t.Errorf("stats (-want +got):\n%s", d)
		}
	})

	t.Run("nobody allowed", func(t *testing.T) {
		peers := make(chan *Peer, 1)
		ts := startServer(t, Options{Socket: filepath.Join(dir, "allowed.sock"), Mode: 0o660, Group: nobody,
			AllowedUIDs: []uint32{nobody}, Handler: func(p *Peer, _ *xdrv1.AgentMessage) { peers <- p }})
		c, err := dialAs(ts.Addr(), nobody, nobody)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		write(t, c, helloFrame(wire.SchemaVersion))
		if p := <-peers; p.UID != nobody || p.GID != nobody {
			t.Errorf("peer uid %d gid %d, want %d", p.UID, p.GID, nobody)
		}
	})
}
