package bundle

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"

	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// sealedRaw writes a sealed bundle of events 1..5 and a footprint and
// returns its delimited records, trailer last.
func sealedRaw(t *testing.T) [][]byte {
	t.Helper()
	dir := t.TempDir()
	w, err := NewWriter(&WriterOptions{Dir: dir, Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := writeEvents(t, w, 1, 6); err != nil {
		t.Fatal(err)
	}
	fp := &xdrv1.Record{Record: &xdrv1.Record_Footprint{Footprint: &xdrv1.Footprint{
		HashId: 9, FirstSeen: t0.Unix() - 10, LastSeen: t0.Unix() + 10, Count: 4,
	}}}
	if err := w.Write(fp); err != nil {
		t.Fatal(err)
	}
	w.MarkCritical()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(listBundles(t, dir, Ext)[0])
	if err != nil {
		t.Fatal(err)
	}
	return rawRecords(t, data)
}

// assemble compresses records into a bundle: all but the last in one
// frame, the last alone.
func assemble(t *testing.T, raw [][]byte) []byte {
	t.Helper()
	if len(raw) == 0 {
		return nil
	}
	last := len(raw) - 1
	return append(compressFrame(t, bytes.Join(raw[:last], nil)), compressFrame(t, raw[last])...)
}

// editRecord returns raw with record i decoded, changed by edit and
// encoded again.
func editRecord(t *testing.T, raw [][]byte, i int, edit func(*xdrv1.Record)) [][]byte {
	t.Helper()
	recs, err := readAll(compressFrame(t, raw[i]))
	if len(recs) != 1 {
		t.Fatalf("record %d: %v", i, err)
	}
	edit(recs[0])
	b, err := appendDelimited(nil, recs[0])
	if err != nil {
		t.Fatal(err)
	}
	out := append([][]byte{}, raw...)
	out[i] = b
	return out
}

func TestVerify(t *testing.T) {
	raw := sealedRaw(t)
	last := len(raw) - 1
	trailer := func(edit func(*xdrv1.BundleTrailer)) [][]byte {
		return editRecord(t, raw, last, func(r *xdrv1.Record) { edit(r.GetTrailer()) })
	}
	good, err := readAll(assemble(t, raw))
	if len(good) != len(raw) {
		t.Fatal(err)
	}
	tr := good[last].GetTrailer()
	without := func(i int) [][]byte { return append(append([][]byte{}, raw[:i]...), raw[i+1:]...) }

	tests := []struct {
		name       string
		data       []byte
		wantSealed bool
		wantErrs   []string // substrings of the error; none: no error
		mismatch   bool     // the error wraps ErrTrailerMismatch
		corrupt    bool     // the error wraps a *CorruptError
	}{
		{name: "good", data: assemble(t, raw), wantSealed: true},
		{name: "unsealed", data: compressFrame(t, bytes.Join(raw[:last], nil))},
		{
			name: "altered record", wantSealed: true, mismatch: true,
			data:     assemble(t, editRecord(t, raw, 2, func(r *xdrv1.Record) { r.GetEvent().GetSubject().Exe = "/tmp/evil" })),
			wantErrs: []string{"trailer does not match the records: records_sha256 "},
		},
		{
			name: "altered time", wantSealed: true, mismatch: true,
			data:     assemble(t, editRecord(t, raw, 3, func(r *xdrv1.Record) { r.GetEvent().TimestampNs = 1 })),
			wantErrs: []string{"time range 1..", "records_sha256"},
		},
		{
			name: "record removed", wantSealed: true, mismatch: true,
			data:     assemble(t, without(4)),
			wantErrs: []string{"4 event records, trailer says 5", "records_sha256"},
		},
		{
			name: "trailer counts", wantSealed: true, mismatch: true,
			data: assemble(t, trailer(func(tr *xdrv1.BundleTrailer) {
				tr.RecordCounts["event"] = 6
				tr.RecordCounts["statistics"] = 1
			})),
			wantErrs: []string{"records: 5 event records, trailer says 6; 0 statistics records, trailer says 1"},
		},
		{
			name: "trailer times", wantSealed: true, mismatch: true,
			data:     assemble(t, trailer(func(tr *xdrv1.BundleTrailer) { tr.LastTimeNs++ })),
			wantErrs: []string{"trailer does not match the records: time range"},
		},
		{
			name: "records after trailer", wantSealed: true, mismatch: true,
			data:     append(assemble(t, raw), compressFrame(t, raw[1])...),
			wantErrs: []string{"trailer does not match the records: 1 records after the trailer"},
		},
		{
			name: "no header", wantSealed: true, mismatch: true,
			data:     assemble(t, raw[1:]),
			wantErrs: []string{"first record (event) is not a header", "0 header records, trailer says 1"},
		},
		{name: "empty", wantErrs: []string{"no header: the file holds no record"}},
		{
			name: "damaged", corrupt: true,
			data:     assemble(t, raw)[:40],
			wantErrs: []string{"corrupt at offset 0 after 0 records"},
		},
		{
			name: "damaged after trailer", wantSealed: true, corrupt: true,
			data:     append(assemble(t, raw), "junk"...),
			wantErrs: []string{"after 8 records: no zstd frame"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "b"+Ext)
			if err := os.WriteFile(path, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			res, err := Verify(path)
			if res == nil {
				t.Fatalf("no result (error %v)", err)
			}
			if len(tc.wantErrs) == 0 && err != nil {
				t.Fatalf("got error %v", err)
			}
			for _, s := range tc.wantErrs {
				if err == nil || !strings.Contains(err.Error(), s) {
					t.Errorf("got error %v, want it to say %q", err, s)
				}
			}
			if err != nil && !strings.HasPrefix(err.Error(), path+": ") {
				t.Errorf("error %q does not start with the path", err)
			}
			if got := errors.Is(err, ErrTrailerMismatch); got != tc.mismatch {
				t.Errorf("error %v: mismatch %v, want %v", err, got, tc.mismatch)
			}
			var ce *CorruptError
			if got := errors.As(err, &ce); got != tc.corrupt {
				t.Errorf("error %v: damage %v, want %v", err, got, tc.corrupt)
			}
			if res.Sealed != tc.wantSealed || res.Sealed != (res.Trailer != nil) {
				t.Errorf("sealed %v, trailer %v; want sealed %v", res.Sealed, res.Trailer, tc.wantSealed)
			}
			if tc.name == "good" || tc.name == "unsealed" {
				want := &VerifyResult{
					Header:        good[0].GetHeader(),
					Counts:        map[string]uint64{"header": 1, "event": 5, "footprint": 1},
					FirstTimeNs:   tr.GetFirstTimeNs(),
					LastTimeNs:    tr.GetLastTimeNs(),
					RecordsSha256: tr.GetRecordsSha256(),
				}
				if tc.wantSealed {
					want.Trailer, want.Sealed, want.Critical = tr, true, true
				}
				if d := cmp.Diff(want, res, cmp.Comparer(proto.Equal)); d != "" {
					t.Errorf("result (-want +got):\n%s", d)
				}
			}
		})
	}
}

func TestReadFileVerified(t *testing.T) {
	raw := sealedRaw(t)
	path := filepath.Join(t.TempDir(), "b"+Ext)
	if err := os.WriteFile(path, assemble(t, raw), 0o600); err != nil {
		t.Fatal(err)
	}
	var types []string
	res, err := ReadFileVerified(path, func(r *xdrv1.Record) error {
		types = append(types, recordType(r))
		return nil
	})
	if err != nil || !res.Sealed {
		t.Fatalf("got %+v, %v", res, err)
	}
	want := []string{"header", "event", "event", "event", "event", "event", "footprint", "trailer"}
	if d := cmp.Diff(want, types); d != "" {
		t.Errorf("records (-want +got):\n%s", d)
	}

	stop := errors.New("stop")
	calls := 0
	res, err = ReadFileVerified(path, func(*xdrv1.Record) error { calls++; return stop })
	if err != stop || res != nil || calls != 1 {
		t.Errorf("callback error: got %v, %v after %d calls; want it unchanged, no result, after 1", res, err, calls)
	}
	if _, err := Verify(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: got %v", err)
	}
}
