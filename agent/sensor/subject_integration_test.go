package sensor

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// With the eBPF collector an exec is described by the kernel alone: the
// executable's identity for its hashes comes from the record, so even a
// process gone before its events are handled carries its hashes, and its
// later events share one subject, sent encoded once.
func TestIntegrationEBPFExecIdentityFromKernel(t *testing.T) {
	s := startSensor(t, xdrv1.CollectorMethod_COLLECTOR_METHOD_EBPF, "")
	cat, err := exec.LookPath("cat")
	if err != nil {
		t.Skip("no cat")
	}
	exe, _ := filepath.EvalSymlinks(cat)
	body, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	wantSum := hex.EncodeToString(sum[:])
	dir := t.TempDir()
	var inputs []string
	for _, name := range []string{"a", "b", "c"} {
		inputs = append(inputs, filepath.Join(dir, name))
		if err := os.WriteFile(inputs[len(inputs)-1], []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	marker := "xdr-" + t.Name()
	run := func(round string) {
		// Through a shell: the agent's own process (this test) is not
		// watched, so its direct children are unknown to the table until
		// read from /proc; the shell waits so that it is read complete.
		// cat exits at once: its events are handled after it is gone.
		script := `sleep 0.3; "$0" "$@"; exit 0`
		if out, err := exec.Command("/bin/sh", append([]string{"-c", script, exe}, append(inputs, marker+round)...)...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	run("-1") // hashes the executable
	s.wait(t, "first exec", nil, func(ev *xdrv1.ActEvent) bool {
		return ev.GetAccessType() == xdrv1.XdrAccessType_XDR_ACCESS_TYPE_PROCESS_EXECUTE && ev.GetSubject().GetExe() == exe && slices.Contains(ev.GetSubject().GetArgv(), marker+"-1")
	})
	run("-2")
	execEv := s.wait(t, "second exec", nil, func(ev *xdrv1.ActEvent) bool {
		return ev.GetAccessType() == xdrv1.XdrAccessType_XDR_ACCESS_TYPE_PROCESS_EXECUTE && ev.GetSubject().GetExe() == exe && slices.Contains(ev.GetSubject().GetArgv(), marker+"-2")
	})
	sub := execEv.GetSubject()
	if sub.GetPartial() || sub.GetExe() != exe || sub.GetExeHashes().GetSha256() != wantSum {
		t.Fatalf("exec subject: exe %q partial %v sha256 %q; want %q, complete, %s", sub.GetExe(), sub.GetPartial(), sub.GetExeHashes().GetSha256(), exe, wantSum)
	}
	// Its opens of the inputs share the exec's subject.
	var opens []*xdrv1.ActEvent
	s.wait(t, "the opens of the inputs", nil, func(ev *xdrv1.ActEvent) bool {
		if ev.GetSubject().GetInstanceId() == sub.GetInstanceId() && slices.Contains(inputs, ev.GetFile().GetPath()) &&
			ev.GetAccessType() == xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_OPEN && !slices.Contains(opens, ev) {
			opens = append(opens, ev)
		}
		return len(opens) == len(inputs)
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ev := range opens {
		if ev.GetSubject() != sub {
			t.Errorf("open %d has a subject of its own", ev.GetSeq())
		}
		if !slices.Contains(s.encoded, ev.GetSeq()) {
			t.Errorf("open %d was sent without its encoded subject", ev.GetSeq())
		}
	}
}
