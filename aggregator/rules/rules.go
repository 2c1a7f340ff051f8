package rules

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/xdr-sensor/xdr/proto/objid"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// Config adjusts the built-in rules. Lists extend the built-in ones; they
// never replace them.
type Config struct {
	// Disabled names rules (by id) that are not evaluated.
	Disabled []string
	// ExecDirs are more directories whose executables are suspicious
	// (exec-tmp).
	ExecDirs []string
	// WellKnownNames are more process names that a rename must not take
	// (masquerade-comm).
	WellKnownNames []string
	// SetuidTools are more programs (base name or absolute path) that may
	// switch to root (uid-root).
	SetuidTools []string
	// Tracers are programs allowed to trace or write into other
	// processes (process-tamper); none by default.
	Tracers []string
	// AccountFiles are more files holding accounts (account-file-write);
	// a name ending in "/" covers everything below it.
	AccountFiles []string
	// AccountTools are more programs allowed to change them.
	AccountTools []string
}

// Built-in lists.
var (
	defaultExecDirs  = []string{"/tmp/", "/var/tmp/", "/dev/shm/", "/run/shm/"}
	defaultWellKnown = []string{
		"init", "systemd", "kthreadd", "kworker", "ksoftirqd", "sshd", "cron", "crond", "dbus-daemon",
		"rsyslogd", "syslogd", "journald", "systemd-journal", "udevd", "systemd-udevd", "bash", "sh",
		"login", "getty", "agetty", "dhclient", "NetworkManager", "containerd", "dockerd", "xdr-agent",
	}
	defaultSetuidTools = []string{
		"sudo", "su", "doas", "pkexec", "passwd", "chsh", "chfn", "newgrp", "sg", "login", "sshd",
		"sshd-session", "cron", "crond", "atd", "systemd", "systemd-logind", "polkitd", "unix_chkpwd",
		"mount", "umount", "fusermount", "fusermount3", "setpriv", "runuser", "dbus-daemon-launch-helper",
	}
	defaultAccountFiles = []string{
		"/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow", "/etc/sudoers", "/etc/sudoers.d/",
	}
	defaultAccountTools = []string{
		"useradd", "usermod", "userdel", "groupadd", "groupmod", "groupdel", "adduser", "deluser",
		"addgroup", "delgroup", "passwd", "chpasswd", "chgpasswd", "chsh", "chfn", "gpasswd", "newusers",
		"vipw", "vigr", "visudo", "pwconv", "pwunconv", "grpconv", "grpunconv", "systemd-sysusers",
	}
)

// Rule describes one rule.
type Rule struct {
	ID          string
	Name        string
	Severity    xdrv1.Severity
	Description string
}

type rule struct {
	Rule
	match func(e *Engine, ev *xdrv1.ActEvent) bool
}

// builtin is the rule set, in evaluation order.
var builtin = []rule{
	{Rule{"exec-tmp", "Execution from a temporary directory", xdrv1.Severity_SEVERITY_HIGH,
		"A program was executed from /tmp, /var/tmp, /dev/shm or another configured directory where droppers stage payloads."},
		(*Engine).execTmp},
	{Rule{"exec-deleted", "Execution of a deleted binary", xdrv1.Severity_SEVERITY_HIGH,
		"A process runs an executable that was deleted or replaced on disk, a way to hide a payload."},
		(*Engine).execDeleted},
	{Rule{"exec-memfd", "Execution from memory", xdrv1.Severity_SEVERITY_HIGH,
		"A program was executed from an anonymous memfd: fileless execution."},
		(*Engine).execMemfd},
	{Rule{"masquerade-comm", "Process renamed to a well-known program", xdrv1.Severity_SEVERITY_HIGH,
		"A process changed its name to that of a well-known system program it is not."},
		(*Engine).masquerade},
	{Rule{"uid-root", "Switch to root by an unexpected program", xdrv1.Severity_SEVERITY_CRITICAL,
		"A process changed its user id to 0 without being one of the usual set-user-id tools (sudo, su, login, ...)."},
		(*Engine).uidRoot},
	{Rule{"process-tamper", "Another process traced or written", xdrv1.Severity_SEVERITY_HIGH,
		"A process attached to another with ptrace or wrote into its memory."},
		(*Engine).tamper},
	{Rule{"account-file-write", "Account database changed by an unexpected program", xdrv1.Severity_SEVERITY_CRITICAL,
		"/etc/passwd, /etc/shadow, /etc/group, /etc/sudoers or another account file was written, moved or deleted by something other than the account tools."},
		(*Engine).accountWrite},
}

// Rules lists the built-in rules.
func Rules() []Rule {
	out := make([]Rule, len(builtin))
	for i, r := range builtin {
		out[i] = r.Rule
	}
	return out
}

