package ebpf

import "strconv"

// Kind is the kind of an event: the first field of every ring buffer
// record (enum xdr_kind in bpf/xdr.h).
type Kind uint32

// Event kinds. The payload field of Event that each kind sets is named in
// parentheses.
const (
	KindExec       Kind = 1 // a process image was replaced (Exec)
	KindFork       Kind = 3 // a process was created; threads are not reported (Fork)
	KindExit       Kind = 4 // the last thread of a process exited (Exit)
	KindSetID      Kind = 5 // a set*uid / set*gid call changed credentials (SetID)
	KindPtrace     Kind = 6 // a ptrace request that attaches or modifies (Ptrace)
	KindProcAccess Kind = 7 // process_vm_readv/writev, pidfd_open (ProcAccess)
	KindComm       Kind = 8 // prctl(PR_SET_NAME) (Comm)
	KindSetsid     Kind = 9 // a setsid that made the process leader of a new session (header only)

	KindFileOpen   Kind = 20 // an open that succeeded or was denied (File)
	KindFileUnlink Kind = 21 // unlink, unlinkat, rmdir (File)
	KindFileRename Kind = 22 // rename family: Path is the old path, Path2 the new (File)
	KindFileChmod  Kind = 23 // chmod family (File)
	KindFileChown  Kind = 24 // chown family (File)
	KindFileXattr  Kind = 25 // extended attribute set or removed (File)
	KindFileUtimes Kind = 26 // timestamps set (File)
	KindFileMknod  Kind = 27 // mknod, mknodat (File)
	KindFileWrite  Kind = 28 // first write to a regular file through an fd (File)
	KindFileClose  Kind = 29 // close of an fd that was written (File)
	KindFileCopy   Kind = 30 // copy_file_range, sendfile, FICLONE into a file: Path the destination, Path2 the source (File)
	KindMemfd      Kind = 31 // memfd_create (File)

	KindLoadImage Kind = 32 // a file mapped executable, once per process image and file (Memory)
	KindMprotect  Kind = 33 // PROT_EXEC added to anonymous or writable memory (Memory)

	KindConnect Kind = 40 // connect on an AF_INET, AF_INET6 or AF_UNIX socket, any result (Net)
	KindBind    Kind = 41 // bind that succeeded (Net)
	KindListen  Kind = 42 // listen that succeeded (Net)
	KindAccept  Kind = 43 // accept or accept4 of an AF_INET or AF_INET6 connection (Net)
	KindSend    Kind = 44 // first UDP datagram from a socket to a destination (Net)
	KindDNS     Kind = 45 // UDP datagram to port 53, with up to 512 payload bytes (Net)

	// kindArgv is an argv continuation record; Read folds it into the exec
	// event that follows it and never returns it.
	kindArgv Kind = 2
	// kindRepeat records count more of a thread's last reported open;
	// Read folds them into that open's event.
	kindRepeat Kind = 10
)

var kindNames = map[Kind]string{
	KindExec:       "exec",
	KindFork:       "fork",
	KindExit:       "exit",
	KindSetID:      "setid",
	KindPtrace:     "ptrace",
	KindProcAccess: "proc_access",
	KindComm:       "comm",
	KindSetsid:     "setsid",
	KindFileOpen:   "file_open",
	KindFileUnlink: "file_unlink",
	KindFileRename: "file_rename",
	KindFileChmod:  "file_chmod",
	KindFileChown:  "file_chown",
	KindFileXattr:  "file_xattr",
	KindFileUtimes: "file_utimes",
	KindFileMknod:  "file_mknod",
	KindFileWrite:  "file_write",
	KindFileClose:  "file_close",
	KindFileCopy:   "file_copy",
	KindMemfd:      "memfd",
	KindLoadImage:  "load_image",
	KindMprotect:   "mprotect",
	KindConnect:    "connect",
	KindBind:       "bind",
	KindListen:     "listen",
	KindAccept:     "accept",
	KindSend:       "send",
	KindDNS:        "dns",
	kindArgv:       "argv",
}

// String returns the lowercase name of k, or "Kind(N)" when unknown.
func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return "Kind(" + strconv.FormatUint(uint64(k), 10) + ")"
}

// Op is the system call an event came from (enum xdr_op in bpf/xdr.h).
type Op uint32

