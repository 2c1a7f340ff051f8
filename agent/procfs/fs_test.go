package procfs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var fixture = New("testdata/proc")

const (
	pidBash     = 1000 // ordinary process
	pidOddComm  = 1001 // comm "x) (y z"
	pidKthread  = 2    // kernel thread
	pidDeleted  = 1002 // runs a deleted executable
	pidDocker   = 1003 // in a docker container (cgroup v1)
	pidGarbled  = 1004 // truncated stat, malformed status
	pidZombie   = 1005 // zombie: no exe, no cwd
	pidNotExist = 99999

	dockerID = "3f4a9c1e2b7d6e5f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f"
)

// errKind names the class of error a test expects.
type errKind int

const (
	noErr    errKind = iota
	gone             // errors.Is(err, ErrGone)
	notExist         // errors.Is(err, fs.ErrNotExist) but not ErrGone
	other            // any other error
)

func checkErr(t *testing.T, err error, want errKind) {
	t.Helper()
	var got errKind
	switch {
	case err == nil:
		got = noErr
	case errors.Is(err, ErrGone):
		got = gone
	case errors.Is(err, fs.ErrNotExist):
		got = notExist
	default:
		got = other
	}
	if got != want {
		t.Fatalf("error %v: kind %d, want %d", err, got, want)
	}
}

func TestNewRoot(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "/proc"},
		{"/proc", "/proc"},
		{"/host/proc/", "/host/proc"},
		{"testdata/proc", "testdata/proc"},
	} {
		if got := New(tc.in).Root(); got != tc.want {
			t.Errorf("New(%q).Root() = %q, want %q", tc.in, got, tc.want)
		}
	}
	var zero FS
	if got := zero.Root(); got != "/proc" {
		t.Errorf("zero FS Root() = %q, want /proc", got)
	}
}

func TestPIDs(t *testing.T) {
	got, err := fixture.PIDs()
	if err != nil {
		t.Fatal(err)
	}
	want := []int{2, 1000, 1001, 1002, 1003, 1004, 1005}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("PIDs (-want +got):\n%s", d)
	}
	if _, err := New("testdata/missing").PIDs(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("PIDs of a missing root: %v, want ErrNotExist", err)
	}
}

func TestStat(t *testing.T) {
	for _, tc := range []struct {
		name string
		pid  int
		want Stat
		err  errKind
	}{
		{"bash", pidBash, Stat{PID: 1000, Comm: "bash", State: 'S', PPID: 999, PGRP: 1000, Session: 1000, StartTicks: 123456}, noErr},
		{"odd comm", pidOddComm, Stat{PID: 1001, Comm: "x) (y z", State: 'R', PPID: 1000, PGRP: 1000, Session: 1000, StartTicks: 123500}, noErr},
		{"kernel thread", pidKthread, Stat{PID: 2, Comm: "kthreadd", State: 'S', StartTicks: 19}, noErr},
		{"zombie", pidZombie, Stat{PID: 1005, Comm: "defunct", State: 'Z', PPID: 1000, PGRP: 1000, Session: 1000, StartTicks: 310000}, noErr},
		{"garbled", pidGarbled, Stat{}, other},
		{"not exist", pidNotExist, Stat{}, gone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := fixture.Stat(tc.pid)
			checkErr(t, err, tc.err)
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("Stat(%d) (-want +got):\n%s", tc.pid, d)
			}
		})
	}
}

func TestStatus(t *testing.T) {
	alice := [4]uint32{1000, 1000, 1000, 1000}
	for _, tc := range []struct {
		name string
		pid  int
		want Status
		err  errKind
	}{
		{"bash", pidBash, Status{Name: "bash", TGID: 1000, PPID: 999, UID: alice, GID: alice}, noErr},
		{"setuid", pidOddComm, Status{Name: "x) (y z", TGID: 1001, PPID: 1000, UID: [4]uint32{1000, 0, 0, 0}, GID: alice}, noErr},
		{"docker", pidDocker, Status{Name: "nginx", TGID: 1003, PPID: 980, UID: [4]uint32{101, 101, 101, 101}, GID: [4]uint32{101, 101, 101, 101}}, noErr},
		{"kernel thread", pidKthread, Status{Name: "kthreadd", TGID: 2}, noErr},
		{"garbled", pidGarbled, Status{}, other},
		{"not exist", pidNotExist, Status{}, gone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := fixture.Status(tc.pid)
			checkErr(t, err, tc.err)
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("Status(%d) (-want +got):\n%s", tc.pid, d)
			}
		})
	}
}

