package bundle

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/testing/protocmp"

	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

func TestKindNames(t *testing.T) {
	fields := (&xdrv1.Record{}).ProtoReflect().Descriptor().Oneofs().ByName("record").Fields()
	for k, name := range kindNames {
		if fields.ByName(protoreflect.Name(name)) == nil {
			t.Errorf("kind %d: Record has no field %q", k, name)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	w, err := NewWriter(&WriterOptions{
		Dir:        dir,
		FrameBytes: 4 << 10,
		Now:        clk.Now,
		Header: func() *xdrv1.BundleHeader {
			return &xdrv1.BundleHeader{AgentId: "agent-1", Hostname: "host-1", FormatVersion: 99}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var sealed []string
	w.OnSeal(func(path string) { sealed = append(sealed, path) })

	var want []*xdrv1.Record
	for seq := uint64(1); seq <= 1000; seq++ {
		want = append(want, testEvent(seq))
	}
	want = append(want,
		&xdrv1.Record{Record: &xdrv1.Record_Footprint{Footprint: &xdrv1.Footprint{
			HashId: 7, FirstSeen: t0.Unix() - 60, LastSeen: t0.Unix(), Count: 3,
			Object: &xdrv1.Footprint_File{File: &xdrv1.FileFootprint{Filename: "/etc/passwd"}},
		}}},
		&xdrv1.Record{Record: &xdrv1.Record_Statistics{Statistics: &xdrv1.Statistics{Timestamp: t0.Unix() + 3600, ElapseTime: 60}}},
		&xdrv1.Record{Record: &xdrv1.Record_AgentCounters{AgentCounters: &xdrv1.AgentCounters{TimestampNs: t0.UnixNano() + 5, LastSeq: 1000}}},
	)
	for i, r := range want {
		// Every other record comes already encoded, as the daemon passes
		// received events on.
		var enc []byte
		if i%2 == 1 {
			if enc, err = proto.Marshal(r); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.WriteEncoded(r, enc); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WriteEncoded(testEvent(1001), make([]byte, MaxRecordSize+1)); !errors.Is(err, errRecordTooLong) {
		t.Errorf("WriteEncoded of an oversized encoding: %v, want errRecordTooLong", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(testEvent(1001)); err == nil {
		t.Error("Write after Close succeeded")
	}

	files := listBundles(t, dir, Ext)
	if d := cmp.Diff(files, sealed); d != "" {
		t.Errorf("OnSeal paths (-files +reported):\n%s", d)
	}
	if len(files) != 1 || len(listBundles(t, dir, PartExt)) != 0 {
		t.Fatalf("files %v, want one sealed bundle", files)
	}
	got := mustReadRecords(t, files[0])
	if len(got) != len(want)+2 {
		t.Fatalf("read %d records, want %d", len(got), len(want)+2)
	}
	wantHeader := &xdrv1.BundleHeader{
		FormatVersion: FormatVersion, AgentId: "agent-1", Hostname: "host-1",
		CreateTimeNs: t0.UnixNano(), BundleSeq: 1,
	}
	if d := cmp.Diff(wantHeader, got[0].GetHeader(), protocmp.Transform()); d != "" {
		t.Errorf("header (-want +got):\n%s", d)
	}
	if d := cmp.Diff(want, got[1:len(got)-1], protocmp.Transform()); d != "" {
		t.Errorf("records (-want +got):\n%s", d)
	}

	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	raw := rawRecords(t, data)
	sum := sha256.New()
	for _, r := range raw[:len(raw)-1] {
		sum.Write(r)
	}
	wantTrailer := &xdrv1.BundleTrailer{
		RecordCounts:  map[string]uint64{"header": 1, "event": 1000, "footprint": 1, "statistics": 1, "agent_counters": 1},
		FirstTimeNs:   (t0.Unix() - 60) * 1e9,
		LastTimeNs:    (t0.Unix() + 3600) * 1e9,
		RecordsSha256: hex.EncodeToString(sum.Sum(nil)),
	}
	if d := cmp.Diff(wantTrailer, got[len(got)-1].GetTrailer(), protocmp.Transform()); d != "" {
		t.Errorf("trailer (-want +got):\n%s", d)
	}

	st := w.Stats()
	if st.Frames < 3 {
		t.Errorf("%d frames, want several with FrameBytes 4 KiB", st.Frames)
	}
	wantStats := WriterStats{Records: uint64(len(want)), Frames: st.Frames, Sealed: 1, BytesWritten: uint64(len(data))}
	if d := cmp.Diff(wantStats, st); d != "" {
		t.Errorf("stats (-want +got):\n%s", d)
	}
}

func TestWriteRejects(t *testing.T) {
	invalidUTF8 := testEvent(9)
	invalidUTF8.GetEvent().GetSubject().Exe = "/bin/\xff"
	tooLarge := testEvent(9)
	tooLarge.GetEvent().GetSubject().Argv = []string{strings.Repeat("a", MaxRecordSize)}
	tests := []struct {
		name    string
		in      *xdrv1.Record
		wantErr error // nil: any error
	}{
		{"nil", nil, errNoRecord},
		{"no type", &xdrv1.Record{}, errNoRecord},
		{"header", &xdrv1.Record{Record: &xdrv1.Record_Header{Header: &xdrv1.BundleHeader{}}}, errReservedType},
		{"trailer", &xdrv1.Record{Record: &xdrv1.Record_Trailer{Trailer: &xdrv1.BundleTrailer{}}}, errReservedType},
		{"too large", tooLarge, errRecordTooLong},
		{"invalid utf-8", invalidUTF8, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			w, err := NewWriter(&WriterOptions{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			// Rejected as the first record, it must not open a bundle;
			// rejected later, it must not disturb the open one.
			for _, seq := range []uint64{1, 2} {
				err := w.Write(tc.in)
				var we *WriteError
				switch {
				case err == nil:
					t.Fatal("Write succeeded")
				case errors.As(err, &we):
					t.Fatalf("got WriteError %v, want a rejection", err)
				case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
					t.Fatalf("got %v, want %v", err, tc.wantErr)
				}
				if seq == 1 {
					if entries, _ := os.ReadDir(dir); len(entries) != 0 {
						t.Fatalf("rejected record created %v", entries)
					}
				}
				if err := w.Write(testEvent(seq)); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			files := listBundles(t, dir, Ext)
			if len(files) != 1 {
				t.Fatalf("bundles %v, want 1", files)
			}
			if d := cmp.Diff([]uint64{1, 2}, eventSeqs(mustReadRecords(t, files[0]))); d != "" {
				t.Errorf("events (-want +got):\n%s", d)
			}
		})
	}
}

func TestNewWriterOptions(t *testing.T) {
	tests := []struct {
		name string
		opts *WriterOptions
	}{
		{"nil", nil},
		{"no dir", &WriterOptions{}},
		{"prefix with separator", &WriterOptions{Dir: "x", Prefix: "a/b"}},
		{"negative age", &WriterOptions{Dir: "x", MaxAge: -time.Second}},
		{"frame too large", &WriterOptions{Dir: "x", FrameBytes: maxFrameBytes + 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.opts != nil && tc.opts.Dir != "" {
				tc.opts.Dir = filepath.Join(t.TempDir(), tc.opts.Dir)
			}
			if _, err := NewWriter(tc.opts); err == nil {
				t.Error("NewWriter succeeded")
			}
		})
	}
	dir := filepath.Join(t.TempDir(), "a", "b")
	if _, err := NewWriter(&WriterOptions{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o750 {
		t.Errorf("directory mode %v, want 0750", fi.Mode().Perm())
	}
}

func TestRotateBySize(t *testing.T) {
	const maxBytes, frameBytes, n = 4 << 10, 1 << 10, 2000
	dir := t.TempDir()
	w, err := NewWriter(&WriterOptions{Dir: dir, MaxBytes: maxBytes, FrameBytes: frameBytes, Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= n; seq++ {
		if err := w.Write(testEvent(seq)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	files := listBundles(t, dir, Ext)
	if len(files) < 5 {
		t.Fatalf("%d bundles, want several", len(files))
	}
	if got := w.Stats().Sealed; got != uint64(len(files)) {
		t.Errorf("Stats().Sealed = %d, want %d", got, len(files))
	}
	var seqs []uint64
	for i, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		// A frame holds a little more than frameBytes of records, and
		// compresses to less.
		if fi.Size() > maxBytes+2*frameBytes || (i < len(files)-1 && fi.Size() <= maxBytes) {
			t.Errorf("%s: %d bytes, limit %d", f, fi.Size(), maxBytes)
		}
		recs := mustReadRecords(t, f)
		if got := recs[0].GetHeader().GetBundleSeq(); got != uint64(i+1) {
			t.Errorf("%s: bundle seq %d, want %d", f, got, i+1)
		}
		if recs[len(recs)-1].GetTrailer() == nil {
			t.Errorf("%s: no trailer", f)
		}
		seqs = append(seqs, eventSeqs(recs)...)
	}
	if d := cmp.Diff(seqRange(1, n+1), seqs); d != "" {
		t.Errorf("events across bundles (-want +got):\n%s", d)
	}
}

func TestRotateByAge(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	w, err := NewWriter(&WriterOptions{Dir: dir, MaxAge: 5 * time.Minute, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	seals := 0
	w.OnSeal(func(string) { seals++ })
	steps := []struct {
		advance   time.Duration
		write     uint64 // event seq to write, 0 for a Tick
		wantSeals int
	}{
		{0, 0, 0}, // Tick without bundle
		{0, 1, 0},
		{4 * time.Minute, 2, 0},
		{59 * time.Second, 0, 0},
		{time.Second, 3, 1}, // bundle 1 is 5 minutes old: sealed before 3
		{4 * time.Minute, 0, 1},
		{time.Minute, 0, 2}, // Tick seals bundle 2
		{time.Hour, 0, 2},
	}
	for i, s := range steps {
		clk.Advance(s.advance)
		if s.write != 0 {
			err = w.Write(testEvent(s.write))
		} else {
			err = w.Tick(clk.Now())
		}
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if seals != s.wantSeals {
			t.Fatalf("step %d: %d bundles sealed, want %d", i, seals, s.wantSeals)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var got [][]uint64
	for _, f := range listBundles(t, dir, Ext) {
		got = append(got, eventSeqs(mustReadRecords(t, f)))
	}
	if d := cmp.Diff([][]uint64{{1, 2}, {3}}, got); d != "" {
		t.Errorf("events per bundle (-want +got):\n%s", d)
	}
}

func TestNamesSortAndSeqContinue(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	seq := uint64(0)
	writeBundles := func(steps []time.Duration) {
		t.Helper()
		w, err := NewWriter(&WriterOptions{Dir: dir, Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range steps {
			clk.Advance(d)
			seq++
			if err := w.Write(testEvent(seq)); err != nil {
				t.Fatal(err)
			}
			if err := w.Rotate(); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// The clock stands still, then steps back an hour.
	writeBundles([]time.Duration{0, time.Second, 0, 0, -time.Hour, time.Millisecond})
	// Files that are not bundles of this prefix are ignored; a .part left
	// by a crash holds a seq.
	for _, name := range []string{"notes.txt", "xdr-garbage.gpbz", "other-20250304T050607.891Z-000099.gpbz", "xdr-20250304T050607.000Z-000041.gpbz.part"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// After the restart the clock is earlier still.
	clk.Advance(-2 * time.Hour)
	writeBundles([]time.Duration{0, time.Minute})

	nameRE := regexp.MustCompile(`^xdr-\d{8}T\d{6}\.\d{3}Z-\d{6}\.gpbz$`)
	wantSeqs := []uint64{1, 2, 3, 4, 5, 6, 42, 43}
	var gotSeqs, events []uint64
	for _, f := range listBundles(t, dir, Ext) {
		if strings.Contains(f, "garbage") || strings.Contains(f, "other-") {
			continue
		}
		if !nameRE.MatchString(filepath.Base(f)) {
			t.Errorf("bad name %s", filepath.Base(f))
		}
		recs := mustReadRecords(t, f)
		gotSeqs = append(gotSeqs, recs[0].GetHeader().GetBundleSeq())
		events = append(events, eventSeqs(recs)...)
	}
	if d := cmp.Diff(wantSeqs, gotSeqs); d != "" {
		t.Errorf("bundle seqs in name order (-want +got):\n%s", d)
	}
	if d := cmp.Diff(seqRange(1, 9), events); d != "" {
		t.Errorf("events in name order (-want +got):\n%s", d)
	}
}

func TestZstdCommand(t *testing.T) {
	zstdPath, err := exec.LookPath("zstd")
	if err != nil {
		t.Skip("zstd command not installed")
	}
	dir := t.TempDir()
	w, err := NewWriter(&WriterOptions{Dir: dir, FrameBytes: 2 << 10})
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 200; seq++ {
		if err := w.Write(testEvent(seq)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	path := listBundles(t, dir, Ext)[0]
	out, err := exec.Command(zstdPath, "-dc", path).Output()
	if err != nil {
		t.Fatalf("zstd -dc: %v", err)
	}
	var got []*xdrv1.Record
	br := bufio.NewReader(bytes.NewReader(out))
	for {
		r := new(xdrv1.Record)
		err := protodelim.UnmarshalFrom(br, r)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("record %d of zstd output: %v", len(got), err)
		}
		got = append(got, r)
	}
	want := mustReadRecords(t, path)
	if d := cmp.Diff(want, got, protocmp.Transform()); d != "" {
		t.Errorf("zstd -dc output (-Reader +zstd):\n%s", d)
	}

	// Reader walks frames made by the reference implementation too.
	cmd := exec.Command(zstdPath, "-c", "-q", "--check")
	cmd.Stdin = bytes.NewReader(out)
	compressed, err := cmd.Output()
	if err != nil {
		t.Fatalf("zstd -c: %v", err)
	}
	got, err = readAll(compressed)
	if err != io.EOF {
		t.Fatalf("reading zstd -c output: %v", err)
	}
	if d := cmp.Diff(want, got, protocmp.Transform()); d != "" {
		t.Errorf("records of zstd -c output (-want +got):\n%s", d)
	}
}

// TestMemoryBounded checks that a huge record does not leave the Writer's
// buffers huge.
func TestMemoryBounded(t *testing.T) {
	w, err := NewWriter(&WriterOptions{Dir: t.TempDir(), FrameBytes: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	big := testEvent(1)
	big.GetEvent().GetSubject().Argv = []string{strings.Repeat("x", 1<<20)}
	for _, r := range []*xdrv1.Record{big, testEvent(2), big, testEvent(3)} {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"pending": w.pending, "frame": w.frame, "scratch": w.scratch} {
		if cap(b) > 2*w.frameBytes {
			t.Errorf("%s buffer keeps %d bytes", name, cap(b))
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}
