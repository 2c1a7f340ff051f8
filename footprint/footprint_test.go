package footprint

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/xdr-sensor/xdr/proto/objid"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

const (
	execute  = xdrv1.XdrAccessType_XDR_ACCESS_TYPE_PROCESS_EXECUTE
	fileOpen = xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_OPEN
	outbound = xdrv1.XdrAccessType_XDR_ACCESS_TYPE_CONNECTION_CONNECT_OUTBOUND
	query    = xdrv1.XdrAccessType_XDR_ACCESS_TYPE_DNS_QUERY
)

// t0 is the tests' start time; at(s) is t0 plus s seconds in the
// nanoseconds of ActEvent.timestamp_ns.
var t0 = time.Unix(1700000000, 0)

func at(s int64) int64 { return t0.Add(time.Duration(s) * time.Second).UnixNano() }

// clock is an injected clock.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

// sink collects emitted footprints.
type sink struct{ got []*xdrv1.Footprint }

func (s *sink) emit(fp *xdrv1.Footprint) { s.got = append(s.got, fp) }

// take returns and forgets what was emitted so far.
func (s *sink) take() []*xdrv1.Footprint {
	got := s.got
	s.got = nil
	return got
}

func newGenerator(t testing.TB, opts Options) (*Generator, *sink, *clock) {
	t.Helper()
	s := new(sink)
	c := &clock{now: t0}
	opts.Emit = s.emit
	opts.Now = c.Now
	return New(&opts), s, c
}

// shell is a subject process with everything a full event carries,
// including what a footprint drops (ancestors, environment, cwd, cgroup).
func shell(pid uint32) *xdrv1.Process {
	return &xdrv1.Process{
		Pid: pid, Tgid: pid, Ppid: 1, InstanceId: uint64(pid) * 1000, StartTimeNs: 5,
		ParentInstanceId: 1000,
		Creds:            &xdrv1.Credentials{Uid: 1000, Euid: 1000, UserName: "alice", EuserName: "alice"},
		Exe:              "/usr/bin/bash", Argv: []string{"bash", "-c", "id"}, Cwd: "/home/alice", Comm: "bash",
		ExeHashes:   &xdrv1.Hashes{Sha256: "aa"},
		Ancestors:   []*xdrv1.Ancestor{{Pid: 1, Exe: "/sbin/init"}},
		Cgroup:      "/system.slice/x.service",
		ContainerId: "c0ffee",
		Env:         []string{"HOME=/home/alice"},
		SessionId:   7,
	}
}

// trimmed is shell(pid) as a footprint subject.
func trimmed(pid uint32) *xdrv1.Process {
	return &xdrv1.Process{
		Pid: pid, Tgid: pid, Ppid: 1, InstanceId: uint64(pid) * 1000,
		Creds: &xdrv1.Credentials{Uid: 1000, Euid: 1000, UserName: "alice", EuserName: "alice"},
		Exe:   "/usr/bin/bash", Argv: []string{"bash", "-c", "id"}, Comm: "bash",
		ExeHashes:   &xdrv1.Hashes{Sha256: "aa"},
		ContainerId: "c0ffee",
	}
}

func execEvent(pid uint32, file string, ts int64) *xdrv1.ActEvent {
	return &xdrv1.ActEvent{
		TimestampNs: ts,
		EventType:   xdrv1.XdrEventType_XDR_EVENT_TYPE_PROCESS,
		AccessType:  execute,
		Subject:     shell(pid),
		Target:      &xdrv1.ActEvent_File{File: &xdrv1.File{Path: file}},
	}
}

func withRepeat(ev *xdrv1.ActEvent, n uint64) *xdrv1.ActEvent {
	ev.RepeatCount = n
	return ev
}

func connEvent(pid, remotePort, localPort uint32, ts int64) *xdrv1.ActEvent {
	return &xdrv1.ActEvent{
		TimestampNs: ts,
		EventType:   xdrv1.XdrEventType_XDR_EVENT_TYPE_CONNECTION,
		AccessType:  outbound,
		Subject:     shell(pid),
		Target: &xdrv1.ActEvent_Connection{Connection: &xdrv1.Connection{
			Protocol: xdrv1.XdrConnectionType_XDR_CONNECTION_TYPE_TCP, Family: 2,
			LocalAddress: "198.51.100.7", LocalPort: localPort,
			RemoteAddress: "192.0.2.1", RemotePort: remotePort,
			Direction: xdrv1.Direction_DIRECTION_OUTBOUND,
		}},
	}
}

func dnsEvent(name string, ts int64) *xdrv1.ActEvent {
	return &xdrv1.ActEvent{
		TimestampNs: ts,
		EventType:   xdrv1.XdrEventType_XDR_EVENT_TYPE_DNS,
		AccessType:  query,
		Subject:     shell(10),
		Target:      &xdrv1.ActEvent_Dns{Dns: &xdrv1.Dns{Name: name, QueryType: 1}},
	}
}

