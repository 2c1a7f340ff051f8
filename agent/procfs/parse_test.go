package procfs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// statLine formats a stat line with the given leading fields, the rest
// zero-filled up to field 52 like a real kernel's.
func statLine(pid int, comm string, state byte, ppid, pgrp, session int, flags, start uint64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d (%s) ", pid, comm)
	b.WriteByte(state)
	fmt.Fprintf(&b, " %d %d %d 34816 -1 %d", ppid, pgrp, session, flags)
	for field := 10; field <= 52; field++ {
		if field == 22 {
			fmt.Fprintf(&b, " %d", start)
		} else {
			b.WriteString(" 0")
		}
	}
	b.WriteByte('\n')
	return b.String()
}

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		name      string
		in        string
		want      Stat
		wantFlags uint64
		wantErr   bool
	}{
		{"plain", statLine(7, "sshd", 'S', 1, 7, 7, 0x400140, 4242), Stat{PID: 7, Comm: "sshd", State: 'S', PPID: 1, PGRP: 7, Session: 7, StartTicks: 4242}, 0x400140, false},
		{"spaces and parens", statLine(8, ") ) (x) 1 2 3", 'R', 2, 3, 4, 0, 5), Stat{PID: 8, Comm: ") ) (x) 1 2 3", State: 'R', PPID: 2, PGRP: 3, Session: 4, StartTicks: 5}, 0, false},
		{"newline in comm", statLine(9, "a\nb", 'S', 1, 1, 1, 0, 6), Stat{PID: 9, Comm: "a\nb", State: 'S', PPID: 1, PGRP: 1, Session: 1, StartTicks: 6}, 0, false},
		{"empty comm", statLine(10, "", 'I', 2, 0, 0, 0x208040, 1), Stat{PID: 10, Comm: "", State: 'I', PPID: 2, StartTicks: 1}, 0x208040, false},
		{"exactly 22 fields", "11 (a) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99", Stat{PID: 11, Comm: "a", State: 'S', PPID: 1, PGRP: 1, Session: 1, StartTicks: 99}, 0, false},
		{"max start", statLine(12, "a", 'S', 1, 1, 1, 0, 18446744073709551615), Stat{PID: 12, Comm: "a", State: 'S', PPID: 1, PGRP: 1, Session: 1, StartTicks: 18446744073709551615}, 0, false},
		{"21 fields", "11 (a) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0\n", Stat{}, 0, true},
		{"start overflows", "11 (a) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 18446744073709551616\n", Stat{}, 0, true},
		{"negative ppid", "11 (a) S -1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 9\n", Stat{}, 0, true},
		{"pid too large", "2147483648 (a) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 9\n", Stat{}, 0, true},
		{"two-letter state", "11 (a) SS 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 9\n", Stat{}, 0, true},
		{"not a number", "11 (a) S 1 1 1 0 -1 0 0 0 0 x 0 0 0 0 20 0 1 0 9\n", Stat{}, 0, true},
		{"lone minus", "11 (a) S 1 1 1 0 - 0 0 0 0 0 0 0 0 0 20 0 1 0 9\n", Stat{}, 0, true},
		{"double space", "11 (a)  S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 9\n", Stat{}, 0, true},
		{"no paren", "11 a S 1\n", Stat{}, 0, true},
		{"no closing paren", "11 (a S 1 1 1\n", Stat{}, 0, true},
		{"no pid", "(a) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 9\n", Stat{}, 0, true},
		{"pid not a number", "1x (a) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 9\n", Stat{}, 0, true},
		{"truncated in comm", "1004 (trunc", Stat{}, 0, true},
		{"empty", "", Stat{}, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, flags, err := parseStat([]byte(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseStat(%q) error %v, want error %v", tc.in, err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("parseStat(%q) (-want +got):\n%s", tc.in, d)
			}
			if flags != tc.wantFlags {
				t.Errorf("parseStat(%q) flags = %#x, want %#x", tc.in, flags, tc.wantFlags)
			}
		})
	}
}

// statusText formats the lines of a status file that parseStatus reads,
// escaping the name like the kernel.
func statusText(st Status) string {
	name := strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(st.Name)
	return fmt.Sprintf("Name:\t%s\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t%d\nNgid:\t0\nPid:\t%d\nPPid:\t%d\nTracerPid:\t0\nUid:\t%d\t%d\t%d\t%d\nGid:\t%d\t%d\t%d\t%d\nFDSize:\t64\n",
		name, st.TGID, st.TGID, st.PPID, st.UID[0], st.UID[1], st.UID[2], st.UID[3], st.GID[0], st.GID[1], st.GID[2], st.GID[3])
}