// Engine evaluates the rules. It is not safe for concurrent use: the
// aggregator's writer goroutine owns it.
type Engine struct {
	rules        []*rule
	execDirs     []string
	wellKnown    map[string]bool
	setuidTools  map[string]bool
	tracers      map[string]bool
	accountFiles []string
	accountTools map[string]bool
	hits         map[string]uint64
}

// New returns an Engine for cfg (nil: every rule with the built-in lists).
// It fails on an unknown rule id, so a typo does not leave a rule on.
func New(cfg *Config) (*Engine, error) {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	e := &Engine{
		execDirs:     dirs(defaultExecDirs, c.ExecDirs),
		wellKnown:    set(defaultWellKnown, c.WellKnownNames),
		setuidTools:  set(defaultSetuidTools, c.SetuidTools),
		tracers:      set(nil, c.Tracers),
		accountFiles: append(slices.Clone(defaultAccountFiles), c.AccountFiles...),
		accountTools: set(defaultAccountTools, c.AccountTools),
		hits:         make(map[string]uint64),
	}
	off := set(nil, c.Disabled)
	for id := range off {
		if !slices.ContainsFunc(builtin, func(r rule) bool { return r.ID == id }) {
			return nil, fmt.Errorf("rules: no rule %q to disable (rules: %s)", id, strings.Join(ids(), ", "))
		}
	}
	for i := range builtin {
		if !off[builtin[i].ID] {
			e.rules = append(e.rules, &builtin[i])
		}
	}
	return e, nil
}

func ids() []string {
	var out []string
	for _, r := range builtin {
		out = append(out, r.ID)
	}
	return out
}

func set(a, b []string) map[string]bool {
	m := make(map[string]bool, len(a)+len(b))
	for _, s := range a {
		m[s] = true
	}
	for _, s := range b {
		m[s] = true
	}
	return m
}

// dirs returns the directory prefixes, each ending in "/".
func dirs(a, b []string) []string {
	out := slices.Clone(a)
	for _, d := range b {
		if !strings.HasSuffix(d, "/") {
			d += "/"
		}
		out = append(out, d)
	}
	return out
}

// Enabled returns the ids of the rules in force, in evaluation order.
func (e *Engine) Enabled() []string {
	out := make([]string, len(e.rules))
	for i, r := range e.rules {
		out[i] = r.ID
	}
	return out
}

// Hits returns how often each rule matched.
func (e *Engine) Hits() map[string]uint64 { return e.hits }

// Evaluate runs the rules on ev and returns a BM_INVOKE activity per rule
// that matched (nil when none did). Rule hits are not evaluated again.
func (e *Engine) Evaluate(ev *xdrv1.ActEvent) []*xdrv1.ActEvent {
	if ev.GetEventType() == xdrv1.XdrEventType_XDR_EVENT_TYPE_BM {
		return nil
	}
	var out []*xdrv1.ActEvent
	for _, r := range e.rules {
		if !r.match(e, ev) {
			continue
		}
		e.hits[r.ID]++
		out = append(out, &xdrv1.ActEvent{
			TimestampNs:     ev.GetTimestampNs(),
			EventType:       xdrv1.XdrEventType_XDR_EVENT_TYPE_BM,
			AccessType:      xdrv1.XdrAccessType_XDR_ACCESS_TYPE_BM_INVOKE,
			Subject:         ev.GetSubject(),
			TargetHashId:    objid.Rule(r.ID),
			KernelEvent:     ev.GetKernelEvent(),
			Collector:       ev.GetCollector(),
			CauseSeq:        ev.GetSeq(),
			CauseAccessType: ev.GetAccessType(),
			Target: &xdrv1.ActEvent_Rule{Rule: &xdrv1.Rule{
				Id: r.ID, Name: r.Name, Severity: r.Severity, Description: r.Description,
			}},
		})
	}
	return out
}

// tool reports whether exe is in the named set, by absolute path or by
// base name.
func tool(m map[string]bool, exe string) bool {
	return exe != "" && (m[exe] || m[path.Base(exe)])
}

// execPath is the executed file of a PROCESS_EXECUTE activity.
func execPath(ev *xdrv1.ActEvent) string {
	if p := ev.GetFile().GetPath(); p != "" {
		return p
	}
	return ev.GetSubject().GetExe()
}

func isExec(ev *xdrv1.ActEvent) bool {
	return ev.GetAccessType() == xdrv1.XdrAccessType_XDR_ACCESS_TYPE_PROCESS_EXECUTE
}

func (e *Engine) execTmp(ev *xdrv1.ActEvent) bool {
	if !isExec(ev) {
		return false
	}
	p := objid.CleanPath(execPath(ev))
	for _, d := range e.execDirs {
		if strings.HasPrefix(p, d) {
			return true
		}
	}
	return false
}

