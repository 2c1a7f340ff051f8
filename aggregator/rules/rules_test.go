package rules

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/xdr-sensor/xdr/proto/objid"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

func proc(tgid uint32, exe string) *xdrv1.Process {
	return &xdrv1.Process{Pid: tgid, Tgid: tgid, Exe: exe}
}

func execOf(subjectExe, file string, deleted, memfd bool) *xdrv1.ActEvent {
	return &xdrv1.ActEvent{
		Seq: 7, EventType: xdrv1.XdrEventType_XDR_EVENT_TYPE_PROCESS, AccessType: xdrv1.XdrAccessType_XDR_ACCESS_TYPE_PROCESS_EXECUTE,
		Subject: &xdrv1.Process{Tgid: 10, Exe: subjectExe, ExeDeleted: deleted},
		Target:  &xdrv1.ActEvent_File{File: &xdrv1.File{Path: file, Deleted: deleted, Memfd: memfd}},
	}
}

func rename(exe, newComm string) *xdrv1.ActEvent {
	return &xdrv1.ActEvent{
		EventType: xdrv1.XdrEventType_XDR_EVENT_TYPE_MODIFIED_PROCESS, AccessType: xdrv1.XdrAccessType_XDR_ACCESS_TYPE_MODIFIED_PROCESS_WRITE_PROCESS_NAME,
		Subject: proc(10, exe), Target: &xdrv1.ActEvent_Process{Process: proc(10, exe)},
		Details: &xdrv1.ActEvent_CommChange{CommChange: &xdrv1.CommChange{OldComm: "x", NewComm: newComm}},
	}
}

func uidChange(exe string, oldUID, newUID uint32, group bool) *xdrv1.ActEvent {
	return &xdrv1.ActEvent{
		EventType: xdrv1.XdrEventType_XDR_EVENT_TYPE_ACCOUNT, AccessType: xdrv1.XdrAccessType_XDR_ACCESS_TYPE_ACCOUNT_IMPERSONATE,
		Subject: proc(10, exe),
		Details: &xdrv1.ActEvent_IdChange{IdChange: &xdrv1.IdChange{Group: group, OldReal: oldUID, OldEffective: oldUID, NewReal: newUID, NewEffective: newUID}},
	}
}

func ptrace(tracerExe string, tracer, tracee uint32, kernel xdrv1.KernelEvent) *xdrv1.ActEvent {
	return &xdrv1.ActEvent{
		EventType: xdrv1.XdrEventType_XDR_EVENT_TYPE_MODIFIED_PROCESS, AccessType: xdrv1.XdrAccessType_XDR_ACCESS_TYPE_MODIFIED_PROCESS_WRITE_PROCESS,
		KernelEvent: kernel, Subject: proc(tracer, tracerExe), Target: &xdrv1.ActEvent_Process{Process: proc(tracee, "/usr/bin/sleep")},
		Details: &xdrv1.ActEvent_Ptrace{Ptrace: &xdrv1.PtraceDetails{Attach: true, TracerTgid: tracer}},
	}
}

func fileEvent(exe string, access xdrv1.XdrAccessType, path string, flags uint32) *xdrv1.ActEvent {
	return &xdrv1.ActEvent{
		EventType: xdrv1.XdrEventType_XDR_EVENT_TYPE_FILE, AccessType: access, Subject: proc(10, exe),
		Target: &xdrv1.ActEvent_File{File: &xdrv1.File{Path: path, Flags: flags}},
	}
}

const (
	ptraceEv = xdrv1.KernelEvent_KERNEL_EVENT_PTRACE
	sidEv    = xdrv1.KernelEvent_KERNEL_EVENT_SID
	modify   = xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_MODIFY
	open     = xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_OPEN
)

