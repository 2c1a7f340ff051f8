package proctable

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/xdr-sensor/xdr/agent/procfs"
)

// fakeProc builds a /proc tree in a temporary directory, so tests can
// start, change, end and reuse processes at will.
type fakeProc struct {
	t    *testing.T
	root string
	exe  string // a real file for the exe links to point at
}

func newFakeProc(t *testing.T) *fakeProc {
	root := t.TempDir()
	exe := filepath.Join(t.TempDir(), "prog")
	if err := os.WriteFile(exe, []byte("\x7fELF fake program"), 0o755); err != nil {
		t.Fatal(err)
	}
	f := &fakeProc{t: t, root: root, exe: exe}
	f.write("sys/kernel/random/boot_id", "boot-1\n")
	return f
}

func (f *fakeProc) write(name, content string) {
	p := filepath.Join(f.root, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

type fakeSpec struct {
	pid, ppid, session int
	start              uint64
	comm               string
	argv               []string
	uid                uint32
}

func (f *fakeProc) add(s fakeSpec) {
	d := fmt.Sprint(s.pid)
	os.RemoveAll(filepath.Join(f.root, d))
	f.write(d+"/stat", fmt.Sprintf("%d (%s) S %d %d %d 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 %d 1000000 100 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n",
		s.pid, s.comm, s.ppid, s.pid, s.session, s.start))
	f.write(d+"/status", fmt.Sprintf("Name:\t%s\nTgid:\t%d\nPPid:\t%d\nUid:\t%d\t%d\t%d\t%d\nGid:\t0\t0\t0\t0\n", s.comm, s.pid, s.ppid, s.uid, s.uid, s.uid, s.uid))
	var cmdline string
	for _, a := range s.argv {
		cmdline += a + "\x00"
	}
	f.write(d+"/cmdline", cmdline)
	f.write(d+"/cgroup", "0::/system.slice/test.service\n")
	if err := os.Symlink(f.exe, filepath.Join(f.root, d, "exe")); err != nil {
		f.t.Fatal(err)
	}
	if err := os.Symlink("/tmp", filepath.Join(f.root, d, "cwd")); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakeProc) remove(pid int) { os.RemoveAll(filepath.Join(f.root, fmt.Sprint(pid))) }

func newTable(t *testing.T, f *fakeProc, now *time.Time) *Table {
	fs := procfs.New(f.root)
	tab, err := New(&Options{FS: &fs, Now: func() time.Time { return *now }, Grace: 5 * time.Second, MaxEntries: 8})
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func TestSeedAndAncestry(t *testing.T) {
	f := newFakeProc(t)
	f.add(fakeSpec{pid: 1, start: 1, comm: "init", argv: []string{"/sbin/init"}})
	f.add(fakeSpec{pid: 10, ppid: 1, start: 50, comm: "sshd", argv: []string{"sshd", "-D"}})
	f.add(fakeSpec{pid: 20, ppid: 10, session: 20, start: 90, comm: "bash", argv: []string{"-bash"}, uid: 1000})
	now := time.Unix(1000, 0)
	tab := newTable(t, f, &now)
	n, err := tab.Seed()
	if err != nil || n != 3 {
		t.Fatalf("Seed = %d, %v; want 3, nil", n, err)
	}
	bash := tab.Get(20)
	want := &Proc{
		TGID: 20, PPID: 10, StartTicks: 90, InstanceID: InstanceID("boot-1", 90, 20),
		ParentInstanceID: InstanceID("boot-1", 50, 10),
		Exe:              f.exe, Argv: []string{"-bash"}, Cwd: "/tmp", Comm: "bash",
		Creds: Creds{UID: 1000, EUID: 1000, SUID: 1000, FSUID: 1000}, CredsKnown: true,
		SessionID: 20, Cgroup: "/system.slice/test.service",
	}
	if d := cmp.Diff(want, bash, cmp.AllowUnexported(Proc{}), cmpIgnoreKey); d != "" {
		t.Errorf("bash entry (-want +got):\n%s", d)
	}
	var chain []uint32
	for _, a := range tab.Ancestors(bash, 8) {
		chain = append(chain, a.TGID)
	}
	if d := cmp.Diff([]uint32{10, 1}, chain); d != "" {
		t.Errorf("ancestry (-want +got):\n%s", d)
	}
}

var cmpIgnoreKey = cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".ExeKey" }, cmp.Ignore())

// seededTable returns a fake /proc holding the processes of specs and a
// table seeded from it, with the clock it reads.
func seededTable(t *testing.T, specs ...fakeSpec) (*fakeProc, *Table, *time.Time) {
	f := newFakeProc(t)
	for _, s := range specs {
		f.add(s)
	}
	now := time.Unix(1000, 0)
	tab := newTable(t, f, &now)
	tab.Seed()
	return f, tab, &now
}

func TestForkExecExitLifecycle(t *testing.T) {
	f, tab, now := seededTable(t, fakeSpec{pid: 10, ppid: 1, start: 50, comm: "sh", argv: []string{"sh"}})

	// fork: the child is a copy of the parent with its own start time.
	f.add(fakeSpec{pid: 11, ppid: 10, start: 70, comm: "sh", argv: []string{"sh"}})
	child := tab.Fork(10, 11, 0)
	if child.Partial || child.StartTicks != 70 || child.Comm != "sh" || child.ParentInstanceID != tab.Get(10).InstanceID {
		t.Fatalf("forked child %+v", child)
	}
	// exec: re-read, old image kept for the event.
	f.add(fakeSpec{pid: 11, ppid: 10, start: 70, comm: "ls", argv: []string{"ls", "-l"}})
	res := tab.Exec(11)
	if res.Proc.Partial || res.Proc.Comm != "ls" || !cmp.Equal(res.Proc.Argv, []string{"ls", "-l"}) || !cmp.Equal(res.OldArgv, []string{"sh"}) {
		t.Fatalf("exec result %+v / %+v", res, res.Proc)
	}
	if res.ExeStat == nil {
		t.Error("exec result has no exe stat")
	}
	if res.Proc.InstanceID != child.InstanceID {
		t.Error("exec changed the instance id")
	}
	// exit: stays for the grace period, then leaves.
	f.remove(11)
	if p := tab.Exit(11); !p.Exited() {
		t.Fatal("exit did not mark the entry")
	}
	*now = now.Add(4 * time.Second)
	if tab.Sweep() != 0 || tab.Get(11) == nil {
		t.Fatal("entry left before the grace period")
	}
	*now = now.Add(2 * time.Second)
	if tab.Sweep() != 1 || tab.Get(11) != nil {
		t.Fatal("entry still there after the grace period")
	}
}

func TestGoneAndReusedPIDsArePartial(t *testing.T) {
	f, tab, _ := seededTable(t, fakeSpec{pid: 10, ppid: 1, start: 50, comm: "sh", argv: []string{"sh", "secret-parent-arg"}})

	// The child is gone before its fork is handled: start time from the
	// event, partial.
	child := tab.Fork(10, 12, 123*1e7)
	if !child.Partial || child.StartTicks != 123 || child.InstanceID != InstanceID("boot-1", 123, 12) {
		t.Fatalf("gone child %+v", child)
	}
	// Its exec cannot be read: the new image is unknown, and the
	// parent's argv must not stand in for it.
	res := tab.Exec(12)
	if !res.Proc.Partial || res.Proc.Exe != "" || res.Proc.Argv != nil {
		t.Fatalf("exec of a gone process kept data: %+v", res.Proc)
	}

	// pid 13 forked, then exited unseen, and the pid now belongs to a
	// process with another start time: its exec must not take the new
	// process's data.
	f.add(fakeSpec{pid: 13, ppid: 10, start: 60, comm: "sh", argv: []string{"sh"}})
	tab.Fork(10, 13, 0)
	f.add(fakeSpec{pid: 13, ppid: 99, start: 80, comm: "other", argv: []string{"other", "data"}})
	res = tab.Exec(13)
	if !res.Proc.Partial || res.Proc.Comm == "other" || cmp.Equal(res.Proc.Argv, []string{"other", "data"}) {
		t.Fatalf("exec of a reused pid took another process's data: %+v", res.Proc)
	}
}

func TestResyncAndBound(t *testing.T) {
	f := newFakeProc(t)
	for pid := 1; pid <= 4; pid++ {
		f.add(fakeSpec{pid: pid, start: uint64(pid), comm: "p", argv: []string{"p"}})
	}
	now := time.Unix(1000, 0)
	tab := newTable(t, f, &now)
	tab.Seed()
	// Events were lost: 2 exited, 3 was replaced, 5 appeared.
	f.remove(2)
	f.add(fakeSpec{pid: 3, start: 33, comm: "q", argv: []string{"q"}})
	f.add(fakeSpec{pid: 5, start: 5, comm: "r", argv: []string{"r"}})
	added, gone, err := tab.Resync()
	if err != nil || added != 2 || gone != 1 {
		t.Fatalf("Resync = %d, %d, %v; want 2, 1, nil", added, gone, err)
	}
	if !tab.Get(2).Exited() || tab.Get(3).Comm != "q" || tab.Get(5) == nil {
		t.Fatal("table not reconciled")
	}
	// The table holds at most 8: exited entries make room first, then
	// new processes are not remembered (and counted).
	for pid := 6; pid <= 12; pid++ {
		f.add(fakeSpec{pid: pid, ppid: 1, start: uint64(pid), comm: "x", argv: []string{"x"}})
		tab.Fork(1, uint32(pid), 0)
	}
	if tab.Len() > 8 {
		t.Fatalf("table holds %d entries, bound 8", tab.Len())
	}
	if tab.Get(2) != nil {
		t.Error("exited entry not evicted first")
	}
	if tab.NotRemembered() == 0 {
		t.Error("overflow not counted")
	}
}

// An exec re-reads credentials only when the new executable is set-user-id
// or set-group-id: otherwise the ids inherited at fork stand.
func TestExecCredentials(t *testing.T) {
	f, tab := shellAndChild(t)

	// Plain executable: a status claiming uid 0 is not even read.
	f.add(fakeSpec{pid: 11, ppid: 10, start: 70, comm: "ls", argv: []string{"ls"}, uid: 0})
	if res := tab.Exec(11); res.Proc.Creds.EUID != 1000 || res.Proc.Comm != "ls" {
		t.Fatalf("plain exec: euid %d comm %q, want 1000 and ls", res.Proc.Creds.EUID, res.Proc.Comm)
	}
	// Set-user-id executable: the new ids are read.
	if err := os.Chmod(f.exe, 0o755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	if res := tab.Exec(11); res.Proc.Creds.EUID != 0 || res.Proc.Partial {
		t.Fatalf("setuid exec: euid %d partial %v, want 0 and false", res.Proc.Creds.EUID, res.Proc.Partial)
	}
}

// shellAndChild returns a table seeded with a shell (pid 10, uid 1000) that
// has just forked pid 11, over the fake /proc f holding both.
func shellAndChild(t *testing.T) (*fakeProc, *Table) {
	t.Helper()
	f, tab, _ := seededTable(t, fakeSpec{pid: 10, ppid: 1, start: 50, comm: "sh", argv: []string{"sh"}, uid: 1000})
	f.add(fakeSpec{pid: 11, ppid: 10, start: 70, comm: "sh", argv: []string{"sh"}, uid: 1000})
	tab.Fork(10, 11, 0)
	return f, tab
}

// A process that renames itself right after its exec, before the exec's
// /proc read: the old name is the one the kernel gave it at the exec.
func TestRenameBeforeExecRead(t *testing.T) {
	f, tab, _ := seededTable(t, fakeSpec{pid: 10, ppid: 1, start: 50, comm: "bash", argv: []string{"bash"}})
	f.add(fakeSpec{pid: 11, ppid: 10, start: 70, comm: "bash", argv: []string{"bash"}})
	tab.Fork(10, 11, 0)

	// The exec's read sees the renamed process.
	f.add(fakeSpec{pid: 11, ppid: 10, start: 70, comm: "xdrrenamed", argv: []string{"/bin/sh", "-c", "x"}})
	if res := tab.Exec(11); res.Proc.Comm != "xdrrenamed" {
		t.Fatalf("comm after exec %q", res.Proc.Comm)
	}
	if _, old := tab.SetComm(11, "xdrrenamed"); old != "sh" {
		t.Errorf("old comm %q, want sh (from argv[0])", old)
	}
	// Later renames report what the table knows.
	if _, old := tab.SetComm(11, "other"); old != "xdrrenamed" {
		t.Errorf("second rename: old comm %q, want xdrrenamed", old)
	}
	if _, old := tab.SetComm(11, "other"); old != "other" {
		t.Errorf("rename to the same name: old comm %q, want other", old)
	}

	// A read that saw the exec's own name: nothing rebuilt.
	f.add(fakeSpec{pid: 12, ppid: 10, start: 80, comm: "averyveryverylongname", argv: []string{"/usr/bin/averyveryverylongname"}})
	tab.Fork(10, 12, 0)
	tab.Exec(12)
	if _, old := tab.SetComm(12, "worker"); old != "averyveryverylongname" {
		t.Errorf("old comm %q, want the name read at exec", old)
	}
	// A rename to the kernel's own name at exec, cut to 15 bytes.
	f.add(fakeSpec{pid: 13, ppid: 10, start: 90, comm: "renamed", argv: []string{"/usr/bin/averyveryverylongname"}})
	tab.Fork(10, 13, 0)
	tab.Exec(13)
	if _, old := tab.SetComm(13, "renamed"); old != "averyveryverylo" {
		t.Errorf("old comm %q, want averyveryverylo", old)
	}
}
