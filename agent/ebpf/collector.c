//go:build ignore

/* The eBPF collector: process, file and network activity from scheduler
 * and system call tracepoints, sent on one ring buffer (layout in
 * bpf/xdr.h). Only tracepoint contexts and BTF-typed tracepoint arguments
 * are used, never pt_regs, so one bpfel object serves every little-endian
 * architecture. */

#include "common.h"
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* argv_max is at most ARGV_CHUNKS * XDR_ARGV_CHUNK (checked in Go). */
#define ARGV_CHUNKS 64

/* The record types, for bpf2go -type: referenced here so that their BTF is
 * kept in the object even where the code only uses their sizes. */
const enum xdr_kind *unused_kind __attribute__((unused));
const enum xdr_op *unused_op __attribute__((unused));
const enum xdr_flag *unused_flag __attribute__((unused));
const enum xdr_drop *unused_drop __attribute__((unused));
const struct xdr_header *unused_header __attribute__((unused));
const struct xdr_exec *unused_exec __attribute__((unused));
const struct xdr_argv *unused_argv __attribute__((unused));
const struct xdr_fork *unused_fork __attribute__((unused));
const struct xdr_exit *unused_exit __attribute__((unused));
const struct xdr_setid *unused_setid __attribute__((unused));
const struct xdr_ptrace *unused_ptrace __attribute__((unused));
const struct xdr_proc_access *unused_proc_access __attribute__((unused));
const struct xdr_comm *unused_comm __attribute__((unused));
const struct xdr_fileop *unused_fileop __attribute__((unused));
const struct xdr_repeat *unused_repeat __attribute__((unused));
const struct xdr_memop *unused_memop __attribute__((unused));
const struct xdr_netop *unused_netop __attribute__((unused));

/* ---- Process ---------------------------------------------------------- */

/* One exit event per process: the threads of a process that exit together
 * can all see signal->live at zero, the first to claim it reports. */
struct exit_key {
	__u64 start;
	__u32 tgid;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct exit_key);
	__type(value, __u8);
} exit_claims SEC(".maps");

/* Repeated opens. A thread's last reported open is kept in its local
 * storage, which only that thread's programs touch (they do not run
 * preempted), so no update races. An identical open after it (same
 * dentry and mount, same flags, same file size, not creating the file) is
 * only counted. The count goes out as an XDR_KIND_REPEAT record at the
 * thread's next different open, every REPEAT_NS while the repeats go on,
 * when the thread is switched out (so that a thread that goes quiet or
 * exits flushes its own count), and before an exec, a credential change
 * or a rename (forget_opens). */
#define REPEAT_NS (100 * 1000 * 1000ULL)
#define REPEAT_MAX (1U << 30)

struct open_repeat {
	__u64 dentry; /* 0: no open to repeat */
	__u64 mnt;
	__s64 size; /* the file's size when reported */
	__u64 since; /* when the pending count began */
	__u32 flags;
	__u32 gen;     /* of the reported open */
	__u32 pending; /* repeats not yet reported */
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct open_repeat);
} open_repeats SEC(".maps");

/* Reports the pending repeats of r, the current thread's. */
static __always_inline void flush_repeats(struct open_repeat *r)
{
	struct xdr_header *h;
	struct xdr_repeat *e;
	__u32 n = r->pending;

	if (!n)
		return;
	r->pending = 0;
	h = reserve(sizeof(*h) + sizeof(*e));
	if (!h) {
		drop_n(XDR_DROP_RINGBUF, n - 1); /* reserve counted one */
		return;
	}
	fill_header(h, XDR_KIND_REPEAT);
	e = (void *)(h + 1);
	e->gen = r->gen;
	e->count = n;
	submit(h);
}

/* The thread has a new image, new credentials or a new name: its next
 * opens are not repeats of its earlier ones. */
