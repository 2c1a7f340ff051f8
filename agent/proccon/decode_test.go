package proccon

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fixture returns the connector message stored in testdata/name.hex: the
// hex digits of its non-comment lines. The fixtures were captured on a
// little-endian host.
func fixture(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := readFixture(filepath.Join("testdata", name+".hex"))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func readFixture(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var digits strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
			digits.WriteString(line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return hex.DecodeString(digits.String())
}

func requireLittleEndian(tb testing.TB) {
	tb.Helper()
	if ne.Uint16([]byte{1, 0}) != 1 {
		tb.Skip("fixtures were captured on a little-endian host")
	}
}

// edit returns a copy of b changed by f.
func edit(b []byte, f func(b []byte) []byte) []byte {
	return f(bytes.Clone(b))
}

func setLen(n uint16) func([]byte) []byte {
	return func(b []byte) []byte { ne.PutUint16(b[16:18], n); return b }
}

func setWhat(w What) func([]byte) []byte {
	return func(b []byte) []byte { ne.PutUint32(b[cnMsgLen:cnMsgLen+4], uint32(w)); return b }
}

// The expected values were checked against what runScenario did when the
// fixtures were captured: the test process was tgid 12557 (thread 12562
// did the ptrace attach), /bin/true was pid 12564, setpriv 12565, the
// renaming sh 12566, setsid 12568, "sh -c 'exit 3'" 12569, the SIGQUIT sh
// 12570 and the traced sleep 12571; 12419 was the go command running the
// test binary.
func TestDecodeFixtures(t *testing.T) {
	requireLittleEndian(t)
	tests := []struct {
		name string
		want Event
	}{
		{"ack", Event{What: None, Timestamp: 1433994401321}},
		{"fork", Event{What: Fork, Timestamp: 1433996276907,
			PID: 12564, TGID: 12564, ParentPID: 12557, ParentTGID: 12557}},
		{"fork_thread", Event{What: Fork, CPU: 1, Timestamp: 1433994758981,
			PID: 12562, TGID: 12557, ParentPID: 12419, ParentTGID: 12419}},
		{"exec", Event{What: Exec, CPU: 1, Timestamp: 1433997485103, PID: 12564, TGID: 12564}},
		{"uid", Event{What: UID, Timestamp: 1434006020018,
			PID: 12565, TGID: 12565, RealID: 65534, EffectiveID: 65534}},
		{"gid", Event{What: GID, Timestamp: 1434006109979,
			PID: 12565, TGID: 12565, RealID: 65534, EffectiveID: 65534}},
		{"sid", Event{What: SID, CPU: 1, Timestamp: 1434070515571, PID: 12568, TGID: 12568}},
		{"comm", Event{What: Comm, Timestamp: 1434012139881, PID: 12566, TGID: 12566, Comm: "renamed"}},
		{"ptrace_attach", Event{What: Ptrace, CPU: 1, Timestamp: 1434081088409,
			PID: 12571, TGID: 12571, TracerPID: 12562, TracerTGID: 12557}},
		{"ptrace_detach", Event{What: Ptrace, CPU: 1, Timestamp: 1434081183560, PID: 12571, TGID: 12571}},
		{"coredump", Event{What: Coredump, Timestamp: 1434079522262,
			PID: 12570, TGID: 12570, ParentPID: 12562, ParentTGID: 12557}},
		{"exit", Event{What: Exit, Timestamp: 1434076440705,
			PID: 12569, TGID: 12569, ParentPID: 12557, ParentTGID: 12557, ExitCode: 3 << 8, ExitSignal: 17}},
		{"exit_signal", Event{What: Exit, Timestamp: 1434081463502,
			PID: 12571, TGID: 12571, ParentPID: 12562, ParentTGID: 12557, ExitCode: 9, ExitSignal: 17}},
		{"exit_thread", Event{What: Exit, Timestamp: 1434082430892,
			PID: 12562, TGID: 12557, ExitSignal: 0xffffffff}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(fixture(t, tt.name))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Decode mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeVariants(t *testing.T) {
	requireLittleEndian(t)
	exit := fixture(t, "exit")
	coredump := fixture(t, "coredump")
	comm := fixture(t, "comm")
	tests := []struct {
		name string
		in   []byte
		want Event
	}{
		{
			name: "exit without parent (before 4.18)",
			in:   edit(exit, func(b []byte) []byte { return setLen(16 + 16)(b[:cnMsgLen+16+16]) }),
			want: Event{What: Exit, Timestamp: 1434076440705, PID: 12569, TGID: 12569, ExitCode: 3 << 8, ExitSignal: 17},
		},
		{
			name: "exit with a partial parent is read without it",
			in:   edit(exit, setLen(16+20)),
			want: Event{What: Exit, Timestamp: 1434076440705, PID: 12569, TGID: 12569, ExitCode: 3 << 8, ExitSignal: 17},
		},
		{
			name: "coredump without parent (before 4.18)",
			in:   edit(coredump, func(b []byte) []byte { return setLen(16 + 8)(b[:cnMsgLen+16+8]) }),
			want: Event{What: Coredump, Timestamp: 1434079522262, PID: 12570, TGID: 12570},
		},
		{
			name: "nonzero exit decodes like exit",
			in:   edit(exit, setWhat(NonzeroExit)),
			want: Event{What: NonzeroExit, Timestamp: 1434076440705,
				PID: 12569, TGID: 12569, ParentPID: 12557, ParentTGID: 12557, ExitCode: 3 << 8, ExitSignal: 17},
		},
		{
			name: "comm filling all 16 bytes",
			in: edit(comm, func(b []byte) []byte {
				copy(b[cnMsgLen+16+8:], "0123456789abcdef")
				return b
			}),
			want: Event{What: Comm, Timestamp: 1434012139881, PID: 12566, TGID: 12566, Comm: "0123456789abcdef"},
		},
		{
			name: "comm stops at the first NUL",
			in: edit(comm, func(b []byte) []byte {
				copy(b[cnMsgLen+16+8:], "ab\x00cd")
				return b
			}),
			want: Event{What: Comm, Timestamp: 1434012139881, PID: 12566, TGID: 12566, Comm: "ab"},
		},
		{
			name: "bytes after the declared length are ignored",
			in:   append(bytes.Clone(fixture(t, "sid")), 0xff, 0xff, 0xff, 0xff),
			want: Event{What: SID, CPU: 1, Timestamp: 1434070515571, PID: 12568, TGID: 12568},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(tt.in)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Decode mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	requireLittleEndian(t)
	fork := fixture(t, "fork")
	tests := []struct {
		name    string
		in      []byte
		wantErr error
	}{
		{"empty", nil, ErrShort},
		{"shorter than cn_msg", fork[:cnMsgLen-1], ErrShort},
		{"wrong idx", edit(fork, func(b []byte) []byte { ne.PutUint32(b[0:4], 2); return b }), ErrNotProc},
		{"wrong val", edit(fork, func(b []byte) []byte { ne.PutUint32(b[4:8], 2); return b }), ErrNotProc},
		{"declared length beyond the buffer", edit(fork, setLen(41)), ErrShort},
		{"buffer cut before the declared length", fork[:len(fork)-1], ErrShort},
		{"declared length shorter than proc_event header", edit(fork, setLen(15)), ErrShort},
		{"cn_msg without payload", edit(fork[:cnMsgLen], setLen(0)), ErrShort},
		{"truncated fork union", edit(fork, setLen(16+15)), ErrShort},
		{"truncated exec union", edit(fixture(t, "exec"), setLen(16+7)), ErrShort},
		{"truncated uid union", edit(fixture(t, "uid"), setLen(16+12)), ErrShort},
		{"truncated ptrace union", edit(fixture(t, "ptrace_attach"), setLen(16+8)), ErrShort},
		{"truncated comm union", edit(fixture(t, "comm"), setLen(16+23)), ErrShort},
		{"truncated coredump union", edit(fixture(t, "coredump"), setLen(16+4)), ErrShort},
		{"truncated exit union", edit(fixture(t, "exit"), setLen(16+12)), ErrShort},
		{"truncated ack", edit(fixture(t, "ack"), setLen(16+3)), ErrShort},
		{"unknown kind", edit(fork, setWhat(0x8)), ErrUnknownKind},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Decode error = %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(Event{}, got); diff != "" {
				t.Errorf("Decode returned a non-zero event with its error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWhatString(t *testing.T) {
	tests := []struct {
		in   What
		want string
	}{
		{None, "none"}, {Fork, "fork"}, {Exec, "exec"}, {UID, "uid"}, {GID, "gid"},
		{SID, "sid"}, {Ptrace, "ptrace"}, {Comm, "comm"}, {NonzeroExit, "nonzero_exit"},
		{Coredump, "coredump"}, {Exit, "exit"}, {What(0x400), "What(0x400)"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("What(%#x).String() = %q, want %q", uint32(tt.in), got, tt.want)
		}
	}
}

func TestIsThread(t *testing.T) {
	requireLittleEndian(t)
	tests := []struct {
		name string
		want bool
	}{
		{"fork", false},
		{"fork_thread", true},
		{"exit", false},
		{"exit_thread", true},
		{"ack", false},
	}
	for _, tt := range tests {
		ev, err := Decode(fixture(t, tt.name))
		if err != nil {
			t.Fatal(err)
		}
		if got := ev.IsThread(); got != tt.want {
			t.Errorf("%s: IsThread() = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// meaningful lists, per kind, which optional fields may be non-zero.
type fields struct{ subject, parent, ids, tracer, comm, exit, err bool }

var meaningful = map[What]fields{
	None:        {err: true},
	Fork:        {subject: true, parent: true},
	Exec:        {subject: true},
	UID:         {subject: true, ids: true},
	GID:         {subject: true, ids: true},
	SID:         {subject: true},
	Ptrace:      {subject: true, tracer: true},
	Comm:        {subject: true, comm: true},
	Coredump:    {subject: true, parent: true},
	Exit:        {subject: true, parent: true, exit: true},
	NonzeroExit: {subject: true, parent: true, exit: true},
}

func FuzzDecode(f *testing.F) {
	paths, err := filepath.Glob(filepath.Join("testdata", "*.hex"))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no fixtures in testdata: %v", err)
	}
	for _, p := range paths {
		b, err := readFixture(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add(make([]byte, cnMsgLen))
	f.Fuzz(func(t *testing.T, b []byte) {
		in := bytes.Clone(b)
		ev, err := Decode(b)
		if !bytes.Equal(in, b) {
			t.Fatal("Decode modified its input")
		}
		if err != nil {
			if !errors.Is(err, ErrShort) && !errors.Is(err, ErrNotProc) && !errors.Is(err, ErrUnknownKind) {
				t.Fatalf("error %v wraps none of the sentinels", err)
			}
			if ev != (Event{}) {
				t.Fatalf("non-zero event %+v returned with error %v", ev, err)
			}
			return
		}
		m, ok := meaningful[ev.What]
		if !ok {
			t.Fatalf("decoded unknown kind %v without error", ev.What)
		}
		if len(ev.Comm) > commLen || strings.IndexByte(ev.Comm, 0) >= 0 {
			t.Fatalf("bad comm %q", ev.Comm)
		}
		check := func(name string, allowed bool, vals ...uint32) {
			for _, v := range vals {
				if !allowed && v != 0 {
					t.Fatalf("%v event has non-zero %s: %+v", ev.What, name, ev)
				}
			}
		}
		check("subject", m.subject, ev.PID, ev.TGID)
		check("parent", m.parent, ev.ParentPID, ev.ParentTGID)
		check("ids", m.ids, ev.RealID, ev.EffectiveID)
		check("tracer", m.tracer, ev.TracerPID, ev.TracerTGID)
		check("exit", m.exit, ev.ExitCode, ev.ExitSignal)
		check("err", m.err, ev.Err)
		if !m.comm && ev.Comm != "" {
			t.Fatalf("%v event has a comm: %+v", ev.What, ev)
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	for _, name := range []string{"fork", "exec", "exit", "comm"} {
		msg := fixture(b, name)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				if _, err := Decode(msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
