package sensor

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/xdr-sensor/xdr/agent/accounts"
	"github.com/xdr-sensor/xdr/agent/counters"
	"github.com/xdr-sensor/xdr/agent/ebpf"
	"github.com/xdr-sensor/xdr/agent/exehash"
	"github.com/xdr-sensor/xdr/agent/mapper"
	"github.com/xdr-sensor/xdr/agent/proctable"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// goneTGID is a process id that no process has (above the kernel's
// limit), so the table knows it only as partial.
const goneTGID = 1 << 30

// accountPipeline returns a pipeline, as the eBPF collector runs it, over
// account files under a fresh root, sending to a sink.
func accountPipeline(t *testing.T) (*pipeline, *sink, string) {
	t.Helper()
	root := etcTree(t)
	tab, err := proctable.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{}
	p := &pipeline{
		o:        Options{Sink: s, Counters: &counters.Set{}},
		log:      slog.New(slog.DiscardHandler),
		coll:     &ebpf.Collector{}, // the eBPF collector's pipeline; never read here
		table:    tab,
		mapper:   mapper.New(&mapper.Options{Table: tab, Collector: xdrv1.CollectorMethod_COLLECTOR_METHOD_EBPF}),
		inflight: map[exehash.Key]bool{},
		accts:    acctState{w: accounts.New(&accounts.Options{Root: root})},
	}
	return p, s, filepath.Join(root, "etc", "passwd")
}

// fileEvent is an eBPF file event of process goneTGID, and the ActEvent
// it was mapped to.
func fileEvent(kind ebpf.Kind, path, path2 string, seq uint64, access xdrv1.XdrAccessType) (*ebpf.Event, *xdrv1.ActEvent) {
	e := &ebpf.Event{Kind: kind, Header: ebpf.Header{PID: goneTGID, TGID: goneTGID, Time: uint64(monotonic())},
		File: &ebpf.FileOp{Path: path, Path2: path2}}
	return e, &xdrv1.ActEvent{Seq: seq, AccessType: access, TimestampNs: 77}
}

// appendLine appends a line to a file, in place.
func appendLine(t *testing.T, path, line string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(line + "\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// names returns the account names of the events sent since the last call.
func (s *sink) names(from *int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, ev := range s.evs[*from:] {
		out = append(out, ev.GetAccount().GetName())
	}
	*from = len(s.evs)
	return out
}

// TestAccountEvents drives the account wiring of the eBPF pipeline with
// synthetic file events: a rename onto a file compares it at once, a
// write is compared by the poll once the events from before it are read,
// and a writer whose write changed nothing is forgotten.
func TestAccountEvents(t *testing.T) {
	p, s, passwd := accountPipeline(t)
	modify := xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_MODIFY
	var from int
	expect := func(step string, want ...string) {
		t.Helper()
		if d := cmp.Diff(want, s.names(&from)); d != "" {
			t.Errorf("%s: accounts reported (-want +got):\n%s", step, d)
		}
	}

	// A write without a close: remembered, found by the poll.
	appendLine(t, passwd, "carol:x:1002:1002::/home/carol:/bin/sh")
	e, ev := fileEvent(ebpf.KindFileWrite, passwd, "", 10, modify)
	p.dispatch(p.accountFile(e, ev, nil))
	expect("write")
	p.pollAccounts()
	expect("first poll: change seen")
	p.pollAccounts()
	expect("second poll, events from after the change not read yet")
	p.accts.readEvents(nil, monotonic())
	p.pollAccounts()
	expect("poll after the events were read", "carol")
	got := s.find(accountEvent(xdrv1.XdrAccessType_XDR_ACCESS_TYPE_ACCOUNT_ADD, passwd, "carol"))
	want := &xdrv1.ActEvent{
		Seq: 1, TimestampNs: 77, EventType: xdrv1.XdrEventType_XDR_EVENT_TYPE_ACCOUNT, AccessType: xdrv1.XdrAccessType_XDR_ACCESS_TYPE_ACCOUNT_ADD,
		Subject: &xdrv1.Process{Pid: goneTGID, Tgid: goneTGID, Partial: true}, KernelEvent: xdrv1.KernelEvent_KERNEL_EVENT_SYSCALL,
		Collector: xdrv1.CollectorMethod_COLLECTOR_METHOD_EBPF, CauseSeq: 10, CauseAccessType: modify,
		Target: &xdrv1.ActEvent_Account{Account: &xdrv1.Account{Uid: 1002, Gid: 1002, Name: "carol", Home: "/home/carol", Shell: "/bin/sh", File: passwd}},
	}
	if d := cmp.Diff(want, got, protocmp.Transform(), protocmp.IgnoreFields(&xdrv1.ActEvent{}, "target_hash_id")); d != "" {
		t.Errorf("ACCOUNT_ADD (-want +got):\n%s", d)
	}
	if n := p.o.Counters.Total(xdrv1.EventStatType_EVENT_STAT_TYPE_PARTIAL_ENRICHMENT); n != 1 {
		t.Errorf("%d partial enrichments counted, want 1", n)
	}

	// A rename onto the file: compared at once.
	b, err := os.ReadFile(passwd)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(passwd+"+", append(b, "dave:x:1003:1003::/:/bin/sh\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(passwd+"+", passwd); err != nil {
		t.Fatal(err)
	}
	e, ev = fileEvent(ebpf.KindFileRename, passwd+"+", passwd, 20, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_MOVE)
	p.dispatch(p.accountFile(e, ev, nil))
	expect("rename", "dave")
	p.pollAccounts()
	p.pollAccounts()
	expect("polls after the rename")

	// A write that changed nothing: its writer is forgotten after a
	// whole interval, and a later change has no known subject.
	e, ev = fileEvent(ebpf.KindFileWrite, passwd, "", 30, modify)
	p.dispatch(p.accountFile(e, ev, nil))
	p.pollAccounts()
	p.pollAccounts()
	appendLine(t, passwd, "eve:x:1004:1004::/:/bin/sh")
	p.pollAccounts()
	p.accts.readEvents(nil, monotonic())
	p.pollAccounts()
	expect("change after the writer was forgotten", "eve")
	got = s.find(accountEvent(xdrv1.XdrAccessType_XDR_ACCESS_TYPE_ACCOUNT_ADD, passwd, "eve"))
	if d := cmp.Diff(&xdrv1.Process{Partial: true}, got.GetSubject(), protocmp.Transform()); d != "" || got.GetCauseSeq() != 0 {
		t.Errorf("subject of a change without a writer (-want +got):\n%s\ncause_seq %d", d, got.GetCauseSeq())
	}

	// Other paths and read-only opens are no account activity.
	e, ev = fileEvent(ebpf.KindFileClose, passwd+"-", "", 40, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_CLOSE)
	p.dispatch(p.accountFile(e, ev, nil))
	e, ev = fileEvent(ebpf.KindFileOpen, passwd, "", 41, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_OPEN)
	p.dispatch(p.accountFile(e, ev, nil))
	if w := p.accts.writers[accounts.Passwd]; w.proc != nil {
		t.Errorf("writer %+v remembered for a read-only open", w)
	}
	expect("other activity")
}
