package bundle

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"google.golang.org/protobuf/proto"
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