// footprintOf is the footprint want for ev's activity.
func footprintOf(ev *xdrv1.ActEvent, first, last int64, count uint64, subject *xdrv1.Process) *xdrv1.Footprint {
	fp := &xdrv1.Footprint{
		HashId: objid.Activity(ev), FirstSeen: t0.Unix() + first, LastSeen: t0.Unix() + last, Count: count,
		EventType: ev.GetEventType(), AccessType: ev.GetAccessType(), Subject: subject,
	}
	switch t := ev.GetTarget().(type) {
	case *xdrv1.ActEvent_File:
		fp.Object = &xdrv1.Footprint_File{File: &xdrv1.FileFootprint{Filename: t.File.GetPath(), OwnerSid: "0", GroupSid: "0"}}
	case *xdrv1.ActEvent_Connection:
		fp.Object = &xdrv1.Footprint_Connection{Connection: proto.Clone(t.Connection).(*xdrv1.Connection)}
	case *xdrv1.ActEvent_Dns:
		fp.Object = &xdrv1.Footprint_Dns{Dns: proto.Clone(t.Dns).(*xdrv1.Dns)}
	}
	return fp
}

func TestAdd(t *testing.T) {
	tests := []struct {
		name        string
		events      []*xdrv1.ActEvent
		wantResults []Result
		want        []*xdrv1.Footprint // emitted by FlushAll, in order of creation
	}{
		{
			name:        "same activity from two pids",
			events:      []*xdrv1.ActEvent{execEvent(10, "/usr/bin/id", at(1)), execEvent(20, "/usr/bin/id", at(5))},
			wantResults: []Result{NewFootprint, Deduplicated},
			want:        []*xdrv1.Footprint{footprintOf(execEvent(0, "/usr/bin/id", 0), 1, 5, 2, trimmed(20))},
		},
		{
			name:        "different files",
			events:      []*xdrv1.ActEvent{execEvent(10, "/usr/bin/id", at(1)), execEvent(10, "/usr/bin/ls", at(2))},
			wantResults: []Result{NewFootprint, NewFootprint},
			want: []*xdrv1.Footprint{
				footprintOf(execEvent(0, "/usr/bin/id", 0), 1, 1, 1, trimmed(10)),
				footprintOf(execEvent(0, "/usr/bin/ls", 0), 2, 2, 1, trimmed(10)),
			},
		},
		{
			name:        "different remote ports",
			events:      []*xdrv1.ActEvent{connEvent(10, 443, 40000, at(1)), connEvent(10, 80, 40000, at(2))},
			wantResults: []Result{NewFootprint, NewFootprint},
			want: []*xdrv1.Footprint{
				footprintOf(connEvent(10, 443, 40000, 0), 1, 1, 1, trimmed(10)),
				footprintOf(connEvent(10, 80, 40000, 0), 2, 2, 1, trimmed(10)),
			},
		},
		{
			name:        "same remote port, different ephemeral local ports",
			events:      []*xdrv1.ActEvent{connEvent(10, 443, 40000, at(1)), connEvent(11, 443, 50000, at(2))},
			wantResults: []Result{NewFootprint, Deduplicated},
			// The object is the latest connection's, local port included.
			want: []*xdrv1.Footprint{footprintOf(connEvent(11, 443, 50000, 0), 1, 2, 2, trimmed(11))},
		},
		{
			name:        "dns name case-insensitive",
			events:      []*xdrv1.ActEvent{dnsEvent("Example.COM", at(1)), dnsEvent("example.com.", at(3))},
			wantResults: []Result{NewFootprint, Deduplicated},
			want:        []*xdrv1.Footprint{footprintOf(dnsEvent("example.com.", 0), 1, 3, 2, trimmed(10))},
		},
		{
			name: "repeat_count honoured, 0 read as 1",
			events: []*xdrv1.ActEvent{
				withRepeat(execEvent(10, "/usr/bin/id", at(1)), 5),
				withRepeat(execEvent(10, "/usr/bin/id", at(2)), 0),
				withRepeat(execEvent(10, "/usr/bin/id", at(3)), 1),
			},
			wantResults: []Result{NewFootprint, Deduplicated, Deduplicated},
			want:        []*xdrv1.Footprint{footprintOf(execEvent(0, "/usr/bin/id", 0), 1, 3, 7, trimmed(10))},
		},
		{
			name:        "events out of order",
			events:      []*xdrv1.ActEvent{execEvent(10, "/usr/bin/id", at(9)), execEvent(11, "/usr/bin/id", at(2))},
			wantResults: []Result{NewFootprint, Deduplicated},
			want:        []*xdrv1.Footprint{footprintOf(execEvent(0, "/usr/bin/id", 0), 2, 9, 2, trimmed(11))},
		},
		{
			name:        "no timestamp: the clock's time",
			events:      []*xdrv1.ActEvent{execEvent(10, "/usr/bin/id", 0)},
			wantResults: []Result{NewFootprint},
			want:        []*xdrv1.Footprint{footprintOf(execEvent(0, "/usr/bin/id", 0), 0, 0, 1, trimmed(10))},
		},
		{
			name: "no subject, no target",
			events: []*xdrv1.ActEvent{
				{TimestampNs: at(1), AccessType: xdrv1.XdrAccessType_XDR_ACCESS_TYPE_PROCESS_TRACME},
				{TimestampNs: at(2), AccessType: xdrv1.XdrAccessType_XDR_ACCESS_TYPE_PROCESS_TRACME},
			},
			wantResults: []Result{NewFootprint, Deduplicated},
			want: []*xdrv1.Footprint{{
				HashId:     objid.Activity(&xdrv1.ActEvent{AccessType: xdrv1.XdrAccessType_XDR_ACCESS_TYPE_PROCESS_TRACME}),
				FirstSeen:  t0.Unix() + 1,
				LastSeen:   t0.Unix() + 2,
				Count:      2,
				AccessType: xdrv1.XdrAccessType_XDR_ACCESS_TYPE_PROCESS_TRACME,
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, s, _ := newGenerator(t, Options{})
			var results []Result
			for _, ev := range tt.events {
				results = append(results, g.Add(ev))
			}
			if d := cmp.Diff(tt.wantResults, results); d != "" {
				t.Errorf("results (-want +got):\n%s", d)
			}
			if got := s.take(); len(got) != 0 {
				t.Errorf("emitted %d footprints before any flush", len(got))
			}
			g.FlushAll()
			if d := cmp.Diff(tt.want, s.take(), protocmp.Transform()); d != "" {
				t.Errorf("footprints (-want +got):\n%s", d)
			}
			news, dups := uint64(0), uint64(0)
			for _, r := range tt.wantResults {
				if r == NewFootprint {
					news++
				} else {
					dups++
				}
			}
			st := g.Stats()
			if st.New != news || st.Deduplicated != dups || st.Emitted != uint64(len(tt.want)) || st.Entries != len(tt.want) {
				t.Errorf("stats %+v, want %d new, %d deduplicated, %d emitted and held", st, news, dups, len(tt.want))
			}
		})
	}
}

// The emitted footprint owns its messages: events reused by the caller
// (as wire.Reader does) and later Adds do not change it.
func TestFootprintOwnsItsData(t *testing.T) {
	g, s, _ := newGenerator(t, Options{})
	ev := execEvent(10, "/usr/bin/id", at(1))
	g.Add(ev)
	g.FlushAll()
	first := s.take()[0]
	want := proto.Clone(first)

	ev.Subject.Argv[0] = "changed"
	ev.Subject.Creds.UserName = "mallory"
	ev.Target.(*xdrv1.ActEvent_File).File.Size = 99
	g.Add(execEvent(20, "/usr/bin/id", at(2)))
	g.FlushAll()
	if d := cmp.Diff(want, first, protocmp.Transform()); d != "" {
		t.Errorf("emitted footprint changed after the fact (-want +got):\n%s", d)
	}
	// Mutating the reused event after Add did not reach the entry either.
	if got := s.take()[0].GetSubject().GetArgv()[0]; got != "bash" {
		t.Errorf("argv[0] = %q, want bash", got)
	}
}

func TestIdentityStableAcrossGenerators(t *testing.T) {
	events := []*xdrv1.ActEvent{
		execEvent(10, "/usr/bin/id", at(1)),
		execEvent(11, "/usr//bin/./id", at(2)),
		connEvent(12, 443, 40000, at(3)),
		dnsEvent("Example.com", at(4)),
		{AccessType: fileOpen, Subject: shell(13), Target: &xdrv1.ActEvent_File{File: &xdrv1.File{Path: "/etc/passwd"}}},
	}
	ids := func(order []int) map[uint64]uint64 {
		g, s, _ := newGenerator(t, Options{})
		for _, i := range order {
			g.Add(events[i])
		}
		g.FlushAll()
		out := make(map[uint64]uint64)
		for _, fp := range s.take() {
			out[fp.GetHashId()] = fp.GetCount()
		}
		return out
	}
	a := ids([]int{0, 1, 2, 3, 4})
	b := ids([]int{4, 3, 2, 1, 0})
	if d := cmp.Diff(a, b); d != "" {
		t.Errorf("hash ids differ between generators (-first +second):\n%s", d)
	}
	want := map[uint64]uint64{
		objid.Activity(events[0]): 2,
		objid.Activity(events[2]): 1,
		objid.Activity(events[3]): 1,
		objid.Activity(events[4]): 1,
	}
	if d := cmp.Diff(want, a); d != "" {
		t.Errorf("hash id -> count (-want +got):\n%s", d)
	}
}

// emitted summarises an emitted file footprint.
type emitted struct {
	File  string
	Count uint64
}

func summary(fps []*xdrv1.Footprint) []emitted {
	var out []emitted
	for _, fp := range fps {
		out = append(out, emitted{fp.GetFile().GetFilename(), fp.GetCount()})
	}
	return out
}

func TestTick(t *testing.T) {
	type step struct {
		at   time.Duration // since t0
		add  []string      // files executed at that time
		want []emitted     // by Tick(at)
	}
	const flush, reemit = time.Minute, 24 * time.Hour
	steps := []step{
		{at: 0, add: []string{"/a", "/b"}},
		{at: 30 * time.Second},
		{at: flush, want: []emitted{{"/a", 1}, {"/b", 1}}},
		{at: 70 * time.Second, add: []string{"/a"}},
		{at: 100 * time.Second},                     // flush interval not over yet
		{at: 2 * flush, want: []emitted{{"/a", 2}}}, // only the changed one
		{at: 3 * flush},                             // nothing changed
		{at: 4 * flush, add: []string{"/c"}, want: []emitted{{"/c", 1}}},
		{at: reemit}, // /b not old enough yet
		{at: flush + reemit, want: []emitted{{"/b", 1}}},   // re-emitted, unchanged
		{at: 2*flush + reemit, want: []emitted{{"/a", 2}}}, // its own 24h later
		{at: 3*flush + reemit},                             //
		{at: 4*flush + reemit, want: []emitted{{"/c", 1}}}, //
		{at: flush + 2*reemit, want: []emitted{{"/b", 1}}}, // and again
	}
	g, s, c := newGenerator(t, Options{FlushInterval: flush, ReemitInterval: reemit})
	for _, st := range steps {
		c.now = t0.Add(st.at)
		for _, f := range st.add {
			g.Add(execEvent(10, f, c.now.UnixNano()))
		}
		g.Tick(c.now)
		if d := cmp.Diff(st.want, summary(s.take())); d != "" {
			t.Errorf("Tick(t0+%v) emitted (-want +got):\n%s", st.at, d)
		}
	}
	// The last re-emission happened at flush+2*reemit; /a and /c are due
	// later, so a Tick just after emits only what is due.
	c.now = t0.Add(2*flush + 2*reemit)
	g.Tick(c.now)
	if d := cmp.Diff([]emitted{{"/a", 2}}, summary(s.take())); d != "" {
		t.Errorf("final Tick emitted (-want +got):\n%s", d)
	}
}

func TestFlushAllEmitsChangedRest(t *testing.T) {
	g, s, c := newGenerator(t, Options{})
	g.Add(execEvent(10, "/a", at(0)))
	g.Add(execEvent(10, "/b", at(0)))
	c.now = t0.Add(time.Minute)
	g.Tick(c.now)
	s.take()
	g.Add(execEvent(10, "/b", at(61)))
	g.Add(execEvent(10, "/c", at(62)))
	g.FlushAll()
	if d := cmp.Diff([]emitted{{"/b", 2}, {"/c", 1}}, summary(s.take())); d != "" {
		t.Errorf("FlushAll emitted (-want +got):\n%s", d)
	}
	g.FlushAll()
	if got := s.take(); len(got) != 0 {
		t.Errorf("second FlushAll emitted %v, want nothing", summary(got))
	}
}

func TestEvictionMaxEntries(t *testing.T) {
	g, s, c := newGenerator(t, Options{MaxEntries: 2})
	check := func(step string, wantEmitted []emitted, want Stats) {
		t.Helper()
		checkInvariants(t, g)
		if d := cmp.Diff(wantEmitted, summary(s.take())); d != "" {
			t.Errorf("%s: emitted (-want +got):\n%s", step, d)
		}
		got := g.Stats()
		want.Bytes = got.Bytes
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s: stats (-want +got):\n%s", step, d)
		}
	}
	g.Add(execEvent(10, "/a", at(0)))
	g.Add(execEvent(10, "/b", at(1)))
	g.Add(execEvent(10, "/a", at(2))) // /a is now the most recent
	check("two entries", nil, Stats{Entries: 2, New: 2, Deduplicated: 1})

	g.Add(execEvent(10, "/c", at(3)))
	check("evict the most idle, changed", []emitted{{"/b", 1}}, Stats{Entries: 2, New: 3, Deduplicated: 1, Emitted: 1, Evicted: 1})

	c.now = t0.Add(time.Minute)
	g.Tick(c.now)
	check("flush", []emitted{{"/a", 2}, {"/c", 1}}, Stats{Entries: 2, New: 3, Deduplicated: 1, Emitted: 3, Evicted: 1})

	g.Add(execEvent(10, "/d", at(61)))
	check("evict an unchanged one: nothing to emit", nil, Stats{Entries: 2, New: 4, Deduplicated: 1, Emitted: 3, Evicted: 2})

	g.Add(execEvent(10, "/a", at(62)))
	g.FlushAll()
	// /a starts over after its eviction: same hash id, new count.
	check("seen again after eviction", []emitted{{"/d", 1}, {"/a", 1}}, Stats{Entries: 2, New: 5, Deduplicated: 1, Emitted: 5, Evicted: 3})
}

