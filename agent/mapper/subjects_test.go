package mapper

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/xdr-sensor/xdr/agent/ebpf"
	"github.com/xdr-sensor/xdr/agent/exehash"
	"github.com/xdr-sensor/xdr/agent/proctable"
	"github.com/xdr-sensor/xdr/agent/userdb"
	"github.com/xdr-sensor/xdr/proto/wire"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// hashedMapper is newMapper with this test binary hashed, so that this
// process's subjects can be shared, and user names read from a copy of
// the fixture that the test may change.
func hashedMapper(t *testing.T) (*Mapper, *proctable.Table, *proctable.Proc, string) {
	t.Helper()
	tab, err := proctable.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"passwd", "group"} {
		b, err := os.ReadFile(filepath.Join("../userdb/testdata/etc", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "etc", f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	users := userdb.New(&userdb.Options{Root: root, CheckInterval: time.Nanosecond})
	hashes := exehash.New(nil)
	exe, err := os.Open("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	defer exe.Close()
	if _, _, err := hashes.Hash(exe); err != nil {
		t.Fatal(err)
	}
	m := New(&Options{Table: tab, Users: users, Hashes: hashes, Collector: xdrv1.CollectorMethod_COLLECTOR_METHOD_EBPF})
	self := tab.Lookup(uint32(os.Getpid()))
	if _, ok := hashes.Lookup(self.ExeKey); !ok {
		t.Fatalf("the table's key for this executable (%+v) is not the hashed one", self.ExeKey)
	}
	return m, tab, self, root
}

func openEvent(m *Mapper, p *proctable.Proc, pid uint32) *xdrv1.ActEvent {
	return m.Activity(1, p, pid, &ebpf.Event{Kind: ebpf.KindFileOpen, File: &ebpf.FileOp{Op: ebpf.OpOpenat, Path: "/etc/hosts", Flags: unix.O_RDONLY}})
}

// Consecutive events of an unchanged process share one subject, encoded
// once, and it is the subject a fresh build gives.
func TestSubjectShared(t *testing.T) {
	m, _, self, _ := hashedMapper(t)
	a, b := openEvent(m, self, 0), openEvent(m, self, 0)
	if a.Subject != b.Subject {
		t.Fatal("an unchanged process's events do not share their subject")
	}
	if d := cmp.Diff(m.Process(self, 0), a.Subject, protocmp.Transform()); d != "" {
		t.Errorf("shared subject differs from a fresh one (-fresh +shared):\n%s", d)
	}
	enc := m.EncodedSubject(a)
	want, _ := wire.EncodeSubject(a.Subject)
	if !bytes.Equal(enc, want) {
		t.Fatal("EncodedSubject is not the subject's encoding")
	}
	if e2 := m.EncodedSubject(b); &e2[0] != &enc[0] {
		t.Error("the subject was encoded twice")
	}
	// Another thread of the process has a subject of its own.
	if c := openEvent(m, self, self.TGID+1); c.Subject == a.Subject || c.Subject.GetPid() != self.TGID+1 {
		t.Error("a thread's event took the leader's subject")
	}
	// A subject the caller owns is not shared.
	if m.EncodedSubject(&xdrv1.ActEvent{Subject: m.Process(self, 0)}) != nil {
		t.Error("EncodedSubject encoded a subject the mapper does not share")
	}
}

// Every field of a table entry that a subject shows makes a new subject
// when it changes: a shared subject never shows stale data. (This also
// fails when Proc gains a field sameImage does not compare.)
func TestSubjectFollowsEveryChange(t *testing.T) {
	notShown := map[string]bool{"TracerTGID": true, "exited": true, "commAtExec": true}
	m, _, self, _ := hashedMapper(t)
	orig := *self
	typ := reflect.TypeOf(orig)
	for i := range typ.NumField() {
		f := typ.Field(i)
		if notShown[f.Name] {
			continue
		}
		t.Run(f.Name, func(t *testing.T) {
			*self = orig
			before := openEvent(m, self, 0).Subject
			if openEvent(m, self, 0).Subject != before {
				t.Fatal("not shared to begin with")
			}
			v := reflect.ValueOf(self).Elem().Field(i)
			if !v.CanSet() {
				t.Fatalf("field %s cannot be set by the test; list it as not shown or compare it", f.Name)
			}
			change(t, v)
			if !sameImage(&orig, self) {
				// sameImage saw it; the mapper must not reuse.
				if openEvent(m, self, 0).Subject == before {
					t.Fatal("subject reused after the change")
				}
				return
			}
			t.Fatalf("sameImage does not see a change of %s", f.Name)
		})
	}
	*self = orig
}

// change sets v to a value different from its current one.
func change(t *testing.T, v reflect.Value) {
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.String:
		v.SetString(v.String() + "x")
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(v.Uint() + 1)
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(v.Int() + 1)
	case reflect.Slice: // a new list, as the table makes
		n := reflect.MakeSlice(v.Type(), v.Len()+1, v.Len()+1)
		reflect.Copy(n, v)
		v.Set(n)
	case reflect.Struct:
		change(t, v.Field(0))
	default:
		t.Fatalf("no way to change a %s", v.Kind())
	}
}

// A change up the ancestry, or in the user names, makes a new subject.
func TestSubjectFollowsAncestryAndNames(t *testing.T) {
	m, tab, self, root := hashedMapper(t)
	parent := tab.Lookup(self.PPID)
	if parent.Partial {
		t.Skip("this test's parent is not in /proc")
	}
	before := openEvent(m, self, 0).Subject
	oldExe := parent.Exe
	parent.Exe = "/bin/renamed"
	after := openEvent(m, self, 0).Subject
	if after == before || after.GetAncestors()[0].GetExe() != "/bin/renamed" {
		t.Fatalf("parent's exec not shown: %v", after.GetAncestors())
	}
	parent.Exe = oldExe

	before = openEvent(m, self, 0).Subject
	passwd := filepath.Join(root, "etc", "passwd")
	b, _ := os.ReadFile(passwd)
	renamed := bytes.Replace(b, []byte("root:"), []byte("admin:"), 1)
	if bytes.Equal(renamed, b) {
		t.Fatal("fixture has no root entry")
	}
	if err := os.WriteFile(passwd, renamed, 0o644); err != nil {
		t.Fatal(err)
	}
	// The reload notices size and times; make sure the time moved.
	future := time.Now().Add(time.Minute)
	os.Chtimes(passwd, future, future)
	after = openEvent(m, self, 0).Subject
	if after == before {
		t.Fatal("user database change not shown")
	}
	if self.Creds.UID == 0 && after.GetCreds().GetUserName() != "admin" {
		t.Errorf("user name %q after the rename, want admin", after.GetCreds().GetUserName())
	}
}

// Without hashes (the hashing goroutine fills them in later, writing to
// the subject) a subject is never shared; IDChange, which edits its
// subject, never gets a shared one.
func TestSubjectNotSharedWhenEdited(t *testing.T) {
	m, tab := newMapper(t) // no hashes
	self := tab.Lookup(uint32(os.Getpid()))
	if a, b := openEvent(m, self, 0), openEvent(m, self, 0); a.Subject == b.Subject || m.EncodedSubject(a) != nil {
		t.Fatal("a subject without hashes was shared")
	}
	m, _, self, _ = hashedMapper(t)
	shared := openEvent(m, self, 0).Subject
	keep := proto.Clone(shared)
	ev := m.IDChange(1, proctable.IDChange{Proc: self, CurrentExe: "/usr/bin/other"}, 0, false)
	if ev.Subject == shared {
		t.Fatal("IDChange got the shared subject")
	}
	if !proto.Equal(shared, keep) {
		t.Fatal("IDChange changed the shared subject")
	}
	if openEvent(m, self, 0).Subject != shared {
		t.Error("the shared subject was dropped by an event that did not change the process")
	}
}

func BenchmarkActivitySubject(b *testing.B) {
	tab, _ := proctable.New(nil)
	hashes := exehash.New(nil)
	if exe, err := os.Open("/proc/self/exe"); err == nil {
		hashes.Hash(exe)
		exe.Close()
	}
	self := tab.Lookup(uint32(os.Getpid()))
	e := &ebpf.Event{Kind: ebpf.KindFileOpen, File: &ebpf.FileOp{Op: ebpf.OpOpenat, Path: "/etc/hosts", Flags: unix.O_RDONLY}}
	for _, shared := range []bool{false, true} {
		name := "fresh"
		if shared {
			name = "shared"
		}
		b.Run(name, func(b *testing.B) {
			m := New(&Options{Table: tab, Users: userdb.New(nil), Hashes: hashes})
			b.ReportAllocs()
			for b.Loop() {
				ev := m.Activity(1, self, 0, e)
				subject := m.EncodedSubject(ev)
				if !shared {
					ev.Subject, subject = m.Process(self, 0), nil
				}
				if _, err := wire.AppendEventFrame(nil, ev, subject); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
