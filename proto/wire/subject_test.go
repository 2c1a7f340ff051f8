package wire

import (
	"bytes"
	"errors"
	"hash/maphash"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

func richEvent(seq uint64, pid uint32) *xdrv1.ActEvent {
	return &xdrv1.ActEvent{
		Seq:          seq,
		TimestampNs:  1700000000000000000 + int64(seq),
		EventType:    xdrv1.XdrEventType_XDR_EVENT_TYPE_FILE,
		AccessType:   xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_OPEN,
		TargetHashId: 99,
		Subject: &xdrv1.Process{
			Pid: pid, Tgid: pid, Ppid: 1, InstanceId: 7 + uint64(pid), Exe: "/usr/bin/cat", Argv: []string{"cat", "/etc/hosts"},
			Creds:     &xdrv1.Credentials{Uid: 1000, UserName: "alice"},
			Ancestors: []*xdrv1.Ancestor{{Pid: 1, Exe: "/sbin/init", Comm: "init"}},
		},
		Target: &xdrv1.ActEvent_File{File: &xdrv1.File{Path: "/etc/hosts", Flags: 0o2000000}},
	}
}

// The spliced frame is the same message as the plainly encoded one, and
// the event is left as it was.
func TestAppendEventFrame(t *testing.T) {
	ev := richEvent(1, 42)
	before := proto.Clone(ev)
	subject, err := EncodeSubject(ev.Subject)
	if err != nil {
		t.Fatal(err)
	}
	spliced, err := AppendEventFrame([]byte("prefix"), ev, subject)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(ev, before) {
		t.Fatal("AppendEventFrame changed the event")
	}
	if !bytes.HasPrefix(spliced, []byte("prefix")) {
		t.Fatal("AppendEventFrame did not append")
	}
	plain, _ := AppendFrame(nil, &xdrv1.AgentMessage{Message: &xdrv1.AgentMessage_Event{Event: ev}})
	if len(spliced)-len("prefix") != len(plain) {
		t.Errorf("spliced frame is %d bytes, plain %d", len(spliced)-len("prefix"), len(plain))
	}
	got := new(xdrv1.AgentMessage)
	if n, err := Decode(spliced[len("prefix"):], DefaultMaxFrameSize, got); err != nil || n != len(plain) {
		t.Fatalf("Decode: %d, %v", n, err)
	}
	if d := cmp.Diff(ev, got.GetEvent(), protocmp.Transform()); d != "" {
		t.Errorf("(-sent +decoded):\n%s", d)
	}
	// The head is the frame without the subject's bytes.
	head, err := AppendEventHead(nil, ev, subject)
	if err != nil || !bytes.Equal(append(head, subject...), spliced[len("prefix"):]) {
		t.Errorf("head + subject is not the frame (err %v)", err)
	}
	// Without subject bytes it is AppendFrame.
	if b, _ := AppendEventFrame(nil, ev, nil); !bytes.Equal(b, plain) {
		t.Error("AppendEventFrame(nil subject) differs from AppendFrame")
	}
}

// The reader decodes each distinct subject once per stream: events that
// carried the same bytes share one message; others get their own.
func TestReaderSharesSubjects(t *testing.T) {
	evs := []*xdrv1.ActEvent{richEvent(1, 42), richEvent(2, 42), richEvent(3, 43), richEvent(4, 42)}
	var buf []byte
	for i, ev := range evs {
		var subject []byte
		if i%2 == 0 { // spliced and plain frames alike
			subject, _ = EncodeSubject(ev.Subject)
		}
		buf, _ = AppendEventFrame(buf, ev, subject)
	}
	r := NewReader(bytes.NewReader(buf), 0)
	var got []*xdrv1.ActEvent
	for range evs {
		m := new(xdrv1.AgentMessage)
		if err := r.Next(m); err != nil {
			t.Fatal(err)
		}
		got = append(got, m.GetEvent())
		var rec xdrv1.Record
		if err := proto.Unmarshal(r.EventRecord(), &rec); err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(m.GetEvent(), rec.GetEvent(), protocmp.Transform()); d != "" {
			t.Errorf("EventRecord (-event +record):\n%s", d)
		}
	}
	for i := range evs {
		if d := cmp.Diff(evs[i], got[i], protocmp.Transform()); d != "" {
			t.Errorf("event %d (-sent +got):\n%s", i, d)
		}
	}
	if got[0].Subject != got[1].Subject || got[0].Subject != got[3].Subject {
		t.Error("equal subjects were decoded more than once")
	}
	if got[0].Subject == got[2].Subject {
		t.Error("different subjects share a message")
	}
}

// Frames the cache does not handle go to the general decoder: no subject,
// two subject fields (merged), a hello; EventRecord is nil when the frame
// holds more than the event.
func TestReaderGeneralFrames(t *testing.T) {
	noSubject := richEvent(1, 42)
	noSubject.Subject = nil
	plain, _ := AppendEventFrame(nil, noSubject, nil)

	// Two subject fields: protobuf merges them.
	a, _ := EncodeSubject(&xdrv1.Process{Pid: 1, Exe: "/a"})
	b, _ := EncodeSubject(&xdrv1.Process{Tgid: 2, Argv: []string{"b"}})
	twice, _ := AppendEventFrame(nil, noSubject, append(append([]byte{}, a...), b...))

	// An event followed by a field AgentMessage does not know.
	ev, _ := AppendEventFrame(nil, richEvent(2, 42), nil)
	payload := protowire.AppendTag(append([]byte{}, ev[HeaderSize:]...), 6, protowire.VarintType)
	payload = protowire.AppendVarint(payload, 1)
	extra := appendRawFrame(nil, payload)

	hello, _ := AppendFrame(nil, &xdrv1.AgentMessage{Message: &xdrv1.AgentMessage_Hello{Hello: &xdrv1.Hello{AgentId: "a"}}})
	for _, tt := range []struct {
		name   string
		frame  []byte
		record bool
	}{
		{"no subject", plain, false},
		{"two subject fields", twice, false},
		{"unknown field after the event", extra, false},
		{"hello", hello, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			want := new(xdrv1.AgentMessage)
			if _, err := Decode(tt.frame, DefaultMaxFrameSize, want); err != nil {
				t.Fatal(err)
			}
			r := NewReader(bytes.NewReader(tt.frame), 0)
			got := new(xdrv1.AgentMessage)
			if err := r.Next(got); err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(want, got, protocmp.Transform()); d != "" {
				t.Errorf("(-Decode +Reader):\n%s", d)
			}
			if (r.EventRecord() != nil) != tt.record {
				t.Errorf("EventRecord %v, want one: %v", r.EventRecord() != nil, tt.record)
			}
		})
	}
	if got := mergedSubject(t, twice); got.GetPid() != 1 || got.GetTgid() != 2 || got.GetExe() != "/a" {
		t.Errorf("two subject fields decoded as %v, want them merged", got)
	}
}

