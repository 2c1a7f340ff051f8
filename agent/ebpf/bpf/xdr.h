/* Record layout of the eBPF collector's ring buffer: shared by the BPF
 * programs (collector.c) and, through bpf2go -type, by the Go decoder.
 *
 * Every record starts with struct xdr_header, whose first field is the
 * kind (enum xdr_kind). The kind decides the fixed payload struct that
 * follows the header; variable-length parts (paths, names, argv bytes, a
 * DNS payload) follow the payload back to back, in the order the payload
 * struct lists their lengths, without NUL terminators. All integers are in
 * the kernel's byte order (little endian: the object is built for bpfel).
 */
#ifndef XDR_H
#define XDR_H

#define XDR_COMM_LEN 16
/* Bytes of one string field (a path component walk, a user string). */
#define XDR_STR_MAX 4096
/* Argv bytes per record: in the exec record and in each continuation. */
#define XDR_ARGV_CHUNK 4096
/* Bytes of a UDP payload copied for DNS parsing. */
#define XDR_DNS_MAX 512
/* Bytes of an AF_UNIX path (sizeof sun_path). */
#define XDR_UNIX_PATH_MAX 108

enum xdr_kind {
	XDR_KIND_EXEC = 1,
	XDR_KIND_ARGV = 2, /* argv continuation of the exec record that follows */
	XDR_KIND_FORK = 3,
	XDR_KIND_EXIT = 4,
	XDR_KIND_SETID = 5,
	XDR_KIND_PTRACE = 6,
	XDR_KIND_PROC_ACCESS = 7, /* process_vm_readv/writev, pidfd_open */
	XDR_KIND_COMM = 8,        /* prctl(PR_SET_NAME) */
	XDR_KIND_SETSID = 9,      /* setsid: the header is the new session leader */
	XDR_KIND_REPEAT = 10,     /* the thread repeated its last reported open: struct xdr_repeat */

	XDR_KIND_FILE_OPEN = 20,
	XDR_KIND_FILE_UNLINK = 21,
	XDR_KIND_FILE_RENAME = 22,
	XDR_KIND_FILE_CHMOD = 23,
	XDR_KIND_FILE_CHOWN = 24,
	XDR_KIND_FILE_XATTR = 25,
	XDR_KIND_FILE_UTIMES = 26,
	XDR_KIND_FILE_MKNOD = 27,
	XDR_KIND_FILE_WRITE = 28, /* first write through an fd */
	XDR_KIND_FILE_CLOSE = 29, /* close of an fd that was written */
	XDR_KIND_FILE_COPY = 30,
	XDR_KIND_MEMFD = 31,
	XDR_KIND_LOAD_IMAGE = 32, /* executable file mapping */
	XDR_KIND_MPROTECT = 33,   /* PROT_EXEC added to anonymous or writable memory */

	XDR_KIND_NET_CONNECT = 40,
	XDR_KIND_NET_BIND = 41,
	XDR_KIND_NET_LISTEN = 42,
	XDR_KIND_NET_ACCEPT = 43,
	XDR_KIND_NET_SEND = 44, /* first UDP datagram to a destination */
	XDR_KIND_DNS = 45,      /* UDP datagram to port 53, with its payload */
};

/* The system call an event came from (the payloads' op field). */
enum xdr_op {
	XDR_OP_NONE = 0,
	XDR_OP_SETUID = 1,
	XDR_OP_SETREUID = 2,
	XDR_OP_SETRESUID = 3,
	XDR_OP_SETFSUID = 4,
	XDR_OP_SETGID = 5,
	XDR_OP_SETREGID = 6,
	XDR_OP_SETRESGID = 7,
	XDR_OP_SETFSGID = 8,
	XDR_OP_PTRACE = 9,
	XDR_OP_PROCESS_VM_READV = 10,
	XDR_OP_PROCESS_VM_WRITEV = 11,
	XDR_OP_PIDFD_OPEN = 12,
	XDR_OP_PRCTL = 13,