func TestParseStatus(t *testing.T) {
	root := [4]uint32{}
	for _, tc := range []struct {
		name    string
		in      string
		want    Status
		wantErr bool
	}{
		{"plain", statusText(Status{Name: "sshd", TGID: 5, PPID: 1, UID: [4]uint32{1, 2, 3, 4}, GID: [4]uint32{5, 6, 7, 8}}),
			Status{Name: "sshd", TGID: 5, PPID: 1, UID: [4]uint32{1, 2, 3, 4}, GID: [4]uint32{5, 6, 7, 8}}, false},
		{"escaped name", "Name:\ta\\nb\\\\c\\d\nTgid:\t1\nPPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n",
			Status{Name: "a\nb\\c\\d", TGID: 1}, false},
		{"octal escapes of old kernels", "Name:\ta\\012b\\134\\9\nTgid:\t1\nPPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n",
			Status{Name: "a\nb\\\\9", TGID: 1}, false},
		{"trailing backslash", "Name:\ta\\\nTgid:\t1\nPPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n",
			Status{Name: "a\\", TGID: 1}, false},
		{"leading blanks in name", "Name:\t  x\t\nTgid:\t1\nPPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n",
			Status{Name: "  x\t", TGID: 1}, false},
		{"max ids", "Name:\tx\nTgid:\t1\nPPid:\t0\nUid:\t4294967295\t0\t0\t0\nGid:\t0\t0\t0\t4294967295\n",
			Status{Name: "x", TGID: 1, UID: [4]uint32{4294967295, 0, 0, 0}, GID: [4]uint32{0, 0, 0, 4294967295}}, false},
		{"order does not matter", "Gid:\t0\t0\t0\t0\nUid:\t0\t0\t0\t0\nPPid:\t0\nTgid:\t3\nName:\tx\n",
			Status{Name: "x", TGID: 3, UID: root, GID: root}, false},
		{"no final newline", "Name:\tx\nTgid:\t1\nPPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0",
			Status{Name: "x", TGID: 1}, false},
		{"uid overflows", "Name:\tx\nTgid:\t1\nPPid:\t0\nUid:\t4294967296\t0\t0\t0\nGid:\t0\t0\t0\t0\n", Status{}, true},
		{"three uids", "Name:\tx\nTgid:\t1\nPPid:\t0\nUid:\t0\t0\t0\nGid:\t0\t0\t0\t0\n", Status{}, true},
		{"five uids", "Name:\tx\nTgid:\t1\nPPid:\t0\nUid:\t0\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n", Status{}, true},
		{"bad ppid", "Name:\tx\nTgid:\t1\nPPid:\tx\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n", Status{}, true},
		{"missing gid", "Name:\tx\nTgid:\t1\nPPid:\t0\nUid:\t0\t0\t0\t0\n", Status{}, true},
		{"empty", "", Status{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStatus([]byte(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseStatus(%q) error %v, want error %v", tc.in, err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("parseStatus(%q) (-want +got):\n%s", tc.in, d)
			}
		})
	}
}

func TestSplitNUL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"\x00", []string{""}},
		{"a", []string{"a"}},
		{"a\x00", []string{"a"}},
		{"a\x00b\x00", []string{"a", "b"}},
		{"a\x00\x00b\x00", []string{"a", "", "b"}},
		{"a\x00\x00", []string{"a", ""}},
		{"\x00a", []string{"", "a"}},
	} {
		if d := cmp.Diff(tc.want, splitNUL([]byte(tc.in))); d != "" {
			t.Errorf("splitNUL(%q) (-want +got):\n%s", tc.in, d)
		}
	}
}

func TestParseUint(t *testing.T) {
	for _, tc := range []struct {
		in     string
		want   uint64
		wantOK bool
	}{
		{"0", 0, true},
		{"42", 42, true},
		{"18446744073709551615", 18446744073709551615, true},
		{"18446744073709551616", 0, false},
		{"99999999999999999999", 0, false},
		{"000000000000000000001", 0, false}, // longer than any value the kernel prints
		{"", 0, false},
		{"-1", 0, false},
		{"+1", 0, false},
		{"1 ", 0, false},
	} {
		got, ok := parseUint([]byte(tc.in))
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("parseUint(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.wantOK)
		}
	}
}

// fixtureSeeds adds the fixture files named name as seeds.
func fixtureSeeds(f *testing.F, name string) {
	paths, err := filepath.Glob(filepath.Join("testdata", "proc", "*", name))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no fixture %s files: %v", name, err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func FuzzParseStat(f *testing.F) {
	fixtureSeeds(f, "stat")
	f.Add([]byte(statLine(1, ") (", 'S', 0, 0, 0, 0, 1)))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, flags, err := parseStat(b)
		if err != nil {
			return
		}
		if st.PID < 0 || st.PPID < 0 || st.PGRP < 0 || st.Session < 0 {
			t.Fatalf("negative id in %+v", st)
		}
		// What was parsed must survive a round trip through the format.
		again, againFlags, err := parseStat([]byte(statLine(st.PID, st.Comm, st.State, st.PPID, st.PGRP, st.Session, flags, st.StartTicks)))
		if err != nil {
			t.Fatalf("reparse of %+v: %v", st, err)
		}
		if d := cmp.Diff(st, again); d != "" || againFlags != flags {
			t.Fatalf("round trip (-first +second):\n%s flags %#x %#x", d, flags, againFlags)
		}
	})
}

func FuzzParseStatus(f *testing.F) {
	fixtureSeeds(f, "status")
	f.Add([]byte("Name:\ta\\nb\\\\\nTgid:\t1\nPPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parseStatus(b)
		if err != nil {
			return
		}
		again, err := parseStatus([]byte(statusText(st)))
		if err != nil {
			t.Fatalf("reparse of %+v: %v", st, err)
		}
		if d := cmp.Diff(st, again); d != "" {
			t.Fatalf("round trip (-first +second):\n%s", d)
		}
	})
}

func BenchmarkParseStat(b *testing.B) {
	line := []byte(statLine(12345, "worker (x)", 'S', 1, 12345, 12345, 0x400140, 987654321))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := parseStat(line); err != nil {
			b.Fatal(err)
		}
	}
}