// System calls. OpFiclone and OpFiclonerange are ioctl(2) requests.
const (
	OpSetuid          Op = 1
	OpSetreuid        Op = 2
	OpSetresuid       Op = 3
	OpSetfsuid        Op = 4
	OpSetgid          Op = 5
	OpSetregid        Op = 6
	OpSetresgid       Op = 7
	OpSetfsgid        Op = 8
	OpPtrace          Op = 9
	OpProcessVMReadv  Op = 10
	OpProcessVMWritev Op = 11
	OpPidfdOpen       Op = 12
	OpPrctl           Op = 13

	OpOpen          Op = 20
	OpOpenat        Op = 21
	OpOpenat2       Op = 22
	OpCreat         Op = 23
	OpUnlink        Op = 24
	OpUnlinkat      Op = 25
	OpRmdir         Op = 26
	OpRename        Op = 27
	OpRenameat      Op = 28
	OpRenameat2     Op = 29
	OpChmod         Op = 30
	OpFchmod        Op = 31
	OpFchmodat      Op = 32
	OpFchmodat2     Op = 33
	OpChown         Op = 34
	OpLchown        Op = 35
	OpFchown        Op = 36
	OpFchownat      Op = 37
	OpSetxattr      Op = 38
	OpLsetxattr     Op = 39
	OpFsetxattr     Op = 40
	OpSetxattrat    Op = 41
	OpRemovexattr   Op = 42
	OpLremovexattr  Op = 43
	OpFremovexattr  Op = 44
	OpRemovexattrat Op = 45
	OpUtimensat     Op = 46
	OpUtimes        Op = 47
	OpFutimesat     Op = 48
	OpUtime         Op = 49
	OpMknod         Op = 50
	OpMknodat       Op = 51
	OpWrite         Op = 52
	OpPwrite64      Op = 53
	OpWritev        Op = 54
	OpPwritev       Op = 55
	OpPwritev2      Op = 56
	OpClose         Op = 57
	OpCopyFileRange Op = 58
	OpSendfile      Op = 59
	OpFiclone       Op = 60
	OpFiclonerange  Op = 61
	OpMemfdCreate   Op = 62
	OpMmap          Op = 63
	OpMprotect      Op = 64

	OpConnect  Op = 80
	OpBind     Op = 81
	OpListen   Op = 82
	OpAccept   Op = 83
	OpAccept4  Op = 84
	OpSendto   Op = 85
	OpSendmsg  Op = 86
	OpSendmmsg Op = 87
	// OpConnectOutcome reports how a TCP connect that returned
	// -EINPROGRESS ended: Ret 0 (connected) or the negative error.
	OpConnectOutcome Op = 88
)

var opNames = map[Op]string{
	OpSetuid:          "setuid",
	OpSetreuid:        "setreuid",
	OpSetresuid:       "setresuid",
	OpSetfsuid:        "setfsuid",
	OpSetgid:          "setgid",
	OpSetregid:        "setregid",
	OpSetresgid:       "setresgid",
	OpSetfsgid:        "setfsgid",
	OpPtrace:          "ptrace",
	OpProcessVMReadv:  "process_vm_readv",
	OpProcessVMWritev: "process_vm_writev",
	OpPidfdOpen:       "pidfd_open",
	OpPrctl:           "prctl",
	OpOpen:            "open",
	OpOpenat:          "openat",
	OpOpenat2:         "openat2",
	OpCreat:           "creat",
	OpUnlink:          "unlink",
	OpUnlinkat:        "unlinkat",
	OpRmdir:           "rmdir",
	OpRename:          "rename",
	OpRenameat:        "renameat",
	OpRenameat2:       "renameat2",
	OpChmod:           "chmod",
	OpFchmod:          "fchmod",
	OpFchmodat:        "fchmodat",
	OpFchmodat2:       "fchmodat2",
	OpChown:           "chown",
	OpLchown:          "lchown",
	OpFchown:          "fchown",
	OpFchownat:        "fchownat",
	OpSetxattr:        "setxattr",
	OpLsetxattr:       "lsetxattr",
	OpFsetxattr:       "fsetxattr",
	OpSetxattrat:      "setxattrat",
	OpRemovexattr:     "removexattr",
	OpLremovexattr:    "lremovexattr",
	OpFremovexattr:    "fremovexattr",
	OpRemovexattrat:   "removexattrat",
	OpUtimensat:       "utimensat",
	OpUtimes:          "utimes",
	OpFutimesat:       "futimesat",
	OpUtime:           "utime",
	OpMknod:           "mknod",
	OpMknodat:         "mknodat",
	OpWrite:           "write",
	OpPwrite64:        "pwrite64",
	OpWritev:          "writev",
	OpPwritev:         "pwritev",
	OpPwritev2:        "pwritev2",
	OpClose:           "close",
	OpCopyFileRange:   "copy_file_range",
	OpSendfile:        "sendfile",
	OpFiclone:         "ioctl_ficlone",
	OpFiclonerange:    "ioctl_ficlonerange",
	OpMemfdCreate:     "memfd_create",
	OpMmap:            "mmap",
	OpMprotect:        "mprotect",
	OpConnect:         "connect",
	OpBind:            "bind",
	OpListen:          "listen",
	OpAccept:          "accept",
	OpAccept4:         "accept4",
	OpSendto:          "sendto",
	OpSendmsg:         "sendmsg",
	OpSendmmsg:        "sendmmsg",
	OpConnectOutcome:  "connect_outcome",
}

// String returns the system call's name, or "Op(N)" when unknown.
func (o Op) String() string {
	if s, ok := opNames[o]; ok {
		return s
	}
	return "Op(" + strconv.FormatUint(uint64(o), 10) + ")"
}