func TestEvictionMaxBytes(t *testing.T) {
	// Each by its own process (else they share the subject's strings,
	// see TestSubjectStringsShared), so that each costs the same.
	event := func(f string, ts int64) *xdrv1.ActEvent {
		ev := execEvent(10, f, ts)
		ev.Subject.Argv = append(ev.Subject.Argv, f)
		return ev
	}
	// Measure one entry, then allow two and a half.
	probe, _, _ := newGenerator(t, Options{})
	probe.Add(event("/a", at(0)))
	one := probe.Stats().Bytes
	budget := one * 5 / 2

	g, s, _ := newGenerator(t, Options{MaxBytes: budget})
	var emittedAll []emitted
	for i, f := range []string{"/a", "/b", "/c", "/d"} {
		g.Add(event(f, at(int64(i))))
		emittedAll = append(emittedAll, summary(s.take())...)
		checkInvariants(t, g)
		if st := g.Stats(); st.Bytes > budget || st.Entries > 2 {
			t.Errorf("after %s: %d entries, %d bytes, budget %d", f, st.Entries, st.Bytes, budget)
		}
	}
	if d := cmp.Diff([]emitted{{"/a", 1}, {"/b", 1}}, emittedAll); d != "" {
		t.Errorf("evictions emitted (-want +got):\n%s", d)
	}

	// A footprint growing on a deduplicated event (a longer argv) evicts
	// others to stay within the budget.
	big := execEvent(11, "/d", at(10))
	big.Subject.Argv = []string{strings.Repeat("x", int(one))}
	if r := g.Add(big); r != Deduplicated {
		t.Errorf("Add = %v, want Deduplicated", r)
	}
	if d := cmp.Diff([]emitted{{"/c", 1}}, summary(s.take())); d != "" {
		t.Errorf("growth evicted (-want +got):\n%s", d)
	}
	checkInvariants(t, g)
	if st := g.Stats(); st.Bytes > budget || st.Entries != 1 || st.Evicted != 3 {
		t.Errorf("after growth: stats %+v, budget %d", st, budget)
	}

	// A footprint too large to hold even alone is emitted at once.
	huge := execEvent(12, "/huge", at(11))
	huge.Subject.Argv = []string{strings.Repeat("x", int(budget))}
	if r := g.Add(huge); r != NewFootprint {
		t.Errorf("Add = %v, want NewFootprint", r)
	}
	if d := cmp.Diff([]emitted{{"/huge", 1}}, summary(s.take())); d != "" {
		t.Errorf("oversized footprint (-want +got):\n%s", d)
	}
	st := g.Stats()
	if st.Bytes > budget || st.Entries != 1 || st.Evicted != 4 {
		t.Errorf("after oversized: stats %+v, budget %d", st, budget)
	}
	g.FlushAll()
	if d := cmp.Diff([]emitted{{"/d", 2}}, summary(s.take())); d != "" {
		t.Errorf("FlushAll (-want +got):\n%s", d)
	}
	// /a, /b, /c, /huge and /d: every footprint reached Emit.
	if st := g.Stats(); st.Emitted != 5 {
		t.Errorf("emitted %d footprints, want 5", st.Emitted)
	}
}