func mergedSubject(t *testing.T, frame []byte) *xdrv1.Process {
	m := new(xdrv1.AgentMessage)
	if err := NewReader(bytes.NewReader(frame), 0).Next(m); err != nil {
		t.Fatal(err)
	}
	return m.GetEvent().GetSubject()
}

func appendRawFrame(dst, payload []byte) []byte {
	dst = append(dst, byte(len(payload)>>24), byte(len(payload)>>16), byte(len(payload)>>8), byte(len(payload)))
	return append(dst, payload...)
}

// A subject that does not decode makes the frame malformed, as it is for
// the general decoder, and is not cached.
func TestReaderBadSubject(t *testing.T) {
	ev := richEvent(1, 42)
	bad := protowire.AppendTag(nil, subjectField, protowire.BytesType)
	bad = protowire.AppendBytes(bad, []byte{0x0a, 0x05, 'a'}) // a string field cut short
	frame, _ := AppendEventFrame(nil, ev, bad)
	if _, err := Decode(frame, DefaultMaxFrameSize, new(xdrv1.AgentMessage)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Decode: %v, want ErrMalformed", err)
	}
	r := NewReader(bytes.NewReader(frame), 0)
	if err := r.Next(new(xdrv1.AgentMessage)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Reader: %v, want ErrMalformed", err)
	}
	for _, s := range r.subjects.slots {
		if s.msg != nil {
			t.Fatal("a subject that did not decode was cached")
		}
	}
}

// The bundle relies on this: an event frame's payload is a Record.
func TestEventFieldNumbersMatch(t *testing.T) {
	if n := fieldNumber(&xdrv1.Record{}, "event"); n != eventField {
		t.Fatalf("Record.event is field %d, AgentMessage.event %d", n, eventField)
	}
}

func BenchmarkReaderEvents(b *testing.B) {
	ev := richEvent(1, 42)
	subject, _ := EncodeSubject(ev.Subject)
	frame, _ := AppendEventFrame(nil, ev, subject)
	for _, cached := range []bool{false, true} {
		name := "general"
		if cached {
			name = "subject-cache"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			c := subjectCache{seed: maphash.MakeSeed()}
			for b.Loop() {
				m := new(xdrv1.AgentMessage)
				if cached {
					if _, err := decodeEvent(frame[HeaderSize:], m, &c); err != nil {
						b.Fatal(err)
					}
				} else if err := unmarshal(frame[HeaderSize:], m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