func TestCmdline(t *testing.T) {
	for _, tc := range []struct {
		name          string
		pid, max      int
		want          []string
		wantTruncated bool
		err           errKind
	}{
		{"bash", pidBash, 0, []string{"/usr/bin/bash", "-c", "echo hi  there", "", "last"}, false, noErr},
		{"exact fit", pidBash, 38, []string{"/usr/bin/bash", "-c", "echo hi  there", "", "last"}, false, noErr},
		{"truncated", pidBash, 15, []string{"/usr/bin/bash", "-"}, true, noErr},
		{"truncated before NUL", pidBash, 37, []string{"/usr/bin/bash", "-c", "echo hi  there", "", "last"}, true, noErr},
		{"odd comm", pidOddComm, 0, []string{"./x) (y z"}, false, noErr},
		{"docker", pidDocker, 0, []string{"nginx: master process nginx -g daemon off;"}, false, noErr},
		{"kernel thread", pidKthread, 0, nil, false, noErr},
		{"zombie", pidZombie, 0, nil, false, noErr},
		{"not exist", pidNotExist, 0, nil, false, gone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, truncated, err := fixture.Cmdline(tc.pid, tc.max)
			checkErr(t, err, tc.err)
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("Cmdline(%d, %d) (-want +got):\n%s", tc.pid, tc.max, d)
			}
			if truncated != tc.wantTruncated {
				t.Errorf("Cmdline(%d, %d) truncated = %v, want %v", tc.pid, tc.max, truncated, tc.wantTruncated)
			}
		})
	}
}

func TestEnviron(t *testing.T) {
	for _, tc := range []struct {
		name          string
		pid, max      int
		want          []string
		wantTruncated bool
		err           errKind
	}{
		{"bash", pidBash, 0, []string{"HOME=/home/alice", "PATH=/usr/local/bin:/usr/bin", "LANG=C.UTF-8"}, false, noErr},
		{"truncated", pidBash, 20, []string{"HOME=/home/alice", "PAT"}, true, noErr},
		{"empty", pidOddComm, 0, nil, false, noErr},
		{"not exist", pidNotExist, 0, nil, false, gone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, truncated, err := fixture.Environ(tc.pid, tc.max)
			checkErr(t, err, tc.err)
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("Environ(%d, %d) (-want +got):\n%s", tc.pid, tc.max, d)
			}
			if truncated != tc.wantTruncated {
				t.Errorf("Environ(%d, %d) truncated = %v, want %v", tc.pid, tc.max, truncated, tc.wantTruncated)
			}
		})
	}
}

func TestExe(t *testing.T) {
	for _, tc := range []struct {
		name        string
		pid         int
		want        string
		wantDeleted bool
		err         errKind
	}{
		{"bash", pidBash, "/usr/bin/bash", false, noErr},
		{"odd name", pidOddComm, "/home/alice/x) (y z", false, noErr},
		{"deleted", pidDeleted, "/tmp/.x/payload", true, noErr},
		{"kernel thread", pidKthread, "", false, notExist},
		{"zombie", pidZombie, "", false, gone},
		{"garbled stat", pidGarbled, "", false, notExist},
		{"not exist", pidNotExist, "", false, gone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, deleted, err := fixture.Exe(tc.pid)
			checkErr(t, err, tc.err)
			if got != tc.want || deleted != tc.wantDeleted {
				t.Errorf("Exe(%d) = %q, %v; want %q, %v", tc.pid, got, deleted, tc.want, tc.wantDeleted)
			}
		})
	}
}

func TestCwd(t *testing.T) {
	for _, tc := range []struct {
		name string
		pid  int
		want string
		err  errKind
	}{
		{"bash", pidBash, "/home/alice", noErr},
		{"deleted", pidDeleted, "/tmp/.x (deleted)", noErr},
		{"kernel thread", pidKthread, "/", noErr},
		{"zombie", pidZombie, "", gone},
		{"not exist", pidNotExist, "", gone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := fixture.Cwd(tc.pid)
			checkErr(t, err, tc.err)
			if got != tc.want {
				t.Errorf("Cwd(%d) = %q, want %q", tc.pid, got, tc.want)
			}
		})
	}
}