static __always_inline void forget_opens(void)
{
	struct open_repeat *r = bpf_task_storage_get(&open_repeats, bpf_get_current_task_btf(), 0, 0);

	if (r) {
		flush_repeats(r);
		r->dentry = 0;
	}
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(sched_process_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct task_struct *t = current_task();
	__u32 conts = 0, captured = 0, flags = 0, cap, off, n;
	struct xdr_header *h;
	struct xdr_argv *a;
	struct xdr_exec *e;
	struct scratch *s;
	struct mm_struct *mm;
	struct file *exe;
	__u64 start, end, size;
	long r;

	forget_opens();

	if (ignored(bpf_get_current_pid_tgid() >> 32))
		return 0;
	s = get_scratch();
	if (!s)
		return 0;
	h = (void *)s->rec;
	fill_header(h, XDR_KIND_ARGV);

	mm = BPF_CORE_READ(t, mm);
	start = BPF_CORE_READ(mm, arg_start);
	end = BPF_CORE_READ(mm, arg_end);
	size = end > start ? end - start : 0;
	cap = size > argv_max ? argv_max : size;
	if (size > argv_max) {
		flags |= XDR_FLAG_ARGV_TRUNCATED;
		drop(XDR_DROP_ARGV_TRUNCATED);
	}

	/* Continuations first, so the exec record can say how many made it. */
	a = (void *)(h + 1);
	for (__u32 i = 1; i < ARGV_CHUNKS; i++) {
		off = i * XDR_ARGV_CHUNK;
		if (off >= cap)
			break;
		n = cap - off;
		if (n > XDR_ARGV_CHUNK)
			n = XDR_ARGV_CHUNK;
		a->index = i - 1;
		a->offset = off;
		a->len = n;
		a->pad = 0;
		if (bpf_probe_read_user((void *)(a + 1), n & LEN_MASK, (void *)(start + off))) {
			flags |= XDR_FLAG_ARGV_INCOMPLETE;
			drop(XDR_DROP_ARGV_READ);
			break;
		}
		if (bpf_ringbuf_output(&events, s->rec, sizeof(*h) + sizeof(*a) + (n & LEN_MASK), ring_flags())) {
			flags |= XDR_FLAG_ARGV_INCOMPLETE;
			drop(XDR_DROP_RINGBUF);
			break;
		}
		conts++;
		captured += n;
	}

	h->kind = XDR_KIND_EXEC;
	e = (void *)(h + 1);
	__builtin_memset(e, 0, sizeof(*e));
	e->old_pid = old_pid;
	e->argv_size = size > 0xffffffff ? 0xffffffff : size;
	exe = BPF_CORE_READ(bprm, file);
	file_info(&e->exe, exe);
	off = sizeof(*h) + sizeof(*e);

	r = bpf_probe_read_kernel_str(&s->rec[off & REC_MASK], XDR_STR_MAX, BPF_CORE_READ(bprm, filename));
	n = r > 0 ? (r - 1) & (XDR_STR_MAX - 1) : 0;
	e->filename_len = n;
	off += n;

	n = put_file_path(s, off, exe, &flags, XDR_FLAG_PATH_TRUNCATED);
	e->exe_len = n;
	off += n;

	n = walk_path(s, BPF_CORE_READ(t, fs, pwd.dentry), BPF_CORE_READ(t, fs, pwd.mnt));
	if (s->trunc) {
		flags |= XDR_FLAG_PATH2_TRUNCATED;
		drop(XDR_DROP_PATH_TRUNCATED);
	}
	n = put_walked(s, off, n);
	e->cwd_len = n;
	off += n;

	n = cap > XDR_ARGV_CHUNK ? XDR_ARGV_CHUNK : cap;
	if (off > REC_MASK || bpf_probe_read_user(&s->rec[off & REC_MASK], n & LEN_MASK, (void *)start)) {
		if (n) {
			flags |= XDR_FLAG_ARGV_INCOMPLETE;
			drop(XDR_DROP_ARGV_READ);
		}
		n = 0;
	}
	e->argv_len = n;
	e->continuations = conts;
	e->argv_captured = captured + n;
	h->flags = flags;
	output(s, off + n);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(sched_process_fork, struct task_struct *parent, struct task_struct *child)
{
	struct xdr_header *h;
	struct xdr_fork *f;
	__u32 pid, tgid;

	pid = BPF_CORE_READ(child, pid);
	tgid = BPF_CORE_READ(child, tgid);
	if (pid != tgid) /* a thread */
		return 0;
	if (ignored(bpf_get_current_pid_tgid() >> 32))
		return 0;
	h = reserve(sizeof(*h) + sizeof(*f));
	if (!h)
		return 0;
	fill_header(h, XDR_KIND_FORK);
	f = (void *)(h + 1);
	f->child_start_boottime_ns = task_start(child);
	f->child_pid = pid;
	f->child_tgid = tgid;
	submit(h);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(sched_process_exit, struct task_struct *p)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct exit_key k = {};
	struct xdr_header *h;
	struct xdr_exit *e;
	__u8 one = 1;

	if (BPF_CORE_READ(p, signal, live.counter) != 0) /* not the last thread */
		return 0;
	if (ignored(id >> 32))
		return 0;
	k.start = task_start(p);
	k.tgid = id >> 32;
	if (bpf_map_update_elem(&exit_claims, &k, &one, BPF_NOEXIST))
		return 0;
	h = reserve(sizeof(*h) + sizeof(*e));
	if (!h)
		return 0;
	fill_header(h, XDR_KIND_EXIT);
	e = (void *)(h + 1);
	e->exit_code = BPF_CORE_READ(p, exit_code);
	e->pad = 0;
	submit(h);
	return 0;
}

/* uid and gid changes: the credentials before the call are saved at entry
 * and compared with those after it. */
static __always_inline int setid_enter(struct trace_event_raw_sys_enter *ctx, __u32 op, int nargs)
{
	struct sys_state *st;

	if (ignored(bpf_get_current_pid_tgid() >> 32))
		return 0;
	st = stash(ctx, op, nargs);
	if (st)
		read_creds(current_task(), (struct xdr_creds *)st->aux);
	return 0;
}

static __always_inline int setid_exit(struct trace_event_raw_sys_exit *ctx, __u32 op)
{
	struct task_struct *t = current_task();
	struct xdr_creds now, *old;
	struct sys_state st;
	struct xdr_header *h;
	struct xdr_setid *e;
	long ret = ctx->ret;

	if (!unstash(op, &st))
		return 0;
	old = (struct xdr_creds *)st.aux;
	read_creds(t, &now);
	/* setfsuid and setfsgid return the previous id, never an error. */
	if (op == XDR_OP_SETFSUID) {
		if (now.fsuid == old->fsuid)
			return 0;
		ret = 0;
	} else if (op == XDR_OP_SETFSGID) {
		if (now.fsgid == old->fsgid)
			return 0;
		ret = 0;
	} else if (ret != 0) {
		return 0;
	}
	forget_opens();
	h = reserve(sizeof(*h) + sizeof(*e));
	if (!h)
		return 0;
	fill_header(h, XDR_KIND_SETID);
	e = (void *)(h + 1);
	e->op = op;
	e->ret = ret;
	__builtin_memcpy(&e->old, old, sizeof(e->old));
	__builtin_memcpy(&e->new, &now, sizeof(e->new));
	submit(h);
	return 0;
}

#define SETID(sys, op, nargs)                           \
	SYS_ENTER(sys)                                  \
	{                                               \
		return setid_enter(ctx, op, nargs);     \
	}                                       \
	SYS_EXIT(sys)                           \
	{                                       \
		return setid_exit(ctx, op);     \
	}

SETID(setuid, XDR_OP_SETUID, 1)
SETID(setreuid, XDR_OP_SETREUID, 2)
SETID(setresuid, XDR_OP_SETRESUID, 3)
SETID(setfsuid, XDR_OP_SETFSUID, 1)
SETID(setgid, XDR_OP_SETGID, 1)
SETID(setregid, XDR_OP_SETREGID, 2)
SETID(setresgid, XDR_OP_SETRESGID, 3)
SETID(setfsgid, XDR_OP_SETFSGID, 1)

/* ptrace requests that attach, detach or modify the tracee; reads and
 * resumes are far more frequent (debuggers, strace) and not reported. */
SYS_ENTER(ptrace)
{
	switch (ctx->args[0]) {
	case 0:      /* PTRACE_TRACEME */
	case 4:      /* PTRACE_POKETEXT */
	case 5:      /* PTRACE_POKEDATA */
	case 6:      /* PTRACE_POKEUSR */
	case 13:     /* PTRACE_SETREGS */
	case 15:     /* PTRACE_SETFPREGS */
	case 16:     /* PTRACE_ATTACH */
	case 17:     /* PTRACE_DETACH */
	case 0x4205: /* PTRACE_SETREGSET */
	case 0x4206: /* PTRACE_SEIZE */
		return stash_unless_ignored(ctx, XDR_OP_PTRACE, 4);
	}
	return 0;
}

SYS_EXIT(ptrace)
{
	struct task_struct *t = current_task();
	struct xdr_ptrace *e;
	struct xdr_header *h;
	struct sys_state st;

	if (!unstash(XDR_OP_PTRACE, &st))
		return 0;
	h = reserve(sizeof(*h) + sizeof(*e));
	if (!h)
		return 0;
	fill_header(h, XDR_KIND_PTRACE);
	e = (void *)(h + 1);
	e->request = st.args[0];
	e->ret = ctx->ret;
	e->addr = st.args[2];
	e->data = st.args[3];
	e->target_pid = st.args[0] == 0 ? BPF_CORE_READ(t, real_parent, tgid) : (__u32)st.args[1];
	e->pad = 0;
	submit(h);
	return 0;
}

static __always_inline int proc_access_exit(struct trace_event_raw_sys_exit *ctx, __u32 op)
{
	struct xdr_proc_access *e;
	struct xdr_header *h;
	struct sys_state st;

	if (!unstash(op, &st))
		return 0;
	h = reserve(sizeof(*h) + sizeof(*e));
	if (!h)
		return 0;
	fill_header(h, XDR_KIND_PROC_ACCESS);
	e = (void *)(h + 1);
	e->ret = ctx->ret;
	e->op = op;
	e->target_pid = (__u32)st.args[0];
	e->flags = op == XDR_OP_PIDFD_OPEN ? st.args[1] : st.args[5];
	submit(h);
	return 0;
}

STASHED(process_vm_readv, XDR_OP_PROCESS_VM_READV, 6, proc_access_exit)

STASHED(process_vm_writev, XDR_OP_PROCESS_VM_WRITEV, 6, proc_access_exit)

STASHED(pidfd_open, XDR_OP_PIDFD_OPEN, 2, proc_access_exit)

SYS_ENTER(prctl)
{
	struct sys_state *st;

	if (ctx->args[0] != PR_SET_NAME || ignored(bpf_get_current_pid_tgid() >> 32))
		return 0;
	st = stash(ctx, XDR_OP_PRCTL, 1);
	if (st)
		bpf_get_current_comm(st->aux, XDR_COMM_LEN);
	return 0;
}

SYS_EXIT(prctl)
{
	struct xdr_header *h;
	struct sys_state st;
	struct xdr_comm *e;

	if (!unstash(XDR_OP_PRCTL, &st) || ctx->ret != 0)
		return 0;
	forget_opens();
	h = reserve(sizeof(*h) + sizeof(*e));
	if (!h)
		return 0;
	fill_header(h, XDR_KIND_COMM);
	e = (void *)(h + 1);
	__builtin_memcpy(e->old_comm, st.aux, XDR_COMM_LEN);
	e->ret = ctx->ret;
	submit(h);
	return 0;
}

/* A successful setsid: the header is the process, now leader of a new
 * session whose id is its tgid. No payload. */
SYS_EXIT(setsid)
{
	struct xdr_header *h;

	if (ctx->ret <= 0 || ignored(bpf_get_current_pid_tgid() >> 32))
		return 0;
	h = reserve(sizeof(*h));
	if (!h)
		return 0;
	fill_header(h, XDR_KIND_SETSID);
	submit(h);
	return 0;
}

/* ---- Files ------------------------------------------------------------- */

#define FILE_DATA (sizeof(struct xdr_header) + sizeof(struct xdr_fileop))

/* Starts a file record in the scratch buffer. */
static __always_inline struct xdr_fileop *file_rec(struct scratch *s, __u32 kind, __u32 op, long ret)
{
	struct xdr_fileop *fo = (void *)(s->rec + sizeof(struct xdr_header));

	fill_header((struct xdr_header *)s->rec, kind);
	__builtin_memset(fo, 0, sizeof(*fo));
	fo->op = op;
	fo->ret = ret;
	return fo;
}

static __always_inline void set_flags(struct scratch *s, __u32 flags)
{
	((struct xdr_header *)s->rec)->flags = flags;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(sched_switch, bool preempt, struct task_struct *prev)
{
	/* Runs in prev's context: the header is prev's. */
	struct open_repeat *r = bpf_task_storage_get(&open_repeats, prev, 0, 0);

	if (r && r->pending)
		flush_repeats(r);
	return 0;
}

static __always_inline int open_exit(struct trace_event_raw_sys_exit *ctx, __u32 op)
{
	struct task_struct *t = current_task();
	struct open_repeat *r;
	const char *upath = NULL;
	struct xdr_fileop *fo;
	struct file *f = NULL;
	struct sys_state st;
	struct scratch *s;
	long dfd = AT_FDCWD;
	long ret = ctx->ret;
	__u64 dentry = 0, mnt = 0;
	__s64 size = 0;
	__u32 flags = 0, hflags = 0, mode = 0, n, created = 0;
	int repeatable;

	if (!unstash(op, &st))
		return 0;
	/* Denied opens are reported too; other failures (mostly ENOENT from
	 * search paths) are not. */
	if (ret < 0 && ret != -EACCES && ret != -EPERM)
		return 0;
	switch (op) {
	case XDR_OP_OPEN:
		upath = (const char *)st.args[0];
		flags = st.args[1];
		mode = st.args[2];
		break;
	case XDR_OP_CREAT:
		upath = (const char *)st.args[0];
		flags = O_CREAT | O_WRONLY | O_TRUNC;
		mode = st.args[1];
		break;
	case XDR_OP_OPENAT:
		dfd = st.args[0];
		upath = (const char *)st.args[1];
		flags = st.args[2];
		mode = st.args[3];
		break;
	case XDR_OP_OPENAT2: {
		struct open_how how = {};

		dfd = st.args[0];
		upath = (const char *)st.args[1];
		bpf_probe_read_user(&how, sizeof(how), (void *)st.args[2]);
		flags = how.flags;
		mode = how.mode;
		break;
	}
	}
	r = bpf_task_storage_get(&open_repeats, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (ret >= 0) {
		f = fd_file(t, ret);
		if (!f) { /* already closed by another thread */
			drop(XDR_DROP_OTHER);
			return 0;
		}
		dentry = (__u64)BPF_CORE_READ(f, f_path.dentry);
		mnt = (__u64)BPF_CORE_READ(f, f_path.mnt);
		size = BPF_CORE_READ(f, f_inode, i_size);
		created = BPF_CORE_READ(f, f_mode) & FMODE_CREATED;
		if (r && !created && r->dentry == dentry && r->mnt == mnt && r->flags == flags &&
		    r->size == size && r->pending < REPEAT_MAX) {
			__u64 now = bpf_ktime_get_ns();

			if (!r->pending)
				r->since = now;
			r->pending++;
			if (now - r->since >= REPEAT_NS)
				flush_repeats(r);
			return 0;
		}
	}
	if (r) {
		flush_repeats(r);
		r->dentry = 0;
	}
	s = get_scratch();
	if (!s)
		return 0;
	fo = file_rec(s, XDR_KIND_FILE_OPEN, op, ret);
	fo->flags = flags;
	fo->mode = mode;
	fo->fd = -1;
	if (f) {
		fo->fd = ret;
		file_info(&fo->file, f);
		if (created)
			hflags |= XDR_FLAG_CREATED;
		n = put_file_path(s, FILE_DATA, f, &hflags, XDR_FLAG_PATH_TRUNCATED);
		/* A read of a file under an excluded prefix is only counted. */
		if ((flags & (O_ACCMODE | O_TRUNC)) == O_RDONLY &&
		    !(hflags & (XDR_FLAG_CREATED | XDR_FLAG_PATH_TRUNCATED)) && read_excluded(s, n)) {
			drop(XDR_DROP_FILTERED_READ);
			return 0;
		}
	} else {
		n = put_path_at(s, FILE_DATA, t, dfd, upath, &hflags, XDR_FLAG_PATH_RAW, XDR_FLAG_PATH_TRUNCATED);
	}
	fo->path_len = n;
	set_flags(s, hflags);
	repeatable = f && r && !created;
	if (repeatable)
		fo->gen = r->gen + 1;
	if (output(s, FILE_DATA + n) == 0 && repeatable) {
		/* Later identical opens of this thread repeat this one. */
		r->gen++;
		r->dentry = dentry;
		r->mnt = mnt;
		r->size = size;
		r->flags = flags;
	}
	return 0;
}

#define OPEN(sys, op, nargs)                    \
	STASH_ENTER(sys, op, nargs)             \
	SYS_EXIT(sys)                           \
	{                                       \
		return open_exit(ctx, op);      \
	}

OPEN(open, XDR_OP_OPEN, 3)
OPEN(creat, XDR_OP_CREAT, 2)
OPEN(openat, XDR_OP_OPENAT, 4)
OPEN(openat2, XDR_OP_OPENAT2, 4)

/* Arguments of the single-path file system calls, by op. */
struct path_args {
	long dfd;
	long fd; /* >= 0 when the call names an open file instead of a path */
	const char *upath;
	const char *name; /* xattr name */
	__u64 aux;
	__u32 flags;
	__u32 mode;
	__u32 uid;
	__u32 gid;
};

static __always_inline void path_args(__u32 op, struct sys_state *st, struct path_args *a)
{
	__u64 *g = st->args;

	a->dfd = AT_FDCWD;
	a->fd = -1;
	switch (op) {
	case XDR_OP_UNLINK:
	case XDR_OP_UTIMES:
	case XDR_OP_UTIME:
		a->upath = (const char *)g[0];
		break;
	case XDR_OP_RMDIR:
		a->upath = (const char *)g[0];
		a->flags = AT_REMOVEDIR;
		break;
	case XDR_OP_UNLINKAT:
		a->dfd = g[0];
		a->upath = (const char *)g[1];
		a->flags = g[2];
		break;
	case XDR_OP_FUTIMESAT:
		a->dfd = g[0];
		a->upath = (const char *)g[1];
		break;
	case XDR_OP_UTIMENSAT:
		a->dfd = g[0];
		a->upath = (const char *)g[1];
		a->flags = g[3];
		if (!a->upath) /* futimens */
			a->fd = g[0];
		break;
	case XDR_OP_CHMOD:
		a->upath = (const char *)g[0];
		a->mode = g[1];
		break;
	case XDR_OP_FCHMOD:
		a->fd = g[0];
		a->mode = g[1];
		break;
	case XDR_OP_FCHMODAT:
	case XDR_OP_FCHMODAT2:
		a->dfd = g[0];
		a->upath = (const char *)g[1];
		a->mode = g[2];
		if (op == XDR_OP_FCHMODAT2)
			a->flags = g[3];
		break;
	case XDR_OP_CHOWN:
	case XDR_OP_LCHOWN:
		a->upath = (const char *)g[0];
		a->uid = g[1];
		a->gid = g[2];
		break;
	case XDR_OP_FCHOWN:
		a->fd = g[0];
		a->uid = g[1];
		a->gid = g[2];
		break;
	case XDR_OP_FCHOWNAT:
		a->dfd = g[0];
		a->upath = (const char *)g[1];
		a->uid = g[2];
		a->gid = g[3];
		a->flags = g[4];
		break;
	case XDR_OP_SETXATTR:
	case XDR_OP_LSETXATTR:
		a->upath = (const char *)g[0];
		a->name = (const char *)g[1];
		a->aux = g[3];
		a->flags = g[4];
		break;
	case XDR_OP_FSETXATTR:
		a->fd = g[0];
		a->name = (const char *)g[1];
		a->aux = g[3];
		a->flags = g[4];
		break;
	case XDR_OP_REMOVEXATTR:
	case XDR_OP_LREMOVEXATTR:
		a->upath = (const char *)g[0];
		a->name = (const char *)g[1];
		break;
	case XDR_OP_FREMOVEXATTR:
		a->fd = g[0];
		a->name = (const char *)g[1];
		break;
	case XDR_OP_SETXATTRAT:
	case XDR_OP_REMOVEXATTRAT:
		/* (dfd, path, at_flags, name, ...) */
		a->dfd = g[0];
		a->upath = (const char *)g[1];
		a->flags = g[2];
		a->name = (const char *)g[3];
		if (op == XDR_OP_SETXATTRAT) {
			struct xattr_args xa = {};

			bpf_probe_read_user(&xa, sizeof(xa), (void *)g[4]);
			a->aux = xa.size;
		}
		break;
	case XDR_OP_MKNOD:
		a->upath = (const char *)g[0];
		a->mode = g[1];
		a->aux = g[2];
		break;
	case XDR_OP_MKNODAT:
		a->dfd = g[0];
		a->upath = (const char *)g[1];
		a->mode = g[2];
		a->aux = g[3];
		break;
	}
}

/* Exit of a single-path file system call: reported when it succeeded. */
static __always_inline int path_exit(struct trace_event_raw_sys_exit *ctx, __u32 op, __u32 kind)
{
	struct task_struct *t = current_task();
	struct path_args a = {};
	struct xdr_fileop *fo;
	struct sys_state st;
	struct scratch *s;
	__u32 hflags = 0, n, off;

	if (!unstash(op, &st) || ctx->ret != 0)
		return 0;
	s = get_scratch();
	if (!s)
		return 0;
	path_args(op, &st, &a);
	fo = file_rec(s, kind, op, ctx->ret);
	fo->flags = a.flags;
	fo->mode = a.mode;
	fo->uid = a.uid;
	fo->gid = a.gid;
	fo->aux = a.aux;
	fo->fd = a.fd;
	if (a.fd >= 0) {
		struct file *f = fd_file(t, a.fd);

		if (!f) {
			drop(XDR_DROP_OTHER);
			return 0;
		}
		file_info(&fo->file, f);
		n = put_file_path(s, FILE_DATA, f, &hflags, XDR_FLAG_PATH_TRUNCATED);
	} else {
		n = put_path_at(s, FILE_DATA, t, a.dfd, a.upath, &hflags, XDR_FLAG_PATH_RAW, XDR_FLAG_PATH_TRUNCATED);
	}
	fo->path_len = n;
	off = FILE_DATA + n;
	if (a.name) {
		n = put_user_str(s, off, a.name);
		if (n == 0)
			hflags |= XDR_FLAG_NAME_TRUNCATED;
		fo->name_len = n;
		off += n;
	}
	set_flags(s, hflags);
	output(s, off);
	return 0;
}

#define PATHOP(sys, op, kind, nargs)                    \
	STASH_ENTER(sys, op, nargs)                     \
	SYS_EXIT(sys)                                   \
	{                                               \
		return path_exit(ctx, op, kind);        \
	}

PATHOP(unlink, XDR_OP_UNLINK, XDR_KIND_FILE_UNLINK, 1)
PATHOP(unlinkat, XDR_OP_UNLINKAT, XDR_KIND_FILE_UNLINK, 3)
PATHOP(rmdir, XDR_OP_RMDIR, XDR_KIND_FILE_UNLINK, 1)
PATHOP(chmod, XDR_OP_CHMOD, XDR_KIND_FILE_CHMOD, 2)
PATHOP(fchmod, XDR_OP_FCHMOD, XDR_KIND_FILE_CHMOD, 2)
PATHOP(fchmodat, XDR_OP_FCHMODAT, XDR_KIND_FILE_CHMOD, 3)
PATHOP(fchmodat2, XDR_OP_FCHMODAT2, XDR_KIND_FILE_CHMOD, 4)
PATHOP(chown, XDR_OP_CHOWN, XDR_KIND_FILE_CHOWN, 3)
PATHOP(lchown, XDR_OP_LCHOWN, XDR_KIND_FILE_CHOWN, 3)
PATHOP(fchown, XDR_OP_FCHOWN, XDR_KIND_FILE_CHOWN, 3)
PATHOP(fchownat, XDR_OP_FCHOWNAT, XDR_KIND_FILE_CHOWN, 5)
PATHOP(setxattr, XDR_OP_SETXATTR, XDR_KIND_FILE_XATTR, 5)
PATHOP(lsetxattr, XDR_OP_LSETXATTR, XDR_KIND_FILE_XATTR, 5)
PATHOP(fsetxattr, XDR_OP_FSETXATTR, XDR_KIND_FILE_XATTR, 5)
PATHOP(setxattrat, XDR_OP_SETXATTRAT, XDR_KIND_FILE_XATTR, 6)
PATHOP(removexattr, XDR_OP_REMOVEXATTR, XDR_KIND_FILE_XATTR, 2)
PATHOP(lremovexattr, XDR_OP_LREMOVEXATTR, XDR_KIND_FILE_XATTR, 2)
PATHOP(fremovexattr, XDR_OP_FREMOVEXATTR, XDR_KIND_FILE_XATTR, 2)
PATHOP(removexattrat, XDR_OP_REMOVEXATTRAT, XDR_KIND_FILE_XATTR, 4)
PATHOP(utimensat, XDR_OP_UTIMENSAT, XDR_KIND_FILE_UTIMES, 4)
PATHOP(utimes, XDR_OP_UTIMES, XDR_KIND_FILE_UTIMES, 2)
PATHOP(futimesat, XDR_OP_FUTIMESAT, XDR_KIND_FILE_UTIMES, 3)
PATHOP(utime, XDR_OP_UTIME, XDR_KIND_FILE_UTIMES, 2)
PATHOP(mknod, XDR_OP_MKNOD, XDR_KIND_FILE_MKNOD, 3)
PATHOP(mknodat, XDR_OP_MKNODAT, XDR_KIND_FILE_MKNOD, 4)

static __always_inline int rename_exit(struct trace_event_raw_sys_exit *ctx, __u32 op)
{
	struct task_struct *t = current_task();
	const char *oldp, *newp;
	long odfd = AT_FDCWD, ndfd = AT_FDCWD;
	struct xdr_fileop *fo;
	struct sys_state st;
	struct scratch *s;
	__u32 hflags = 0, n, off;

	if (!unstash(op, &st) || ctx->ret != 0)
		return 0;
	s = get_scratch();
	if (!s)
		return 0;
	fo = file_rec(s, XDR_KIND_FILE_RENAME, op, ctx->ret);
	if (op == XDR_OP_RENAME) {
		oldp = (const char *)st.args[0];
		newp = (const char *)st.args[1];
	} else {
		odfd = st.args[0];
		oldp = (const char *)st.args[1];
		ndfd = st.args[2];
		newp = (const char *)st.args[3];
		if (op == XDR_OP_RENAMEAT2)
			fo->flags = st.args[4];
	}
	fo->fd = -1;
	n = put_path_at(s, FILE_DATA, t, odfd, oldp, &hflags, XDR_FLAG_PATH_RAW, XDR_FLAG_PATH_TRUNCATED);
	fo->path_len = n;
	off = FILE_DATA + n;
	n = put_path_at(s, off, t, ndfd, newp, &hflags, XDR_FLAG_PATH2_RAW, XDR_FLAG_PATH2_TRUNCATED);
	fo->path2_len = n;
	set_flags(s, hflags);
	output(s, off + n);
	return 0;
}

STASHED(rename, XDR_OP_RENAME, 2, rename_exit)
STASHED(renameat, XDR_OP_RENAMEAT, 4, rename_exit)
STASHED(renameat2, XDR_OP_RENAMEAT2, 5, rename_exit)

/* Files written through an fd, by (tgid, fd): the first write (or copy
 * into it) is reported, and the close of a written fd. The value is the
 * struct file, so an fd reused for another file counts as new. */
struct fd_key {
	__u32 tgid;
	__s32 fd;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct fd_key);
	__type(value, __u64);
} written SEC(".maps");

/* Claims the first modification of f through (tgid, fd); false if it was
 * already reported. */
static __always_inline int first_write(__u32 tgid, long fd, struct file *f)
{
	struct fd_key k = { .tgid = tgid, .fd = fd };
	__u64 v = (__u64)f, *old;

	old = bpf_map_lookup_elem(&written, &k);
	if (!old) /* threads writing at once: the first to insert reports */
		return bpf_map_update_elem(&written, &k, &v, BPF_NOEXIST) == 0;
	if (*old == v)
		return 0;
	bpf_map_update_elem(&written, &k, &v, BPF_ANY); /* the fd now names another file */
	return 1;
}

/* Emits a file record about f with its resolved path. */
static __always_inline void emit_file(struct task_struct *t, __u32 kind, __u32 op, long ret, long fd, struct file *f)
{
	struct scratch *s = get_scratch();
	struct xdr_fileop *fo;
	__u32 hflags = 0, n;

	if (!s)
		return;
	fo = file_rec(s, kind, op, ret);
	fo->fd = fd;
	fo->flags = BPF_CORE_READ(f, f_flags);
	file_info(&fo->file, f);
	n = put_file_path(s, FILE_DATA, f, &hflags, XDR_FLAG_PATH_TRUNCATED);
	fo->path_len = n;
	set_flags(s, hflags);
	output(s, FILE_DATA + n);
}

static __always_inline int dns_on_write(struct trace_event_raw_sys_enter *ctx, __u32 op, struct task_struct *t,
					struct file *f);

static __always_inline int write_enter(struct trace_event_raw_sys_enter *ctx, __u32 op)
{
	struct task_struct *t = current_task();
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	long fd = ctx->args[0];
	struct file *f;
	__u32 type;

	f = fd_file(t, fd);
	if (!f)
		return 0;
	type = file_type(f);
	if (type == S_IFSOCK)
		return op == XDR_OP_WRITE || op == XDR_OP_WRITEV ? dns_on_write(ctx, op, t, f) : 0;
	if (type != S_IFREG || !(BPF_CORE_READ(f, f_mode) & FMODE_WRITE))
		return 0;
	if (ignored(tgid) || !first_write(tgid, fd, f))
		return 0;
	emit_file(t, XDR_KIND_FILE_WRITE, op, 0, fd, f);
	return 0;
}

#define WRITE(sys, op)                          \
	SYS_ENTER(sys)                          \
	{                                       \
		return write_enter(ctx, op);    \
	}

WRITE(write, XDR_OP_WRITE)
WRITE(pwrite64, XDR_OP_PWRITE64)
WRITE(writev, XDR_OP_WRITEV)
WRITE(pwritev, XDR_OP_PWRITEV)
WRITE(pwritev2, XDR_OP_PWRITEV2)

SYS_ENTER(close)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct fd_key k = { .tgid = tgid, .fd = ctx->args[0] };
	struct task_struct *t;
	struct file *f;
	__u64 *v;

	v = bpf_map_lookup_elem(&written, &k);
	if (!v)
		return 0;
	t = current_task();
	f = fd_file(t, k.fd);
	if (f && (__u64)f == *v)
		emit_file(t, XDR_KIND_FILE_CLOSE, XDR_OP_CLOSE, 0, k.fd, f);
	bpf_map_delete_elem(&written, &k);
	return 0;
}

/* Copies between files: reported once per destination fd, like writes. */
static __always_inline int copy_exit(struct trace_event_raw_sys_exit *ctx, __u32 op)
{
	struct task_struct *t = current_task();
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct file *src, *dst;
	struct xdr_fileop *fo;
	struct sys_state st;
	long sfd, dfd;
	struct scratch *s;
	__u32 hflags = 0, n, off;
	__u64 len = 0;

	if (!unstash(op, &st) || ctx->ret < 0)
		return 0;
	switch (op) {
	case XDR_OP_COPY_FILE_RANGE:
		sfd = st.args[0];
		dfd = st.args[2];
		len = st.args[4];
		break;
	case XDR_OP_SENDFILE:
		dfd = st.args[0];
		sfd = st.args[1];
		len = st.args[3];
		break;
	case XDR_OP_FICLONE:
		dfd = st.args[0];
		sfd = st.args[2];
		break;
	default: { /* FICLONERANGE: struct file_clone_range { s64 src_fd; u64 src_offset, src_length, dest_offset; } */
		__s64 v = -1;

		dfd = st.args[0];
		bpf_probe_read_user(&v, sizeof(v), (void *)st.args[2]);
		sfd = v;
		bpf_probe_read_user(&len, sizeof(len), (void *)(st.args[2] + 16));
		break;
	}
	}
	dst = fd_file(t, dfd);
	src = fd_file(t, sfd);
	if (!dst || !src || file_type(dst) != S_IFREG || !first_write(tgid, dfd, dst))
		return 0;
	s = get_scratch();
	if (!s)
		return 0;
	fo = file_rec(s, XDR_KIND_FILE_COPY, op, ctx->ret);
	fo->flags = BPF_CORE_READ(dst, f_flags);
	fo->fd = dfd;
	fo->fd2 = sfd;
	fo->aux = len;
	file_info(&fo->file, dst);
	n = put_file_path(s, FILE_DATA, dst, &hflags, XDR_FLAG_PATH_TRUNCATED);
	fo->path_len = n;
	off = FILE_DATA + n;
	n = put_file_path(s, off, src, &hflags, XDR_FLAG_PATH2_TRUNCATED);
	fo->path2_len = n;
	set_flags(s, hflags);
	output(s, off + n);
	return 0;
}

STASHED(copy_file_range, XDR_OP_COPY_FILE_RANGE, 6, copy_exit)

STASHED(sendfile64, XDR_OP_SENDFILE, 4, copy_exit)

#define FICLONE 0x40049409      /* _IOW(0x94, 9, int) */
#define FICLONERANGE 0x4020940d /* _IOW(0x94, 13, struct file_clone_range) */

SYS_ENTER(ioctl)
{
	__u32 cmd = ctx->args[1];

	if (cmd == FICLONE)
		return stash_unless_ignored(ctx, XDR_OP_FICLONE, 3);
	if (cmd == FICLONERANGE)
		return stash_unless_ignored(ctx, XDR_OP_FICLONERANGE, 3);
	return 0;
}

SYS_EXIT(ioctl)
{
	struct sys_state *p = bpf_task_storage_get(&states, bpf_get_current_task_btf(), 0, 0);

	if (!p || !p->op)
		return 0;
	return copy_exit(ctx, p->op == XDR_OP_FICLONE ? XDR_OP_FICLONE : XDR_OP_FICLONERANGE);
}

STASH_ENTER(memfd_create, XDR_OP_MEMFD_CREATE, 2)
SYS_EXIT(memfd_create)
{
	struct task_struct *t = current_task();
	struct xdr_fileop *fo;
	struct sys_state st;
	struct scratch *s;
	struct file *f;
	__u32 hflags = 0, n, off;

	if (!unstash(XDR_OP_MEMFD_CREATE, &st) || ctx->ret < 0)
		return 0;
	s = get_scratch();
	f = fd_file(t, ctx->ret);
	if (!s || !f) {
		drop(XDR_DROP_OTHER);
		return 0;
	}
	fo = file_rec(s, XDR_KIND_MEMFD, XDR_OP_MEMFD_CREATE, ctx->ret);
	fo->fd = ctx->ret;
	fo->flags = st.args[1];
	file_info(&fo->file, f);
	n = put_file_path(s, FILE_DATA, f, &hflags, XDR_FLAG_PATH_TRUNCATED);
	fo->path_len = n;
	off = FILE_DATA + n;
	n = put_user_str(s, off, (const char *)st.args[0]);
	fo->name_len = n;
	set_flags(s, hflags);
	output(s, off + n);
	return 0;
}

/* Executable mappings of files: once per (process image, file). */
struct image_key {
	__u64 exec_id;
	__u64 ino;
	__u32 tgid;
	__u32 dev;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct image_key);
	__type(value, __u8);
} images SEC(".maps");

#define MEM_DATA (sizeof(struct xdr_header) + sizeof(struct xdr_memop))

static __always_inline struct xdr_memop *mem_rec(struct scratch *s, __u32 kind, __u32 op, long ret)
{
	struct xdr_memop *m = (void *)(s->rec + sizeof(struct xdr_header));

	fill_header((struct xdr_header *)s->rec, kind);
	__builtin_memset(m, 0, sizeof(*m));
	m->op = op;
	m->ret = ret;
	return m;
}

static __always_inline int mmap_enter(struct trace_event_raw_sys_enter *ctx)
{
	if (!(ctx->args[2] & PROT_EXEC) || (ctx->args[3] & MAP_ANONYMOUS))
		return 0;
	return stash_unless_ignored(ctx, XDR_OP_MMAP, 6);
}

static __always_inline int mmap_exit(struct trace_event_raw_sys_exit *ctx)
{
	struct task_struct *t = current_task();
	struct image_key k = {};
	struct xdr_memop *m;
	struct sys_state st;
	struct scratch *s;
	struct file *f;
	__u32 hflags = 0, n;
	__u8 one = 1;

	if (!unstash(XDR_OP_MMAP, &st) || (unsigned long)ctx->ret >= (unsigned long)-MAX_ERRNO)
		return 0;
	f = fd_file(t, st.args[4]);
	if (!f) { /* closed by another thread since */
		drop(XDR_DROP_OTHER);
		return 0;
	}
	k.exec_id = BPF_CORE_READ_BITFIELD_PROBED(t, self_exec_id);
	k.ino = BPF_CORE_READ(f, f_inode, i_ino);
	k.dev = BPF_CORE_READ(f, f_inode, i_sb, s_dev);
	k.tgid = bpf_get_current_pid_tgid() >> 32;
	if (bpf_map_update_elem(&images, &k, &one, BPF_NOEXIST))
		return 0;
	s = get_scratch();
	if (!s)
		return 0;
	m = mem_rec(s, XDR_KIND_LOAD_IMAGE, XDR_OP_MMAP, 0);
	m->addr = ctx->ret;
	m->len = st.args[1];
	m->prot = st.args[2];
	m->flags = st.args[3];
	file_info(&m->file, f);
	n = put_file_path(s, MEM_DATA, f, &hflags, XDR_FLAG_PATH_TRUNCATED);
	m->path_len = n;
	set_flags(s, hflags);
	output(s, MEM_DATA + n);
	return 0;
}

SYS_ENTER(mmap)
{
	return mmap_enter(ctx);
}
SYS_EXIT(mmap)
{
	return mmap_exit(ctx);
}
/* 32-bit architectures map through mmap2, traced as mmap_pgoff. */
SYS_ENTER(mmap_pgoff)
{
	return mmap_enter(ctx);
}
SYS_EXIT(mmap_pgoff)
{
	return mmap_exit(ctx);
}

struct vma_info {
	__u64 flags;
	__u64 file;
};

static long vma_cb(struct task_struct *task, struct vm_area_struct *vma, struct vma_info *vi)
{
	vi->flags = BPF_CORE_READ(vma, vm_flags);
	vi->file = (__u64)BPF_CORE_READ(vma, vm_file);
	return 0;
}

/* PROT_EXEC added to memory that was not executable and is anonymous or
 * writable: what code injection and JIT compilers do. */
SYS_ENTER(mprotect)
{
	struct vma_info vi = {};
	struct sys_state *st;

	if (!(ctx->args[2] & PROT_EXEC) || ignored(bpf_get_current_pid_tgid() >> 32))
		return 0;
	if (bpf_find_vma(bpf_get_current_task_btf(), ctx->args[0], vma_cb, &vi, 0))
		return 0;
	if ((vi.flags & VM_EXEC) || (vi.file && !(vi.flags & VM_WRITE)))
		return 0;
	st = stash(ctx, XDR_OP_MPROTECT, 3);
	if (st) {
		st->aux[0] = vi.flags;
		st->aux[1] = vi.file;
	}
	return 0;
}

SYS_EXIT(mprotect)
{
	struct xdr_memop *m;
	struct sys_state st;
	struct scratch *s;
	struct file *f;
	__u32 hflags = 0, n = 0;

	if (!unstash(XDR_OP_MPROTECT, &st) || ctx->ret != 0)
		return 0;
	s = get_scratch();
	if (!s)
		return 0;
	m = mem_rec(s, XDR_KIND_MPROTECT, XDR_OP_MPROTECT, ctx->ret);
	m->addr = st.args[0];
	m->len = st.args[1];
	m->prot = st.args[2];
	m->old_prot = st.aux[0] & (VM_READ | VM_WRITE | VM_EXEC);
	f = (struct file *)st.aux[1];
	if (f) {
		file_info(&m->file, f);
		n = put_file_path(s, MEM_DATA, f, &hflags, XDR_FLAG_PATH_TRUNCATED);
	}
	m->path_len = n;
	set_flags(s, hflags);
	output(s, MEM_DATA + n);
	return 0;
}

/* ---- Network ----------------------------------------------------------- */

#define NET_DATA (sizeof(struct xdr_header) + sizeof(struct xdr_netop))

static __always_inline struct sock *fd_sock(struct task_struct *t, long fd)
{
	struct file *f = fd_file(t, fd);
	struct socket *so;

	if (!f || file_type(f) != S_IFSOCK)
		return NULL;
	so = BPF_CORE_READ(f, private_data);
	return BPF_CORE_READ(so, sk);
}

static __always_inline struct xdr_netop *net_rec(struct scratch *s, __u32 kind, __u32 op, long ret, long fd,
						 struct sock *sk)
{
	struct xdr_netop *n = (void *)(s->rec + sizeof(struct xdr_header));

	fill_header((struct xdr_header *)s->rec, kind);
	__builtin_memset(n, 0, sizeof(*n));
	n->op = op;
	n->ret = ret;
	n->fd = fd;
	n->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	n->type = BPF_CORE_READ_BITFIELD_PROBED(sk, sk_type);
	n->protocol = BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol);
	return n;
}

