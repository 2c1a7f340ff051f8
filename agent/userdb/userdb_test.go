package userdb

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "etc", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParsePasswd(t *testing.T) {
	want := []User{
		{Name: "root", UID: 0, GID: 0, Gecos: "root", Home: "/root", Shell: "/bin/bash"},
		{Name: "daemon", UID: 1, GID: 1, Gecos: "daemon", Home: "/usr/sbin", Shell: "/usr/sbin/nologin"},
		{Name: "alice", UID: 1000, GID: 1000, Gecos: "Alice Liddell,,,", Home: "/home/alice", Shell: "/bin/zsh"},
		{Name: "toor", UID: 0, GID: 0, Gecos: "second root", Home: "/root", Shell: "/bin/sh"},
		{Name: "alice", UID: 1002, GID: 1002, Home: "/home/alice2", Shell: "/bin/sh"},
		{Name: "nobody", UID: 65534, GID: 65534, Gecos: "nobody", Home: "/nonexistent", Shell: "/usr/sbin/nologin"},
		{Name: "crlf", UID: 1005, GID: 1005, Gecos: "dos", Home: "/home/crlf", Shell: "/bin/sh"},
		{Name: "last", UID: 4294967295, GID: 4294967295},
	}
	if d := cmp.Diff(want, ParsePasswd(readFixture(t, "passwd"))); d != "" {
		t.Errorf("ParsePasswd (-want +got):\n%s", d)
	}
}

func TestParseGroup(t *testing.T) {
	want := []Group{
		{Name: "root", GID: 0},
		{Name: "wheel", GID: 10, Members: []string{"root", "alice"}},
		{Name: "users", GID: 100, Members: []string{"alice", "bob"}},
		{Name: "admins", GID: 10, Members: []string{"mallory"}},
		{Name: "nogroup", GID: 65534},
	}
	if d := cmp.Diff(want, ParseGroup(readFixture(t, "group"))); d != "" {
		t.Errorf("ParseGroup (-want +got):\n%s", d)
	}
}

func TestParseEdgeCases(t *testing.T) {
	for _, tc := range []struct {
		name       string
		in         string
		wantUsers  []User
		wantGroups []Group
	}{
		{"empty", "", nil, nil},
		{"only newlines", "\n\n\r\n", nil, nil},
		{"empty fields", "a:::::\n", nil, nil},
		{"uid with spaces", "a:x: 1:1:::\n", nil, nil},
		{"group member list with colon", "g:x:1:a:b\n", nil, nil},
		{"blanks around members", "g:x:1: a ,\tb\r, ,\n", nil, []Group{{Name: "g", GID: 1, Members: []string{"a", "b"}}}},
		{"minimal", "u:x:1:2:::\ng:x:3:\n",
			[]User{{Name: "u", UID: 1, GID: 2}},
			[]Group{{Name: "g", GID: 3}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if d := cmp.Diff(tc.wantUsers, ParsePasswd([]byte(tc.in))); d != "" {
				t.Errorf("ParsePasswd (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.wantGroups, ParseGroup([]byte(tc.in))); d != "" {
				t.Errorf("ParseGroup (-want +got):\n%s", d)
			}
		})
	}
}

func TestEntries(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		max  int
		want [][]string
	}{
		{"no fields asked", "a:b\n", 0, nil},
		{"fewer fields are yielded", "a\na:b\na:b:c\n", 3, [][]string{{"a"}, {"a", "b"}, {"a", "b", "c"}}},
		{"more fields are skipped", "a:b:c:d\nok:1\n", 3, [][]string{{"ok", "1"}}},
		{"empty name, comments, NIS and blank lines", ":x:1\n#a:b\n+a:b\n-a:b\n\r\n", 3, nil},
		{"empty fields kept", "a::\r\n", 3, [][]string{{"a", "", ""}}},
		{"no final newline", "a:b", 2, [][]string{{"a", "b"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got [][]string
			for f := range Entries([]byte(tc.in), tc.max) {
				var line []string
				for _, x := range f {
					line = append(line, string(x))
				}
				got = append(got, line)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("Entries (-want +got):\n%s", d)
			}
		})
	}
}

func TestDBLookups(t *testing.T) {
	d := New(&Options{Root: "testdata"})
	for _, tc := range []struct {
		uid  uint32
		want string
	}{
		{0, "root"}, // first of root and toor
		{1000, "alice"},
		{1002, "alice"},
		{65534, "nobody"},
		{4294967295, "last"},
		{1001, ""}, // malformed line
		{4242, ""},
	} {
		if got := d.UserName(tc.uid); got != tc.want {
			t.Errorf("UserName(%d) = %q, want %q", tc.uid, got, tc.want)
		}
	}
	for _, tc := range []struct {
		gid  uint32
		want string
	}{
		{0, "root"},
		{10, "wheel"}, // first of wheel and admins
		{100, "users"},
		{11, ""}, // commented out
		{4242, ""},
	} {
		if got := d.GroupName(tc.gid); got != tc.want {
			t.Errorf("GroupName(%d) = %q, want %q", tc.gid, got, tc.want)
		}
	}

	u, ok := d.User(1000)
	if want := (User{Name: "alice", UID: 1000, GID: 1000, Gecos: "Alice Liddell,,,", Home: "/home/alice", Shell: "/bin/zsh"}); !ok || u != want {
		t.Errorf("User(1000) = %+v, %v; want %+v", u, ok, want)
	}
	if u, ok := d.User(4242); ok || u != (User{}) {
		t.Errorf("User(4242) = %+v, %v; want not found", u, ok)
	}
	if u, ok := d.UserByName("alice"); !ok || u.UID != 1000 {
		t.Errorf("UserByName(alice) = %+v, %v; want the first alice, uid 1000", u, ok)
	}
	if u, ok := d.UserByName("toor"); !ok || u.UID != 0 {
		t.Errorf("UserByName(toor) = %+v, %v; want uid 0", u, ok)
	}
	if _, ok := d.UserByName("mallory"); ok {
		t.Error("UserByName(mallory) found a user that is only a group member")
	}
}

// fakeClock is a clock tests advance by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// tempRoot returns a root directory with the given passwd and group files.
func tempRoot(t *testing.T, passwd, group string) string {
	t.Helper()
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "etc", "passwd"), passwd)
	writeFile(t, filepath.Join(root, "etc", "group"), group)
	return root
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// replaceFile writes content to a new file and renames it over path, like
// useradd and vipw do.
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	writeFile(t, path+".new", content)
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
}

