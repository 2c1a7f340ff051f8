package accounts

import (
	"bytes"
	"hash/maphash"
	"slices"
	"strings"

	"github.com/xdr-sensor/xdr/agent/userdb"
)

// entry is one entry of an account file, of the fields its file has.
type entry struct {
	name string
	// n tells apart entries of the same name: 0 for the first in the file,
	// 1 for the second... A second "root" line is an account of its own
	// to the comparison, though name lookups find the first.
	n                  int32
	uid, gid           uint32
	gecos, home, shell string
	// pw is the keyed fingerprint of the password field (passwd, shadow);
	// pwEmpty reports an empty one.
	pw      uint64
	pwEmpty bool
	// aging is shadow's fields after the password, as written (without
	// the reserved last field): last change, minimum and maximum age,
	// warning and inactivity periods, expiry date.
	aging   string
	members []string // group
}

// key identifies an entry within its file.
type key struct {
	name string
	n    int32
}

// table is a file's entries, in file order, at most MaxEntries.
type table struct {
	entries []entry
	index   map[key]int32
	// overflow counts the entries that were not kept.
	overflow int
}

func (t *table) lookup(name string) *entry {
	if i, ok := t.index[key{name, 0}]; ok {
		return &t.entries[i]
	}
	return nil
}

// parse parses the contents b of file f, under the same rules as
// userdb.ParsePasswd and ParseGroup; shadow takes lines of nine fields or
// of two (name and password: the rest unset), as the C library does.
func (w *Watcher) parse(f File, b []byte) table {
	var t table
	dup := map[string]int32{}
	add := func(e entry) {
		if len(t.entries) == w.maxEntries {
			t.overflow++
			return
		}
		e.n = dup[e.name]
		dup[e.name]++
		t.entries = append(t.entries, e)
	}
	switch f {
	case Passwd:
		for fl := range userdb.Entries(b, 7) {
			if len(fl) != 7 {
				continue
			}
			uid, ok1 := userdb.ParseID(fl[2])
			gid, ok2 := userdb.ParseID(fl[3])
			if !ok1 || !ok2 {
				continue
			}
			add(entry{
				name: string(fl[0]), uid: uid, gid: gid,
				gecos: string(fl[4]), home: string(fl[5]), shell: string(fl[6]),
				pw: maphash.Bytes(w.seed, fl[1]), pwEmpty: len(fl[1]) == 0,
			})
		}
	case Shadow:
		for fl := range userdb.Entries(b, 9) {
			if len(fl) != 9 && len(fl) != 2 {
				continue
			}
			e := entry{name: string(fl[0]), pw: maphash.Bytes(w.seed, fl[1]), pwEmpty: len(fl[1]) == 0}
			if len(fl) == 9 {
				e.aging = string(bytes.Join(fl[2:8], []byte(":")))
			}
			add(e)
		}
	case Group:
		for _, g := range userdb.ParseGroup(b) {
			add(entry{name: g.Name, gid: g.GID, members: g.Members})
		}
	}
	t.index = make(map[key]int32, len(t.entries))
	for i := range t.entries {
		e := &t.entries[i]
		t.index[key{e.name, e.n}] = int32(i)
	}
	return t
}

// compare returns the changes from old to next, both of file f.
func (w *Watcher) compare(f File, old, next *table) Result {
	var res Result
	report := func(c Change) {
		if len(res.Changes) == w.maxChanges {
			res.Unreported++
			return
		}
		res.Changes = append(res.Changes, c)
	}
	var gone map[string]entry
	for i := range old.entries {
		e := &old.entries[i]
		if _, ok := next.index[key{e.name, e.n}]; ok {
			continue
		}
		if f == Passwd && len(gone) < w.maxChanges {
			if gone == nil {
				gone = map[string]entry{}
			}
			if _, dup := gone[e.name]; !dup {
				gone[e.name] = *e
			}
		}
		c := w.change(f, Deleted, e)
		_, c.MembersRemoved = memberDiff(e.members, nil)
		report(c)
	}
	if f == Passwd {
		// Shadow entries compared next find their users in the new
		// passwd snapshot or, if just deleted, here.
		w.gone = gone
	}
	for i := range next.entries {
		e := &next.entries[i]
		j, ok := old.index[key{e.name, e.n}]
		if !ok {
			c := w.change(f, Added, e)
			c.MembersAdded, _ = memberDiff(nil, e.members)
			report(c)
			continue
		}
		o := &old.entries[j]
		changed := diffFields(o, e)
		if changed == 0 {
			continue
		}
		c := w.change(f, Modified, e)
		c.Changed = changed
		c.OldUID, c.OldGID, c.OldGecos, c.OldHome, c.OldShell = o.uid, o.gid, o.gecos, o.home, o.shell
		if f == Shadow {
			c.OldUID, c.OldGID, c.OldGecos, c.OldHome, c.OldShell = c.UID, c.GID, c.Gecos, c.Home, c.Shell
		}
		if changed&FieldMembers != 0 {
			c.MembersAdded, c.MembersRemoved = memberDiff(o.members, e.members)
		}
		report(c)
	}
	return res
}

// change describes entry e of file f.
func (w *Watcher) change(f File, k Kind, e *entry) Change {
	c := Change{Kind: k, File: f, Path: w.files[f].path, Name: e.name, UID: e.uid, GID: e.gid,
		Gecos: e.gecos, Home: e.home, Shell: e.shell, PasswordEmpty: e.pwEmpty}
	if f != Shadow {
		return c
	}
	u := w.files[Passwd].snap.lookup(e.name)
	if u == nil {
		if g, ok := w.gone[e.name]; ok {
			u = &g
		}
	}
	if u == nil {
		c.NoUser = true
		return c
	}
	c.UID, c.GID, c.Gecos, c.Home, c.Shell = u.uid, u.gid, u.gecos, u.home, u.shell
	return c
}

// diffFields returns the fields in which a and b differ.
func diffFields(a, b *entry) Field {
	var f Field
	set := func(bit Field, differ bool) {
		if differ {
			f |= bit
		}
	}
	set(FieldUID, a.uid != b.uid)
	set(FieldGID, a.gid != b.gid)
	set(FieldGecos, a.gecos != b.gecos)
	set(FieldHome, a.home != b.home)
	set(FieldShell, a.shell != b.shell)
	set(FieldPassword, a.pw != b.pw)
	if a.aging != b.aging {
		f |= agingFields(a.aging, b.aging)
	}
	if !slices.Equal(a.members, b.members) {
		added, removed := memberDiff(a.members, b.members)
		set(FieldMembers, len(added)+len(removed) > 0)
	}
	return f
}

// agingFields returns the shadow aging fields in which a and b, each the
// fields joined with ':', differ.
func agingFields(a, b string) Field {
	var f Field
	for i := range 6 {
		var x, y string
		x, a, _ = strings.Cut(a, ":")
		y, b, _ = strings.Cut(b, ":")
		if x != y {
			f |= FieldLastChange << i
		}
	}
	return f
}

// memberDiff returns the names in b and not in a, and in a and not in b:
// a member list is a set, its order and repeats mean nothing.
func memberDiff(a, b []string) (added, removed []string) {
	in := func(l []string) map[string]bool {
		m := make(map[string]bool, len(l))
		for _, s := range l {
			m[s] = true
		}
		return m
	}
	ma, mb := in(a), in(b)
	for _, s := range b {
		if !ma[s] {
			added = append(added, s)
			ma[s] = true // report a repeated name once
		}
	}
	for _, s := range a {
		if !mb[s] {
			removed = append(removed, s)
			mb[s] = true
		}
	}
	return added, removed
}
