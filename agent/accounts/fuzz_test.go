package accounts

import (
	"hash/maphash"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/xdr-sensor/xdr/agent/userdb"
)

// FuzzDiff parses two versions of each account file, as untrusted
// contents, and compares them. The parse must agree with userdb's, and the
// comparison must account for every entry: what was added minus what was
// deleted is the growth, and comparing back swaps the two.
func FuzzDiff(f *testing.F) {
	f.Add([]byte(fixture(f, Passwd)), []byte(fixture(f, Passwd)+"carol:x:1002:1002::/:/bin/sh\n"))
	f.Add([]byte(fixture(f, Shadow)), []byte("root::19000:0:99999:7:::\nbob:!\n"))
	f.Add([]byte(fixture(f, Group)), []byte("sudo:x:27:bob,alice\nsudo:x:28:\r\n"))
	f.Add([]byte("a:b:c:d:e:f:g\na:b:c:d:e:f:g\n"), []byte("a:b:c:d:e:f:g:h:i\n:::\n"))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		w := &Watcher{maxEntries: 8, maxChanges: 1 << 30, seed: maphash.MakeSeed()}
		want := userdb.ParsePasswd(a)
		want = want[:min(len(want), 8)]
		var got []userdb.User
		for _, e := range w.parse(Passwd, a).entries {
			got = append(got, userdb.User{Name: e.name, UID: e.uid, GID: e.gid, Gecos: e.gecos, Home: e.home, Shell: e.shell})
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Fatalf("passwd entries differ from userdb.ParsePasswd's (-userdb +accounts):\n%s", d)
		}
		for f := range NumFiles {
			x, y := w.parse(f, a), w.parse(f, b)
			if len(x.index) != len(x.entries) {
				t.Fatalf("%v: %d entries, %d keys", f, len(x.entries), len(x.index))
			}
			if same := w.compare(f, &x, &x); len(same.Changes) != 0 {
				t.Fatalf("%v: comparing a file with itself: %+v", f, same.Changes)
			}
			fwd, back := count(t, w.compare(f, &x, &y)), count(t, w.compare(f, &y, &x))
			if fwd[Added]-fwd[Deleted] != len(y.entries)-len(x.entries) {
				t.Fatalf("%v: %d added, %d deleted, from %d to %d entries", f, fwd[Added], fwd[Deleted], len(x.entries), len(y.entries))
			}
			if fwd[Added] != back[Deleted] || fwd[Deleted] != back[Added] || fwd[Modified] != back[Modified] {
				t.Fatalf("%v: changes %v one way, %v the other", f, fwd, back)
			}
		}
	})
}

// count returns how many changes of each kind r has.
func count(t *testing.T, r Result) map[Kind]int {
	m := map[Kind]int{}
	for _, c := range r.Changes {
		m[c.Kind]++
		if c.Kind == Modified && c.Changed == 0 {
			t.Fatalf("modified entry with no field changed: %+v", c)
		}
	}
	return m
}
