package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

func eventMsg(seq uint64) *xdrv1.AgentMessage {
	return &xdrv1.AgentMessage{Message: &xdrv1.AgentMessage_Event{Event: &xdrv1.ActEvent{
		Seq:        seq,
		AccessType: xdrv1.XdrAccessType_XDR_ACCESS_TYPE_PROCESS_EXECUTE,
		Subject:    &xdrv1.Process{Pid: 42, Tgid: 42, Exe: "/usr/bin/true", Argv: []string{"true", "x"}},
	}}}
}

func TestRoundTrip(t *testing.T) {
	hello := &xdrv1.AgentMessage{Message: &xdrv1.AgentMessage_Hello{Hello: &xdrv1.Hello{AgentId: "a", SchemaVersion: SchemaVersion}}}
	want := []*xdrv1.AgentMessage{hello, eventMsg(1), eventMsg(2)}
	var buf []byte
	for _, m := range want {
		var err error
		if buf, err = AppendFrame(buf, m); err != nil {
			t.Fatal(err)
		}
	}
	r := NewReader(bytes.NewReader(buf), 0)
	for i, w := range want {
		got := new(xdrv1.AgentMessage)
		if err := r.Next(got); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if d := cmp.Diff(w, got, protocmp.Transform()); d != "" {
			t.Errorf("frame %d (-want +got):\n%s", i, d)
		}
	}
	if err := r.Next(new(xdrv1.AgentMessage)); err != io.EOF {
		t.Fatalf("after last frame: got %v, want io.EOF", err)
	}
	if r.Offset() != int64(len(buf)) {
		t.Errorf("offset %d, want %d", r.Offset(), len(buf))
	}
}

func TestReaderErrors(t *testing.T) {
	good, _ := AppendFrame(nil, eventMsg(1))
	big := binary.BigEndian.AppendUint32(nil, 1<<30)
	garbage := append(binary.BigEndian.AppendUint32(nil, 3), 0xff, 0xff, 0xff)
	empty := binary.BigEndian.AppendUint32(nil, 0)
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"truncated header", good[:2], io.ErrUnexpectedEOF},
		{"truncated payload", good[:len(good)-1], io.ErrUnexpectedEOF},
		{"oversized", big, ErrFrameTooLarge},
		{"garbage payload", garbage, ErrMalformed},
		{"no message", empty, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := NewReader(bytes.NewReader(tt.in), 1024).Next(new(xdrv1.AgentMessage))
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			_, derr := Decode(tt.in, 1024, new(xdrv1.AgentMessage))
			if !errors.Is(derr, tt.want) {
				t.Fatalf("Decode: got %v, want %v", derr, tt.want)
			}
		})
	}
}

func TestDecodeConsumesOneFrame(t *testing.T) {
	buf, _ := AppendFrame(nil, eventMsg(7))
	first := len(buf)
	buf, _ = AppendFrame(buf, eventMsg(8))
	m := new(xdrv1.AgentMessage)
	n, err := Decode(buf, DefaultMaxFrameSize, m)
	if err != nil || n != first {
		t.Fatalf("Decode = %d, %v; want %d, nil", n, err, first)
	}
	if m.GetEvent().GetSeq() != 7 {
		t.Errorf("seq %d, want 7", m.GetEvent().GetSeq())
	}
}

func FuzzDecode(f *testing.F) {
	good, _ := AppendFrame(nil, eventMsg(1))
	hello, _ := AppendFrame(nil, &xdrv1.AgentMessage{Message: &xdrv1.AgentMessage_Hello{Hello: &xdrv1.Hello{AgentId: "x"}}})
	f.Add(good)
	f.Add(hello)
	f.Add(good[:5])
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1})
	ev := eventMsg(2).GetEvent()
	subject, _ := EncodeSubject(ev.Subject)
	spliced, _ := AppendEventFrame(nil, ev, subject)
	f.Add(spliced)
	f.Fuzz(func(t *testing.T, b []byte) {
		m := new(xdrv1.AgentMessage)
		n, err := Decode(b, 4096, m)
		if err != nil {
			return
		}
		if n < HeaderSize || n > len(b) {
			t.Fatalf("consumed %d of %d bytes", n, len(b))
		}
		// A frame that decodes must survive re-encoding and decode to the
		// same message.
		re, err := AppendFrame(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		m2 := new(xdrv1.AgentMessage)
		if _, err := Decode(re, len(re), m2); err != nil {
			t.Fatalf("re-encoded frame does not decode: %v", err)
		}
		if !proto.Equal(m, m2) {
			t.Fatal("re-encoded frame decodes differently")
		}
		// The streaming reader, which decodes events through its subject
		// cache, agrees with Decode.
		r := NewReader(bytes.NewReader(b), 4096)
		m3 := new(xdrv1.AgentMessage)
		if err := r.Next(m3); err != nil {
			t.Fatalf("Reader rejects what Decode accepts: %v", err)
		}
		if !proto.Equal(m, m3) {
			t.Fatal("Reader and Decode decode the frame differently")
		}
		if rec := r.EventRecord(); rec != nil {
			var got xdrv1.Record
			if err := proto.Unmarshal(rec, &got); err != nil || !proto.Equal(got.GetEvent(), m.GetEvent()) {
				t.Fatalf("EventRecord is not the record of the event (err %v)", err)
			}
		}
	})
}