func TestComm(t *testing.T) {
	for _, tc := range []struct {
		name string
		pid  int
		want string
		err  errKind
	}{
		{"bash", pidBash, "bash", noErr},
		{"odd comm", pidOddComm, "x) (y z", noErr},
		{"kernel thread", pidKthread, "kthreadd", noErr},
		{"not exist", pidNotExist, "", gone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := fixture.Comm(tc.pid)
			checkErr(t, err, tc.err)
			if got != tc.want {
				t.Errorf("Comm(%d) = %q, want %q", tc.pid, got, tc.want)
			}
		})
	}
}

func TestCgroup(t *testing.T) {
	for _, tc := range []struct {
		name             string
		pid              int
		wantPath, wantID string
		err              errKind
	}{
		{"session", pidBash, "/user.slice/user-1000.slice/session-3.scope", "", noErr},
		{"docker v1", pidDocker, "/docker/" + dockerID, dockerID, noErr},
		{"kernel thread", pidKthread, "/", "", noErr},
		{"garbage", pidGarbled, "", "", noErr},
		{"not exist", pidNotExist, "", "", gone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, id, err := fixture.Cgroup(tc.pid)
			checkErr(t, err, tc.err)
			if path != tc.wantPath || id != tc.wantID {
				t.Errorf("Cgroup(%d) = %q, %q; want %q, %q", tc.pid, path, id, tc.wantPath, tc.wantID)
			}
		})
	}
}

func TestParseCgroup(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		name, in         string
		wantPath, wantID string
	}{
		{"v2 docker systemd", "0::/system.slice/docker-" + id + ".scope\n", "/system.slice/docker-" + id + ".scope", id},
		{"v2 containerd", "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1f2e3d4c_5b6a_7980_a1b2_c3d4e5f60718.slice/cri-containerd-" + id + ".scope\n",
			"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1f2e3d4c_5b6a_7980_a1b2_c3d4e5f60718.slice/cri-containerd-" + id + ".scope", id},
		{"v1 kubepods cgroupfs", "5:memory:/kubepods/besteffort/pod1f2e3d4c-5b6a-7980-a1b2-c3d4e5f60718/" + id + "\n",
			"/kubepods/besteffort/pod1f2e3d4c-5b6a-7980-a1b2-c3d4e5f60718/" + id, id},
		{"podman", "0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + id + ".scope/container\n",
			"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + id + ".scope/container", id},
		{"crio", "0::/kubepods.slice/crio-" + id + ".scope\n", "/kubepods.slice/crio-" + id + ".scope", id},
		{"systemd in docker", "0::/docker/" + id + "/system.slice/sshd.service\n", "/docker/" + id + "/system.slice/sshd.service", id},
		{"nested picks deepest", "0::/docker/" + id + "/docker/" + strings.Repeat("e", 64) + "\n", "/docker/" + id + "/docker/" + strings.Repeat("e", 64), strings.Repeat("e", 64)},
		{"hybrid prefers deeper v1", "9:name=systemd:/\n4:memory:/docker/" + id + "\n1:cpu:/\n0::/\n", "/docker/" + id, id},
		{"hybrid keeps v2", "4:memory:/docker/" + id + "\n0::/system.slice/docker-" + id + ".scope\n", "/system.slice/docker-" + id + ".scope", id},
		{"id from other line", "1:name=systemd:/system.slice/containerd.service\n0::/\n2:cpu:/docker/" + id + "\n", "/system.slice/containerd.service", id},
		{"v1 all root", "2:cpu:/\n1:name=systemd:/\n", "/", ""},
		{"not hex", "0::/docker/" + strings.Repeat("g", 64) + "\n", "/docker/" + strings.Repeat("g", 64), ""},
		{"too short", "0::/docker-" + id[:63] + ".scope\n", "/docker-" + id[:63] + ".scope", ""},
		{"upper case", "0::/docker/" + strings.ToUpper(id) + "\n", "/docker/" + strings.ToUpper(id), ""},
		{"no newline", "0::/a/b", "/a/b", ""},
		{"empty", "", "", ""},
		{"garbage", "::\n:\nfoo\n", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, id := parseCgroup([]byte(tc.in))
			if path != tc.wantPath || id != tc.wantID {
				t.Errorf("parseCgroup(%q) = %q, %q; want %q, %q", tc.in, path, id, tc.wantPath, tc.wantID)
			}
		})
	}
}

