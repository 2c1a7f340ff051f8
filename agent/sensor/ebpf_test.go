package sensor

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/xdr-sensor/xdr/agent/counters"
	"github.com/xdr-sensor/xdr/agent/ebpf"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

func TestAddKernelDrops(t *testing.T) {
	type totals struct{ RingFull, Kernel, Malformed, Filtered uint64 }
	tests := []struct {
		name     string
		readings []ebpf.Stats
		want     totals
	}{
		{"nothing lost", []ebpf.Stats{{Records: 10, Events: 9, Merged: 1}, {Records: 20, Events: 18, Merged: 2}}, totals{}},
		{"deltas add up to the last reading", []ebpf.Stats{
			{RingFull: 3, StateFull: 1, Other: 1, Missed: 1, DecodeErrors: 1},
			{RingFull: 3, StateFull: 2, Other: 1, Missed: 4, DecodeErrors: 1},
			{RingFull: 10, StateFull: 2, Other: 5, Missed: 4, DecodeErrors: 2},
		}, totals{RingFull: 10, Kernel: 11, Malformed: 2}},
		{"a reading that goes back adds nothing", []ebpf.Stats{{RingFull: 5}, {RingFull: 4}}, totals{RingFull: 5}},
		{"argv and path truncations are not losses", []ebpf.Stats{{ArgvRead: 2, ArgvTruncated: 3, PathTruncated: 4, ArgvOrphans: 1}}, totals{}},
		{"reads filtered in the kernel are counted as filtered opens", []ebpf.Stats{{FilteredReads: 7}, {FilteredReads: 7}, {FilteredReads: 12, RingFull: 1}}, totals{RingFull: 1, Filtered: 12}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c counters.Set
			var last ebpf.Stats
			for _, s := range tt.readings {
				addKernelDrops(&c, last, s)
				last = s
			}
			got := totals{
				RingFull:  c.Total(xdrv1.EventStatType_EVENT_STAT_TYPE_DROPPED_RINGBUF_FULL),
				Kernel:    c.Total(xdrv1.EventStatType_EVENT_STAT_TYPE_DROPPED_KERNEL),
				Malformed: c.Total(xdrv1.EventStatType_EVENT_STAT_TYPE_DROPPED_MALFORMED),
				Filtered:  c.Get(xdrv1.EventStatType_EVENT_STAT_TYPE_FILTERED, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_OPEN),
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("counted drops (-want +got):\n%s", d)
			}
		})
	}
}

func TestDumpsCore(t *testing.T) {
	for code, want := range map[uint32]bool{
		uint32(unix.SIGQUIT):        true,
		uint32(unix.SIGSEGV) | 0x80: true, // a core file was written
		uint32(unix.SIGABRT):        true,
		uint32(unix.SIGKILL):        false,
		uint32(unix.SIGTERM):        false,
		3 << 8:                      false, // exit(3)
		0:                           false,
	} {
		if got := dumpsCore(code); got != want {
			t.Errorf("dumpsCore(%#x) = %v, want %v", code, got, want)
		}
	}
}