/* Fills the socket's local address and, if remote, its peer's. */
static __always_inline void sock_addrs(struct sock *sk, struct xdr_netop *n, int remote)
{
	if (n->family == AF_INET) {
		bpf_core_read(n->laddr, 4, &sk->__sk_common.skc_rcv_saddr);
		if (remote)
			bpf_core_read(n->raddr, 4, &sk->__sk_common.skc_daddr);
	} else if (n->family == AF_INET6) {
		bpf_core_read(n->laddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		if (remote)
			bpf_core_read(n->raddr, 16, &sk->__sk_common.skc_v6_daddr);
	} else {
		return;
	}
	n->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	if (remote)
		n->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
}

/* Reads a user sockaddr of alen bytes into n's remote (or local) address;
 * an AF_UNIX path is appended at *off. Returns the address family, or -1
 * if it could not be read or is not AF_INET, AF_INET6 or AF_UNIX. */
static __always_inline int put_sockaddr(struct scratch *s, __u32 *off, struct xdr_netop *n, const void *ua,
					__u32 alen, int remote)
{
	__u8 *addr = remote ? n->raddr : n->laddr;
	__u16 fam = 0;

	if (!ua || bpf_probe_read_user(&fam, sizeof(fam), ua))
		return -1;
	if (fam == AF_INET) {
		struct sockaddr_in sin = {};

		if (bpf_probe_read_user(&sin, sizeof(sin), ua))
			return -1;
		__builtin_memcpy(addr, &sin.sin_addr, 4);
		if (remote)
			n->rport = bpf_ntohs(sin.sin_port);
		else
			n->lport = bpf_ntohs(sin.sin_port);
	} else if (fam == AF_INET6) {
		struct sockaddr_in6 sin6 = {};

		if (bpf_probe_read_user(&sin6, sizeof(sin6), ua))
			return -1;
		__builtin_memcpy(addr, &sin6.sin6_addr, 16);
		if (remote)
			n->rport = bpf_ntohs(sin6.sin6_port);
		else
			n->lport = bpf_ntohs(sin6.sin6_port);
	} else if (fam == AF_UNIX) {
		__u32 plen = alen > 2 ? alen - 2 : 0;
		__u32 o = *off;

		if (plen > XDR_UNIX_PATH_MAX)
			plen = XDR_UNIX_PATH_MAX;
		if (o > REC_MASK || bpf_probe_read_user(&s->rec[o & REC_MASK], plen & 127, (const char *)ua + 2))
			plen = 0;
		n->unix_path_len = plen;
		*off = o + plen;
	} else {
		return -1;
	}
	return fam;
}

/* TCP connects in flight, by socket, registered at the call's entry with
 * the connecting task's record header. The handshake may end before the
 * call returns (on loopback it ends in the call's own release of the
 * socket) or long after, in softirq context where the current task is not
 * the connecting one. Whichever of the two comes second, the call's exit
 * (which learns the call returned -EINPROGRESS) or the socket leaving
 * SYN_SENT (which learns the outcome), reports the outcome. Each marks
 * its side in a map; the report goes to the one whose delete of the
 * exit's mark succeeds, a test-and-set that needs no atomic
 * instructions. */
struct pending_connect {
	struct xdr_header h;
	__s32 fd;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct pending_connect);
} pending_connects SEC(".maps");

