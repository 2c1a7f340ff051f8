package mapper

import (
	"github.com/xdr-sensor/xdr/agent/accounts"
	"github.com/xdr-sensor/xdr/agent/proctable"
	"github.com/xdr-sensor/xdr/proto/objid"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// maxMembers bounds each member list of an account event (a group of
// thousands of members would make one event of megabytes).
const maxMembers = 256

// Account maps a change of an account file made by subject (thread pid),
// found after its file activity of sequence number causeSeq and access
// type causeAccess. A nil subject is unknown (the change was found by
// polling the file): the event's subject has only partial set, and
// causeSeq is 0.
func (m *Mapper) Account(ts int64, subject *proctable.Proc, pid uint32, c *accounts.Change, causeSeq uint64, causeAccess xdrv1.XdrAccessType) *xdrv1.ActEvent {
	var variant string
	switch c.Kind {
	case accounts.Added:
		variant = "account_add"
	case accounts.Deleted:
		variant = "account_delete"
	default:
		variant = "account_modify"
	}
	s := &xdrv1.Process{Partial: true}
	if subject != nil {
		s = m.subject(subject, pid)
	}
	ev := m.event(xdrv1.KernelEvent_KERNEL_EVENT_SYSCALL, variant, ts, s)
	ev.CauseSeq, ev.CauseAccessType = causeSeq, causeAccess
	a := &xdrv1.Account{
		Uid: c.UID, Gid: c.GID, Name: cleanText(c.Name), Home: cleanText(c.Home), Shell: cleanText(c.Shell),
		Group: c.File == accounts.Group, File: cleanText(c.Path), Gecos: cleanText(c.Gecos),
		ChangedFields: c.Changed.Names(), PasswordEmpty: c.PasswordEmpty, IdsUnknown: c.NoUser,
	}
	if c.Kind == accounts.Modified {
		a.OldUid, a.OldGid = c.OldUID, c.OldGID
		a.OldGecos, a.OldHome, a.OldShell = cleanText(c.OldGecos), cleanText(c.OldHome), cleanText(c.OldShell)
	}
	added, cut1 := capMembers(c.MembersAdded)
	removed, cut2 := capMembers(c.MembersRemoved)
	a.MembersAdded, a.MembersRemoved, a.MembersTruncated = added, removed, cut1 || cut2
	ev.Target = &xdrv1.ActEvent_Account{Account: a}
	ev.TargetHashId = objid.Account(a)
	return ev
}

// capMembers returns the first maxMembers names of l, made valid UTF-8,
// and whether there were more.
func capMembers(l []string) ([]string, bool) {
	if len(l) > maxMembers {
		return cleanList(l[:maxMembers:maxMembers]), true
	}
	return cleanList(l), false
}
