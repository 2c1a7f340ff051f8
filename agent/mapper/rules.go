package mapper

import xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"

// TargetKind names the target oneof field an access type uses.
type TargetKind string

// Target kinds.
const (
	TargetProcess TargetKind = "process"
	TargetFile    TargetKind = "file"
	TargetAccount TargetKind = "account"
)

// Rule is one row of the mapping table.
type Rule struct {
	Kernel xdrv1.KernelEvent
	// Variant tells rows of one kernel event apart (e.g. ptrace attach
	// and detach); empty for most.
	Variant    string
	EventType  xdrv1.XdrEventType
	AccessType xdrv1.XdrAccessType
	Subject    string // who acts, in words
	Target     TargetKind
	// Detail names the ActEvent.details field filled, if any.
	Detail string
}

// Rules is the whole mapping for the proc connector. Ptrace attach makes
// the tracer act on the tracee: MODIFIED_PROCESS_WRITE_PROCESS, since an
// attached tracer can read and write all of the tracee. PTRACE_TRACEME
// (PROCESS_TRACME) has no proc connector event; the eBPF collector reports
// it. setsid and coredump have no access type of their own: they map to
// the nearest one and the kernel_event field (SID, COREDUMP) plus their
// details say what happened.
var Rules = []Rule{
	{xdrv1.KernelEvent_KERNEL_EVENT_FORK, "", xdrv1.XdrEventType_XDR_EVENT_TYPE_PROCESS, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_PROCESS_CREATE, "parent", TargetProcess, ""},
	{xdrv1.KernelEvent_KERNEL_EVENT_EXEC, "", xdrv1.XdrEventType_XDR_EVENT_TYPE_PROCESS, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_PROCESS_EXECUTE, "the process, with its new image", TargetFile, "exec"},
	{xdrv1.KernelEvent_KERNEL_EVENT_EXIT, "", xdrv1.XdrEventType_XDR_EVENT_TYPE_PROCESS, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_PROCESS_TERMINATE, "the process", TargetProcess, "exit"},
	{xdrv1.KernelEvent_KERNEL_EVENT_UID, "", xdrv1.XdrEventType_XDR_EVENT_TYPE_ACCOUNT, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_ACCOUNT_IMPERSONATE, "the process", TargetAccount, "id_change"},
	{xdrv1.KernelEvent_KERNEL_EVENT_GID, "", xdrv1.XdrEventType_XDR_EVENT_TYPE_ACCOUNT, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_ACCOUNT_IMPERSONATE, "the process", TargetAccount, "id_change"},
	{xdrv1.KernelEvent_KERNEL_EVENT_COMM, "", xdrv1.XdrEventType_XDR_EVENT_TYPE_MODIFIED_PROCESS, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_MODIFIED_PROCESS_WRITE_PROCESS_NAME, "the process", TargetProcess, "comm_change"},
	{xdrv1.KernelEvent_KERNEL_EVENT_PTRACE, "attach", xdrv1.XdrEventType_XDR_EVENT_TYPE_MODIFIED_PROCESS, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_MODIFIED_PROCESS_WRITE_PROCESS, "tracer", TargetProcess, "ptrace"},
	{xdrv1.KernelEvent_KERNEL_EVENT_PTRACE, "detach", xdrv1.XdrEventType_XDR_EVENT_TYPE_MODIFIED_PROCESS, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_MODIFIED_PROCESS_WRITE_PROCESS, "last known tracer, else the tracee", TargetProcess, "ptrace"},
	{xdrv1.KernelEvent_KERNEL_EVENT_SID, "", xdrv1.XdrEventType_XDR_EVENT_TYPE_MODIFIED_PROCESS, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_MODIFIED_PROCESS_WRITE_PROCESS, "the process", TargetProcess, "session"},
	{xdrv1.KernelEvent_KERNEL_EVENT_COREDUMP, "", xdrv1.XdrEventType_XDR_EVENT_TYPE_PROCESS, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_PROCESS_TERMINATE, "the process", TargetProcess, "coredump"},
}

// rule returns the row for a kernel event and variant.
func rule(k xdrv1.KernelEvent, variant string) *Rule {
	for i := range Rules {
		if Rules[i].Kernel == k && Rules[i].Variant == variant {
			return &Rules[i]
		}
	}
	panic("mapper: no rule for " + k.String() + " " + variant)
}