func TestDBReload(t *testing.T) {
	root := tempRoot(t, "root:x:0:0::/root:/bin/sh\n", "root:x:0:\n")
	clock := &fakeClock{t: time.Unix(1700000000, 0)}
	d := newDB(&Options{Root: root, CheckInterval: time.Minute}, clock.now)
	if got := d.UserName(1000); got != "" {
		t.Fatalf("UserName(1000) before the change = %q", got)
	}

	passwd := filepath.Join(root, "etc", "passwd")
	group := filepath.Join(root, "etc", "group")
	replaceFile(t, passwd, "root:x:0:0::/root:/bin/sh\nbob:x:1000:1000::/home/bob:/bin/sh\n")
	writeFile(t, group, "root:x:0:\nbob:x:1000:\n") // in place
	clock.advance(59 * time.Second)
	if got := d.UserName(1000); got != "" {
		t.Errorf("UserName(1000) before the interval passed = %q, want \"\"", got)
	}
	clock.advance(time.Second)
	if got := d.UserName(1000); got != "bob" {
		t.Errorf("UserName(1000) after the interval = %q, want bob", got)
	}
	if got := d.GroupName(1000); got != "bob" {
		t.Errorf("GroupName(1000) after the interval = %q, want bob", got)
	}

	// A rename that keeps size and mtime still changes the inode.
	old, err := os.Stat(passwd)
	if err != nil {
		t.Fatal(err)
	}
	replaceFile(t, passwd, "root:x:0:0::/root:/bin/sh\nbib:x:1000:1000::/home/bob:/bin/sh\n")
	if err := os.Chtimes(passwd, old.ModTime(), old.ModTime()); err != nil {
		t.Fatal(err)
	}
	clock.advance(time.Minute)
	if got := d.UserName(1000); got != "bib" {
		t.Errorf("UserName(1000) after a same-size rename = %q, want bib", got)
	}
}