	XDR_OP_OPEN = 20,
	XDR_OP_OPENAT = 21,
	XDR_OP_OPENAT2 = 22,
	XDR_OP_CREAT = 23,
	XDR_OP_UNLINK = 24,
	XDR_OP_UNLINKAT = 25,
	XDR_OP_RMDIR = 26,
	XDR_OP_RENAME = 27,
	XDR_OP_RENAMEAT = 28,
	XDR_OP_RENAMEAT2 = 29,
	XDR_OP_CHMOD = 30,
	XDR_OP_FCHMOD = 31,
	XDR_OP_FCHMODAT = 32,
	XDR_OP_FCHMODAT2 = 33,
	XDR_OP_CHOWN = 34,
	XDR_OP_LCHOWN = 35,
	XDR_OP_FCHOWN = 36,
	XDR_OP_FCHOWNAT = 37,
	XDR_OP_SETXATTR = 38,
	XDR_OP_LSETXATTR = 39,
	XDR_OP_FSETXATTR = 40,
	XDR_OP_SETXATTRAT = 41,
	XDR_OP_REMOVEXATTR = 42,
	XDR_OP_LREMOVEXATTR = 43,
	XDR_OP_FREMOVEXATTR = 44,
	XDR_OP_REMOVEXATTRAT = 45,
	XDR_OP_UTIMENSAT = 46,
	XDR_OP_UTIMES = 47,
	XDR_OP_FUTIMESAT = 48,
	XDR_OP_UTIME = 49,
	XDR_OP_MKNOD = 50,
	XDR_OP_MKNODAT = 51,
	XDR_OP_WRITE = 52,
	XDR_OP_PWRITE64 = 53,
	XDR_OP_WRITEV = 54,
	XDR_OP_PWRITEV = 55,
	XDR_OP_PWRITEV2 = 56,
	XDR_OP_CLOSE = 57,
	XDR_OP_COPY_FILE_RANGE = 58,
	XDR_OP_SENDFILE = 59,
	XDR_OP_FICLONE = 60,
	XDR_OP_FICLONERANGE = 61,
	XDR_OP_MEMFD_CREATE = 62,
	XDR_OP_MMAP = 63,
	XDR_OP_MPROTECT = 64,

	XDR_OP_CONNECT = 80,
	XDR_OP_BIND = 81,
	XDR_OP_LISTEN = 82,
	XDR_OP_ACCEPT = 83,
	XDR_OP_ACCEPT4 = 84,
	XDR_OP_SENDTO = 85,
	XDR_OP_SENDMSG = 86,
	XDR_OP_SENDMMSG = 87,
	/* The outcome of a TCP connect that returned -EINPROGRESS: ret is 0
	 * (connected) or the negative error; the header is the connecting
	 * task's, as at its connect. */
	XDR_OP_CONNECT_OUTCOME = 88,
};

/* xdr_header.flags bits. */
enum xdr_flag {
	XDR_FLAG_PATH_TRUNCATED = 1 << 0,  /* first path is incomplete */
	XDR_FLAG_PATH2_TRUNCATED = 1 << 1, /* second path is incomplete */
	XDR_FLAG_PATH_RAW = 1 << 2,        /* first path joined from the caller's string, not resolved */
	XDR_FLAG_PATH2_RAW = 1 << 3,       /* same for the second path */
	XDR_FLAG_ARGV_TRUNCATED = 1 << 4,  /* argv longer than the configured limit */
	XDR_FLAG_ARGV_INCOMPLETE = 1 << 5, /* argv read failed or a continuation was lost */
	XDR_FLAG_CREATED = 1 << 6,         /* the open created the file (FMODE_CREATED) */
	XDR_FLAG_NAME_TRUNCATED = 1 << 7,  /* xattr / memfd name incomplete */
};

/* Drop and degradation reasons, and events counted instead of reported:
 * indexes of the per-CPU counter array. */
enum xdr_drop {
	XDR_DROP_RINGBUF = 0,        /* event lost: ring buffer full (reserve/output failed) */
	XDR_DROP_ARGV_READ = 1,      /* argv read failed or a continuation lost; event flagged */
	XDR_DROP_ARGV_TRUNCATED = 2, /* argv longer than the limit; event flagged */
	XDR_DROP_PATH_TRUNCATED = 3, /* a path was incomplete; event flagged */
	XDR_DROP_STATE_FULL = 4,     /* event lost: no memory for a thread's system call state */
	XDR_DROP_OTHER = 5,          /* event lost or degraded: any other failure */
	XDR_DROP_FILTERED_READ = 6,  /* not a loss: a read-only open under an excluded prefix, counted only */
	XDR_DROP_MAX = 7,
};

struct xdr_header {
	__u32 kind;  /* enum xdr_kind */
	__u32 flags; /* enum xdr_flag bits */
	__u64 ktime_ns;          /* CLOCK_MONOTONIC (bpf_ktime_get_ns) */
	__u64 start_boottime_ns; /* thread group leader's start, CLOCK_BOOTTIME */
	__u32 pid;               /* thread id, initial pid namespace */
	__u32 tgid;
	__u32 ppid; /* real parent's tgid */
	__u32 uid;  /* real credentials */
	__u32 gid;
	__u32 euid;
	__u32 egid;
	__u32 sid; /* session id */
	char comm[XDR_COMM_LEN];
};

/* A file as the kernel saw it; zero when the event has no struct file. */
struct xdr_file {
	__u64 ino;
	__s64 size;
	__s64 mtime_sec;
	__s64 ctime_sec;
	__u32 dev; /* kernel encoding: major << 20 | minor */
	__u32 mode;
	__u32 uid;
	__u32 gid;
	__u32 mtime_nsec;
	__u32 ctime_nsec;
	__u32 nlink; /* 0: deleted */
	__u32 pad;
};

