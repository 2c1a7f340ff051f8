package sensor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/xdr-sensor/xdr/agent/counters"
	"github.com/xdr-sensor/xdr/proto/wire"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// waitTimeout bounds how long a test waits for an event it caused; it
// only guards against hanging, it is not a performance assertion.
const waitTimeout = 15 * time.Second

// sink keeps what the pipeline sends. It checks that a pre-encoded
// subject is the encoding of the event's subject as sent.
type sink struct {
	mu  sync.Mutex
	evs []*xdrv1.ActEvent
	// encoded holds the seqs of events sent with their subject encoded;
	// badSubjects those whose encoding was not their subject's.
	encoded, badSubjects []uint64
	counts               *counters.Set // the pipeline's, with startSensor
}

func (s *sink) SendWithSubject(ev *xdrv1.ActEvent, subject []byte) bool {
	var bad bool
	if subject != nil {
		want, err := wire.EncodeSubject(ev.GetSubject())
		bad = err != nil || !bytes.Equal(want, subject)
	}
	s.mu.Lock()
	s.evs = append(s.evs, ev)
	if subject != nil {
		s.encoded = append(s.encoded, ev.GetSeq())
	}
	if bad {
		s.badSubjects = append(s.badSubjects, ev.GetSeq())
	}
	s.mu.Unlock()
	return true
}

// checkSubjects fails t if any event came with a subject encoding that
// was not its subject's.
func (s *sink) checkSubjects(t *testing.T) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.badSubjects) > 0 {
		t.Errorf("events %v were sent with an encoded subject that is not theirs", s.badSubjects)
	}
}

func (s *sink) SetCounters(*xdrv1.AgentCounters) {}

// find returns the first event sent that matches, or nil.
func (s *sink) find(match func(*xdrv1.ActEvent) bool) *xdrv1.ActEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ev := range s.evs {
		if match(ev) {
			return ev
		}
	}
	return nil
}

// wait returns the first event that matches, waiting for it; poke, if
// set, runs between looks (to make process activity for the proc
// connector's housekeeping).
func (s *sink) wait(t *testing.T, desc string, poke func(), match func(*xdrv1.ActEvent) bool) *xdrv1.ActEvent {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		if ev := s.find(match); ev != nil {
			return ev
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", desc, waitTimeout)
		}
		if poke != nil {
			poke()
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// bySeq returns the event of sequence number seq.
func (s *sink) bySeq(seq uint64) *xdrv1.ActEvent {
	return s.find(func(ev *xdrv1.ActEvent) bool { return ev.GetSeq() == seq })
}

// startSensor runs the pipeline with a collector method and the account
// files under etcRoot until the test ends.
func startSensor(t *testing.T, method xdrv1.CollectorMethod, etcRoot string) *sink {
	t.Helper()
	return startSensorWith(t, &Options{Method: method, EtcRoot: etcRoot})
}

// startSensorWith runs the pipeline with o (its Sink, Counters, Ready and
// Logger are the test's) until the test ends.
func startSensorWith(t *testing.T, o *Options) *sink {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs the kernel collector")
	}
	s := &sink{counts: &counters.Set{}}
	ready := make(chan struct{})
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	opts := *o
	opts.Sink, opts.Counters, opts.Ready = s, s.counts, func() { close(ready) }
	opts.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	if opts.CountersInterval == 0 {
		opts.CountersInterval = 200 * time.Millisecond
	}
	go func() { done <- Run(ctx, &opts) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		s.checkSubjects(t)
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(waitTimeout):
		t.Fatalf("collector not ready within %v", waitTimeout)
	}
	return s
}

// run runs a command and returns its pid.
func run(t *testing.T, name string, args ...string) int {
	t.Helper()
	cmd := exec.Command(name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, out)
	}
	return cmd.Process.Pid
}

// accountEvent matches an event of access type access about the entry
// name of file.
func accountEvent(access xdrv1.XdrAccessType, file, name string) func(*xdrv1.ActEvent) bool {
	return func(ev *xdrv1.ActEvent) bool {
		a := ev.GetAccount()
		return ev.GetAccessType() == access && a.GetFile() == file && a.GetName() == name
	}
}

