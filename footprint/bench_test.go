package footprint

import (
	"runtime"
	"strconv"
	"strings"
	"testing"

	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

func discard(*xdrv1.Footprint) {}

func BenchmarkAddDeduplicated(b *testing.B) {
	g := New(&Options{Emit: discard})
	ev := execEvent(10, "/usr/bin/id", at(1))
	g.Add(ev)
	b.ReportAllocs()
	for b.Loop() {
		g.Add(ev)
	}
	if st := g.Stats(); st.Entries != 1 {
		b.Fatalf("%d entries, want 1", st.Entries)
	}
}

func BenchmarkAddDistinct(b *testing.B) {
	// A ring of distinct activities four times larger than the table:
	// every Add creates a footprint and evicts the most idle one.
	const held, ring = 1024, 4096
	g := New(&Options{MaxEntries: held, Emit: discard})
	events := make([]*xdrv1.ActEvent, ring)
	for i := range events {
		events[i] = execEvent(10, "/usr/lib/x/"+strconv.Itoa(i), at(1))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		g.Add(events[i%ring])
		i++
	}
	st := g.Stats()
	if st.Deduplicated != 0 {
		b.Fatalf("%d deduplicated, want every Add new", st.Deduplicated)
	}
	b.ReportMetric(float64(st.Evicted)/float64(i), "evictions/op")
}

// decodedFileEvent fills ev (reset, as wire.Reader resets the message it
// decodes into) like a decoded FILE_OPEN of file i, ancestry, cwd and
// cgroup included: every string is a new allocation, as proto.Unmarshal
// makes them, so the heap holds (and fragments) as it would in the
// aggregator.
func decodedFileEvent(ev *xdrv1.ActEvent, i int) {
	ev.Reset()
	ev.TimestampNs = at(int64(i / 1000))
	ev.EventType = xdrv1.XdrEventType_XDR_EVENT_TYPE_FILE
	ev.AccessType = fileOpen
	ev.Subject = &xdrv1.Process{
		Pid: 4242, Tgid: 4242, Ppid: 1, InstanceId: 0xfeed,
		Creds: &xdrv1.Credentials{
			Uid: 1000, Euid: 1000, Gid: 1000, Egid: 1000,
			UserName: strings.Clone("alice"), EuserName: strings.Clone("alice"),
			GroupName: strings.Clone("alice"), EgroupName: strings.Clone("alice"),
		},
		Exe:         strings.Clone("/usr/bin/python3.12"),
		Argv:        []string{strings.Clone("python3"), strings.Clone("/opt/app/indexer.py"), strings.Clone("--scan")},
		Comm:        strings.Clone("python3"),
		ExeHashes:   &xdrv1.Hashes{Sha256: strings.Repeat("ab", 32)},
		ContainerId: strings.Repeat("c", 64),
		Cwd:         strings.Clone("/opt/app"),
		Cgroup:      strings.Clone("/system.slice/app.service"),
		Ancestors: []*xdrv1.Ancestor{
			{Pid: 4000, Exe: strings.Clone("/usr/bin/bash"), Comm: strings.Clone("bash")},
			{Pid: 3000, Exe: strings.Clone("/usr/sbin/sshd"), Comm: strings.Clone("sshd")},
			{Pid: 1, Exe: strings.Clone("/usr/lib/systemd/systemd"), Comm: strings.Clone("systemd")},
		},
	}
	ev.Target = &xdrv1.ActEvent_File{File: &xdrv1.File{
		Path: "/var/lib/app/cache/" + strconv.Itoa(1000000+i) + ".dat",
		Size: 4096, Mode: 0o100644, Uid: 1000, Gid: 1000,
		OwnerName: strings.Clone("alice"), GroupName: strings.Clone("alice"),
		ChangeTime: 1700000000, ModifyTime: 1700000000,
	}}
}

// BenchmarkMillionDistinct adds a million distinct file activities under
// the default 32 MiB budget and reports the heap in use after a GC
// (heapMB, and heapGrowthMB since before the Generator) next to the
// Generator's estimate (estMB), and per entry the heap in use, the live
// heap and the estimate, so that the estimate can be checked against
// reality.
func BenchmarkMillionDistinct(b *testing.B) {
	const n = 1000000
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)

		g := New(&Options{MaxBytes: DefaultMaxBytes, Emit: discard})
		ev := new(xdrv1.ActEvent)
		for i := range n {
			decodedFileEvent(ev, i)
			g.Add(ev)
		}
		ev = nil

		runtime.GC()
		runtime.ReadMemStats(&after)
		st := g.Stats()
		if st.Bytes > DefaultMaxBytes || st.New != n {
			b.Fatalf("stats %+v, budget %d", st, DefaultMaxBytes)
		}
		used := float64(after.HeapInuse) - float64(before.HeapInuse)
		live := float64(after.HeapAlloc) - float64(before.HeapAlloc)
		b.ReportMetric(float64(after.HeapInuse)/1e6, "heapMB")
		b.ReportMetric(used/1e6, "heapGrowthMB")
		b.ReportMetric(float64(st.Bytes)/1e6, "estMB")
		b.ReportMetric(used/float64(st.Entries), "heapB/entry")
		b.ReportMetric(live/float64(st.Entries), "liveB/entry")
		b.ReportMetric(float64(st.Bytes)/float64(st.Entries), "estB/entry")
		b.ReportMetric(float64(st.Entries), "entries")
		b.ReportMetric(float64(st.Evicted), "evictions")
		runtime.KeepAlive(g)
	}
}