func TestFileFootprint(t *testing.T) {
	ev := &xdrv1.ActEvent{
		TimestampNs: at(1),
		EventType:   xdrv1.XdrEventType_XDR_EVENT_TYPE_PROCESS,
		AccessType:  execute,
		Subject:     shell(10),
		Target: &xdrv1.ActEvent_File{File: &xdrv1.File{
			Path: "/tmp//.x/../.hidden", Size: 4096, Mode: 0o104755, Uid: 1000, OwnerName: "alice", Gid: 100, GroupName: "users",
			ChangeTime: 1600000000, ModifyTime: 1500000000, Device: 8, Inode: 77,
			Hashes:  &xdrv1.Hashes{Md5: "m", Sha1: "s1", Sha256: "s256", Entropy: 7.5},
			Deleted: true, Flags: 2,
		}},
	}
	g, s, _ := newGenerator(t, Options{})
	g.Add(ev)
	g.FlushAll()
	want := footprintOf(ev, 1, 1, 1, trimmed(10))
	want.Object = &xdrv1.Footprint_File{File: &xdrv1.FileFootprint{
		Size: 4096, CreateTime: 1600000000, ModifyTime: 1500000000, Filename: "/tmp/.hidden",
		OwnerSid: "1000", OwnerName: "alice", GroupSid: "100", GroupName: "users",
		TelemetryTags: []string{"deleted", "setuid", "hidden", "tmp"},
		Hashes:        &xdrv1.Hashes{Md5: "m", Sha1: "s1", Sha256: "s256", Entropy: 7.5},
	}}
	if d := cmp.Diff([]*xdrv1.Footprint{want}, s.take(), protocmp.Transform()); d != "" {
		t.Errorf("footprint (-want +got):\n%s", d)
	}
}