func TestBootID(t *testing.T) {
	got, err := fixture.BootID()
	if err != nil {
		t.Fatal(err)
	}
	if want := "5d2f1f4e-0a7b-4c39-9b51-2f6e8c1d7a30"; got != want {
		t.Errorf("BootID() = %q, want %q", got, want)
	}
	if _, err := New("testdata/missing").BootID(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("BootID of a missing root: %v, want ErrNotExist", err)
	}
}

func TestBootTime(t *testing.T) {
	got, err := fixture.BootTime()
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Unix(1700000000, 0); !got.Equal(want) {
		t.Errorf("BootTime() = %v, want %v", got, want)
	}
}

func TestScanBtime(t *testing.T) {
	long := "intr " + strings.Repeat("1234567 ", 2000) + "\n"
	for _, tc := range []struct {
		name, in string
		want     uint64
		wantErr  bool
	}{
		{"simple", "cpu 1 2 3\nbtime 42\n", 42, false},
		{"after a long line", "cpu 1\n" + long + "btime 1700000001\nprocesses 3\n", 1700000001, false},
		{"no final newline", "btime 7", 7, false},
		{"btime inside a long line is not a line", "intr " + strings.Repeat("0 ", 3000) + "btime 5\n", 0, true},
		{"missing", "cpu 1 2\nctxt 3\n", 0, true},
		{"malformed", "btime -5\n", 0, true},
		{"empty", "", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := scanBtime(strings.NewReader(tc.in))
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("scanBtime = %d, %v; want %d, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// TestOpenExe builds a root whose exe link points at a real file, since the
// fixture's links point at paths of an imaginary host.
func TestOpenExe(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "prog")
	if err := os.WriteFile(target, []byte("\x7fELF fake"), 0o755); err != nil {
		t.Fatal(err)
	}
	pidDir := filepath.Join(dir, "proc", "42")
	if err := os.MkdirAll(pidDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(pidDir, "exe")); err != nil {
		t.Fatal(err)
	}
	f, err := New(filepath.Join(dir, "proc")).OpenExe(42)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "\x7fELF fake" {
		t.Errorf("OpenExe content = %q", b)
	}

	for _, tc := range []struct {
		name string
		pid  int
		err  errKind
	}{
		{"kernel thread", pidKthread, notExist},
		{"zombie", pidZombie, gone},
		{"not exist", pidNotExist, gone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := fixture.OpenExe(tc.pid)
			if f != nil {
				f.Close()
				t.Errorf("OpenExe(%d) returned a file", tc.pid)
			}
			checkErr(t, err, tc.err)
		})
	}
}

func TestReadLimited(t *testing.T) {
	dir := t.TempDir()
	content := strings.Repeat("0123456789", 1000) // 10000 bytes
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name          string
		bufSize       int
		limit         int
		want          string
		wantTruncated bool
	}{
		{"fits stack buffer", 16 << 10, 16 << 10, content, false},
		{"grows", 16, 1 << 20, content, false},
		{"exact limit", 16, 10000, content, false},
		{"one short", 16, 9999, content[:9999], true},
		{"limit in buffer", 64, 10, content[:10], true},
		{"zero buffer", 0, 5, content[:5], true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, truncated, err := readLimited(path, make([]byte, tc.bufSize), tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want || truncated != tc.wantTruncated {
				t.Errorf("readLimited = %d bytes, truncated %v; want %d bytes, truncated %v", len(got), truncated, len(tc.want), tc.wantTruncated)
			}
		})
	}
}

func TestReadlinkLong(t *testing.T) {
	dir := t.TempDir()
	target := "/" + strings.Repeat("d/", 1500) + "file" // longer than the stack buffer
	link := filepath.Join(dir, "l")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	got, err := readlink(link)
	if err != nil {
		t.Fatal(err)
	}
	if got != target {
		t.Errorf("readlink = %d bytes, want %d", len(got), len(target))
	}
}