/* XDR_KIND_EXEC, then: filename, exe path, cwd, argv[0:argv_len]. */
struct xdr_exec {
	struct xdr_file exe;
	__u32 old_pid;
	__u32 argv_size;     /* bytes of argv in the new image (arg_end - arg_start) */
	__u32 argv_captured; /* argv bytes delivered in this record and its continuations */
	__u16 continuations; /* XDR_KIND_ARGV records submitted before this one */
	__u16 filename_len;
	__u16 exe_len;
	__u16 cwd_len;
	__u16 argv_len; /* argv bytes in this record */
	__u16 pad;
};

/* XDR_KIND_ARGV, then data[0:len]. Its header's pid and ktime_ns equal
 * those of the exec record it belongs to, which follows it. */
struct xdr_argv {
	__u32 index;  /* 0 for the first continuation */
	__u32 offset; /* offset of data in argv */
	__u32 len;
	__u32 pad;
};

/* XDR_KIND_FORK: the header is the parent. */
struct xdr_fork {
	__u64 child_start_boottime_ns;
	__u32 child_pid;
	__u32 child_tgid;
};

/* XDR_KIND_EXIT: the header is the last thread of the process. */
struct xdr_exit {
	__u32 exit_code; /* wait status: code << 8, or the signal | 0x80 on core dump */
	__u32 pad;
};

struct xdr_creds {
	__u32 uid, euid, suid, fsuid;
	__u32 gid, egid, sgid, fsgid;
};

/* XDR_KIND_SETID: the header has the new credentials. */
struct xdr_setid {
	__u32 op;
	__s32 ret;
	struct xdr_creds old;
	struct xdr_creds new;
};

/* XDR_KIND_PTRACE. */
struct xdr_ptrace {
	__s64 request;
	__s64 ret;
	__u64 addr;
	__u64 data;
	__u32 target_pid; /* for PTRACE_TRACEME the tracer (the parent) */
	__u32 pad;
};

/* XDR_KIND_PROC_ACCESS. */
struct xdr_proc_access {
	__s64 ret;
	__u32 op;
	__u32 target_pid;
	__u64 flags;
};

/* XDR_KIND_COMM: the header has the new name. */
struct xdr_comm {
	char old_comm[XDR_COMM_LEN];
	__s64 ret;
};

/* File kinds and XDR_KIND_MEMFD, then: path, path2, name. */
struct xdr_fileop {
	struct xdr_file file; /* the file acted on, when the kernel had it open */
	__s64 ret;
	__u64 aux;  /* mknod: dev; xattr: value size; copy: bytes requested */
	__u32 op;
	__u32 flags; /* open / rename / AT_* / memfd flags, as passed */
	__u32 mode;  /* open / chmod / mknod mode, as passed */
	__u32 uid;   /* chown */
	__u32 gid;   /* chown */
	__s32 fd;    /* fd acted on, or returned */
	__s32 fd2;   /* copy: source fd */
	__u16 path_len;
	__u16 path2_len; /* rename: new path; copy: source path */
	__u16 name_len;  /* xattr name; memfd name */
	__u16 pad;
	__u32 gen; /* open: this thread's count of reported opens, which XDR_KIND_REPEAT names */
};

/* XDR_KIND_REPEAT: count more opens by the header's thread identical to
 * its reported open number gen (same file by the same path, same flags),
 * counted in the kernel instead of reported one by one. */
struct xdr_repeat {
	__u32 gen;
	__u32 count;
};

/* XDR_KIND_LOAD_IMAGE and XDR_KIND_MPROTECT, then: path. */
struct xdr_memop {
	struct xdr_file file; /* the mapped file; zero for anonymous memory */
	__s64 ret;
	__u64 addr;
	__u64 len;
	__u32 op;
	__u32 prot;     /* new protection, PROT_* */
	__u32 old_prot; /* mprotect: the region's previous PROT_* */
	__u32 flags;    /* mmap flags */
	__u16 path_len;
	__u16 pad;
	__u32 pad2;
};

/* Network kinds, then: unix path (connect/bind of AF_UNIX), payload (DNS). */
struct xdr_netop {
	__s64 ret;
	__u32 op;
	__s32 fd;
	__u16 family; /* AF_INET, AF_INET6, AF_UNIX */
	__u16 type;   /* SOCK_STREAM, SOCK_DGRAM, ... */
	__u16 protocol;
	__u16 lport; /* host byte order */
	__u16 rport; /* host byte order */
	__u16 unix_path_len;
	__u16 payload_len;
	__u16 pad;
	__u8 laddr[16]; /* IPv4 in the first 4 bytes */
	__u8 raddr[16];
	__u32 payload_size; /* bytes the datagram had */
	__u32 pad2;
};

#endif /* XDR_H */
