package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"io"

	"google.golang.org/protobuf/proto"

	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// SchemaVersion is the version of the xdr.v1 schema this build speaks. It is
// sent in the Hello frame.
const SchemaVersion = 1

// HeaderSize is the size of the length prefix.
const HeaderSize = 4

// DefaultMaxFrameSize bounds one frame's payload. An ActEvent with a full
// argv, environment and ancestry stays far below it.
const DefaultMaxFrameSize = 1 << 20

var (
	// ErrFrameTooLarge is returned for a frame whose declared length
	// exceeds the reader's limit.
	ErrFrameTooLarge = errors.New("frame too large")
	// ErrMalformed is returned for a frame whose payload is not a valid
	// AgentMessage, or carries no message.
	ErrMalformed = errors.New("malformed frame")
)

// Size computes and caches the sizes of every nested message; the
// marshal that follows reuses them instead of walking the message again.
var (
	sizeOpts    = proto.MarshalOptions{}
	marshalOpts = proto.MarshalOptions{UseCachedSize: true}
)

// AppendFrame appends m as one frame to dst. m must not change while it
// is encoded.
func AppendFrame(dst []byte, m *xdrv1.AgentMessage) ([]byte, error) {
	size := sizeOpts.Size(m)
	start := len(dst)
	dst = binary.BigEndian.AppendUint32(dst, uint32(size))
	dst, err := marshalOpts.MarshalAppend(dst, m)
	if err != nil {
		return dst[:start], fmt.Errorf("marshal frame: %w", err)
	}
	return dst, nil
}

// Decode decodes the first frame in b into m and returns the number of
// bytes it used. It returns io.ErrUnexpectedEOF when b holds only part of a
// frame, ErrFrameTooLarge when the declared length exceeds max, and
// ErrMalformed when the payload is not an AgentMessage with a message set.
func Decode(b []byte, max int, m *xdrv1.AgentMessage) (int, error) {
	if len(b) < HeaderSize {
		return 0, io.ErrUnexpectedEOF
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(n) > uint64(max) {
		return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, max)
	}
	end := HeaderSize + int(n)
	if len(b) < end {
		return 0, io.ErrUnexpectedEOF
	}
	if err := unmarshal(b[HeaderSize:end], m); err != nil {
		return 0, err
	}
	return end, nil
}

func unmarshal(payload []byte, m *xdrv1.AgentMessage) error {
	if err := proto.Unmarshal(payload, m); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if m.GetMessage() == nil {
		return fmt.Errorf("%w: no message set", ErrMalformed)
	}
	return nil
}

// Reader reads frames from a stream. It is not safe for concurrent use.
type Reader struct {
	r      *bufio.Reader
	max    int
	buf    []byte
	off    int64
	record []byte // see EventRecord
	// subjects holds the subjects this stream's events carried lately.
	subjects subjectCache
}

// NewReader returns a Reader on r that rejects frames larger than max bytes
// (DefaultMaxFrameSize when max <= 0).
func NewReader(r io.Reader, max int) *Reader {
	if max <= 0 {
		max = DefaultMaxFrameSize
	}
	return &Reader{r: bufio.NewReaderSize(r, 64<<10), max: max, subjects: subjectCache{seed: maphash.MakeSeed()}}
}

// Offset is the stream offset of the next frame.
func (r *Reader) Offset() int64 { return r.off }

// EventRecord returns, when the frame Next last returned was an event and
// nothing else, the encoding of a bundle Record holding that event: the
// frame's payload itself, since the two oneofs give the event the same
// field number. It returns nil otherwise. The bytes are valid until the
// next call to Next.
func (r *Reader) EventRecord() []byte { return r.record }

// Next reads the next frame into m (which it resets). It returns io.EOF
// when the stream ends cleanly between frames, io.ErrUnexpectedEOF when it
// ends inside a frame, and errors wrapping ErrFrameTooLarge or ErrMalformed
// for bad frames; after any error the stream cannot be resynchronised and
// the caller should close it.
func (r *Reader) Next(m *xdrv1.AgentMessage) error {
	var hdr [HeaderSize]byte
	if _, err := io.ReadFull(r.r, hdr[:]); err != nil {
		return err // io.EOF between frames, io.ErrUnexpectedEOF inside the header
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if uint64(n) > uint64(r.max) {
		return fmt.Errorf("%w: %d bytes at offset %d, limit %d", ErrFrameTooLarge, n, r.off, r.max)
	}
	if cap(r.buf) < int(n) {
		r.buf = make([]byte, n)
	}
	payload := r.buf[:n]
	if _, err := io.ReadFull(r.r, payload); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	proto.Reset(m)
	r.record = nil
	done, err := decodeEvent(payload, m, &r.subjects)
	if !done {
		err = unmarshal(payload, m)
	}
	if err != nil {
		return fmt.Errorf("frame at offset %d: %w", r.off, err)
	}
	if done {
		r.record = payload
	}
	r.off += HeaderSize + int64(n)
	// Keep a large buffer only while large frames keep coming.
	if cap(r.buf) > 256<<10 && n < 64<<10 {
		r.buf = nil
	}
	return nil
}
