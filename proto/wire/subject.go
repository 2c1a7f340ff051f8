package wire

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/maphash"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// An ActEvent's subject is most of its bytes, and consecutive events of
// one process repeat it unchanged. The agent encodes a subject once and
// splices those bytes into each event's frame (EncodeSubject,
// AppendEventFrame); the aggregator decodes each distinct subject once per
// connection (Reader). The frames are ordinary protobuf either way: the
// subject field merely comes last.

func fieldNumber(m proto.Message, name protoreflect.Name) protowire.Number {
	f := m.ProtoReflect().Descriptor().Fields().ByName(name)
	if f == nil {
		panic(fmt.Sprintf("wire: %s has no field %s", m.ProtoReflect().Descriptor().FullName(), name))
	}
	return f.Number()
}

var (
	eventField   = fieldNumber(&xdrv1.AgentMessage{}, "event")
	subjectField = fieldNumber(&xdrv1.ActEvent{}, "subject")
)

// EncodeSubject returns p encoded as an ActEvent's subject field, key
// included, for AppendEventFrame.
func EncodeSubject(p *xdrv1.Process) ([]byte, error) {
	size := sizeOpts.Size(p)
	b := make([]byte, 0, protowire.SizeTag(subjectField)+protowire.SizeBytes(size))
	b = protowire.AppendTag(b, subjectField, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(size))
	b, err := marshalOpts.MarshalAppend(b, p)
	if err != nil {
		return nil, fmt.Errorf("marshal subject: %w", err)
	}
	return b, nil
}

// AppendEventFrame appends ev as one frame to dst, as AppendFrame does for
// an AgentMessage holding ev. When subject is not nil it must be
// EncodeSubject(ev.Subject): those bytes are used instead of encoding the
// subject again. ev must not change while it is encoded, and is left as
// it was.
func AppendEventFrame(dst []byte, ev *xdrv1.ActEvent, subject []byte) ([]byte, error) {
	if subject == nil {
		return AppendFrame(dst, &xdrv1.AgentMessage{Message: &xdrv1.AgentMessage_Event{Event: ev}})
	}
	dst, err := AppendEventHead(dst, ev, subject)
	if err != nil {
		return dst, err
	}
	return append(dst, subject...), nil
}

// AppendEventHead appends the frame AppendEventFrame makes without its
// final bytes, the subject's: the frame is the head followed by subject.
// It lets a queue hold one copy of a subject that many frames share.
// subject must not be nil.
func AppendEventHead(dst []byte, ev *xdrv1.ActEvent, subject []byte) ([]byte, error) {
	s := ev.Subject
	ev.Subject = nil
	defer func() { ev.Subject = s }()
	evSize := sizeOpts.Size(ev) + len(subject)
	start := len(dst)
	dst = binary.BigEndian.AppendUint32(dst, uint32(protowire.SizeTag(eventField)+protowire.SizeBytes(evSize)))
	dst = protowire.AppendTag(dst, eventField, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(evSize))
	dst, err := marshalOpts.MarshalAppend(dst, ev)
	if err != nil {
		return dst[:start], fmt.Errorf("marshal frame: %w", err)
	}
	return dst, nil
}

// subjectSlots is the size of a Reader's cache of decoded subjects:
// enough for the processes active at once on a busy device, at a few KB
// each.
const subjectSlots = 128

// subjectCache maps a subject's encoding to its decoded message,
// direct-mapped on a hash of the bytes: a collision costs a decode, never
// a wrong subject (the bytes are compared).
type subjectCache struct {
	seed  maphash.Seed
	slots [subjectSlots]struct {
		enc []byte
		msg *xdrv1.Process
	}
}

// lookup returns the message for enc, decoding it (and remembering it)
// when it is not cached. The message is shared by every event that
// carried the same bytes: it must not be changed.
func (c *subjectCache) lookup(enc []byte) (*xdrv1.Process, error) {
	s := &c.slots[maphash.Bytes(c.seed, enc)%subjectSlots]
	if s.msg != nil && bytes.Equal(s.enc, enc) {
		return s.msg, nil
	}
	p := new(xdrv1.Process)
	if err := proto.Unmarshal(enc, p); err != nil {
		return nil, err
	}
	s.enc, s.msg = append(s.enc[:0:0], enc...), p
	return p, nil
}

// decodeEvent decodes payload into m when it is an AgentMessage holding
// one ActEvent with one subject field, taking the subject from c. It
// returns false, having changed nothing, for any other payload (which the
// general decoder then handles, or rejects).
func decodeEvent(payload []byte, m *xdrv1.AgentMessage, c *subjectCache) (bool, error) {
	num, typ, n := protowire.ConsumeTag(payload)
	if n < 0 || num != eventField || typ != protowire.BytesType {
		return false, nil
	}
	ev, k := protowire.ConsumeBytes(payload[n:])
	if k < 0 || n+k != len(payload) {
		return false, nil
	}
	// Find the subject field among the event's fields.
	subStart, subEnd := -1, -1
	for off := 0; off < len(ev); {
		num, typ, n := protowire.ConsumeTag(ev[off:])
		if n < 0 {
			return false, nil
		}
		v := protowire.ConsumeFieldValue(num, typ, ev[off+n:])
		if v < 0 {
			return false, nil
		}
		if num == subjectField {
			if subStart >= 0 || typ != protowire.BytesType {
				return false, nil // repeated or odd: the general decoder merges
			}
			subStart, subEnd = off, off+n+v
		}
		off += n + v
	}
	if subStart < 0 {
		return false, nil
	}
	enc, _ := protowire.ConsumeBytes(ev[subStart+protowire.SizeTag(subjectField) : subEnd])
	subject, err := c.lookup(enc)
	if err != nil {
		return true, fmt.Errorf("%w: subject: %v", ErrMalformed, err)
	}
	e := new(xdrv1.ActEvent)
	merge := proto.UnmarshalOptions{Merge: true}
	if err := merge.Unmarshal(ev[:subStart], e); err != nil {
		return true, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := merge.Unmarshal(ev[subEnd:], e); err != nil {
		return true, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	e.Subject = subject
	m.Message = &xdrv1.AgentMessage_Event{Event: e}
	return true, nil
}
