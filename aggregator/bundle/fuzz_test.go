package bundle

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

func FuzzReader(f *testing.F) {
	valid := testFrame(f, testEvent(1), testEvent(2))
	valid = append(valid, testFrame(f, testEvent(3))...)
	f.Add(valid)
	f.Add(valid[:len(valid)/2])
	f.Add(valid[:len(valid)-1])
	f.Add(valid[:5])
	f.Add(compressFrame(f, []byte{0x05, 0x12, 0x03, 0x08, 0x01}))
	f.Add([]byte{0x53, 0x2a, 0x4d, 0x18, 0x02, 0x00, 0x00, 0x00, 0xaa, 0xbb})
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x00, 0x01, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data))
		records := 0
		for {
			rec, err := r.Next()
			if err == nil {
				records++
				// A record read must encode again.
				if _, err := proto.Marshal(rec); err != nil {
					t.Fatalf("record %d does not encode: %v", records, err)
				}
				continue
			}
			if err == io.EOF {
				return
			}
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want io.EOF or a *CorruptError", err)
			}
			if ce.Offset < 0 || ce.Offset > int64(len(data)) || ce.Records != records {
				t.Fatalf("got %v for %d bytes after %d records", ce, len(data), records)
			}
			if _, again := r.Next(); again != err {
				t.Fatalf("second Next returned %v, want %v", again, err)
			}
			return
		}
	})
}

// FuzzRecover recovers arbitrary bytes left as an unsealed bundle: the
// result must be a sealed bundle that verifies and keeps every record a
// Reader reads before the damage (or a trailer), or the file set aside
// when it does not start with a header.
func FuzzRecover(f *testing.F) {
	hdr := testHeader(1)
	valid := append(testFrame(f, hdr, testEvent(1)), testFrame(f, testEvent(2), testEvent(3))...)
	trailer := &xdrv1.Record{Record: &xdrv1.Record_Trailer{Trailer: &xdrv1.BundleTrailer{}}}
	var badTail []byte
	badTail, _ = appendDelimited(badTail, testEvent(4))
	f.Add(valid)
	f.Add(valid[:len(valid)-3])
	f.Add(append(bytes.Clone(valid), "garbage"...))
	f.Add(append(bytes.Clone(valid), testFrame(f, trailer, testEvent(5))...))
	f.Add(append(bytes.Clone(valid), compressFrame(f, append(badTail, 0x7f))...))
	f.Add(testFrame(f, testEvent(1)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		const base = "xdr-20250304T050607.891Z-000001"
		if err := os.WriteFile(filepath.Join(dir, base+PartExt), data, 0o600); err != nil {
			t.Fatal(err)
		}
		read, _ := readAll(data)
		for i, r := range read {
			if r.GetTrailer() != nil {
				read = read[:i]
				break
			}
		}
		w, err := NewWriter(&WriterOptions{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		st := w.Stats()
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case len(data) == 0:
			if st.EmptyRemoved != 1 || len(entries) != 0 {
				t.Fatalf("empty file: stats %+v, files %v", st, entries)
			}
		case len(read) == 0 || read[0].GetHeader() == nil:
			if st.SetAside != 1 || len(entries) != 1 || entries[0].Name() != base+CorruptExt {
				t.Fatalf("no header: stats %+v, files %v", st, entries)
			}
		default:
			if st.Recovered != 1 || st.RecoveredRecords != uint64(len(read)-1) || len(entries) != 1 || entries[0].Name() != base+Ext {
				t.Fatalf("stats %+v, files %v; want 1 recovered with %d records", st, entries, len(read)-1)
			}
			var got []*xdrv1.Record
			res, err := ReadFileVerified(filepath.Join(dir, base+Ext), func(r *xdrv1.Record) error {
				got = append(got, r)
				return nil
			})
			if err != nil {
				t.Fatalf("recovered bundle does not verify: %v", err)
			}
			if !res.Recovered || len(got) != len(read)+1 {
				t.Fatalf("recovered %v, %d records; want %d and a trailer", res.Recovered, len(got), len(read))
			}
			for i, r := range read {
				if !proto.Equal(r, got[i]) {
					t.Fatalf("record %d differs", i)
				}
			}
		}
	})
}
