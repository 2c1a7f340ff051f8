package mapper

import (
	"fmt"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/xdr-sensor/xdr/agent/accounts"
	"github.com/xdr-sensor/xdr/proto/objid"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

func TestAccount(t *testing.T) {
	m, tab := newMapper(t)
	self := tab.Lookup(uint32(os.Getpid()))
	many := make([]string, maxMembers+1)
	for i := range many {
		many[i] = fmt.Sprintf("u%d", i)
	}
	tests := []struct {
		name       string
		change     accounts.Change
		known      bool // the subject is this process, else unknown
		wantAccess xdrv1.XdrAccessType
		want       *xdrv1.Account
	}{
		{"user added", accounts.Change{Kind: accounts.Added, File: accounts.Passwd, Path: "/etc/passwd", Name: "carol",
			UID: 1002, GID: 1002, Gecos: "Carol", Home: "/home/carol", Shell: "/bin/bash"},
			true, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_ACCOUNT_ADD,
			&xdrv1.Account{Uid: 1002, Gid: 1002, Name: "carol", Home: "/home/carol", Shell: "/bin/bash", File: "/etc/passwd", Gecos: "Carol"}},
		{"shell and password changed, found by polling", accounts.Change{Kind: accounts.Modified, File: accounts.Passwd, Path: "/etc/passwd", Name: "bob",
			UID: 1001, GID: 1001, Home: "/home/bob", Shell: "/bin/bash", PasswordEmpty: true, Changed: accounts.FieldShell | accounts.FieldPassword,
			OldUID: 1001, OldGID: 1001, OldHome: "/home/bob", OldShell: "/usr/sbin/nologin"},
			false, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_ACCOUNT_MODIFY,
			&xdrv1.Account{Uid: 1001, Gid: 1001, Name: "bob", Home: "/home/bob", Shell: "/bin/bash", File: "/etc/passwd",
				ChangedFields: []string{"shell", "password"}, OldUid: 1001, OldGid: 1001, OldHome: "/home/bob", OldShell: "/usr/sbin/nologin", PasswordEmpty: true}},
		{"shadow entry without a user deleted", accounts.Change{Kind: accounts.Deleted, File: accounts.Shadow, Path: "/etc/shadow", Name: "ghost", NoUser: true},
			true, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_ACCOUNT_DELETE,
			&xdrv1.Account{Name: "ghost", File: "/etc/shadow", IdsUnknown: true}},
		{"group with too many members, names not UTF-8", accounts.Change{Kind: accounts.Modified, File: accounts.Group, Path: "/etc/group", Name: "g\xff",
			GID: 10, OldGID: 10, Changed: accounts.FieldMembers, MembersAdded: many, MembersRemoved: []string{"x\xfe"}},
			true, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_ACCOUNT_MODIFY,
			&xdrv1.Account{Gid: 10, Name: `g\xff`, Group: true, File: "/etc/group", ChangedFields: []string{"members"}, OldGid: 10,
				MembersAdded: many[:maxMembers], MembersRemoved: []string{`x\xfe`}, MembersTruncated: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ev *xdrv1.ActEvent
			if tt.known {
				ev = m.Account(7, self, self.TGID, &tt.change, 3, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_MOVE)
			} else {
				ev = m.Account(7, nil, 0, &tt.change, 0, 0)
			}
			if d := cmp.Diff(tt.want, ev.GetAccount(), protocmp.Transform()); d != "" {
				t.Errorf("account (-want +got):\n%s", d)
			}
			if ev.GetEventType() != xdrv1.XdrEventType_XDR_EVENT_TYPE_ACCOUNT || ev.GetAccessType() != tt.wantAccess ||
				ev.GetKernelEvent() != xdrv1.KernelEvent_KERNEL_EVENT_SYSCALL || ev.GetTimestampNs() != 7 {
				t.Errorf("types %v %v %v", ev.GetEventType(), ev.GetAccessType(), ev.GetKernelEvent())
			}
			if ev.GetTargetHashId() != objid.Account(tt.want) {
				t.Errorf("target hash id %d, want objid.Account's %d", ev.GetTargetHashId(), objid.Account(tt.want))
			}
			if !tt.known {
				if d := cmp.Diff(&xdrv1.Process{Partial: true}, ev.GetSubject(), protocmp.Transform()); d != "" {
					t.Errorf("unknown subject (-want +got):\n%s", d)
				}
				if ev.GetCauseSeq() != 0 {
					t.Errorf("cause seq %d for a polled change", ev.GetCauseSeq())
				}
				return
			}
			if s := ev.GetSubject(); s.GetTgid() != self.TGID || s.GetExe() != self.Exe || s.GetPartial() {
				t.Errorf("subject %v, want this process", s)
			}
			if ev.GetCauseSeq() != 3 || ev.GetCauseAccessType() != xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_MOVE {
				t.Errorf("cause %d %v, want 3 FILE_MOVE", ev.GetCauseSeq(), ev.GetCauseAccessType())
			}
			if _, err := proto.Marshal(ev); err != nil {
				t.Errorf("marshal: %v", err)
			}
		})
	}
}