func TestFileTags(t *testing.T) {
	tests := []struct {
		name string
		path string
		file *xdrv1.File
		want []string
	}{
		{"plain", "/usr/bin/id", &xdrv1.File{Mode: 0o100755}, nil},
		{"deleted", "/usr/bin/id", &xdrv1.File{Mode: 0o100755, Deleted: true}, []string{"deleted"}},
		{"memfd", "/memfd:x", &xdrv1.File{Memfd: true}, []string{"memfd"}},
		{"setuid", "/usr/bin/su", &xdrv1.File{Mode: 0o104755}, []string{"setuid"}},
		{"setgid", "/usr/bin/wall", &xdrv1.File{Mode: 0o102755}, []string{"setgid"}},
		{"world writable", "/srv/x", &xdrv1.File{Mode: 0o100666}, []string{"world_writable"}},
		{"symlink permissions mean nothing", "/srv/link", &xdrv1.File{Mode: 0o120777}, nil},
		{"hidden", "/home/a/.bashrc", &xdrv1.File{Mode: 0o100644}, []string{"hidden"}},
		{"dot dirs are not hidden files", "..", &xdrv1.File{}, nil},
		{"tmp", "/tmp/x", &xdrv1.File{}, []string{"tmp"}},
		{"tmp itself", "/tmp", &xdrv1.File{}, []string{"tmp"}},
		{"var tmp", "/var/tmp/a/b", &xdrv1.File{}, []string{"tmp"}},
		{"dev shm", "/dev/shm/x", &xdrv1.File{}, []string{"tmp"}},
		{"only a prefix", "/tmpfoo/x", &xdrv1.File{}, nil},
		{"everything", "/dev/shm/.x", &xdrv1.File{Mode: 0o106777, Deleted: true, Memfd: true},
			[]string{"deleted", "memfd", "setuid", "setgid", "world_writable", "hidden", "tmp"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d := cmp.Diff(tt.want, fileTags(tt.path, tt.file).names()); d != "" {
				t.Errorf("tags (-want +got):\n%s", d)
			}
		})
	}
}

