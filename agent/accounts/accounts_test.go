package accounts

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// fixture reads one of the files of testdata/etc.
func fixture(t testing.TB, f File) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "etc", f.String()))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// newRoot returns a root directory whose etc holds the fixture files.
func newRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for f := range NumFiles {
		replace(t, root, f, fixture(t, f))
	}
	return root
}

// replace writes the contents of f under root the way the account tools
// do: a new file renamed over the old.
func replace(t *testing.T, root string, f File, contents string) {
	t.Helper()
	path := filepath.Join(root, "etc", f.String())
	if err := os.WriteFile(path+"+", []byte(contents), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+"+", path); err != nil {
		t.Fatal(err)
	}
}

// edit returns s with old replaced by new, which must occur in s.
func edit(t *testing.T, s, old, new string) string {
	t.Helper()
	if !strings.Contains(s, old) {
		t.Fatalf("fixture has no %q", old)
	}
	return strings.Replace(s, old, new, 1)
}

func TestDiff(t *testing.T) {
	passwd, shadow, group := fixture(t, Passwd), fixture(t, Shadow), fixture(t, Group)
	const carolLine = "carol:x:1002:1002:Carol,,,:/home/carol:/bin/bash\n"
	tests := []struct {
		name string
		file File
		// in returns the file's new contents from the fixture's.
		in   func(t *testing.T) string
		want []Change
	}{
		{"user added", Passwd, func(t *testing.T) string { return passwd + carolLine },
			[]Change{{Kind: Added, File: Passwd, Name: "carol", UID: 1002, GID: 1002, Gecos: "Carol,,,", Home: "/home/carol", Shell: "/bin/bash"}}},
		{"user deleted", Passwd, func(t *testing.T) string { return edit(t, passwd, "bob:x:1001:1001::/home/bob:/bin/sh\n", "") },
			[]Change{{Kind: Deleted, File: Passwd, Name: "bob", UID: 1001, GID: 1001, Home: "/home/bob", Shell: "/bin/sh"}}},
		{"shell changed", Passwd, func(t *testing.T) string { return edit(t, passwd, "/home/bob:/bin/sh", "/home/bob:/bin/bash") },
			[]Change{{Kind: Modified, File: Passwd, Name: "bob", UID: 1001, GID: 1001, Home: "/home/bob", Shell: "/bin/bash",
				Changed: FieldShell, OldUID: 1001, OldGID: 1001, OldHome: "/home/bob", OldShell: "/bin/sh"}}},
		{"uid 0 given, home and comment changed", Passwd, func(t *testing.T) string {
			return edit(t, passwd, "bob:x:1001:1001::/home/bob", "bob:x:0:1001:b:/root")
		}, []Change{{Kind: Modified, File: Passwd, Name: "bob", UID: 0, GID: 1001, Gecos: "b", Home: "/root", Shell: "/bin/sh",
			Changed: FieldUID | FieldGecos | FieldHome, OldUID: 1001, OldGID: 1001, OldHome: "/home/bob", OldShell: "/bin/sh"}}},
		{"password emptied in passwd", Passwd, func(t *testing.T) string { return edit(t, passwd, "root:x:", "root::") },
			[]Change{{Kind: Modified, File: Passwd, Name: "root", Gecos: "root", Home: "/root", Shell: "/bin/bash", PasswordEmpty: true,
				Changed: FieldPassword, OldGecos: "root", OldHome: "/root", OldShell: "/bin/bash"}}},
		{"second root entry", Passwd, func(t *testing.T) string { return passwd + "root::0:0::/:/bin/sh\n" },
			[]Change{{Kind: Added, File: Passwd, Name: "root", Home: "/", Shell: "/bin/sh", PasswordEmpty: true}}},
		{"user renamed", Passwd, func(t *testing.T) string { return edit(t, passwd, "bob:x:", "robert:x:") },
			[]Change{
				{Kind: Deleted, File: Passwd, Name: "bob", UID: 1001, GID: 1001, Home: "/home/bob", Shell: "/bin/sh"},
				{Kind: Added, File: Passwd, Name: "robert", UID: 1001, GID: 1001, Home: "/home/bob", Shell: "/bin/sh"},
			}},
		{"lines reordered, comments and blank lines added", Passwd, func(t *testing.T) string {
			lines := strings.SplitAfter(passwd, "\n")
			lines[0], lines[1] = lines[1], lines[0]
			return "# edited\n\n" + strings.Join(lines, "") + "+::::::\n"
		}, nil},
		{"CRLF line endings", Passwd, func(t *testing.T) string { return strings.ReplaceAll(passwd, "\n", "\r\n") }, nil},
		{"malformed line is no entry", Passwd, func(t *testing.T) string { return passwd + "eve:x:notanumber:0::/:/bin/sh\n" }, nil},

		{"password hash changed", Shadow, func(t *testing.T) string {
			return edit(t, shadow, "$6$alicesalt$AliceHashAliceHash:19100:", "$6$newsalt$NewHashNewHash:19500:")
		}, []Change{{Kind: Modified, File: Shadow, Name: "alice", UID: 1000, GID: 1000, Gecos: "Alice Liddell,,,", Home: "/home/alice", Shell: "/bin/zsh",
			Changed: FieldPassword | FieldLastChange, OldUID: 1000, OldGID: 1000, OldGecos: "Alice Liddell,,,", OldHome: "/home/alice", OldShell: "/bin/zsh"}}},
		{"account unlocked and aging changed", Shadow, func(t *testing.T) string {
			return edit(t, shadow, "bob:!:19200:0:99999:7:::", "bob::19200:1:99999:7:30:20000:")
		}, []Change{{Kind: Modified, File: Shadow, Name: "bob", UID: 1001, GID: 1001, Home: "/home/bob", Shell: "/bin/sh", PasswordEmpty: true,
			Changed: FieldPassword | FieldMinAge | FieldInactiveDays | FieldExpireDate, OldUID: 1001, OldGID: 1001, OldHome: "/home/bob", OldShell: "/bin/sh"}}},
		{"shadow entry without a user", Shadow, func(t *testing.T) string { return shadow + "ghost:$1$x$y:19000:0:99999:7:::\n" },
			[]Change{{Kind: Added, File: Shadow, Name: "ghost", NoUser: true}}},
		{"two-field shadow entry", Shadow, func(t *testing.T) string { return edit(t, shadow, "daemon:*:19000:0:99999:7:::", "daemon:*") },
			[]Change{{Kind: Modified, File: Shadow, Name: "daemon", UID: 1, GID: 1, Gecos: "daemon", Home: "/usr/sbin", Shell: "/usr/sbin/nologin",
				Changed: FieldLastChange | FieldMinAge | FieldMaxAge | FieldWarnDays, OldUID: 1, OldGID: 1, OldGecos: "daemon", OldHome: "/usr/sbin", OldShell: "/usr/sbin/nologin"}}},
		{"reserved field changed", Shadow, func(t *testing.T) string {
			return edit(t, shadow, "nobody:*:19000:0:99999:7:::", "nobody:*:19000:0:99999:7:::x")
		}, nil},

		{"member added", Group, func(t *testing.T) string { return edit(t, group, "sudo:x:27:alice", "sudo:x:27:alice,bob") },
			[]Change{{Kind: Modified, File: Group, Name: "sudo", GID: 27, Changed: FieldMembers, OldGID: 27, MembersAdded: []string{"bob"}}}},
		{"members reordered and repeated", Group, func(t *testing.T) string {
			return edit(t, group, "users:x:100:alice,bob", "users:x:100:bob, alice,bob")
		}, nil},
		{"member swapped and gid changed", Group, func(t *testing.T) string { return edit(t, group, "users:x:100:alice,bob", "users:x:101:alice,carol") },
			[]Change{{Kind: Modified, File: Group, Name: "users", GID: 101, Changed: FieldGID | FieldMembers, OldGID: 100,
				MembersAdded: []string{"carol"}, MembersRemoved: []string{"bob"}}}},
		{"group added with members", Group, func(t *testing.T) string { return group + "wheel:x:10:bob,alice,bob\n" },
			[]Change{{Kind: Added, File: Group, Name: "wheel", GID: 10, MembersAdded: []string{"bob", "alice"}}}},
		{"group deleted", Group, func(t *testing.T) string { return edit(t, group, "users:x:100:alice,bob\n", "") },
			[]Change{{Kind: Deleted, File: Group, Name: "users", GID: 100, MembersRemoved: []string{"alice", "bob"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := newRoot(t)
			w := New(&Options{Root: root})
			replace(t, root, tt.file, tt.in(t))
			if !w.Changed(tt.file) {
				t.Errorf("Changed(%v) = false after the file was replaced", tt.file)
			}
			res, err := w.Diff(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			for i := range tt.want {
				tt.want[i].Path = filepath.Join(root, "etc", tt.file.String())
			}
			if d := cmp.Diff(Result{Changes: tt.want}, res); d != "" {
				t.Errorf("Diff (-want +got):\n%s", d)
			}
			if w.Changed(tt.file) {
				t.Errorf("Changed(%v) = true after Diff", tt.file)
			}
			// The snapshot is the new file: nothing more to report.
			if res, err := w.Diff(tt.file); err != nil || len(res.Changes) != 0 || res.Deferred {
				t.Errorf("second Diff = %+v, %v; want nothing", res, err)
			}
		})
	}
}

// TestDiffShadowOfDeletedUser deletes a user the way userdel does, passwd
// first: the shadow entry deleted next still names the user's ids.
func TestDiffShadowOfDeletedUser(t *testing.T) {
	root := newRoot(t)
	w := New(&Options{Root: root})
	replace(t, root, Passwd, edit(t, fixture(t, Passwd), "bob:x:1001:1001::/home/bob:/bin/sh\n", ""))
	if _, err := w.Diff(Passwd); err != nil {
		t.Fatal(err)
	}
	replace(t, root, Shadow, edit(t, fixture(t, Shadow), "bob:!:19200:0:99999:7:::\n", ""))
	res, err := w.Diff(Shadow)
	if err != nil {
		t.Fatal(err)
	}
	want := Result{Changes: []Change{{Kind: Deleted, File: Shadow, Path: w.Path(Shadow), Name: "bob", UID: 1001, GID: 1001, Home: "/home/bob", Shell: "/bin/sh"}}}
	if d := cmp.Diff(want, res); d != "" {
		t.Errorf("Diff (-want +got):\n%s", d)
	}
}

// TestDiffIncomplete writes a file in place in two steps: the first half
// is deferred, the whole reported once.
func TestDiffIncomplete(t *testing.T) {
	root := newRoot(t)
	w := New(&Options{Root: root})
	path := w.Path(Passwd)
	passwd := fixture(t, Passwd)
	whole := passwd + "carol:x:1002:1002::/home/carol:/bin/sh\n"
	half := whole[:len(passwd)+10]
	if err := os.WriteFile(path, []byte(half), 0o644); err != nil {
		t.Fatal(err)
	}
	if res, err := w.Diff(Passwd); err != nil || !res.Deferred || len(res.Changes) != 0 {
		t.Fatalf("Diff of a half-written file = %+v, %v; want deferred", res, err)
	}
	if err := os.WriteFile(path, []byte(whole), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := w.Diff(Passwd)
	if err != nil {
		t.Fatal(err)
	}
	want := Result{Changes: []Change{{Kind: Added, File: Passwd, Path: path, Name: "carol", UID: 1002, GID: 1002, Home: "/home/carol", Shell: "/bin/sh"}}}
	if d := cmp.Diff(want, res); d != "" {
		t.Errorf("Diff of the whole file (-want +got):\n%s", d)
	}
}

// TestDiffIncompleteLeftSo appends an entry without a final newline and
// leaves it so: the second look compares it.
func TestDiffIncompleteLeftSo(t *testing.T) {
	root := newRoot(t)
	w := New(&Options{Root: root})
	replace(t, root, Passwd, fixture(t, Passwd)+"evil:x:0:0::/root:/bin/sh")
	if res, err := w.Diff(Passwd); err != nil || !res.Deferred {
		t.Fatalf("first Diff = %+v, %v; want deferred", res, err)
	}
	if !w.Changed(Passwd) {
		t.Error("Changed = false for a deferred file")
	}
	res, err := w.Diff(Passwd)
	if err != nil {
		t.Fatal(err)
	}
	want := Result{Changes: []Change{{Kind: Added, File: Passwd, Path: w.Path(Passwd), Name: "evil", Home: "/root", Shell: "/bin/sh"}}}
	if d := cmp.Diff(want, res); d != "" {
		t.Errorf("second Diff (-want +got):\n%s", d)
	}
}

func TestDiffMissingFile(t *testing.T) {
	root := newRoot(t)
	if err := os.Remove(filepath.Join(root, "etc", "shadow")); err != nil {
		t.Fatal(err)
	}
	w := New(&Options{Root: root})
	if w.Changed(Shadow) {
		t.Error("Changed(Shadow) = true for a file missing from the start")
	}
	if res, err := w.Diff(Shadow); err != nil || len(res.Changes) != 0 || res.Deferred {
		t.Errorf("Diff of a file missing from the start = %+v, %v; want nothing", res, err)
	}
	replace(t, root, Shadow, "alice:$6$s$h:19000:0:99999:7:::\n")
	res, err := w.Diff(Shadow)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Changes) != 1 || res.Changes[0].Kind != Added || res.Changes[0].Name != "alice" || res.Changes[0].UID != 1000 {
		t.Errorf("Diff of the created file = %+v, want alice added", res)
	}

	// The group file goes away: deferred once, as a rename-away followed
	// by a rename-onto would look, then all its entries are deleted.
	if err := os.Remove(w.Path(Group)); err != nil {
		t.Fatal(err)
	}
	if !w.Changed(Group) {
		t.Error("Changed(Group) = false after it was removed")
	}
	if res, err := w.Diff(Group); err != nil || !res.Deferred {
		t.Fatalf("Diff of the removed file = %+v, %v; want deferred", res, err)
	}
	res, err = w.Diff(Group)
	if err != nil || len(res.Changes) != 7 {
		t.Fatalf("second Diff of the removed file = %+v, %v; want 7 groups deleted", res, err)
	}
	for _, c := range res.Changes {
		if c.Kind != Deleted {
			t.Errorf("change %+v, want a deletion", c)
		}
	}
}

func TestDiffReadErrors(t *testing.T) {
	root := newRoot(t)
	w := New(&Options{Root: root, MaxFileSize: 1024})
	replace(t, root, Passwd, fixture(t, Passwd)+strings.Repeat("#\n", 1024))
	if _, err := w.Diff(Passwd); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Errorf("Diff of a file over the cap: err = %v, want too large", err)
	}
	// A FIFO in the file's place must not block.
	path := w.Path(Group)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Diff(Group); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Diff of a FIFO: err = %v, want not a regular file", err)
	}
	// The snapshots were kept: a readable file again compares with them.
	replace(t, root, Passwd, fixture(t, Passwd)+"carol:x:1002:1002::/:/bin/sh\n")
	if res, err := w.Diff(Passwd); err != nil || len(res.Changes) != 1 || res.Changes[0].Name != "carol" {
		t.Errorf("Diff after the error = %+v, %v; want carol added", res, err)
	}
}

// TestDiffUnreadableAtStart: a file that cannot be read when the Watcher
// starts gets its snapshot from the first read that works.
func TestDiffUnreadableAtStart(t *testing.T) {
	root := newRoot(t)
	replace(t, root, Shadow, fixture(t, Shadow)+strings.Repeat("#\n", 1024))
	w := New(&Options{Root: root, MaxFileSize: 1024})
	if !w.Changed(Shadow) {
		t.Error("Changed = false for a file without a snapshot")
	}
	replace(t, root, Shadow, fixture(t, Shadow))
	if res, err := w.Diff(Shadow); err != nil || len(res.Changes) != 0 {
		t.Errorf("first readable Diff = %+v, %v; want the snapshot taken, nothing reported", res, err)
	}
	replace(t, root, Shadow, edit(t, fixture(t, Shadow), "bob:!:", "bob:$6$s$h:"))
	if res, err := w.Diff(Shadow); err != nil || len(res.Changes) != 1 || res.Changes[0].Changed != FieldPassword {
		t.Errorf("next Diff = %+v, %v; want bob's password changed", res, err)
	}
}

func TestLimits(t *testing.T) {
	root := newRoot(t)
	w := New(&Options{Root: root, MaxEntries: 6, MaxChanges: 2})
	if got := len(w.files[Group].snap.entries); got != 6 {
		t.Errorf("group snapshot holds %d entries, want 6 (MaxEntries)", got)
	}
	// nogroup, the seventh group, is not kept: its change goes unseen.
	replace(t, root, Group, edit(t, fixture(t, Group), "nogroup:x:65534:", "nogroup:x:0:"))
	if res, err := w.Diff(Group); err != nil || len(res.Changes) != 0 {
		t.Errorf("Diff of a change past MaxEntries = %+v, %v; want nothing", res, err)
	}
	var more strings.Builder
	for i := range 6 {
		fmt.Fprintf(&more, "u%d:x:%d:%d::/:/bin/sh\n", i, 2000+i, 2000+i)
	}
	replace(t, root, Passwd, "root:x:0:0::/:/bin/sh\n"+more.String())
	res, err := w.Diff(Passwd)
	if err != nil {
		t.Fatal(err)
	}
	// daemon, alice, bob and nobody deleted, root modified, and u0 to u4
	// added (u5 is past MaxEntries): 10 changes, 2 of them reported.
	if len(res.Changes) != 2 || res.Unreported != 8 {
		t.Errorf("Diff = %d changes, %d unreported; want 2 and 8", len(res.Changes), res.Unreported)
	}
}

// TestNoPasswordKept checks that neither a snapshot nor a change holds
// anything of a password hash.
func TestNoPasswordKept(t *testing.T) {
	root := newRoot(t)
	w := New(&Options{Root: root})
	const hash = "NewSecretHashValue"
	replace(t, root, Shadow, edit(t, fixture(t, Shadow), "bob:!:", "bob:$6$salt$"+hash+":"))
	res, err := w.Diff(Shadow)
	if err != nil {
		t.Fatal(err)
	}
	dump := fmt.Sprintf("%#v %#v %#v", res, w.files[Shadow].snap, w.files[Passwd].snap)
	for _, secret := range []string{hash, "AliceHash", "R00tHash", "$6$"} {
		if strings.Contains(dump, secret) {
			t.Errorf("%q found in the Watcher's state or result", secret)
		}
	}
}

func TestMatch(t *testing.T) {
	w := New(&Options{Root: "testdata"})
	tests := []struct {
		path string
		want File
		ok   bool
	}{
		{"testdata/etc/passwd", Passwd, true},
		{"testdata/etc/../etc/shadow", Shadow, true},
		{"testdata/etc//group", Group, true},
		{"testdata/etc/passwd+", 0, false},
		{"testdata/etc/gshadow", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		f, ok := w.Match(tt.path)
		if f != tt.want || ok != tt.ok {
			t.Errorf("Match(%q) = %v, %v; want %v, %v", tt.path, f, ok, tt.want, tt.ok)
		}
	}
	if d := cmp.Diff([]string{"uid", "password", "members"}, (FieldUID | FieldPassword | FieldMembers).Names()); d != "" {
		t.Errorf("Names (-want +got):\n%s", d)
	}
}

func TestMissingRootIsNoError(t *testing.T) {
	w := New(&Options{Root: filepath.Join(t.TempDir(), "none")})
	for f := range NumFiles {
		if res, err := w.Diff(f); err != nil || len(res.Changes) != 0 {
			t.Errorf("Diff(%v) = %+v, %v; want nothing", f, res, err)
		}
	}
	if _, _, err := readCapped(t.TempDir(), 1<<20); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("reading a directory: err = %v, want not a regular file", err)
	}
}

// BenchmarkParseCompare measures the work of a Diff past the read: parse
// a passwd file of 1000 users and compare it with the previous one, which
// had one user less.
func BenchmarkParseCompare(b *testing.B) {
	var old strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&old, "user%d:x:%d:%d:User %d,,,:/home/user%d:/bin/bash\n", i, 1000+i, 1000+i, i, i)
	}
	next := []byte(old.String() + "carol:x:5000:5000::/home/carol:/bin/sh\n")
	w := New(&Options{Root: b.TempDir()})
	prev := w.parse(Passwd, []byte(old.String()))
	b.ReportAllocs()
	for b.Loop() {
		t := w.parse(Passwd, next)
		if res := w.compare(Passwd, &prev, &t); len(res.Changes) != 1 {
			b.Fatalf("%d changes, want 1", len(res.Changes))
		}
	}
}
