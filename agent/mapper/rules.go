package mapper

import xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"

// TargetKind names the target oneof field an access type uses.
type TargetKind string

// Target kinds.
const (
	TargetProcess    TargetKind = "process"
	TargetFile       TargetKind = "file"
	TargetAccount    TargetKind = "account"
	TargetConnection TargetKind = "connection"
	TargetDNS        TargetKind = "dns"
	TargetMemory     TargetKind = "memory"
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

// Rules is the whole mapping, for the proc connector and the eBPF
// collector (which reports the process events the same way, plus the
// rows of kernel event SYSCALL, whose variant is the eBPF event kind or
// system call), and for both the account rows (variants account_*): an
// account file compared after it was written or renamed onto, or found
// changed by a poll. Ptrace attach makes the tracer act on the tracee:
// MODIFIED_PROCESS_WRITE_PROCESS, since an attached tracer can read and
// write all of the tracee. PTRACE_TRACEME (PROCESS_TRACME) has no proc
// connector event; the eBPF collector reports it. setsid and coredump
// have no access type of their own: they map to the nearest one and the
// kernel_event field (SID, COREDUMP) plus their details say what
// happened.
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
	{xdrv1.KernelEvent_KERNEL_EVENT_PTRACE, "traceme", xdrv1.XdrEventType_XDR_EVENT_TYPE_PROCESS, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_PROCESS_TRACME, "tracee", TargetProcess, "ptrace"},
	{xdrv1.KernelEvent_KERNEL_EVENT_PTRACE, "modify", xdrv1.XdrEventType_XDR_EVENT_TYPE_MODIFIED_PROCESS, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_MODIFIED_PROCESS_WRITE_MEMORY, "tracer", TargetProcess, "ptrace"},
	{xdrv1.KernelEvent_KERNEL_EVENT_SYSCALL, "process_vm_readv", xdrv1.XdrEventType_XDR_EVENT_TYPE_MODIFIED_PROCESS, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_MODIFIED_PROCESS_READ_PROCESS, "the process", TargetProcess, ""},
	{xdrv1.KernelEvent_KERNEL_EVENT_SYSCALL, "process_vm_writev", xdrv1.XdrEventType_XDR_EVENT_TYPE_MODIFIED_PROCESS, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_MODIFIED_PROCESS_WRITE_MEMORY, "the process", TargetProcess, ""},
	{xdrv1.KernelEvent_KERNEL_EVENT_SYSCALL, "pidfd_open", xdrv1.XdrEventType_XDR_EVENT_TYPE_PROCESS, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_PROCESS_OPEN, "the process", TargetProcess, ""},
	{xdrv1.KernelEvent_KERNEL_EVENT_SYSCALL, "file_open", xdrv1.XdrEventType_XDR_EVENT_TYPE_FILE, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_OPEN, "the process", TargetFile, ""},
	{xdrv1.KernelEvent_KERNEL_EVENT_SYSCALL, "file_create", xdrv1.XdrEventType_XDR_EVENT_TYPE_FILE, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_CREATE, "the process", TargetFile, ""},
	{xdrv1.KernelEvent_KERNEL_EVENT_SYSCALL, "file_unlink", xdrv1.XdrEventType_XDR_EVENT_TYPE_FILE, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_DELETE, "the process", TargetFile, ""},
	{xdrv1.KernelEvent_KERNEL_EVENT_SYSCALL, "file_rename", xdrv1.XdrEventType_XDR_EVENT_TYPE_FILE, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_MOVE, "the process", TargetFile, ""},
	{xdrv1.KernelEvent_KERNEL_EVENT_SYSCALL, "file_chmod", xdrv1.XdrEventType_XDR_EVENT_TYPE_FILE, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_SET_SECURITY, "the process", TargetFile, ""},
	{xdrv1.KernelEvent_KERNEL_EVENT_SYSCALL, "file_chown", xdrv1.XdrEventType_XDR_EVENT_TYPE_FILE, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_SET_SECURITY, "the process", TargetFile, ""},
	{xdrv1.KernelEvent_KERNEL_EVENT_SYSCALL, "file_xattr", xdrv1.XdrEventType_XDR_EVENT_TYPE_FILE, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_SET_SECURITY, "the process", TargetFile, ""},
	{xdrv1.KernelEvent_KERNEL_EVENT_SYSCALL, "file_utimes", xdrv1.XdrEventType_XDR_EVENT_TYPE_FILE, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_MODIFY_TIMESTAMP, "the process", TargetFile, ""},
	{xdrv1.KernelEvent_KERNEL_EVENT_SYSCALL, "file_mknod", xdrv1.XdrEventType_XDR_EVENT_TYPE_FILE, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_CREATE, "the process", TargetFile, ""},
	{xdrv1.KernelEvent_KERNEL_EVENT_SYSCALL, "file_write", xdrv1.XdrEventType_XDR_EVENT_TYPE_FILE, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_MODIFY, "the process", TargetFile, ""},
	{xdrv1.KernelEvent_KERNEL_EVENT_SYSCALL, "file_close", xdrv1.XdrEventType_XDR_EVENT_TYPE_FILE, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_CLOSE, "the process", TargetFile, ""},
	{xdrv1.KernelEvent_KERNEL_EVENT_SYSCALL, "file_copy", xdrv1.XdrEventType_XDR_EVENT_TYPE_FILE, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_COPY, "the process", TargetFile, ""},
	{xdrv1.KernelEvent_KERNEL_EVENT_SYSCALL, "memfd", xdrv1.XdrEventType_XDR_EVENT_TYPE_FILE, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_CREATE, "the process", TargetFile, ""},
	{xdrv1.KernelEvent_KERNEL_EVENT_SYSCALL, "load_image", xdrv1.XdrEventType_XDR_EVENT_TYPE_PROCESS, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_PROCESS_LOAD_IMAGE, "the process", TargetFile, ""},
	{xdrv1.KernelEvent_KERNEL_EVENT_SYSCALL, "mprotect", xdrv1.XdrEventType_XDR_EVENT_TYPE_MEMORY, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_MEMORY_MODIFY_PERMISSION, "the process", TargetMemory, ""},
	{xdrv1.KernelEvent_KERNEL_EVENT_SYSCALL, "connect", xdrv1.XdrEventType_XDR_EVENT_TYPE_CONNECTION, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_CONNECTION_CONNECT_OUTBOUND, "the process", TargetConnection, ""},
	{xdrv1.KernelEvent_KERNEL_EVENT_SYSCALL, "send", xdrv1.XdrEventType_XDR_EVENT_TYPE_CONNECTION, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_CONNECTION_CONNECT_OUTBOUND, "the process", TargetConnection, ""},
	{xdrv1.KernelEvent_KERNEL_EVENT_SYSCALL, "accept", xdrv1.XdrEventType_XDR_EVENT_TYPE_CONNECTION, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_CONNECTION_CONNECT_INBOUND, "the process", TargetConnection, ""},
	{xdrv1.KernelEvent_KERNEL_EVENT_SYSCALL, "listen", xdrv1.XdrEventType_XDR_EVENT_TYPE_CONNECTION, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_CONNECTION_LISTEN, "the process", TargetConnection, ""},
	{xdrv1.KernelEvent_KERNEL_EVENT_SYSCALL, "bind", xdrv1.XdrEventType_XDR_EVENT_TYPE_CONNECTION, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_CONNECTION_LISTEN, "the process", TargetConnection, ""},
	{xdrv1.KernelEvent_KERNEL_EVENT_SYSCALL, "dns", xdrv1.XdrEventType_XDR_EVENT_TYPE_DNS, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_DNS_QUERY, "the process", TargetDNS, ""},
	{xdrv1.KernelEvent_KERNEL_EVENT_SYSCALL, "account_add", xdrv1.XdrEventType_XDR_EVENT_TYPE_ACCOUNT, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_ACCOUNT_ADD, accountWriter, TargetAccount, ""},
	{xdrv1.KernelEvent_KERNEL_EVENT_SYSCALL, "account_delete", xdrv1.XdrEventType_XDR_EVENT_TYPE_ACCOUNT, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_ACCOUNT_DELETE, accountWriter, TargetAccount, ""},
	{xdrv1.KernelEvent_KERNEL_EVENT_SYSCALL, "account_modify", xdrv1.XdrEventType_XDR_EVENT_TYPE_ACCOUNT, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_ACCOUNT_MODIFY, accountWriter, TargetAccount, ""},
}

// accountWriter is the subject of the account rows.
const accountWriter = "the process that wrote or renamed the file, if known"

// rule returns the row for a kernel event and variant.
func rule(k xdrv1.KernelEvent, variant string) *Rule {
	for i := range Rules {
		if Rules[i].Kernel == k && Rules[i].Variant == variant {
			return &Rules[i]
		}
	}
	panic("mapper: no rule for " + k.String() + " " + variant)
}