// checkAccount compares an account event's target with want and checks
// its subject: the process of pid running exe, whose file activity (of
// access type cause) the event names as its cause.
func checkAccount(t *testing.T, s *sink, ev *xdrv1.ActEvent, want *xdrv1.Account, pid int, exe string, cause xdrv1.XdrAccessType) {
	t.Helper()
	if d := cmp.Diff(want, ev.GetAccount(), protocmp.Transform()); d != "" {
		t.Errorf("%v of %s: account (-want +got):\n%s", ev.GetAccessType(), want.GetName(), d)
	}
	if ev.GetEventType() != xdrv1.XdrEventType_XDR_EVENT_TYPE_ACCOUNT || ev.GetKernelEvent() != xdrv1.KernelEvent_KERNEL_EVENT_SYSCALL {
		t.Errorf("%v of %s: event type %v, kernel event %v", ev.GetAccessType(), want.GetName(), ev.GetEventType(), ev.GetKernelEvent())
	}
	sub := ev.GetSubject()
	if sub.GetTgid() != uint32(pid) || sub.GetPid() != uint32(pid) || sub.GetExe() != exe {
		t.Errorf("%v of %s: subject pid %d tgid %d exe %q, want %d %q", ev.GetAccessType(), want.GetName(), sub.GetPid(), sub.GetTgid(), sub.GetExe(), pid, exe)
	}
	if ev.GetCauseAccessType() != cause {
		t.Errorf("%v of %s: cause %v, want %v", ev.GetAccessType(), want.GetName(), ev.GetCauseAccessType(), cause)
	}
	if c := s.bySeq(ev.GetCauseSeq()); c == nil || c.GetAccessType() != cause || c.GetSubject().GetTgid() != uint32(pid) || c.GetSeq() >= ev.GetSeq() {
		t.Errorf("%v of %s: cause_seq %d names %v, want an earlier %v of pid %d", ev.GetAccessType(), want.GetName(), ev.GetCauseSeq(), c, cause, pid)
	}
}

// saved is a file's contents and attributes, to put back.
type saved struct {
	path   string
	exists bool
	data   []byte
	mode   fs.FileMode
	uid    int
	gid    int
}

// backupEtc saves the account files (and the tools' backups of them)
// and puts them back when the test ends, pass or fail, each replaced
// atomically so that readers never see half a file.
func backupEtc(t *testing.T) {
	t.Helper()
	var files []saved
	for _, name := range []string{"passwd", "shadow", "group", "gshadow", "subuid", "subgid"} {
		for _, suffix := range []string{"", "-"} {
			path := "/etc/" + name + suffix
			s := saved{path: path}
			st, err := os.Stat(path)
			switch {
			case errors.Is(err, fs.ErrNotExist):
			case err != nil:
				t.Fatal(err)
			default:
				s.exists, s.mode = true, st.Mode().Perm()
				s.uid, s.gid = ownerOf(st)
				if s.data, err = os.ReadFile(path); err != nil {
					t.Fatal(err)
				}
			}
			files = append(files, s)
		}
	}
	t.Cleanup(func() {
		for _, s := range files {
			if err := s.restore(); err != nil {
				t.Errorf("restore %s: %v (restore it by hand!)", s.path, err)
			}
		}
	})
}

func ownerOf(fi fs.FileInfo) (uid, gid int) {
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid)
}

func (s *saved) restore() error {
	now, err := os.ReadFile(s.path)
	if !s.exists {
		if err == nil {
			return os.Remove(s.path)
		}
		return nil
	}
	if err == nil && bytes.Equal(now, s.data) {
		return nil
	}
	tmp := s.path + ".xdr-test-restore"
	if err := os.WriteFile(tmp, s.data, s.mode); err != nil {
		return err
	}
	if err := errors.Join(os.Chmod(tmp, s.mode), os.Chown(tmp, s.uid, s.gid)); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, s.path)
}

