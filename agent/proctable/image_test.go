package proctable

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/xdr-sensor/xdr/agent/exehash"
)

func TestExecImage(t *testing.T) {
	f, tab, _ := seededTable(t, fakeSpec{pid: 10, ppid: 1, start: 50, comm: "sh", argv: []string{"sh"}})
	parentID := InstanceID("boot-1", 50, 10)

	type want struct {
		Exe, Cwd, Comm string
		Argv           []string
		StartTicks     uint64
		InstanceID     uint64
		Partial        bool
		HasKey         bool
		HasStat        bool
		OldExe         string
	}
	tests := []struct {
		name  string
		setup func()
		pid   uint32
		img   Image
		want  want
	}{
		{
			name: "live, the record's image wins over /proc",
			setup: func() {
				f.add(fakeSpec{pid: 11, ppid: 10, start: 70, comm: "sh", argv: []string{"sh"}})
				tab.Fork(10, 11, 0)
				f.add(fakeSpec{pid: 11, ppid: 10, start: 70, comm: "prog", argv: []string{"prog", "from-proc"}})
			},
			pid: 11,
			img: Image{StartTicks: 70, PPID: 10, Exe: f.exe, Argv: []string{"prog", "from-kernel"}, Cwd: "/srv", Comm: "prog"},
			want: want{Exe: f.exe, Cwd: "/srv", Comm: "prog", Argv: []string{"prog", "from-kernel"}, StartTicks: 70,
				InstanceID: InstanceID("boot-1", 70, 11), HasKey: true, HasStat: true, OldExe: f.exe},
		},
		{
			name: "executable differs from /proc's: no stat, no hash key",
			setup: func() {
				f.add(fakeSpec{pid: 12, ppid: 10, start: 71, comm: "x", argv: []string{"x"}})
			},
			pid: 12,
			img: Image{StartTicks: 71, PPID: 10, Exe: "/usr/bin/other", Argv: []string{"other"}, Cwd: "/", Comm: "other"},
			want: want{Exe: "/usr/bin/other", Cwd: "/", Comm: "other", Argv: []string{"other"}, StartTicks: 71,
				InstanceID: InstanceID("boot-1", 71, 12)},
		},
		{
			name:  "gone before /proc was read",
			setup: func() { f.remove(13) },
			pid:   13,
			img:   Image{StartTicks: 72, PPID: 10, Exe: "/bin/true", Argv: []string{"true"}, Cwd: "/tmp", Comm: "true"},
			want: want{Exe: "/bin/true", Cwd: "/tmp", Comm: "true", Argv: []string{"true"}, StartTicks: 72,
				InstanceID: InstanceID("boot-1", 72, 13), Partial: true},
		},
		{
			name: "pid already reused",
			setup: func() {
				f.add(fakeSpec{pid: 14, ppid: 1, start: 99, comm: "new", argv: []string{"new"}})
			},
			pid: 14,
			img: Image{StartTicks: 73, PPID: 10, Exe: "/bin/old", Argv: []string{"old"}, Cwd: "/", Comm: "old"},
			want: want{Exe: "/bin/old", Cwd: "/", Comm: "old", Argv: []string{"old"}, StartTicks: 73,
				InstanceID: InstanceID("boot-1", 73, 14), Partial: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.setup()
			res := tab.ExecImage(tt.pid, tt.img)
			p := res.Proc
			got := want{Exe: p.Exe, Cwd: p.Cwd, Comm: p.Comm, Argv: p.Argv, StartTicks: p.StartTicks, InstanceID: p.InstanceID,
				Partial: p.Partial, HasKey: p.ExeKey != (exehash.Key{}), HasStat: res.ExeStat != nil, OldExe: res.OldExe}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("ExecImage (-want +got):\n%s", d)
			}
			if p.PPID == 10 && !p.Partial && p.ParentInstanceID != parentID {
				t.Errorf("parent instance id %x, want %x", p.ParentInstanceID, parentID)
			}
		})
	}
}

func TestSetCreds(t *testing.T) {
	_, tab, _ := seededTable(t, fakeSpec{pid: 10, ppid: 1, start: 50, comm: "sh", argv: []string{"sh"}, uid: 1000})
	c := Creds{UID: 0, EUID: 0, SUID: 0, FSUID: 0, GID: 5, EGID: 5, SGID: 5, FSGID: 5}
	ch := tab.SetCreds(10, c)
	if d := cmp.Diff(IDChange{Proc: tab.Get(10), Old: Creds{UID: 1000, EUID: 1000, SUID: 1000, FSUID: 1000}, OldKnown: true}, ch,
		cmp.AllowUnexported(Proc{})); d != "" {
		t.Errorf("SetCreds (-want +got):\n%s", d)
	}
	if got := tab.Get(10).Creds; got != c {
		t.Errorf("creds after SetCreds %+v, want %+v", got, c)
	}
}

// A forked process whose exec the kernel described completely is not
// partial even when /proc is already gone: the image and ids come from
// the record, the rest from the fork copy.
func TestExecImageGoneButComplete(t *testing.T) {
	f, tab := shellAndChild(t)
	f.remove(11) // exited before the exec was handled

	img := Image{StartTicks: 70, PPID: 10, Exe: "/usr/bin/sudo", Argv: []string{"sudo", "id"}, Cwd: "/home/u", Comm: "sudo",
		UID: 1000, EUID: 0, GID: 1000, EGID: 1000, HasIDs: true}
	p := tab.ExecImage(11, img).Proc
	if p.Partial || p.Exe != "/usr/bin/sudo" || p.Creds.EUID != 0 || p.Creds.SUID != 0 || p.Creds.UID != 1000 || p.Cgroup == "" {
		t.Fatalf("exec of a gone process with a full record: %+v", p)
	}
	// Without the kernel's ids it stays partial.
	f.add(fakeSpec{pid: 12, ppid: 10, start: 72, comm: "sh", argv: []string{"sh"}})
	tab.Fork(10, 12, 0)
	f.remove(12)
	img.StartTicks, img.HasIDs = 72, false
	if p := tab.ExecImage(12, img).Proc; !p.Partial {
		t.Fatalf("exec without ids not partial: %+v", p)
	}
}

