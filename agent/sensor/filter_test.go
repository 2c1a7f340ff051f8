package sensor

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdr-sensor/xdr/agent/ebpf"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

func TestReadFilter(t *testing.T) {
	f, err := newReadFilter([]string{"/usr/lib/", "/etc/ld.so.cache"})
	if err != nil {
		t.Fatal(err)
	}
	open := func(path string, flags uint32, set func(*ebpf.FileOp)) *ebpf.Event {
		op := &ebpf.FileOp{Op: ebpf.OpOpenat, Path: path, Flags: flags}
		if set != nil {
			set(op)
		}
		return &ebpf.Event{Kind: ebpf.KindFileOpen, File: op}
	}
	tests := []struct {
		name string
		e    *ebpf.Event
		want bool
	}{
		{"read below a prefix", open("/usr/lib/x86_64-linux-gnu/libc.so.6", unix.O_RDONLY|unix.O_CLOEXEC, nil), true},
		{"read of the prefix itself", open("/etc/ld.so.cache", unix.O_RDONLY, nil), true},
		{"directory read below a prefix", open("/usr/lib/locale", unix.O_RDONLY|unix.O_DIRECTORY, nil), true},
		{"sibling sharing the prefix's letters", open("/usr/libexec/x", unix.O_RDONLY, nil), false},
		{"longer name sharing a file prefix", open("/etc/ld.so.cache~", unix.O_RDONLY, nil), false},
		{"write", open("/usr/lib/x", unix.O_WRONLY, nil), false},
		{"read-write", open("/usr/lib/x", unix.O_RDWR, nil), false},
		{"read with truncation", open("/usr/lib/x", unix.O_RDONLY|unix.O_TRUNC, nil), false},
		{"open that created the file", open("/usr/lib/x", unix.O_RDONLY|unix.O_CREAT, func(o *ebpf.FileOp) { o.Created = true }), false},
		{"path as passed (may climb with ..)", open("/usr/lib/../../etc/shadow", unix.O_RDONLY, func(o *ebpf.FileOp) { o.PathRaw = true }), false},
		{"path lacking its start", open("/usr/lib/x", unix.O_RDONLY, func(o *ebpf.FileOp) { o.PathTruncated = true }), false},
		{"read elsewhere", open("/etc/shadow", unix.O_RDONLY, nil), false},
		{"image load below a prefix", &ebpf.Event{Kind: ebpf.KindLoadImage, File: &ebpf.FileOp{Path: "/usr/lib/x.so"}}, false},
		{"delete below a prefix", &ebpf.Event{Kind: ebpf.KindFileUnlink, File: &ebpf.FileOp{Path: "/usr/lib/x.so"}}, false},
	}
	for _, tt := range tests {
		if got := f.excludes(tt.e); got != tt.want {
			t.Errorf("%s: excludes = %v, want %v", tt.name, got, tt.want)
		}
	}
	var none readFilter
	if none.excludes(open("/usr/lib/x", unix.O_RDONLY, nil)) {
		t.Error("an empty filter excluded a read")
	}
	for _, bad := range []string{"usr/lib", "/", "//", ""} {
		if _, err := newReadFilter([]string{bad}); err == nil {
			t.Errorf("prefix %q accepted", bad)
		}
	}
	if _, err := newReadFilter(DefaultExcludeReads); err != nil {
		t.Errorf("the defaults: %v", err)
	}
	// What the kernel took is not looked at again; the rest still is.
	rest := f.without([]string{"/usr/lib"})
	if rest.excludes(open("/usr/lib/x", unix.O_RDONLY, nil)) || !rest.excludes(open("/etc/ld.so.cache", unix.O_RDONLY, nil)) {
		t.Errorf("filter without /usr/lib: prefixes %q", rest.prefixes)
	}
}

// For real: reads under an excluded prefix are counted, not reported;
// writes there and reads elsewhere are reported.
func TestIntegrationExcludeReads(t *testing.T) {
	dir := t.TempDir()
	quiet := filepath.Join(dir, "quiet")
	if err := os.Mkdir(quiet, 0o755); err != nil {
		t.Fatal(err)
	}
	s := startSensorWith(t, &Options{Method: xdrv1.CollectorMethod_COLLECTOR_METHOD_EBPF, ExcludeReads: []string{quiet}})
	for _, name := range []string{"a", "b", "c"} {
		if err := os.WriteFile(filepath.Join(quiet, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	loud := filepath.Join(dir, "loud")
	if err := os.WriteFile(loud, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The test process is the agent, whose activity is not watched: a
	// shell does the reads.
	script := `for f in "$@"; do read x < "$f"; done; echo y >> "$1"`
	args := []string{"-c", script, "sh", filepath.Join(quiet, "a"), filepath.Join(quiet, "b"), filepath.Join(quiet, "c"), loud}
	if out, err := exec.Command("/bin/sh", args...).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	isOpen := func(path string, write bool) func(*xdrv1.ActEvent) bool {
		return func(ev *xdrv1.ActEvent) bool {
			return ev.GetAccessType() == xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_OPEN && ev.GetFile().GetPath() == path &&
				(ev.GetFile().GetFlags()&syscall.O_ACCMODE != syscall.O_RDONLY) == write
		}
	}
	s.wait(t, "the read elsewhere", nil, isOpen(loud, false))
	s.wait(t, "the write under the prefix", nil, isOpen(filepath.Join(quiet, "a"), true))
	filtered := func() uint64 {
		return s.counts.Get(xdrv1.EventStatType_EVENT_STAT_TYPE_FILTERED, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_OPEN)
	}
	deadline := time.Now().Add(waitTimeout)
	for filtered() < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := filtered(); n < 3 {
		t.Errorf("%d reads counted as filtered, want at least the shell's 3", n)
	}
	for _, name := range []string{"a", "b", "c"} {
		if ev := s.find(isOpen(filepath.Join(quiet, name), false)); ev != nil {
			t.Errorf("read of %s reported: %v", name, ev)
		}
	}
	// The configured list replaces the defaults: the shell's loader read
	// its cache, and that is reported.
	s.wait(t, "the loader's read of its cache", nil, isOpen("/etc/ld.so.cache", false))
}
