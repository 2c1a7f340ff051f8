package bundle

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"

	"github.com/klauspost/compress/zstd"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// Zstd frame structure (RFC 8878, section 3.1).
const (
	zstdMagic          = 0xFD2FB528
	skippableMagic     = 0x184D2A50 // low 4 bits are free
	skippableMagicMask = 0xFFFFFFF0
	blockHeaderSize    = 3
	maxBlockSize       = 128 << 10
	checksumSize       = 4
	// maxCompressedFrame bounds a frame that decompresses to at most
	// maxFrameSize: raw blocks plus their headers, frame header and
	// checksum.
	maxCompressedFrame = maxFrameSize + (maxFrameSize/maxBlockSize+1)*blockHeaderSize + 18 + checksumSize
	// Frame buffers larger than this are dropped after use.
	keepBuffer = 1 << 20
)

var (
	errTruncatedFrame  = errors.New("truncated zstd frame")
	errTruncatedRecord = errors.New("truncated record")
)

// decoder decompresses frames for every Reader; DecodeAll is safe for
// concurrent use.
var decoder = sync.OnceValues(func() (*zstd.Decoder, error) {
	return zstd.NewReader(nil,
		zstd.WithDecoderMaxMemory(maxFrameSize),
		zstd.WithDecoderMaxWindow(maxFrameSize))
})

// CorruptError reports damage in a bundle: bytes that are not a complete,
// valid zstd frame of delimited records.
type CorruptError struct {
	// Offset is the file offset where the damage starts: of the frame
	// that is cut or does not decompress or holds a bad record, of an
	// invalid block header, or of bytes that do not start a frame.
	Offset int64
	// Records is the number of records read before the damage.
	Records int
	Err     error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("corrupt at offset %d after %d records: %v", e.Offset, e.Records, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// Reader reads the records of a bundle stream. It walks the zstd frame
// structure itself, to know where each frame starts, and decompresses
// one frame at a time, so its memory is bounded by the largest frame.
// Records are returned as read; the Reader does not check that the first
// is a header or that a trailer matches, and a bundle without trailer
// (a .part) reads without error.
//
// A Reader is not safe for concurrent use. It does not close the
// underlying reader.
type Reader struct {
	br       *bufio.Reader
	off      int64  // stream offset of the next unread byte
	frameOff int64  // offset of the frame rest was decoded from, -1 before the first
	frame    []byte // compressed frame
	data     []byte // decompressed frame
	rest     []byte // records of data not yet returned
	raw      []byte // delimited bytes of the record returned last, in data
	// clean is the offset up to which the stream holds whole frames
	// all of whose records have been returned.
	clean   int64
	records int
	err     error // sticky
}

// NewReader returns a Reader reading a bundle from r.
func NewReader(r io.Reader) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, 64<<10), frameOff: -1}
}

// Next returns the next record. At the end of a stream that ends between
// frames it returns io.EOF. On damage it returns a *CorruptError after
// every record before the damage: when a frame does not decompress, none
// of its records; when a record in a decompressed frame is bad, the
// records before it. Errors reading the underlying reader are returned
// wrapped. Once Next has returned an error it returns the same error.
func (r *Reader) Next() (*xdrv1.Record, error) {
	if r.err != nil {
		return nil, r.err
	}
	for len(r.rest) == 0 {
		if err := r.nextFrame(); err != nil {
			r.err = err
			return nil, err
		}
	}
	rec, err := r.decodeRecord()
	if err != nil {
		r.err = err
		return nil, err
	}
	r.records++
	return rec, nil
}

func (r *Reader) corrupt(off int64, err error) error {
	return &CorruptError{Offset: off, Records: r.records, Err: err}
}

func (r *Reader) decodeRecord() (*xdrv1.Record, error) {
	size, n := protowire.ConsumeVarint(r.rest)
	switch {
	case n < 0:
		return nil, r.corrupt(r.frameOff, errTruncatedRecord)
	case size > MaxRecordSize:
		return nil, r.corrupt(r.frameOff, fmt.Errorf("record length %d larger than %d", size, MaxRecordSize))
	case size > uint64(len(r.rest)-n):
		return nil, r.corrupt(r.frameOff, errTruncatedRecord)
	}
	rec := new(xdrv1.Record)
	if err := proto.Unmarshal(r.rest[n:n+int(size)], rec); err != nil {
		return nil, r.corrupt(r.frameOff, fmt.Errorf("bad record: %w", err))
	}
	r.raw = r.rest[:n+int(size)]
	r.rest = r.rest[n+int(size):]
	return rec, nil
}

// returned returns the delimited bytes of the records Next has returned
// from the frame at offset r.clean, the frame being read: none if Next
// has not yet decompressed it.
func (r *Reader) returned() []byte {
	if r.frameOff != r.clean {
		return nil
	}
	return r.data[:len(r.data)-len(r.rest)]
}

