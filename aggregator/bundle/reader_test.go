package bundle

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// readAll reads data with a Reader and returns the records and the error
// that ended it.
func readAll(data []byte) ([]*xdrv1.Record, error) {
	r := NewReader(bytes.NewReader(data))
	var recs []*xdrv1.Record
	for {
		rec, err := r.Next()
		if err != nil {
			return recs, err
		}
		recs = append(recs, rec)
	}
}

// testFrame compresses records into one frame, the way Writer does.
func testFrame(t testing.TB, recs ...*xdrv1.Record) []byte {
	t.Helper()
	var raw []byte
	for _, r := range recs {
		var err error
		if raw, err = appendDelimited(raw, r); err != nil {
			t.Fatal(err)
		}
	}
	return compressFrame(t, raw)
}

// compressFrame compresses raw bytes into one frame.
func compressFrame(t testing.TB, raw []byte) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderCRC(true))
	if err != nil {
		t.Fatal(err)
	}
	return enc.EncodeAll(raw, nil)
}

// cutBundle is a bundle written with a frame per flush, with the offset
// of each frame and the records before it.
type cutBundle struct {
	data    []byte
	records []*xdrv1.Record
	// frames maps the end offset of each frame (and 0) to the number of
	// records up to it.
	frames map[int]int
}