// TestIntegrationAccountsUseradd manages a test user with the shadow
// tools on the real /etc (restored afterwards) and checks the events of
// the eBPF path: each change, named, attributed to the tool that renamed
// the new file into place.
func TestIntegrationAccountsUseradd(t *testing.T) {
	for _, tool := range []string{"useradd", "usermod", "userdel"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
	s := startSensor(t, xdrv1.CollectorMethod_COLLECTOR_METHOD_EBPF, "")
	backupEtc(t)
	name := fmt.Sprintf("xdrt%d", time.Now().UnixNano()%1_000_000_000)
	const move = xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_MOVE
	add, mod, del := xdrv1.XdrAccessType_XDR_ACCESS_TYPE_ACCOUNT_ADD, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_ACCOUNT_MODIFY, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_ACCOUNT_DELETE

	pid := run(t, "useradd", "-M", "-s", "/bin/bash", "-c", "XDR test", name)
	ev := s.wait(t, "ACCOUNT_ADD in passwd", nil, accountEvent(add, "/etc/passwd", name))
	uid, gid := ev.GetAccount().GetUid(), ev.GetAccount().GetGid()
	if uid == 0 || gid == 0 {
		t.Errorf("new user's uid %d gid %d", uid, gid)
	}
	user := &xdrv1.Account{Uid: uid, Gid: gid, Name: name, Home: "/home/" + name, Shell: "/bin/bash", File: "/etc/passwd", Gecos: "XDR test"}
	checkAccount(t, s, ev, user, pid, "/usr/sbin/useradd", move)
	ev = s.wait(t, "ACCOUNT_ADD in shadow", nil, accountEvent(add, "/etc/shadow", name))
	// A new account's password is locked: "!" (or "!!"), never empty.
	checkAccount(t, s, ev, &xdrv1.Account{Uid: uid, Gid: gid, Name: name, Home: "/home/" + name, Shell: "/bin/bash", File: "/etc/shadow", Gecos: "XDR test"},
		pid, "/usr/sbin/useradd", move)
	ev = s.wait(t, "ACCOUNT_ADD in group", nil, accountEvent(add, "/etc/group", name))
	checkAccount(t, s, ev, &xdrv1.Account{Gid: gid, Name: name, Group: true, File: "/etc/group"}, pid, "/usr/sbin/useradd", move)

	pid = run(t, "usermod", "-s", "/bin/sh", name)
	ev = s.wait(t, "ACCOUNT_MODIFY in passwd", nil, accountEvent(mod, "/etc/passwd", name))
	checkAccount(t, s, ev, &xdrv1.Account{Uid: uid, Gid: gid, Name: name, Home: "/home/" + name, Shell: "/bin/sh", File: "/etc/passwd", Gecos: "XDR test",
		ChangedFields: []string{"shell"}, OldUid: uid, OldGid: gid, OldGecos: "XDR test", OldHome: "/home/" + name, OldShell: "/bin/bash"},
		pid, "/usr/sbin/usermod", move)

	pid = run(t, "usermod", "-a", "-G", "users", name)
	ev = s.wait(t, "ACCOUNT_MODIFY of group users", nil, func(ev *xdrv1.ActEvent) bool {
		return accountEvent(mod, "/etc/group", "users")(ev) && strings.Contains(fmt.Sprint(ev.GetAccount().GetMembersAdded()), name)
	})
	checkAccount(t, s, ev, &xdrv1.Account{Gid: 100, Name: "users", Group: true, File: "/etc/group", ChangedFields: []string{"members"}, OldGid: 100,
		MembersAdded: []string{name}}, pid, "/usr/sbin/usermod", move)

	pid = run(t, "usermod", "-p", "$6$xdrtest$notarealhash", name)
	ev = s.wait(t, "ACCOUNT_MODIFY in shadow", nil, accountEvent(mod, "/etc/shadow", name))
	checkAccount(t, s, ev, &xdrv1.Account{Uid: uid, Gid: gid, Name: name, Home: "/home/" + name, Shell: "/bin/sh", File: "/etc/shadow", Gecos: "XDR test",
		ChangedFields: []string{"password"}, OldUid: uid, OldGid: gid, OldGecos: "XDR test", OldHome: "/home/" + name, OldShell: "/bin/sh"},
		pid, "/usr/sbin/usermod", move)

	pid = run(t, "userdel", name)
	ev = s.wait(t, "ACCOUNT_DELETE in passwd", nil, accountEvent(del, "/etc/passwd", name))
	checkAccount(t, s, ev, &xdrv1.Account{Uid: uid, Gid: gid, Name: name, Home: "/home/" + name, Shell: "/bin/sh", File: "/etc/passwd", Gecos: "XDR test"},
		pid, "/usr/sbin/userdel", move)
	// Deleted from passwd first, the user still names the shadow entry.
	ev = s.wait(t, "ACCOUNT_DELETE in shadow", nil, accountEvent(del, "/etc/shadow", name))
	checkAccount(t, s, ev, &xdrv1.Account{Uid: uid, Gid: gid, Name: name, Home: "/home/" + name, Shell: "/bin/sh", File: "/etc/shadow", Gecos: "XDR test"},
		pid, "/usr/sbin/userdel", move)
	ev = s.wait(t, "ACCOUNT_DELETE in group", nil, accountEvent(del, "/etc/group", name))
	checkAccount(t, s, ev, &xdrv1.Account{Gid: gid, Name: name, Group: true, File: "/etc/group"}, pid, "/usr/sbin/userdel", move)
}

// etcTree returns a root directory (symbolic links resolved, so that it
// equals the paths the kernel reports) whose etc holds the account files
// of agent/accounts' fixture.
func etcTree(t *testing.T) string {
	t.Helper()
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"passwd", "shadow", "group"} {
		b, err := os.ReadFile(filepath.Join("..", "accounts", "testdata", "etc", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "etc", name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestIntegrationAccountsInPlace changes account files under a test root
// the three ways the eBPF path tells apart: a rename onto the file (sed
// -i), a write closed with close(2) (cp), and a write by a process that
// exits without closing (a shell's redirection), which the poll finds
// and attributes to the writer.
func TestIntegrationAccountsInPlace(t *testing.T) {
	root := etcTree(t)
	s := startSensor(t, xdrv1.CollectorMethod_COLLECTOR_METHOD_EBPF, root)
	passwd, group := filepath.Join(root, "etc", "passwd"), filepath.Join(root, "etc", "group")
	mod, add := xdrv1.XdrAccessType_XDR_ACCESS_TYPE_ACCOUNT_MODIFY, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_ACCOUNT_ADD

	pid := run(t, "sed", "-i", "s/^bob:x:1001:/bob:x:0:/", passwd)
	ev := s.wait(t, "ACCOUNT_MODIFY by sed -i", nil, accountEvent(mod, passwd, "bob"))
	checkAccount(t, s, ev, &xdrv1.Account{Gid: 1001, Name: "bob", Home: "/home/bob", Shell: "/bin/sh", File: passwd,
		ChangedFields: []string{"uid"}, OldUid: 1001, OldGid: 1001, OldHome: "/home/bob", OldShell: "/bin/sh"},
		pid, "/usr/bin/sed", xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_MOVE)

	b, err := os.ReadFile(group)
	if err != nil {
		t.Fatal(err)
	}
	newGroup := filepath.Join(t.TempDir(), "group")
	if err := os.WriteFile(newGroup, bytes.Replace(b, []byte("sudo:x:27:alice"), []byte("sudo:x:27:alice,mallory"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	pid = run(t, "cp", newGroup, group)
	ev = s.wait(t, "ACCOUNT_MODIFY by cp", nil, accountEvent(mod, group, "sudo"))
	checkAccount(t, s, ev, &xdrv1.Account{Gid: 27, Name: "sudo", Group: true, File: group, ChangedFields: []string{"members"}, OldGid: 27,
		MembersAdded: []string{"mallory"}}, pid, "/usr/bin/cp", xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_CLOSE)

	// dash's redirection of a builtin dup2s the file onto stdout and
	// back: the file is closed by dup2 and exit, never by close(2).
	pid = run(t, "/bin/sh", "-c", `echo "evil::0:0::/root:/bin/sh" >> "$1"`, "sh", passwd)
	ev = s.wait(t, "ACCOUNT_ADD by a shell", nil, accountEvent(add, passwd, "evil"))
	checkAccount(t, s, ev, &xdrv1.Account{Name: "evil", Home: "/root", Shell: "/bin/sh", File: passwd, PasswordEmpty: true},
		pid, "/usr/bin/dash", xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_MODIFY)
}

// TestIntegrationAccountsProcConnector: the proc connector sees no file
// activity, so the poll finds the change, with the subject unknown.
func TestIntegrationAccountsProcConnector(t *testing.T) {
	root := etcTree(t)
	s := startSensor(t, xdrv1.CollectorMethod_COLLECTOR_METHOD_PROC_CONNECTOR, root)
	passwd := filepath.Join(root, "etc", "passwd")
	run(t, "/bin/sh", "-c", `echo "carol:x:1002:1002::/home/carol:/bin/bash" >> "$1"`, "sh", passwd)
	// The proc connector's loop does its housekeeping when process
	// events arrive.
	poke := func() { exec.Command("/bin/true").Run() }
	ev := s.wait(t, "ACCOUNT_ADD found by polling", poke, accountEvent(xdrv1.XdrAccessType_XDR_ACCESS_TYPE_ACCOUNT_ADD, passwd, "carol"))
	want := &xdrv1.Account{Uid: 1002, Gid: 1002, Name: "carol", Home: "/home/carol", Shell: "/bin/bash", File: passwd}
	if d := cmp.Diff(want, ev.GetAccount(), protocmp.Transform()); d != "" {
		t.Errorf("account (-want +got):\n%s", d)
	}
	if d := cmp.Diff(&xdrv1.Process{Partial: true}, ev.GetSubject(), protocmp.Transform()); d != "" {
		t.Errorf("subject (-want +got):\n%s", d)
	}
	if ev.GetCauseSeq() != 0 || ev.GetCollector() != xdrv1.CollectorMethod_COLLECTOR_METHOD_PROC_CONNECTOR {
		t.Errorf("cause_seq %d, collector %v; want 0, PROC_CONNECTOR", ev.GetCauseSeq(), ev.GetCollector())
	}
}