// perChange are the fields of a target that describe one change, which
// footprints leave to the raw event.
var perChange = map[protoreflect.FullName]bool{
	"xdr.v1.Account.changed_fields": true, "xdr.v1.Account.old_uid": true, "xdr.v1.Account.old_gid": true,
	"xdr.v1.Account.old_gecos": true, "xdr.v1.Account.old_home": true, "xdr.v1.Account.old_shell": true,
	"xdr.v1.Account.password_empty": true, "xdr.v1.Account.members_added": true,
	"xdr.v1.Account.members_removed": true, "xdr.v1.Account.members_truncated": true,
	"xdr.v1.Account.unreported_changes": true,
}

// fill sets every scalar field of m to a distinct non-zero value, except
// the per-change fields.
func fill(t *testing.T, m protoreflect.Message) {
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		if perChange[f.FullName()] {
			continue
		}
		n := int64(f.Number()) + 1
		if f.IsList() || f.IsMap() {
			t.Fatalf("%s: fill handles scalar fields only", f.FullName())
		}
		var v protoreflect.Value
		switch f.Kind() {
		case protoreflect.StringKind:
			v = protoreflect.ValueOfString(fmt.Sprintf("%s-%d", f.Name(), n))
		case protoreflect.BoolKind:
			v = protoreflect.ValueOfBool(true)
		case protoreflect.EnumKind:
			vals := f.Enum().Values()
			v = protoreflect.ValueOfEnum(vals.Get(vals.Len() - 1).Number())
		case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
			v = protoreflect.ValueOfInt32(int32(-n))
		case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
			v = protoreflect.ValueOfInt64(-n)
		case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
			v = protoreflect.ValueOfUint32(uint32(n))
		case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
			v = protoreflect.ValueOfUint64(uint64(n))
		case protoreflect.DoubleKind:
			v = protoreflect.ValueOfFloat64(float64(n) + 0.5)
		case protoreflect.FloatKind:
			v = protoreflect.ValueOfFloat32(float32(n) + 0.5)
		default:
			t.Fatalf("%s: fill does not handle kind %v", f.FullName(), f.Kind())
		}
		m.Set(f, v)
	}
}

