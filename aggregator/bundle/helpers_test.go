package bundle

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"google.golang.org/protobuf/encoding/protowire"

	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// t0 is the start time of the test clocks.
var t0 = time.Date(2025, 3, 4, 5, 6, 7, 891_000_000, time.UTC)

// clock is a settable test clock.
type clock struct{ t time.Time }

func newClock() *clock                   { return &clock{t: t0} }
func (c *clock) Now() time.Time          { return c.t }
func (c *clock) Advance(d time.Duration) { c.t = c.t.Add(d) }

// testEvent returns a typical file-open event of about 300 bytes.
func testEvent(seq uint64) *xdrv1.Record {
	return &xdrv1.Record{Record: &xdrv1.Record_Event{Event: &xdrv1.ActEvent{
		Seq:         seq,
		TimestampNs: t0.UnixNano() + int64(seq)*int64(time.Millisecond),
		EventType:   xdrv1.XdrEventType_XDR_EVENT_TYPE_FILE,
		AccessType:  xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_OPEN,
		Subject: &xdrv1.Process{
			Pid: 4312, Tgid: 4312, Ppid: 1,
			InstanceId:       0x6b1f0c2a99e3d417,
			StartTimeNs:      81_234_000_000,
			ParentInstanceId: 0x11aa22bb33cc44dd,
			Creds:            &xdrv1.Credentials{Uid: 1000, Euid: 1000, Gid: 1000, Egid: 1000, UserName: "alice", EuserName: "alice"},
			Exe:              "/usr/bin/python3.12",
			Argv:             []string{"python3", "/opt/app/worker.py", "--queue", "jobs"},
			Cwd:              "/opt/app",
			Comm:             "python3",
			Cgroup:           "/system.slice/app-worker.service",
		},
		TargetHashId: 0x9e3779b97f4a7c15 ^ seq,
		KernelEvent:  xdrv1.KernelEvent_KERNEL_EVENT_SYSCALL,
		Collector:    xdrv1.CollectorMethod_COLLECTOR_METHOD_EBPF,
		Target: &xdrv1.ActEvent_File{File: &xdrv1.File{
			Path:       fmt.Sprintf("/var/lib/app/spool/job-%08d.json", seq),
			Size:       4096 + seq%512,
			Mode:       0o100644,
			Uid:        1000,
			OwnerName:  "alice",
			Gid:        1000,
			GroupName:  "alice",
			ModifyTime: t0.Unix(),
			Device:     2049,
			Inode:      1_000_000 + seq,
		}},
	}}}
}

// readRecords reads a bundle with ReadFile and returns its records and
// ReadFile's error.
func readRecords(t testing.TB, path string) ([]*xdrv1.Record, error) {
	t.Helper()
	var recs []*xdrv1.Record
	err := ReadFile(path, func(r *xdrv1.Record) error {
		recs = append(recs, r)
		return nil
	})
	return recs, err
}

// mustReadRecords reads a bundle that must be undamaged.
func mustReadRecords(t testing.TB, path string) []*xdrv1.Record {
	t.Helper()
	recs, err := readRecords(t, path)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// listBundles returns the files in dir ending in ext, sorted by name.
func listBundles(t testing.TB, dir, ext string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ext) {
			paths = append(paths, filepath.Join(dir, e.Name()))
		}
	}
	slices.Sort(paths)
	return paths
}

// rawRecords decompresses a bundle with the zstd package's stream decoder,
// independently of Reader, and splits it into the delimited records,
// length prefixes included.
func rawRecords(t testing.TB, data []byte) [][]byte {
	t.Helper()
	d, err := zstd.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	raw, err := io.ReadAll(d)
	if err != nil {
		t.Fatalf("decompress bundle: %v", err)
	}
	var recs [][]byte
	for len(raw) > 0 {
		size, n := protowire.ConsumeVarint(raw)
		if n < 0 || uint64(len(raw)-n) < size {
			t.Fatalf("bad record prefix after %d records", len(recs))
		}
		recs = append(recs, raw[:n+int(size)])
		raw = raw[n+int(size):]
	}
	return recs
}

// eventSeqs returns the seq of each event among recs.
func eventSeqs(recs []*xdrv1.Record) []uint64 {
	var seqs []uint64
	for _, r := range recs {
		if e := r.GetEvent(); e != nil {
			seqs = append(seqs, e.GetSeq())
		}
	}
	return seqs
}

// seqRange returns from, from+1, ..., to-1.
func seqRange(from, to uint64) []uint64 {
	var s []uint64
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

// asWriteError returns err as a *WriteError or fails the test.
func asWriteError(t testing.TB, err error) *WriteError {
	t.Helper()
	var we *WriteError
	if !errors.As(err, &we) {
		t.Fatalf("got error %v, want a *WriteError", err)
	}
	return we
}

// asCorruptError returns err as a *CorruptError or fails the test.
func asCorruptError(t testing.TB, err error) *CorruptError {
	t.Helper()
	var ce *CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("got error %v, want a *CorruptError", err)
	}
	return ce
}

// newTextLogger returns a logger writing text lines to w.
func newTextLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