func (e *Engine) execDeleted(ev *xdrv1.ActEvent) bool {
	return isExec(ev) && (ev.GetFile().GetDeleted() || ev.GetSubject().GetExeDeleted()) && !isMemfd(ev)
}

func isMemfd(ev *xdrv1.ActEvent) bool {
	return ev.GetFile().GetMemfd() || ev.GetExec().GetMemfd() || strings.HasPrefix(execPath(ev), "/memfd:")
}

func (e *Engine) execMemfd(ev *xdrv1.ActEvent) bool { return isExec(ev) && isMemfd(ev) }

// masquerade matches a rename to a well-known name by a process whose
// executable has another name. Names are compared as the kernel keeps
// them: at most 15 bytes.
func (e *Engine) masquerade(ev *xdrv1.ActEvent) bool {
	if ev.GetAccessType() != xdrv1.XdrAccessType_XDR_ACCESS_TYPE_MODIFIED_PROCESS_WRITE_PROCESS_NAME {
		return false
	}
	name := ev.GetCommChange().GetNewComm()
	if name == "" {
		name = ev.GetProcess().GetComm()
	}
	base := strings.TrimSuffix(name, ":") // kworker/0:1 style names
	if i := strings.IndexAny(base, "/:"); i > 0 {
		base = base[:i]
	}
	if !e.wellKnown[name] && !e.wellKnown[base] {
		return false
	}
	exe := ev.GetSubject().GetExe()
	if exe == "" {
		return true // a process without an executable is a kernel thread; user space renaming to one is the point
	}
	own := path.Base(exe)
	return comm15(own) != comm15(name) && comm15(own) != comm15(base)
}

func comm15(s string) string {
	if len(s) > 15 {
		return s[:15]
	}
	return s
}

func (e *Engine) uidRoot(ev *xdrv1.ActEvent) bool {
	if ev.GetAccessType() != xdrv1.XdrAccessType_XDR_ACCESS_TYPE_ACCOUNT_IMPERSONATE {
		return false
	}
	d := ev.GetIdChange()
	if d == nil || d.GetGroup() {
		return false
	}
	toRoot := d.GetNewEffective() == 0 || d.GetNewReal() == 0
	wasRoot := !d.GetOldUnknown() && d.GetOldEffective() == 0 && d.GetOldReal() == 0
	return toRoot && !wasRoot && !tool(e.setuidTools, ev.GetSubject().GetExe())
}

func (e *Engine) tamper(ev *xdrv1.ActEvent) bool {
	switch ev.GetAccessType() {
	case xdrv1.XdrAccessType_XDR_ACCESS_TYPE_MODIFIED_PROCESS_WRITE_PROCESS:
		// Only a ptrace attach: setsid maps here too, on itself.
		if ev.GetKernelEvent() != xdrv1.KernelEvent_KERNEL_EVENT_PTRACE || !ev.GetPtrace().GetAttach() {
			return false
		}
	case xdrv1.XdrAccessType_XDR_ACCESS_TYPE_MODIFIED_PROCESS_WRITE_MEMORY:
	default:
		return false
	}
	target := ev.GetProcess()
	if target == nil || target.GetTgid() == ev.GetSubject().GetTgid() {
		return false
	}
	return !tool(e.tracers, ev.GetSubject().GetExe())
}

func (e *Engine) accountWrite(ev *xdrv1.ActEvent) bool {
	switch ev.GetAccessType() {
	case xdrv1.XdrAccessType_XDR_ACCESS_TYPE_ACCOUNT_ADD, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_ACCOUNT_DELETE,
		xdrv1.XdrAccessType_XDR_ACCESS_TYPE_ACCOUNT_MODIFY:
		return !tool(e.accountTools, ev.GetSubject().GetExe())
	case xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_MODIFY, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_CREATE,
		xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_MOVE, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_DELETE,
		xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_SET_SECURITY:
	case xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_OPEN:
		const writeFlags = 0o1 | 0o2 | 0o1000 // O_WRONLY, O_RDWR, O_TRUNC
		if ev.GetFile().GetFlags()&writeFlags == 0 {
			return false
		}
	default:
		return false
	}
	f := ev.GetFile()
	if !e.accountFile(f.GetPath()) && !e.accountFile(f.GetNewPath()) {
		return false
	}
	return !tool(e.accountTools, ev.GetSubject().GetExe())
}

func (e *Engine) accountFile(p string) bool {
	if p == "" {
		return false
	}
	p = objid.CleanPath(p)
	for _, f := range e.accountFiles {
		if p == f || (strings.HasSuffix(f, "/") && strings.HasPrefix(p, f)) {
			return true
		}
	}
	return false
}