/* The handshake's result (0 or a negative errno), once it ended. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __s32);
} connect_results SEC(".maps");

/* Present from the call's -EINPROGRESS return until the outcome is
 * reported. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u8);
} connect_exited SEC(".maps");

#define EINPROGRESS 115
#define ECONNABORTED 103

/* Reports how the connect saved in pc on sk ended, and forgets it. */
static __always_inline void connect_outcome_record(__u64 key, struct pending_connect *pc, __s32 result,
						   struct sock *sk)
{
	struct xdr_netop *n;
	struct scratch *s = get_scratch();

	if (s) {
		n = net_rec(s, XDR_KIND_NET_CONNECT, XDR_OP_CONNECT_OUTCOME, result, pc->fd, sk);
		/* net_rec filled the header for the current task: the
		 * connecting task's replaces it. */
		__builtin_memcpy(s->rec, &pc->h, sizeof(pc->h));
		((struct xdr_header *)s->rec)->ktime_ns = bpf_ktime_get_ns();
		sock_addrs(sk, n, 1);
		output(s, NET_DATA);
	}
	bpf_map_delete_elem(&connect_results, &key);
	bpf_map_delete_elem(&pending_connects, &key);
}

SYS_ENTER(connect)
{
	struct pending_connect pc = {};
	struct sock *sk;
	__u64 key;

	if (ignored(bpf_get_current_pid_tgid() >> 32))
		return 0;
	stash(ctx, XDR_OP_CONNECT, 3);
	sk = fd_sock(current_task(), ctx->args[0]);
	if (!sk || BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	fill_header(&pc.h, XDR_KIND_NET_CONNECT);
	pc.fd = ctx->args[0];
	key = (__u64)sk;
	bpf_map_update_elem(&pending_connects, &key, &pc, BPF_ANY);
	return 0;
}

SEC("tracepoint/sock/inet_sock_set_state")
int connect_outcome(struct trace_event_raw_inet_sock_set_state *ctx)
{
	struct pending_connect *pc;
	struct sock *sk;
	__s32 result = 0;
	__u64 key;
	int err;

	if (ctx->oldstate != TCP_SYN_SENT || ctx->protocol != IPPROTO_TCP)
		return 0;
	key = (__u64)ctx->skaddr;
	pc = bpf_map_lookup_elem(&pending_connects, &key);
	if (!pc)
		return 0;
	sk = (struct sock *)ctx->skaddr;
	if (ctx->newstate != TCP_ESTABLISHED) {
		/* Refused or timed out: the socket holds why. Closed by its
		 * owner before an answer: aborted. */
		err = BPF_CORE_READ(sk, sk_err);
		result = err ? -err : -ECONNABORTED;
	}
	bpf_map_update_elem(&connect_results, &key, &result, BPF_ANY);
	if (bpf_map_delete_elem(&connect_exited, &key) == 0)
		connect_outcome_record(key, pc, result, sk);
	return 0;
}

static __always_inline int connect_exit(struct trace_event_raw_sys_exit *ctx)
{
	struct task_struct *t = current_task();
	struct pending_connect *pc;
	struct xdr_netop *n;
	__s32 *result;
	__u8 one = 1;
	__u64 key;
	struct sys_state st;
	struct scratch *s;
	struct sock *sk;
	__u32 off = NET_DATA;

	if (!unstash(XDR_OP_CONNECT, &st))
		return 0;
	s = get_scratch();
	sk = fd_sock(t, st.args[0]);
	if (!s || !sk)
		return 0;
	n = net_rec(s, XDR_KIND_NET_CONNECT, XDR_OP_CONNECT, ctx->ret, st.args[0], sk);
	if (put_sockaddr(s, &off, n, (const void *)st.args[1], st.args[2], 1) < 0)
		return 0;
	sock_addrs(sk, n, 0);
	output(s, off);
	key = (__u64)sk;
	pc = bpf_map_lookup_elem(&pending_connects, &key);
	if (!pc)
		return 0;
	if (ctx->ret != -EINPROGRESS) {
		/* Done within the call: its record has the result. */
		bpf_map_delete_elem(&connect_results, &key);
		bpf_map_delete_elem(&pending_connects, &key);
		return 0;
	}
	bpf_map_update_elem(&connect_exited, &key, &one, BPF_ANY);
	result = bpf_map_lookup_elem(&connect_results, &key);
	/* The handshake ended before the call returned: report it here,
	 * unless the other side won the mark. */
	if (result && bpf_map_delete_elem(&connect_exited, &key) == 0)
		connect_outcome_record(key, pc, *result, sk);
	return 0;
}

SYS_EXIT(connect)
{
	return connect_exit(ctx);
}

STASH_ENTER(bind, XDR_OP_BIND, 3)
SYS_EXIT(bind)
{
	struct task_struct *t = current_task();
	struct xdr_netop *n;
	struct sys_state st;
	struct scratch *s;
	struct sock *sk;
	__u32 off = NET_DATA;

	if (!unstash(XDR_OP_BIND, &st) || ctx->ret != 0)
		return 0;
	s = get_scratch();
	sk = fd_sock(t, st.args[0]);
	if (!s || !sk)
		return 0;
	n = net_rec(s, XDR_KIND_NET_BIND, XDR_OP_BIND, 0, st.args[0], sk);
	if (n->family == AF_UNIX) {
		if (put_sockaddr(s, &off, n, (const void *)st.args[1], st.args[2], 0) < 0)
			return 0;
	} else if (n->family == AF_INET || n->family == AF_INET6) {
		sock_addrs(sk, n, 0); /* the bound address, with the port chosen for port 0 */
	} else {
		return 0;
	}
	output(s, off);
	return 0;
}

STASH_ENTER(listen, XDR_OP_LISTEN, 2)
SYS_EXIT(listen)
{
	struct task_struct *t = current_task();
	struct xdr_netop *n;
	struct sys_state st;
	struct scratch *s;
	struct sock *sk;

	if (!unstash(XDR_OP_LISTEN, &st) || ctx->ret != 0)
		return 0;
	s = get_scratch();
	sk = fd_sock(t, st.args[0]);
	if (!s || !sk)
		return 0;
	n = net_rec(s, XDR_KIND_NET_LISTEN, XDR_OP_LISTEN, 0, st.args[0], sk);
	if (n->family != AF_INET && n->family != AF_INET6 && n->family != AF_UNIX)
		return 0;
	sock_addrs(sk, n, 0);
	output(s, NET_DATA);
	return 0;
}

static __always_inline int accept_exit(struct trace_event_raw_sys_exit *ctx, __u32 op)
{
	struct task_struct *t = current_task();
	struct xdr_netop *n;
	struct sys_state st;
	struct scratch *s;
	struct sock *sk;

	if (!unstash(op, &st) || ctx->ret < 0)
		return 0;
	s = get_scratch();
	sk = fd_sock(t, ctx->ret);
	if (!s || !sk)
		return 0;
	n = net_rec(s, XDR_KIND_NET_ACCEPT, op, ctx->ret, ctx->ret, sk);
	if (n->family != AF_INET && n->family != AF_INET6)
		return 0;
	sock_addrs(sk, n, 1);
	output(s, NET_DATA);
	return 0;
}

STASHED(accept, XDR_OP_ACCEPT, 3, accept_exit)
STASHED(accept4, XDR_OP_ACCEPT4, 4, accept_exit)

/* UDP destinations already reported, by socket and destination. */
struct udp_key {
	__u64 sock;
	__u8 addr[16];
	__u16 port;
	__u16 family;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct udp_key);
	__type(value, __u8);
} udp_dests SEC(".maps");

