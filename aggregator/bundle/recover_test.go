package bundle

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// testHeader returns a header record as the Writer writes it.
func testHeader(seq uint64) *xdrv1.Record {
	return &xdrv1.Record{Record: &xdrv1.Record_Header{Header: &xdrv1.BundleHeader{
		FormatVersion: FormatVersion, CreateTimeNs: t0.UnixNano(), BundleSeq: seq,
	}}}
}

// crashedBundle is an unsealed bundle a Writer left behind.
type crashedBundle struct {
	path      string
	data      []byte
	frameEnds []int // end offset of each frame
}

// writeCrashed writes events 1..n into a new bundle in dir, flushing after
// every 10th, and abandons the Writer without Close, as a crash would.
// With critical it marks the bundle critical after the first frame.
func writeCrashed(t *testing.T, dir string, n uint64, critical bool) crashedBundle {
	t.Helper()
	w, err := NewWriter(&WriterOptions{Dir: dir, Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	var b crashedBundle
	for seq := uint64(1); seq <= n; seq++ {
		if err := w.Write(testEvent(seq)); err != nil {
			t.Fatal(err)
		}
		if seq%10 == 0 {
			if critical && seq == 10 {
				w.MarkCritical()
			}
			if err := w.Sync(); err != nil {
				t.Fatal(err)
			}
			b.frameEnds = append(b.frameEnds, int(w.Stats().BytesWritten))
		}
	}
	b.path = w.cur.path
	// Release the file as the kernel does for a killed process; the
	// Writer is dropped.
	if err := w.cur.f.Close(); err != nil {
		t.Fatal(err)
	}
	if b.data, err = os.ReadFile(b.path); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRecover(t *testing.T) {
	frameOf := func(recs ...*xdrv1.Record) []byte { return testFrame(t, recs...) }
	badRecordFrame := func() []byte {
		var raw []byte
		for _, r := range []*xdrv1.Record{testEvent(11), testEvent(12)} {
			raw, _ = appendDelimited(raw, r)
		}
		return compressFrame(t, append(raw, 0x20, 0x01))
	}
	tests := []struct {
		name string
		// file makes the .part file's name and content from a bundle
		// crashed with events 1..25 (frames of header+10, 10; 5 lost).
		file        func(b crashedBundle) (name string, data []byte)
		critical    bool
		wantEvents  []uint64 // nil: not recovered
		wantCut     int      // bytes; -1: don't check
		wantCorrupt bool     // set aside
		wantRemoved bool     // empty, removed
	}{
		{
			name:       "abandoned after flush",
			file:       func(b crashedBundle) (string, []byte) { return filepath.Base(b.path), b.data },
			wantEvents: seqRange(1, 21),
		},
		{
			name: "cut in a frame",
			file: func(b crashedBundle) (string, []byte) {
				return filepath.Base(b.path), b.data[:b.frameEnds[0]+20]
			},
			wantEvents: seqRange(1, 11), wantCut: 20,
		},
		{
			name: "garbage appended",
			file: func(b crashedBundle) (string, []byte) {
				return filepath.Base(b.path), append(bytes.Clone(b.data), "\x00garbage\xff"...)
			},
			wantEvents: seqRange(1, 21), wantCut: 9,
		},
		{
			name: "bad record in a frame",
			file: func(b crashedBundle) (string, []byte) {
				data := append(bytes.Clone(b.data[:b.frameEnds[0]]), badRecordFrame()...)
				return filepath.Base(b.path), append(data, frameOf(testEvent(13))...)
			},
			wantEvents: seqRange(1, 13), wantCut: -1,
		},
		{
			name:       "critical",
			critical:   true,
			file:       func(b crashedBundle) (string, []byte) { return filepath.Base(b.path), b.data },
			wantEvents: seqRange(1, 21),
		},
		{
			name: "trailer of a failed seal",
			file: func(b crashedBundle) (string, []byte) {
				tr := &xdrv1.Record{Record: &xdrv1.Record_Trailer{Trailer: &xdrv1.BundleTrailer{RecordsSha256: "stale"}}}
				return filepath.Base(b.path), append(bytes.Clone(b.data), frameOf(tr)...)
			},
			wantEvents: seqRange(1, 21), wantCut: -1,
		},
		{
			name: "header frame cut",
			file: func(b crashedBundle) (string, []byte) {
				return filepath.Base(b.path), b.data[:b.frameEnds[0]-1]
			},
			wantCorrupt: true,
		},
		{
			name: "no header",
			file: func(b crashedBundle) (string, []byte) {
				return filepath.Base(b.path), b.data[b.frameEnds[0]:]
			},
			wantCorrupt: true,
		},
		{
			name: "not a bundle",
			file: func(b crashedBundle) (string, []byte) {
				return "xdr-20250304T050607.000Z-000099.crit.gpbz.part", []byte("no zstd here")
			},
			wantCorrupt: true,
		},
		{
			name:        "empty",
			file:        func(b crashedBundle) (string, []byte) { return filepath.Base(b.path), nil },
			wantRemoved: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			b := writeCrashed(t, dir, 25, tc.critical)
			if err := os.Remove(b.path); err != nil {
				t.Fatal(err)
			}
			name, data := tc.file(b)
			part := filepath.Join(dir, name)
			if err := os.WriteFile(part, data, 0o640); err != nil {
				t.Fatal(err)
			}
			w, err := NewWriter(&WriterOptions{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			st := w.Stats()
			base := strings.TrimSuffix(strings.TrimSuffix(name, PartExt), critMark)
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			var wantNames []string
			wantStats := WriterStats{}
			switch {
			case tc.wantRemoved:
				wantStats.EmptyRemoved = 1
			case tc.wantCorrupt:
				wantNames = []string{strings.TrimSuffix(name, PartExt) + CorruptExt}
				wantStats.SetAside = 1
			default:
				wantNames = []string{fileName(base, tc.critical, stateSealed)}
				wantStats.Recovered = 1
				wantStats.RecoveredRecords = uint64(len(tc.wantEvents))
				wantStats.RecoveredCutBytes = st.RecoveredCutBytes
				if tc.wantCut >= 0 && st.RecoveredCutBytes != uint64(tc.wantCut) {
					t.Errorf("cut %d bytes, want %d", st.RecoveredCutBytes, tc.wantCut)
				}
			}
			if d := cmp.Diff(wantNames, names); d != "" {
				t.Fatalf("files after recovery (-want +got):\n%s", d)
			}
			if d := cmp.Diff(wantStats, st); d != "" {
				t.Errorf("stats (-want +got):\n%s", d)
			}
			if tc.wantCorrupt {
				kept, err := os.ReadFile(filepath.Join(dir, wantNames[0]))
				if err != nil || !bytes.Equal(kept, data) {
					t.Errorf("file set aside changed (%v)", err)
				}
			}
			if tc.wantEvents == nil {
				return
			}

			sealed := filepath.Join(dir, wantNames[0])
			res, err := Verify(sealed)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !res.Sealed || !res.Recovered || res.Critical != tc.critical {
				t.Errorf("sealed %v, recovered %v, critical %v; want true, true, %v", res.Sealed, res.Recovered, res.Critical, tc.critical)
			}
			recs := mustReadRecords(t, sealed)
			if d := cmp.Diff(testHeader(1), recs[0], protocmp.Transform()); d != "" {
				t.Errorf("header (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.wantEvents, eventSeqs(recs)); d != "" {
				t.Errorf("events (-want +got):\n%s", d)
			}
			wantCounts := map[string]uint64{"header": 1, "event": uint64(len(tc.wantEvents))}
			if d := cmp.Diff(wantCounts, recs[len(recs)-1].GetTrailer().GetRecordCounts()); d != "" {
				t.Errorf("trailer counts (-want +got):\n%s", d)
			}

			// A second start finds nothing to do; the next bundle
			// continues the seq.
			if err := w.Write(testEvent(100)); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			w2, err := NewWriter(&WriterOptions{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			if st := w2.Stats(); st != (WriterStats{}) {
				t.Errorf("second start: stats %+v, want nothing done", st)
			}
			files := listBundles(t, dir, Ext)
			if len(files) != 2 || mustReadRecords(t, files[1])[0].GetHeader().GetBundleSeq() != 2 {
				t.Errorf("bundles %v, want the recovered one and seq 2", files)
			}
		})
	}
}

// TestRecoverSeveral recovers several files in one start and checks the
// log summary.
func TestRecoverSeveral(t *testing.T) {
	dir := t.TempDir()
	b := writeCrashed(t, dir, 15, false)
	var paths []string
	for i := range 3 {
		p := filepath.Join(dir, fmt.Sprintf("xdr-20250304T050607.%03dZ-%06d.gpbz.part", i, i+1))
		if err := os.WriteFile(p, b.data, 0o640); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	if err := os.Remove(b.path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "xdr-20250304T050608.000Z-000004.gpbz.part"), []byte("junk"), 0o640); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	w, err := NewWriter(&WriterOptions{Dir: dir, Logger: newTextLogger(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	want := WriterStats{Recovered: 3, RecoveredRecords: 30, SetAside: 1}
	if d := cmp.Diff(want, w.Stats()); d != "" {
		t.Errorf("stats (-want +got):\n%s", d)
	}
	for _, p := range paths {
		if _, err := Verify(strings.TrimSuffix(p, PartExt) + Ext); err != nil {
			t.Error(err)
		}
	}
	for _, s := range []string{
		"bundle.recovered=3 bundle.records_kept=30 bundle.bytes_cut=0 bundle.set_aside=1",
		`msg="unsealed bundle without a readable header set aside"`,
	} {
		if !strings.Contains(logs.String(), s) {
			t.Errorf("log does not contain %q:\n%s", s, logs.String())
		}
	}
}

// TestRecoverFailure checks that a .part whose recovery fails stays, is
// counted and logged, and is recovered at the next start.
func TestRecoverFailure(t *testing.T) {
	dir := t.TempDir()
	b := writeCrashed(t, dir, 15, false)
	// A file in the way of the sealed name makes the rename fail.
	sealed := strings.TrimSuffix(b.path, PartExt) + Ext
	if err := os.WriteFile(sealed, []byte("in the way"), 0o640); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	w, err := NewWriter(&WriterOptions{Dir: dir, Logger: newTextLogger(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	if st := w.Stats(); st.WriteErrors != 1 || st.Recovered != 0 {
		t.Errorf("stats %+v, want 1 write error", st)
	}
	if !strings.Contains(logs.String(), "file exists") {
		t.Errorf("failure not logged:\n%s", logs.String())
	}
	if _, err := os.Stat(b.path); err != nil {
		t.Errorf("unrecovered file: %v", err)
	}
	if got, _ := os.ReadFile(sealed); string(got) != "in the way" {
		t.Errorf("file in the way overwritten")
	}

	if err := os.Remove(sealed); err != nil {
		t.Fatal(err)
	}
	w, err = NewWriter(&WriterOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if st := w.Stats(); st.Recovered != 1 || st.RecoveredRecords != 10 {
		t.Errorf("second start: stats %+v, want 1 bundle of 10 records recovered", st)
	}
	if _, err := Verify(sealed); err != nil {
		t.Error(err)
	}
}

// crashChildEnv switches the test binary into the child of
// TestCrashKill; its value is the bundle directory.
const crashChildEnv = "XDR_BUNDLE_CRASH_CHILD"

// TestMain runs the crash child when asked to, else the tests.
func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		return
	}
	os.Exit(m.Run())
}

// crashChild writes events in frames of 10 for ever, marks its bundle
// critical after the first frame, and reports each frame flushed on
// stdout, until it is killed.
func crashChild(dir string) {
	w, err := NewWriter(&WriterOptions{Dir: dir, MaxBytes: 1 << 40, MaxAge: time.Hour})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	for seq := uint64(1); ; seq++ {
		if err := w.Write(testEvent(seq)); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		if seq%10 != 0 {
			continue
		}
		if seq == 10 {
			w.MarkCritical()
		}
		if err := w.Flush(); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("flushed", seq)
	}
}

// TestCrashKill runs a child process that writes a bundle, kills it with
// SIGKILL while it writes, and recovers its bundle: kill -9 of the
// aggregator mid-write.
func TestCrashKill(t *testing.T) {
	for round := range 3 {
		dir := t.TempDir()
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill it after a few frames, at a different point each round.
		var flushed uint64
		sc := bufio.NewScanner(out)
		for flushed < uint64(50+round*70) && sc.Scan() {
			n, ok := strings.CutPrefix(sc.Text(), "flushed ")
			if !ok {
				t.Fatalf("child: %s", sc.Text())
			}
			if flushed, err = strconv.ParseUint(n, 10, 64); err != nil {
				t.Fatal(err)
			}
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		go io.Copy(io.Discard, out)
		if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
			t.Fatalf("child ended with %v, want killed (flushed %d)", err, flushed)
		}
		if flushed == 0 {
			t.Fatal("child flushed nothing")
		}

		parts := listBundles(t, dir, PartExt)
		if len(parts) != 1 || !strings.HasSuffix(parts[0], CritExt+".part") {
			t.Fatalf("files %v, want one critical .part", parts)
		}
		w, err := NewWriter(&WriterOptions{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		files := listBundles(t, dir, CritExt)
		if len(files) != 1 || len(listBundles(t, dir, PartExt)) != 0 {
			t.Fatalf("after recovery: files %v", files)
		}
		res, err := Verify(files[0])
		if err != nil {
			t.Fatal(err)
		}
		events := eventSeqs(mustReadRecords(t, files[0]))
		n := uint64(len(events))
		// Every frame reported flushed is kept, and only whole frames.
		if n < flushed || n%10 != 0 || cmp.Diff(seqRange(1, n+1), events) != "" {
			t.Fatalf("recovered events 1..%d (%d events), flushed %d", n, len(events), flushed)
		}
		if !res.Recovered || !res.Critical || res.Counts["event"] != n {
			t.Errorf("verify result %+v", res)
		}
		if st := w.Stats(); st.Recovered != 1 || st.RecoveredRecords != n {
			t.Errorf("stats %+v, want 1 bundle of %d records recovered", st, n)
		}
		t.Logf("round %d: killed after %d events flushed, recovered %d, cut %d bytes", round, flushed, n, w.Stats().RecoveredCutBytes)
	}
}
