package mapper

import (
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/xdr-sensor/xdr/agent/proctable"
	"github.com/xdr-sensor/xdr/agent/userdb"
	"github.com/xdr-sensor/xdr/proto/objid"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// newMapper returns a mapper over the real /proc (it reads only this test
// process) with user names from the userdb fixture.
func newMapper(t *testing.T) (*Mapper, *proctable.Table) {
	t.Helper()
	tab, err := proctable.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	users := userdb.New(&userdb.Options{Root: "../userdb/testdata"})
	return New(&Options{Table: tab, Users: users, Collector: xdrv1.CollectorMethod_COLLECTOR_METHOD_PROC_CONNECTOR}), tab
}

func TestExitDetails(t *testing.T) {
	m, tab := newMapper(t)
	self := tab.Lookup(uint32(os.Getpid()))
	tests := []struct {
		name   string
		status uint32
		want   *xdrv1.ExitDetails
	}{
		{"exit 0", 0, &xdrv1.ExitDetails{}},
		{"exit 3", 3 << 8, &xdrv1.ExitDetails{ExitCode: 3, Status: 3 << 8}},
		{"killed", 9, &xdrv1.ExitDetails{Signal: 9, Status: 9}},
		{"segv with core", 0x80 | 11, &xdrv1.ExitDetails{Signal: 11, CoreDumped: true, Status: 0x80 | 11}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := m.Exit(1, self, self.TGID, tt.status)
			if d := cmp.Diff(tt.want, ev.GetExit(), protocmp.Transform()); d != "" {
				t.Errorf("exit details (-want +got):\n%s", d)
			}
			if ev.GetAccessType() != xdrv1.XdrAccessType_XDR_ACCESS_TYPE_PROCESS_TERMINATE || ev.GetProcess().GetTgid() != self.TGID {
				t.Errorf("exit event %v", ev)
			}
		})
	}
}

func TestEventsCarryTypesSequenceAndTargetIDs(t *testing.T) {
	m, tab := newMapper(t)
	self := tab.Lookup(uint32(os.Getpid()))
	if self.Partial || self.Exe == "" {
		t.Fatalf("own process not enriched: %+v", self)
	}

	ev := m.Exec(100, proctable.ExecResult{Proc: self, OldExe: "/bin/sh", OldArgv: []string{"sh"}})
	if ev.GetSeq() != 1 || ev.GetTimestampNs() != 100 || ev.GetEventType() != xdrv1.XdrEventType_XDR_EVENT_TYPE_PROCESS ||
		ev.GetAccessType() != xdrv1.XdrAccessType_XDR_ACCESS_TYPE_PROCESS_EXECUTE || ev.GetKernelEvent() != xdrv1.KernelEvent_KERNEL_EVENT_EXEC {
		t.Errorf("exec header %v", ev)
	}
	if ev.GetFile().GetPath() != self.Exe || ev.GetTargetHashId() != objid.File(self.Exe) || ev.GetExec().GetOldExe() != "/bin/sh" {
		t.Errorf("exec target %v", ev.GetFile())
	}
	if got := ev.GetSubject().GetArgv(); !cmp.Equal(got, os.Args) {
		t.Errorf("subject argv %q, want %q", got, os.Args)
	}

	old := self.Comm
	tab.SetComm(self.TGID, "renamed")
	ev = m.Comm(200, self, self.TGID, old)
	if ev.GetSeq() != 2 || ev.GetEventType() != xdrv1.XdrEventType_XDR_EVENT_TYPE_MODIFIED_PROCESS {
		t.Errorf("comm header %v", ev)
	}
	if d := cmp.Diff(&xdrv1.CommChange{OldComm: old, NewComm: "renamed"}, ev.GetCommChange(), protocmp.Transform()); d != "" {
		t.Errorf("comm details (-want +got):\n%s", d)
	}
	// A self-targeted event names the target by identity only.
	if ev.GetProcess().GetArgv() != nil || ev.GetProcess().GetInstanceId() != self.InstanceID {
		t.Errorf("comm target %v", ev.GetProcess())
	}
}

func TestIDChange(t *testing.T) {
	m, _ := newMapper(t)
	p := &proctable.Proc{TGID: 4242, Comm: "setpriv", CredsKnown: true}
	ch := proctable.IDChange{Proc: p, Old: p.Creds, OldKnown: true}
	p.Creds.UID, p.Creds.EUID = 65534, 65534
	ev := m.IDChange(5, ch, 4242, false)
	want := &xdrv1.IdChange{NewReal: 65534, NewEffective: 65534, OldName: "root", NewName: "nobody"}
	if d := cmp.Diff(want, ev.GetIdChange(), protocmp.Transform()); d != "" {
		t.Errorf("id change (-want +got):\n%s", d)
	}
	if a := ev.GetAccount(); a.GetUid() != 65534 || a.GetName() != "nobody" || ev.GetTargetHashId() != objid.Account(a) {
		t.Errorf("account target %v", a)
	}
	if ev.GetEventType() != xdrv1.XdrEventType_XDR_EVENT_TYPE_ACCOUNT || ev.GetAccessType() != xdrv1.XdrAccessType_XDR_ACCESS_TYPE_ACCOUNT_IMPERSONATE {
		t.Errorf("types %v %v", ev.GetEventType(), ev.GetAccessType())
	}
}

// A fork's target is the child by identity, exe, comm and argv: the rest
// is the parent's copy, carried by the subject.
func TestForkTargetsTheChildByIdentity(t *testing.T) {
	m, tab := newMapper(t)
	parent := tab.Lookup(uint32(os.Getpid()))
	child := tab.ForkExact(parent.TGID, 1<<22-1, 70*1e7)
	ev := m.Fork(1, parent, parent.TGID, child)
	want := &xdrv1.Process{
		Pid: child.TGID, Tgid: child.TGID, Ppid: parent.TGID, InstanceId: child.InstanceID,
		ParentInstanceId: parent.InstanceID, StartTimeNs: proctable.StartTimeNs(child.StartTicks),
		Exe: parent.Exe, Comm: parent.Comm, Argv: parent.Argv,
	}
	if d := cmp.Diff(want, ev.GetProcess(), protocmp.Transform()); d != "" {
		t.Errorf("fork target (-want +got):\n%s", d)
	}
	if ev.GetSubject().GetTgid() != parent.TGID || ev.GetSubject().GetCreds() == nil {
		t.Errorf("fork subject %v, want the parent in full", ev.GetSubject())
	}
	if ev.GetTargetHashId() != objid.Process(parent.Exe, parent.Comm) {
		t.Error("fork target hash id")
	}
}