/* A UDP socket of family INET or INET6, or NULL. */
static __always_inline struct sock *udp_sock(struct task_struct *t, long fd)
{
	struct sock *sk = fd_sock(t, fd);
	__u16 fam;

	if (!sk || BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol) != IPPROTO_UDP)
		return NULL;
	fam = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (fam != AF_INET && fam != AF_INET6)
		return NULL;
	return sk;
}

/* Emits one datagram: a DNS record with up to XDR_DNS_MAX payload bytes
 * when it goes to port 53, else a send record the first time the socket
 * sends to that destination. The destination is ua, or the socket's peer
 * when ua is NULL. */
static __always_inline void emit_datagram(struct task_struct *t, __u32 op, long ret, long fd, struct sock *sk,
					  const void *ua, __u32 alen, const void *buf, __u64 size)
{
	struct scratch *s = get_scratch();
	struct udp_key k = {};
	struct xdr_netop *n;
	__u32 off = NET_DATA, plen;
	__u8 one = 1;

	if (!s)
		return;
	n = net_rec(s, XDR_KIND_NET_SEND, op, ret, fd, sk);
	sock_addrs(sk, n, ua == NULL);
	if (ua && put_sockaddr(s, &off, n, ua, alen, 1) < 0)
		return;
	if (n->rport == 53) {
		((struct xdr_header *)s->rec)->kind = XDR_KIND_DNS;
		plen = size > XDR_DNS_MAX ? XDR_DNS_MAX : size;
		if (bpf_probe_read_user(&s->rec[NET_DATA], plen & 1023, buf))
			plen = 0;
		n->payload_len = plen;
		n->payload_size = size;
		output(s, NET_DATA + plen);
		return;
	}
	k.sock = (__u64)sk;
	__builtin_memcpy(k.addr, n->raddr, 16);
	k.port = n->rport;
	k.family = n->family;
	if (bpf_map_update_elem(&udp_dests, &k, &one, BPF_NOEXIST))
		return;
	output(s, off);
}