func TestDBKeepsNamesOnError(t *testing.T) {
	root := tempRoot(t, "bob:x:1000:1000::/home/bob:/bin/sh\n", "bob:x:1000:\n")
	clock := &fakeClock{t: time.Unix(1700000000, 0)}
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	d := newDB(&Options{Root: root, MaxFileSize: 64, Logger: logger}, clock.now)
	if got := d.UserName(1000); got != "bob" {
		t.Fatalf("UserName(1000) = %q, want bob", got)
	}

	passwd := filepath.Join(root, "etc", "passwd")
	replaceFile(t, passwd, strings.Repeat("#", 100)+"\ncarol:x:1000:1000::/:/bin/sh\n")
	if err := os.Remove(filepath.Join(root, "etc", "group")); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		clock.advance(defaultCheckInterval)
		if got := d.UserName(1000); got != "bob" {
			t.Errorf("UserName(1000) with a too large passwd = %q, want bob", got)
		}
		if got := d.GroupName(1000); got != "bob" {
			t.Errorf("GroupName(1000) with group removed = %q, want bob", got)
		}
	}
	out := logs.String()
	if n := strings.Count(out, "too large"); n != 1 {
		t.Errorf("logged the too large passwd %d times, want once:\n%s", n, out)
	}
	if n := strings.Count(out, "no such file"); n != 1 {
		t.Errorf("logged the missing group %d times, want once:\n%s", n, out)
	}

	// Fixed: the next check loads it.
	replaceFile(t, passwd, "carol:x:1000:1000::/:/bin/sh\n")
	clock.advance(defaultCheckInterval)
	if got := d.UserName(1000); got != "carol" {
		t.Errorf("UserName(1000) after the fix = %q, want carol", got)
	}
}

func TestDBMissingRoot(t *testing.T) {
	d := New(&Options{Root: filepath.Join(t.TempDir(), "none")})
	if got := d.UserName(0); got != "" {
		t.Errorf("UserName(0) without files = %q", got)
	}
	if got := d.GroupName(0); got != "" {
		t.Errorf("GroupName(0) without files = %q", got)
	}
}

func TestDBConcurrent(t *testing.T) {
	root := tempRoot(t, "u0:x:0:0:::\n", "g0:x:0:\n")
	clock := &fakeClock{t: time.Unix(1700000000, 0)}
	d := newDB(&Options{Root: root}, clock.now)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				if i%100 == 0 && g == 0 {
					clock.advance(defaultCheckInterval)
				}
				if name := d.UserName(0); name == "" {
					t.Errorf("UserName(0) = \"\" during reloads")
					return
				}
				d.GroupName(0)
			}
		})
	}
	for i := range 20 {
		replaceFile(t, filepath.Join(root, "etc", "passwd"), fmt.Sprintf("u%d:x:0:0:::\n", i))
	}
	wg.Wait()
}

// TestIntegrationHost reads the host's own files.
func TestIntegrationHost(t *testing.T) {
	users := ParsePasswd(readHostFile(t, "/etc/passwd"))
	if len(users) == 0 {
		t.Skip("needs a non-empty /etc/passwd")
	}
	d := New(nil)
	for _, u := range users {
		if got, _ := d.User(u.UID); got.UID != u.UID || got.Name == "" {
			t.Errorf("User(%d) = %+v", u.UID, got)
		}
	}
}

func readHostFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("needs %s: %v", path, err)
	}
	return b
}

func FuzzParsePasswd(f *testing.F) {
	f.Add(readFixture(f, "passwd"))
	f.Add([]byte("a:x:1:2:g,h:/home/a:/bin/sh\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		users := ParsePasswd(b)
		// Every entry survives a round trip through the file format.
		var out bytes.Buffer
		for _, u := range users {
			fmt.Fprintf(&out, "%s:x:%d:%d:%s:%s:%s\n", u.Name, u.UID, u.GID, u.Gecos, u.Home, u.Shell)
		}
		if d := cmp.Diff(users, ParsePasswd(out.Bytes())); d != "" {
			t.Fatalf("round trip (-first +second):\n%s", d)
		}
	})
}

func FuzzParseGroup(f *testing.F) {
	f.Add(readFixture(f, "group"))
	f.Add([]byte("g:x:1:a,,b\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		groups := ParseGroup(b)
		var out bytes.Buffer
		for _, g := range groups {
			fmt.Fprintf(&out, "%s:x:%d:%s\n", g.Name, g.GID, strings.Join(g.Members, ","))
		}
		if d := cmp.Diff(groups, ParseGroup(out.Bytes())); d != "" {
			t.Fatalf("round trip (-first +second):\n%s", d)
		}
	})
}

func BenchmarkUserName(b *testing.B) {
	d := New(&Options{Root: "testdata"})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if d.UserName(1000) != "alice" {
				b.Fatal("no alice")
			}
		}
	})
}