// nextFrame reads frames until one decompresses to some bytes, and makes
// them r.rest. It skips skippable frames.
func (r *Reader) nextFrame() error {
	dec, err := decoder()
	if err != nil {
		return fmt.Errorf("create zstd decoder: %w", err)
	}
	for {
		start := r.off
		r.clean = start
		if cap(r.frame) > keepBuffer {
			r.frame = nil
		}
		r.frame = r.frame[:0]
		switch err := r.read(4); {
		case err == io.EOF && r.off == start:
			return io.EOF
		case err != nil:
			return r.frameErr(start, err)
		}
		magic := binary.LittleEndian.Uint32(r.frame)
		switch {
		case magic == zstdMagic:
		case magic&skippableMagicMask == skippableMagic:
			if err := r.skipFrame(); err != nil {
				return r.frameErr(start, err)
			}
			continue
		default:
			return r.corrupt(start, fmt.Errorf("no zstd frame: bytes % x", r.frame))
		}
		if err := r.readFrame(); err != nil {
			return r.frameErr(start, err)
		}
		if cap(r.data) > keepBuffer {
			r.data = nil
		}
		r.data, err = dec.DecodeAll(r.frame, r.data[:0])
		if err != nil {
			return r.corrupt(start, fmt.Errorf("decompress zstd frame: %w", err))
		}
		r.frameOff = start
		r.rest = r.data
		if len(r.rest) > 0 {
			return nil
		}
	}
}

// frameErr turns an error met reading the frame at off into the error
// Next returns: a CorruptError for damage or a cut, else a read error.
func (r *Reader) frameErr(off int64, err error) error {
	var ce *CorruptError
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return r.corrupt(off, errTruncatedFrame)
	case errors.As(err, &ce):
		return err
	default:
		return fmt.Errorf("read at offset %d: %w", r.off, err)
	}
}

// read appends the next n bytes of the stream to r.frame. It returns
// io.EOF if the stream ends before them.
func (r *Reader) read(n int) error {
	l := len(r.frame)
	r.frame = slices.Grow(r.frame, n)[:l+n]
	got, err := io.ReadFull(r.br, r.frame[l:])
	r.off += int64(got)
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	return err
}

// skipFrame skips a skippable frame whose magic was read.
func (r *Reader) skipFrame() error {
	if err := r.read(4); err != nil {
		return err
	}
	// Discard in steps: the size may not fit an int on 32-bit systems.
	for size := int64(binary.LittleEndian.Uint32(r.frame[4:])); size > 0; {
		got, err := r.br.Discard(int(min(size, 1<<20)))
		r.off += int64(got)
		size -= int64(got)
		if err != nil {
			return err
		}
	}
	return nil
}

// readFrame reads the rest of a zstd frame whose magic was read into
// r.frame, following its header and block headers.
func (r *Reader) readFrame() error {
	if err := r.read(1); err != nil {
		return err
	}
	fhd := r.frame[4]
	single := fhd&0x20 != 0
	hasChecksum := fhd&0x04 != 0
	n := [4]int{0, 1, 2, 4}[fhd&3] // dictionary id
	if !single {
		n++ // window descriptor
	}
	switch fcs := fhd >> 6; {
	case fcs == 0 && single:
		n++
	case fcs > 0:
		n += 1 << fcs
	}
	if err := r.read(n); err != nil {
		return err
	}
	for {
		off := r.off
		if err := r.read(blockHeaderSize); err != nil {
			return err
		}
		h := r.frame[len(r.frame)-blockHeaderSize:]
		bh := uint32(h[0]) | uint32(h[1])<<8 | uint32(h[2])<<16
		last := bh&1 != 0
		size := int(bh >> 3)
		switch typ := (bh >> 1) & 3; typ {
		case 0, 2: // raw, compressed
			if size > maxBlockSize {
				return &CorruptError{Offset: off, Records: r.records, Err: fmt.Errorf("zstd block of %d bytes", size)}
			}
		case 1: // RLE: one byte, repeated size times
			size = 1
		default:
			return &CorruptError{Offset: off, Records: r.records, Err: errors.New("reserved zstd block type")}
		}
		if len(r.frame)+size > maxCompressedFrame {
			return &CorruptError{Offset: off, Records: r.records, Err: fmt.Errorf("zstd frame larger than %d bytes", maxCompressedFrame)}
		}
		if err := r.read(size); err != nil {
			return err
		}
		if last {
			break
		}
	}
	if hasChecksum {
		return r.read(checksumSize)
	}
	return nil
}

// ReadFile calls fn with every record of the bundle at path, in order, up
// to the end or the first damage. It returns fn's error unchanged, or the
// Reader's (a *CorruptError for damage) prefixed with the path.
func ReadFile(path string, fn func(*xdrv1.Record) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := NewReader(f)
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
}