SYS_ENTER(sendto)
{
	if (!udp_sock(current_task(), ctx->args[0]))
		return 0;
	return stash_unless_ignored(ctx, XDR_OP_SENDTO, 6);
}

SYS_EXIT(sendto)
{
	struct task_struct *t = current_task();
	struct sys_state st;
	struct sock *sk;

	if (!unstash(XDR_OP_SENDTO, &st) || ctx->ret < 0)
		return 0;
	sk = udp_sock(t, st.args[0]);
	if (!sk)
		return 0;
	emit_datagram(t, XDR_OP_SENDTO, ctx->ret, st.args[0], sk, (const void *)st.args[4], st.args[5],
		      (const void *)st.args[1], st.args[2]);
	return 0;
}

/* Emits the datagram described by the user msghdr at um. */
static __always_inline void emit_msghdr(struct task_struct *t, __u32 op, long ret, long fd, struct sock *sk,
					struct user_msghdr *um)
{
	struct iovec iov = {};
	struct user_msghdr m = {};

	if (bpf_probe_read_user(&m, sizeof(m), um))
		return;
	if (m.msg_iovlen > 0)
		bpf_probe_read_user(&iov, sizeof(iov), m.msg_iov);
	emit_datagram(t, op, ret, fd, sk, m.msg_name, m.msg_namelen, iov.iov_base, iov.iov_len);
}