func TestRules(t *testing.T) {
	tests := []struct {
		name string
		cfg  *Config
		ev   *xdrv1.ActEvent
		want []string // rule ids that fire
	}{
		{"exec from /tmp", nil, execOf("/tmp/x", "/tmp/x", false, false), []string{"exec-tmp"}},
		{"exec from /dev/shm subdir", nil, execOf("/dev/shm/a/b", "/dev/shm/a/b", false, false), []string{"exec-tmp"}},
		{"exec from /usr/bin", nil, execOf("/usr/bin/id", "/usr/bin/id", false, false), nil},
		{"/tmpfoo is not /tmp", nil, execOf("/tmpfoo/x", "/tmpfoo/x", false, false), nil},
		{"configured exec dir", &Config{ExecDirs: []string{"/data/drop"}}, execOf("/data/drop/x", "/data/drop/x", false, false), []string{"exec-tmp"}},
		{"exec of deleted binary", nil, execOf("/usr/bin/x", "/usr/bin/x", true, false), []string{"exec-deleted"}},
		{"exec of memfd", nil, execOf("/memfd:payload", "/memfd:payload", false, true), []string{"exec-memfd"}},
		{"rename to sshd", nil, rename("/tmp/evil", "sshd"), []string{"masquerade-comm"}},
		{"rename to kworker", nil, rename("/usr/bin/python3", "kworker/0:1"), []string{"masquerade-comm"}},
		{"sshd naming itself sshd", nil, rename("/usr/sbin/sshd", "sshd"), nil},
		{"rename to an ordinary name", nil, rename("/usr/bin/python3", "worker"), nil},
		{"configured well-known name", &Config{WellKnownNames: []string{"myd"}}, rename("/usr/bin/x", "myd"), []string{"masquerade-comm"}},
		{"uid 1000 to 0 by a script", nil, uidChange("/tmp/exploit", 1000, 0, false), []string{"uid-root"}},
		{"uid 1000 to 0 by sudo", nil, uidChange("/usr/bin/sudo", 1000, 0, false), nil},
		{"root dropping to nobody", nil, uidChange("/usr/bin/python3", 0, 65534, false), nil},
		{"gid change to 0", nil, uidChange("/usr/bin/python3", 1000, 0, true), nil},
		{"configured setuid tool", &Config{SetuidTools: []string{"/opt/bin/elevate"}}, uidChange("/opt/bin/elevate", 1000, 0, false), nil},
		{"ptrace attach", nil, ptrace("/usr/bin/python3", 10, 20, ptraceEv), []string{"process-tamper"}},
		{"allowed tracer", &Config{Tracers: []string{"gdb"}}, ptrace("/usr/bin/gdb", 10, 20, ptraceEv), nil},
		{"setsid on itself", nil, ptrace("/usr/bin/setsid", 10, 10, sidEv), nil},
		{"passwd written by a script", nil, fileEvent("/usr/bin/python3", modify, "/etc/passwd", 0), []string{"account-file-write"}},
		{"shadow written by passwd", nil, fileEvent("/usr/bin/passwd", modify, "/etc/shadow", 0), nil},
		{"sudoers.d file opened for writing", nil, fileEvent("/bin/sh", open, "/etc/sudoers.d/99-x", 0o1|0o100), []string{"account-file-write"}},
		{"passwd opened read-only", nil, fileEvent("/usr/bin/id", open, "/etc/passwd", 0), nil},
		{"other file written", nil, fileEvent("/usr/bin/python3", modify, "/etc/hosts", 0), nil},
		{"disabled rule", &Config{Disabled: []string{"exec-tmp"}}, execOf("/tmp/x", "/tmp/x", false, false), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := New(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, hit := range e.Evaluate(tt.ev) {
				got = append(got, hit.GetRule().GetId())
				if hit.GetAccessType() != xdrv1.XdrAccessType_XDR_ACCESS_TYPE_BM_INVOKE || hit.GetEventType() != xdrv1.XdrEventType_XDR_EVENT_TYPE_BM {
					t.Errorf("hit types %v/%v", hit.GetEventType(), hit.GetAccessType())
				}
				if hit.GetCauseSeq() != tt.ev.GetSeq() || hit.GetCauseAccessType() != tt.ev.GetAccessType() || hit.GetSubject() != tt.ev.GetSubject() {
					t.Errorf("hit does not name its cause: %v", hit)
				}
				if hit.GetTargetHashId() != objid.Rule(hit.GetRule().GetId()) || hit.GetRule().GetSeverity() == 0 {
					t.Errorf("hit target %v", hit.GetRule())
				}
				// Hits are never re-evaluated into more hits.
				if again := e.Evaluate(hit); again != nil {
					t.Errorf("a hit matched again: %v", again)
				}
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("rules fired (-want +got):\n%s", d)
			}
		})
	}
}

func TestUnknownRuleRejected(t *testing.T) {
	if _, err := New(&Config{Disabled: []string{"exec-tpm"}}); err == nil || !strings.Contains(err.Error(), "exec-tmp") {
		t.Fatalf("New with a misspelt rule id = %v, want an error listing the rules", err)
	}
}

func TestRulesDocMatchesCode(t *testing.T) {
	b, err := os.ReadFile("RULES.md")
	if err != nil {
		t.Fatal(err)
	}
	var doc []Rule
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "| ") || strings.HasPrefix(line, "| id ") {
			continue
		}
		c := strings.Split(strings.Trim(line, "|"), "|")
		for i := range c {
			c[i] = strings.TrimSpace(c[i])
		}
		doc = append(doc, Rule{ID: c[0], Name: c[1], Severity: xdrv1.Severity(xdrv1.Severity_value["SEVERITY_"+c[2]])})
	}
	var code []Rule
	for _, r := range Rules() {
		code = append(code, Rule{ID: r.ID, Name: r.Name, Severity: r.Severity})
	}
	if d := cmp.Diff(code, doc); d != "" {
		t.Errorf("RULES.md differs from the code (-code +doc):\n%s", d)
	}
}

func BenchmarkEvaluateNoHit(b *testing.B) {
	e, _ := New(nil)
	ev := execOf("/usr/bin/id", "/usr/bin/id", false, false)
	for i := 0; i < b.N; i++ {
		e.Evaluate(ev)
	}
}