// With the kernel's own start time a child gone before its fork is
// handled is a complete copy of its parent; without it, partial.
func TestForkExactOfGoneChild(t *testing.T) {
	f, tab, _ := seededTable(t, fakeSpec{pid: 10, ppid: 1, start: 50, comm: "sh", argv: []string{"sh"}})
	if c := tab.ForkExact(10, 11, 70*1e7); c.Partial || c.StartTicks != 70 || c.Exe != f.exe {
		t.Fatalf("exact fork of a gone child: %+v", c)
	}
	if c := tab.Fork(10, 12, 71*1e7); !c.Partial {
		t.Fatalf("derived fork of a gone child not partial: %+v", c)
	}
}

// A complete record for a known process is taken as it is: /proc, which
// may show a later image or nothing, is not read at all.
func TestExecImageFromRecordAlone(t *testing.T) {
	f, tab := shellAndChild(t)
	before := *tab.Get(11)
	// /proc now shows a later image; it must not be read.
	f.add(fakeSpec{pid: 11, ppid: 10, start: 70, comm: "later", argv: []string{"later"}, uid: 5})
	key := exehash.Key{Dev: 1, Ino: 2, Size: 3, MtimeNs: 4, CtimeNs: 5}
	img := Image{StartTicks: 70, PPID: 10, Exe: "/usr/bin/id", Argv: []string{"id", "-u"}, Cwd: "/work", Comm: "id",
		UID: 1000, EUID: 0, GID: 1000, EGID: 1000, HasIDs: true, ExeKey: key, ExeDeleted: true}
	res := tab.ExecImage(11, img)
	p := res.Proc
	want := before
	want.Exe, want.ExeDeleted, want.ExeKey, want.Argv, want.Cwd, want.Comm = "/usr/bin/id", true, key, img.Argv, "/work", "id"
	want.Creds = Creds{UID: 1000, EUID: 0, SUID: 0, FSUID: 0, GID: 1000, EGID: 1000, SGID: 1000, FSGID: 1000}
	if d := cmp.Diff(&want, p, cmp.AllowUnexported(Proc{})); d != "" {
		t.Errorf("entry after exec (-want +got):\n%s", d)
	}
	if res.OldExe != before.Exe || res.ExeStat != nil {
		t.Errorf("result: old exe %q (want %q), stat %v (want none)", res.OldExe, before.Exe, res.ExeStat)
	}
	// Without the executable's identity, /proc is read as before.
	f.add(fakeSpec{pid: 12, ppid: 10, start: 72, comm: "sh", argv: []string{"sh"}, uid: 1000})
	tab.Fork(10, 12, 0)
	img.StartTicks, img.ExeKey, img.Exe = 72, exehash.Key{}, f.exe
	f.add(fakeSpec{pid: 12, ppid: 10, start: 72, comm: "id", argv: []string{"id", "-u"}, uid: 1000})
	if res := tab.ExecImage(12, img); res.ExeStat == nil {
		t.Error("without a key from the kernel, the executable was not stat'ed through /proc")
	}
}

// An exact fork of a known parent takes nothing from /proc: the child is
// the parent's copy with the kernel's start time, whatever /proc shows at
// that pid by the time the fork is handled.
func TestForkExactReadsNothing(t *testing.T) {
	f, tab, _ := seededTable(t, fakeSpec{pid: 10, ppid: 1, session: 10, start: 50, comm: "sh", argv: []string{"sh"}})
	// /proc already shows a later process at the child's pid, with its
	// own session and start time.
	f.add(fakeSpec{pid: 11, ppid: 10, session: 77, start: 99, comm: "other", argv: []string{"other"}})
	c := tab.ForkExact(10, 11, 70*1e7)
	parent := tab.Get(10)
	if c.Partial || c.StartTicks != 70 || c.SessionID != parent.SessionID || c.Comm != "sh" ||
		c.InstanceID != InstanceID("boot-1", 70, 11) || c.ParentInstanceID != parent.InstanceID {
		t.Fatalf("exact fork: %+v, want a complete copy of %+v started at tick 70", c, parent)
	}
}

// A process reparented between its fork and its exec (its parent died)
// takes the new parent, and never keeps the old one's instance id.
func TestExecImageReparented(t *testing.T) {
	_, tab := shellAndChild(t)
	key := exehash.Key{Dev: 1, Ino: 2}
	img := Image{StartTicks: 70, PPID: 1, Exe: "/usr/bin/id", Argv: []string{"id"}, Cwd: "/", Comm: "id",
		HasIDs: true, ExeKey: key}
	p := tab.ExecImage(11, img).Proc
	if p.PPID != 1 || p.ParentInstanceID == tab.Get(10).InstanceID {
		t.Fatalf("after reparenting to 1: ppid %d, parent instance %x (the old parent's is %x)", p.PPID, p.ParentInstanceID, tab.Get(10).InstanceID)
	}
	if init := tab.Get(1); init != nil && p.ParentInstanceID != init.InstanceID {
		t.Errorf("parent instance %x, want init's %x", p.ParentInstanceID, init.InstanceID)
	}
}