// Objects kept "as they are" and the subject's credentials and hashes
// must carry every field: a field added to the proto but not to the copy
// code fails here.
func TestObjectsCopyEveryField(t *testing.T) {
	targets := []struct {
		name   string
		msg    proto.Message
		target func(*xdrv1.ActEvent, proto.Message)
		object func(*xdrv1.Footprint) proto.Message
	}{
		{"connection", new(xdrv1.Connection),
			func(ev *xdrv1.ActEvent, m proto.Message) {
				ev.Target = &xdrv1.ActEvent_Connection{Connection: m.(*xdrv1.Connection)}
			},
			func(fp *xdrv1.Footprint) proto.Message { return fp.GetConnection() }},
		{"dns", new(xdrv1.Dns),
			func(ev *xdrv1.ActEvent, m proto.Message) { ev.Target = &xdrv1.ActEvent_Dns{Dns: m.(*xdrv1.Dns)} },
			func(fp *xdrv1.Footprint) proto.Message { return fp.GetDns() }},
		{"account", new(xdrv1.Account),
			func(ev *xdrv1.ActEvent, m proto.Message) {
				ev.Target = &xdrv1.ActEvent_Account{Account: m.(*xdrv1.Account)}
			},
			func(fp *xdrv1.Footprint) proto.Message { return fp.GetAccount() }},
		{"memory", new(xdrv1.Memory),
			func(ev *xdrv1.ActEvent, m proto.Message) {
				ev.Target = &xdrv1.ActEvent_Memory{Memory: m.(*xdrv1.Memory)}
			},
			func(fp *xdrv1.Footprint) proto.Message { return fp.GetMemory() }},
		{"rule", new(xdrv1.Rule),
			func(ev *xdrv1.ActEvent, m proto.Message) { ev.Target = &xdrv1.ActEvent_Rule{Rule: m.(*xdrv1.Rule)} },
			func(fp *xdrv1.Footprint) proto.Message { return fp.GetRule() }},
	}
	for _, tt := range targets {
		t.Run(tt.name, func(t *testing.T) {
			fill(t, tt.msg.ProtoReflect())
			creds, hashes := new(xdrv1.Credentials), new(xdrv1.Hashes)
			fill(t, creds.ProtoReflect())
			fill(t, hashes.ProtoReflect())
			ev := &xdrv1.ActEvent{TimestampNs: at(1), Subject: &xdrv1.Process{Exe: "/x", Creds: creds, ExeHashes: hashes}}
			tt.target(ev, tt.msg)
			g, s, _ := newGenerator(t, Options{})
			g.Add(ev)
			g.Add(ev) // and through the in-place refresh
			g.FlushAll()
			fp := s.take()[0]
			if d := cmp.Diff(tt.msg, tt.object(fp), protocmp.Transform()); d != "" {
				t.Errorf("object (-want +got):\n%s", d)
			}
			if d := cmp.Diff(creds, fp.GetSubject().GetCreds(), protocmp.Transform()); d != "" {
				t.Errorf("creds (-want +got):\n%s", d)
			}
			if d := cmp.Diff(hashes, fp.GetSubject().GetExeHashes(), protocmp.Transform()); d != "" {
				t.Errorf("exe hashes (-want +got):\n%s", d)
			}
		})
	}
}

func TestProcessTarget(t *testing.T) {
	target := shell(42)
	target.Argv = []string{"sleep", "1"}
	target.ArgvTruncated = true
	ev := &xdrv1.ActEvent{
		TimestampNs: at(1),
		EventType:   xdrv1.XdrEventType_XDR_EVENT_TYPE_MODIFIED_PROCESS,
		AccessType:  xdrv1.XdrAccessType_XDR_ACCESS_TYPE_MODIFIED_PROCESS_READ_PROCESS,
		Subject:     shell(10),
		Target:      &xdrv1.ActEvent_Process{Process: target},
	}
	g, s, _ := newGenerator(t, Options{})
	g.Add(ev)
	g.FlushAll()
	want := footprintOf(ev, 1, 1, 1, trimmed(10))
	want.Object = &xdrv1.Footprint_Process{Process: &xdrv1.Process{
		Tgid: 42, InstanceId: 42000, Exe: "/usr/bin/bash", Comm: "bash", Argv: []string{"sleep", "1"}, ArgvTruncated: true,
	}}
	if d := cmp.Diff([]*xdrv1.Footprint{want}, s.take(), protocmp.Transform()); d != "" {
		t.Errorf("footprint (-want +got):\n%s", d)
	}
}