func writeCutBundle(t *testing.T) cutBundle {
	t.Helper()
	dir := t.TempDir()
	w, err := NewWriter(&WriterOptions{Dir: dir, Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	b := cutBundle{frames: map[int]int{0: 0}}
	records := 1 // header
	for seq := uint64(1); seq <= 20; seq++ {
		if err := w.Write(testEvent(seq)); err != nil {
			t.Fatal(err)
		}
		records++
		if seq%5 == 0 {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			b.frames[int(w.Stats().BytesWritten)] = records
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	path := listBundles(t, dir, Ext)[0]
	b.records = mustReadRecords(t, path)
	if b.data, err = os.ReadFile(path); err != nil {
		t.Fatal(err)
	}
	b.frames[len(b.data)] = len(b.records)
	return b
}

func TestReaderTruncated(t *testing.T) {
	b := writeCutBundle(t)
	frameStart := 0
	for cut := 0; cut <= len(b.data); cut++ {
		recs, err := readAll(b.data[:cut])
		if n, ok := b.frames[cut]; ok {
			frameStart = cut
			if err != io.EOF || len(recs) != n {
				t.Fatalf("cut at frame end %d: %d records, error %v; want %d, io.EOF", cut, len(recs), err, n)
			}
		} else {
			ce := asCorruptError(t, err)
			want := CorruptError{Offset: int64(frameStart), Records: b.frames[frameStart], Err: errTruncatedFrame}
			if d := cmp.Diff(want, *ce, cmp.Comparer(errorsEqual)); d != "" {
				t.Fatalf("cut at %d (-want +got):\n%s", cut, d)
			}
			if len(recs) != ce.Records {
				t.Fatalf("cut at %d: returned %d records, error says %d", cut, len(recs), ce.Records)
			}
		}
		for i, r := range recs {
			if !proto.Equal(r, b.records[i]) {
				t.Fatalf("cut at %d: record %d differs: %v", cut, i, r)
			}
		}
	}
}

func errorsEqual(a, b error) bool { return errors.Is(a, b) || errors.Is(b, a) }

func TestReaderDamage(t *testing.T) {
	ev1, ev2, ev3 := testEvent(1), testEvent(2), testEvent(3)
	f1 := testFrame(t, ev1, ev2)
	f2 := testFrame(t, ev3)
	skippable := func(n int) []byte {
		b := binary.LittleEndian.AppendUint32(nil, skippableMagic|3)
		b = binary.LittleEndian.AppendUint32(b, uint32(n))
		return append(b, make([]byte, n)...)
	}
	// A frame header: single segment, 1-byte content size 0, no checksum.
	emptyFrameHeader := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x00}
	blockHeader := func(last bool, typ, size int) []byte {
		v := uint32(size)<<3 | uint32(typ)<<1
		if last {
			v |= 1
		}
		return []byte{byte(v), byte(v >> 8), byte(v >> 16)}
	}
	flipped := bytes.Clone(f2)
	flipped[len(flipped)/2] ^= 0x55
	rec2, err := appendDelimited(nil, ev2)
	if err != nil {
		t.Fatal(err)
	}
	rec1, err := appendDelimited(nil, ev1)
	if err != nil {
		t.Fatal(err)
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

	tests := []struct {
		name    string
		in      []byte
		want    []*xdrv1.Record
		wantErr *CorruptError // nil: io.EOF; Err matched by substring
	}{
		{name: "empty", in: nil},
		{name: "two frames", in: cat(f1, f2), want: []*xdrv1.Record{ev1, ev2, ev3}},
		{name: "skippable frames", in: cat(skippable(0), f1, skippable(7), f2), want: []*xdrv1.Record{ev1, ev2, ev3}},
		{
			name: "empty frame", in: cat(emptyFrameHeader, blockHeader(true, 0, 0), f1),
			want: []*xdrv1.Record{ev1, ev2},
		},
		{
			name: "garbage after frame", in: cat(f1, []byte("garbage!")),
			want:    []*xdrv1.Record{ev1, ev2},
			wantErr: &CorruptError{Offset: int64(len(f1)), Records: 2, Err: errors.New("no zstd frame: bytes 67 61 72 62")},
		},
		{
			name: "stray bytes at end", in: cat(f1, []byte{0x28, 0xb5}),
			want:    []*xdrv1.Record{ev1, ev2},
			wantErr: &CorruptError{Offset: int64(len(f1)), Records: 2, Err: errTruncatedFrame},
		},
		{
			name: "truncated skippable frame", in: cat(f1, skippable(10)[:12]),
			want:    []*xdrv1.Record{ev1, ev2},
			wantErr: &CorruptError{Offset: int64(len(f1)), Records: 2, Err: errTruncatedFrame},
		},
		{
			name: "flipped byte", in: cat(f1, flipped, f1),
			want:    []*xdrv1.Record{ev1, ev2},
			wantErr: &CorruptError{Offset: int64(len(f1)), Records: 2, Err: errors.New("decompress zstd frame")},
		},
		{
			name: "truncated record in frame", in: cat(f2, compressFrame(t, cat(rec1, rec2[:len(rec2)-3]))),
			want:    []*xdrv1.Record{ev3, ev1},
			wantErr: &CorruptError{Offset: int64(len(f2)), Records: 2, Err: errTruncatedRecord},
		},
		{
			name: "truncated length in frame", in: compressFrame(t, cat(rec1, []byte{0x80})),
			want:    []*xdrv1.Record{ev1},
			wantErr: &CorruptError{Offset: 0, Records: 1, Err: errTruncatedRecord},
		},
		{
			name: "record too long", in: compressFrame(t, cat(rec1, protowire.AppendVarint(nil, MaxRecordSize+1), make([]byte, 100))),
			want:    []*xdrv1.Record{ev1},
			wantErr: &CorruptError{Offset: 0, Records: 1, Err: errors.New("record length 4194305 larger than 4194304")},
		},
		{
			name: "bad protobuf", in: compressFrame(t, cat(rec1, []byte{3, 0xff, 0xff, 0xff})),
			want:    []*xdrv1.Record{ev1},
			wantErr: &CorruptError{Offset: 0, Records: 1, Err: errors.New("bad record")},
		},
		{
			name: "reserved block type", in: cat(f1, emptyFrameHeader, blockHeader(true, 3, 0)),
			want:    []*xdrv1.Record{ev1, ev2},
			wantErr: &CorruptError{Offset: int64(len(f1) + len(emptyFrameHeader)), Records: 2, Err: errors.New("reserved zstd block type")},
		},
		{
			name: "block too large", in: cat(emptyFrameHeader, blockHeader(false, 0, 10), make([]byte, 10), blockHeader(true, 2, maxBlockSize+1)),
			wantErr: &CorruptError{Offset: int64(len(emptyFrameHeader) + 13), Records: 0, Err: errors.New("zstd block of 131073 bytes")},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readAll(tc.in)
			if d := cmp.Diff(tc.want, got, protocmp.Transform()); d != "" {
				t.Errorf("records (-want +got):\n%s", d)
			}
			if tc.wantErr == nil {
				if err != io.EOF {
					t.Errorf("got error %v, want io.EOF", err)
				}
				return
			}
			ce := asCorruptError(t, err)
			if ce.Offset != tc.wantErr.Offset || ce.Records != tc.wantErr.Records || !strings.Contains(ce.Err.Error(), tc.wantErr.Err.Error()) {
				t.Errorf("got %v, want %v", ce, tc.wantErr)
			}
		})
	}
}

func TestReaderErrorSticky(t *testing.T) {
	r := NewReader(bytes.NewReader([]byte("not a bundle")))
	_, err1 := r.Next()
	_, err2 := r.Next()
	if err1 == nil || err1 != err2 {
		t.Errorf("errors %v then %v, want the same error twice", err1, err2)
	}
}

type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

func TestReaderReadError(t *testing.T) {
	eio := errors.New("input/output error")
	_, err := NewReader(failingReader{eio}).Next()
	var ce *CorruptError
	if !errors.Is(err, eio) || errors.As(err, &ce) {
		t.Errorf("got %v, want the read error, not damage", err)
	}
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "b"+Ext)
	frame := testFrame(t, testEvent(1), testEvent(2))
	if err := os.WriteFile(path, append(frame, 1, 2, 3, 4, 5), 0o600); err != nil {
		t.Fatal(err)
	}

	recs, err := readRecords(t, path)
	if len(recs) != 2 {
		t.Errorf("read %d records, want 2", len(recs))
	}
	wantMsg := path + ": corrupt at offset " + strconv.Itoa(len(frame)) + " after 2 records: no zstd frame: bytes 01 02 03 04"
	if err == nil || err.Error() != wantMsg {
		t.Errorf("got error %v, want %q", err, wantMsg)
	}
	asCorruptError(t, err)

	stop := errors.New("stop")
	calls := 0
	err = ReadFile(path, func(*xdrv1.Record) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Errorf("callback error: got %v after %d calls, want it unchanged after 1", err, calls)
	}

	if err := ReadFile(filepath.Join(dir, "missing"), nil); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: got %v, want fs.ErrNotExist", err)
	}
}