SYS_ENTER(sendmsg)
{
	if (!udp_sock(current_task(), ctx->args[0]))
		return 0;
	return stash_unless_ignored(ctx, XDR_OP_SENDMSG, 3);
}

SYS_EXIT(sendmsg)
{
	struct task_struct *t = current_task();
	struct sys_state st;
	struct sock *sk;

	if (!unstash(XDR_OP_SENDMSG, &st) || ctx->ret < 0)
		return 0;
	sk = udp_sock(t, st.args[0]);
	if (sk)
		emit_msghdr(t, XDR_OP_SENDMSG, ctx->ret, st.args[0], sk, (struct user_msghdr *)st.args[1]);
	return 0;
}

SYS_ENTER(sendmmsg)
{
	if (!udp_sock(current_task(), ctx->args[0]))
		return 0;
	return stash_unless_ignored(ctx, XDR_OP_SENDMMSG, 4);
}

/* Resolvers send the A and AAAA queries in one sendmmsg: the first
 * SENDMMSG_MAX messages sent are reported. */
#define SENDMMSG_MAX 4

SYS_EXIT(sendmmsg)
{
	struct task_struct *t = current_task();
	struct mmsghdr *mm;
	struct sys_state st;
	struct sock *sk;
	unsigned int len;

	if (!unstash(XDR_OP_SENDMMSG, &st) || ctx->ret <= 0)
		return 0;
	sk = udp_sock(t, st.args[0]);
	if (!sk)
		return 0;
	mm = (struct mmsghdr *)st.args[1];
	for (int i = 0; i < SENDMMSG_MAX; i++) {
		if (i >= ctx->ret)
			break;
		len = 0;
		bpf_probe_read_user(&len, sizeof(len), &mm[i].msg_len);
		emit_msghdr(t, XDR_OP_SENDMMSG, len, st.args[0], sk, &mm[i].msg_hdr);
	}
	return 0;
}

/* write(2) and writev(2) on a connected UDP socket to port 53 (how some
 * resolvers send queries). Reported at entry: ret is 0. */
static __always_inline int dns_on_write(struct trace_event_raw_sys_enter *ctx, __u32 op, struct task_struct *t,
					struct file *f)
{
	struct socket *so = BPF_CORE_READ(f, private_data);
	struct sock *sk = BPF_CORE_READ(so, sk);
	const void *buf = (const void *)ctx->args[1];
	__u64 size = ctx->args[2];
	__u16 fam;

	if (BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol) != IPPROTO_UDP ||
	    bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport)) != 53)
		return 0;
	fam = BPF_CORE_READ(sk, __sk_common.skc_family);
	if ((fam != AF_INET && fam != AF_INET6) || ignored(bpf_get_current_pid_tgid() >> 32))
		return 0;
	if (op == XDR_OP_WRITEV) {
		struct iovec iov = {};

		if (size == 0 || bpf_probe_read_user(&iov, sizeof(iov), buf))
			return 0;
		buf = iov.iov_base;
		size = iov.iov_len;
	}
	emit_datagram(t, op, 0, ctx->args[0], sk, NULL, 0, buf, size);
	return 0;
}
