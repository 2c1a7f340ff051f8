package sdnotify

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// listen opens a datagram socket at addr that, like systemd's, asks the
// kernel for the sender's credentials.
func listen(t *testing.T, addr string) *net.UnixConn {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	raw, err := conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
	}); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
	return conn
}

// receive reads one datagram and the pid of its sender.
func receive(t *testing.T, conn *net.UnixConn) (msg string, pid int32) {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred))
	n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		t.Fatal(err)
	}
	cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(cmsgs) != 1 {
		t.Fatalf("control messages: %v, %v", cmsgs, err)
	}
	cred, err := unix.ParseUnixCredentials(&cmsgs[0])
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n]), cred.Pid
}

func TestSend(t *testing.T) {
	addrs := map[string]string{
		"path":     filepath.Join(t.TempDir(), "notify"),
		"abstract": fmt.Sprintf("@xdr-sdnotify-test-%d-%d", os.Getpid(), time.Now().UnixNano()),
	}
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"ready", Ready, "READY=1"},
		{"stopping", Stopping, "STOPPING=1"},
		{"status", func() error { return Status("collecting (ebpf)") }, "STATUS=collecting (ebpf)"},
		{"status with line breaks", func() error { return Status("a\nREADY=1\r\nb") }, "STATUS=a READY=1  b"},
		{"empty status", func() error { return Status("") }, "STATUS="},
	}
	for kind, addr := range addrs {
		conn := listen(t, addr)
		t.Setenv(socketEnv, addr)
		for _, tt := range tests {
			t.Run(kind+"/"+tt.name, func(t *testing.T) {
				if err := tt.call(); err != nil {
					t.Fatal(err)
				}
				msg, pid := receive(t, conn)
				if diff := cmp.Diff(tt.want, msg); diff != "" {
					t.Errorf("datagram (-want +got):\n%s", diff)
				}
				// systemd accepts notifications of NotifyAccess=main
				// units from the main process only.
				if pid != int32(os.Getpid()) {
					t.Errorf("sender pid %d, want %d", pid, os.Getpid())
				}
			})
		}
	}
}

func TestSendErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		env     string
		wantErr string // "" when the call must succeed
	}{
		{"unset", "", ""},
		{"relative path", "notify.sock", "neither an absolute path nor an abstract socket"},
		{"vsock address", "vsock:2:1234", "neither an absolute path nor an abstract socket"},
		{"nobody listening", filepath.Join(dir, "absent"), "notify systemd at " + filepath.Join(dir, "absent")},
		{"abstract, nobody listening", "@xdr-sdnotify-absent-" + fmt.Sprint(time.Now().UnixNano()), "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(socketEnv, tt.env)
			for _, call := range []func() error{Ready, Stopping, func() error { return Status("x") }} {
				err := call()
				switch {
				case tt.wantErr == "" && err != nil:
					t.Errorf("got %v, want nil", err)
				case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
					t.Errorf("got %v, want an error containing %q", err, tt.wantErr)
				}
			}
		})
	}
}

// StoppingWhenDone's wait returns only once STOPPING=1 was sent for a
// done context, and does not block for one that is not done.
func TestStoppingWhenDone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn := listen(t, path)
	t.Setenv(socketEnv, path)

	StoppingWhenDone(context.Background())() // never done: returns at once

	ctx, cancel := context.WithCancel(context.Background())
	wait := StoppingWhenDone(ctx)
	cancel()
	wait()
	// Sent before wait returned: already queued on the socket.
	raw, err := conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	var n int
	if cerr := raw.Control(func(fd uintptr) {
		n, _, err = unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
	}); cerr != nil {
		t.Fatal(cerr)
	}
	if err != nil || string(buf[:max(n, 0)]) != "STOPPING=1" {
		t.Errorf("after wait: %q, %v; want STOPPING=1 already there", buf[:max(n, 0)], err)
	}
}