func TestNewRequiresEmit(t *testing.T) {
	for _, opts := range []*Options{nil, {MaxEntries: 1}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New(%+v) did not panic", opts)
				}
			}()
			New(opts)
		}()
	}
}

// A new entry's object strings are packed into its block, its subject's
// into the shared strings' block; equal strings of later events leave
// them there; a different argv gets new shared strings, accounted in
// place of the old.
func TestStringsPacked(t *testing.T) {
	g, _, _ := newGenerator(t, Options{})
	ev := execEvent(10, "/usr/bin/id", at(1))
	g.Add(ev)
	e := g.entries[objid.Activity(ev)]
	outside := func() (n int) {
		for _, p := range e.object.strs(nil) {
			if strSize(e.block, *p) != 0 {
				n++
			}
		}
		str := e.subject.str
		for _, p := range append([]*string{&str.exe, &str.comm, &str.userName}, ptrsTo(str.argv)...) {
			if strSize(str.block, *p) != 0 {
				n++
			}
		}
		return n
	}
	if n := outside(); n != 0 || e.block == "" || e.subject.str.block == "" {
		t.Fatalf("%d strings outside the blocks (%d and %d bytes) after Add", n, len(e.block), len(e.subject.str.block))
	}
	size := g.Stats().Bytes
	str := e.subject.str

	g.Add(execEvent(20, "/usr/bin/id", at(2))) // equal strings, fresh copies
	if n := outside(); n != 0 || g.Stats().Bytes != size || e.subject.str != str || e.subject.pid != 20 {
		t.Errorf("%d strings outside the blocks, %d bytes (was %d), strings replaced %v, pid %d after an equal event",
			n, g.Stats().Bytes, size, e.subject.str != str, e.subject.pid)
	}

	other := execEvent(30, "/usr/bin/id", at(3))
	other.Subject.Argv = []string{"bash", "-c", strings.Repeat("x", 100)}
	g.Add(other)
	if n := outside(); n != 0 || e.subject.str == str || str.refs != 0 {
		t.Errorf("after a new argv: %d strings outside the blocks, strings replaced %v, old strings' references %d",
			n, e.subject.str != str, str.refs)
	}
	if got, want := g.Stats().Bytes, size-str.size+e.subject.str.size; got != want {
		t.Errorf("%d bytes after a new argv, want %d (the old strings' %d replaced by %d)", got, want, str.size, e.subject.str.size)
	}
	if e.subject.str.size < str.size+allocSize(100) {
		t.Errorf("strings with a 100-byte argument: %d bytes, the others %d", e.subject.str.size, str.size)
	}
	checkInvariants(t, g)
}

func ptrsTo(ss []string) []*string {
	ptrs := make([]*string, len(ss))
	for i := range ss {
		ptrs[i] = &ss[i]
	}
	return ptrs
}

// Distinct activities by one process share its subject's strings: the
// budget holds far more of them than when each process differs.
func TestSubjectStringsShared(t *testing.T) {
	fileEvents := func(sameProcess bool) *Generator {
		g, _, _ := newGenerator(t, Options{})
		for i := range 100 {
			ev := execEvent(10, "/usr/bin/make", at(1))
			ev.AccessType = xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_CREATE
			ev.Target = &xdrv1.ActEvent_File{File: &xdrv1.File{Path: "/tmp/out/" + strconv.Itoa(i)}}
			if !sameProcess {
				ev.Subject.Argv = []string{"make", "-j", strconv.Itoa(i)}
			}
			g.Add(ev)
		}
		checkInvariants(t, g)
		return g
	}
	shared, distinct := fileEvents(true), fileEvents(false)
	if n := len(shared.entries); n != 100 {
		t.Fatalf("%d entries, want 100", n)
	}
	var first *subjectStrings
	for _, e := range shared.entries {
		if first == nil {
			first = e.subject.str
		}
		if e.subject.str != first {
			t.Fatal("entries of one process point to different subject strings")
		}
	}
	if first.refs != 100 {
		t.Errorf("shared subject strings have %d references, want 100", first.refs)
	}
	sb, db := shared.Stats().Bytes, distinct.Stats().Bytes
	if want := db - 99*first.size; sb > want {
		t.Errorf("shared: %d bytes, distinct subjects: %d; want at most %d (99 copies of %d bytes fewer)", sb, db, want, first.size)
	}

	// Evicting every entry releases the strings and their bytes.
	for shared.lru.front != nil {
		shared.evict(shared.lru.front)
	}
	if st := shared.Stats(); st.Bytes != 0 || first.refs != 0 || shared.last != nil {
		t.Errorf("after evicting all: %d bytes, %d references, last strings kept %v", st.Bytes, first.refs, shared.last != nil)
	}
}
