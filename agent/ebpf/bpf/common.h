/* Maps, configuration and helpers shared by the collector's programs. */
#ifndef XDR_COMMON_H
#define XDR_COMMON_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "xdr.h"

/* Constants that are macros in the kernel (so not in BTF). All are the
 * asm-generic values, identical on x86, arm, arm64 and riscv. */
#define AT_FDCWD -100
#define AT_REMOVEDIR 0x200
#define EPERM 1
#define EACCES 13
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define S_IFREG 0100000
#define FMODE_WRITE 0x2
#define FMODE_CREATED 0x100000
#define O_RDONLY 0
#define O_WRONLY 01
#define O_ACCMODE 03
#define O_CREAT 0100
#define O_TRUNC 01000
#define PROT_WRITE 0x2
#define PROT_EXEC 0x4
#define MAP_ANONYMOUS 0x20
#define VM_READ 0x1
#define VM_WRITE 0x2
#define VM_EXEC 0x4
#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_UDP 17
#define PR_SET_NAME 15
#define MAX_ERRNO 4095

#define NAME_MAX 255
/* The path walk writes names right to left, ending at PATH_END; indexes
 * are masked with PATH_MASK so the verifier sees them bounded. */
#define PATH_END 4096
#define PATH_MASK (PATH_END - 1)
/* Directory levels walked (mount crossings included) before giving up. */
#define PATH_DEPTH 96
/* Start offsets of appended strings are masked with REC_MASK and their
 * lengths with 2 * XDR_STR_MAX - 1, so every write stays inside rec. */
#define REC_MASK (16384 - 1)
#define LEN_MASK (2 * XDR_STR_MAX - 1)
#define REC_SIZE (REC_MASK + 1 + 2 * XDR_STR_MAX)

/* Set from Go before loading (CollectionSpec.Variables). */
volatile const __u64 wakeup_bytes = 1 << 20; /* force a wake-up from this ring fill on */
volatile const __u32 argv_max = 32768;       /* argv bytes captured per exec */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20); /* set from Go */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XDR_DROP_MAX);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

/* Thread groups whose events are not reported (the agent itself). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u8);
} ignored_tgids SEC(".maps");

/* Path prefixes whose read-only opens are counted, not reported, keyed
 * "prefix/" (see read_excluded). Filled from Go after loading. */
#define PREFIX_KEY_MAX 128
struct prefix_key {
	__u32 bits;
	__u8 data[PREFIX_KEY_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 256);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct prefix_key);
	__type(value, __u8);
} read_prefixes SEC(".maps");

/* Per-CPU work space: a record under construction and the path walk
 * buffer. Programs run with preemption disabled and only in task context,
 * so one program at a time uses a CPU's scratch. pos and trunc carry the
 * walk's state through memory (see walk_path). */
struct scratch {
	__u8 rec[REC_SIZE];
	__u8 path[PATH_END + NAME_MAX + 1];
	volatile __u32 pos;
	volatile __u32 trunc;
	struct prefix_key key;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch_map SEC(".maps");

/* Arguments of a system call between its entry and its exit, in the
 * thread's local storage (freed with the thread). op 0 means empty. */
struct sys_state {
	__u32 op;
	__u32 pad;
	__u64 args[6];
	__u64 aux[4]; /* op-specific: old credentials, old comm, vma flags */
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sys_state);
} states SEC(".maps");

static __always_inline void drop_n(__u32 reason, __u64 count)
{
	__u64 *n = bpf_map_lookup_elem(&drops, &reason);
	if (n)
		*n += count;
}

static __always_inline void drop(__u32 reason)
{
	drop_n(reason, 1);
}

static __always_inline int ignored(__u32 tgid)
{
	return bpf_map_lookup_elem(&ignored_tgids, &tgid) != NULL;
}

static __always_inline struct scratch *get_scratch(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&scratch_map, &zero);
}

static __always_inline struct task_struct *current_task(void)
{
	return (struct task_struct *)bpf_get_current_task();
}

/* Wake the reader only when the ring holds at least wakeup_bytes; it polls
 * with a short deadline for the rest. */
static __always_inline __u64 ring_flags(void)
{
	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes)
		return BPF_RB_FORCE_WAKEUP;
	return BPF_RB_NO_WAKEUP;
}

static __always_inline void submit(void *rec)
{
	bpf_ringbuf_submit(rec, ring_flags());
}

static __always_inline void *reserve(__u64 size)
{
	void *rec = bpf_ringbuf_reserve(&events, size, 0);
	if (!rec)
		drop(XDR_DROP_RINGBUF);
	return rec;
}

/* Sends the first len bytes of the scratch record; 0 if it was sent. */
static __always_inline int output(struct scratch *s, __u32 len)
{
	if (len > REC_SIZE)
		len = REC_SIZE;
	if (bpf_ringbuf_output(&events, s->rec, len, ring_flags())) {
		drop(XDR_DROP_RINGBUF);
		return -1;
	}
	return 0;
}

/* Kernel versions move fields; these flavors let CO-RE find the one the
 * running kernel has. */
struct task_struct___pre55 {
	__u64 real_start_time;
} __attribute__((preserve_access_index));

struct inode___times {
	struct timespec64 i_mtime;   /* before 6.7 */
	struct timespec64 __i_mtime; /* 6.7 to 6.10 */
	struct timespec64 i_ctime;   /* before 6.6 */
	struct timespec64 __i_ctime; /* 6.6 to 6.10 */
} __attribute__((preserve_access_index));

static __always_inline __u64 task_start(struct task_struct *t)
{
	struct task_struct *leader = t->group_leader;

	if (bpf_core_field_exists(leader->start_boottime))
		return leader->start_boottime;
	return ((struct task_struct___pre55 *)leader)->real_start_time;
}

/* Fills the header for the current task. Direct loads through the task's
 * BTF pointer cost a memory access each, far less than a
 * bpf_probe_read_kernel call. */
static __always_inline void fill_header(struct xdr_header *h, __u32 kind)
{
	struct task_struct *t = bpf_get_current_task_btf();
	const struct cred *c = t->real_cred;
	__u64 id = bpf_get_current_pid_tgid();

	h->kind = kind;
	h->flags = 0;
	h->ktime_ns = bpf_ktime_get_ns();
	h->start_boottime_ns = task_start(t);
	h->pid = (__u32)id;
	h->tgid = id >> 32;
	h->ppid = t->real_parent->tgid;
	h->uid = c->uid.val;
	h->gid = c->gid.val;
	h->euid = c->euid.val;
	h->egid = c->egid.val;
	h->sid = t->signal->pids[PIDTYPE_SID]->numbers[0].nr;
	bpf_get_current_comm(h->comm, sizeof(h->comm));
}

static __always_inline void read_creds(struct task_struct *t, struct xdr_creds *o)
{
	const struct cred *c = BPF_CORE_READ(t, real_cred);

	o->uid = BPF_CORE_READ(c, uid.val);
	o->euid = BPF_CORE_READ(c, euid.val);
	o->suid = BPF_CORE_READ(c, suid.val);
	o->fsuid = BPF_CORE_READ(c, fsuid.val);
	o->gid = BPF_CORE_READ(c, gid.val);
	o->egid = BPF_CORE_READ(c, egid.val);
	o->sgid = BPF_CORE_READ(c, sgid.val);
	o->fsgid = BPF_CORE_READ(c, fsgid.val);
}

/* The open file behind fd in t's table, or NULL. */
static __always_inline struct file *fd_file(struct task_struct *t, long fd)
{
	struct file **fds;
	struct file *f = NULL;
	struct fdtable *fdt;

	if (fd < 0)
		return NULL;
	fdt = BPF_CORE_READ(t, files, fdt);
	if ((__u64)fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	return f;
}

static __always_inline __u32 file_type(struct file *f)
{
	return BPF_CORE_READ(f, f_inode, i_mode) & S_IFMT;
}

static __always_inline void file_info(struct xdr_file *fi, struct file *f)
{
	struct inode *ino = BPF_CORE_READ(f, f_inode);
	struct inode___times *old = (void *)ino;

	fi->ino = BPF_CORE_READ(ino, i_ino);
	fi->size = BPF_CORE_READ(ino, i_size);
	fi->dev = BPF_CORE_READ(ino, i_sb, s_dev);
	fi->mode = BPF_CORE_READ(ino, i_mode);
	fi->uid = BPF_CORE_READ(ino, i_uid.val);
	fi->gid = BPF_CORE_READ(ino, i_gid.val);
	fi->nlink = BPF_CORE_READ(ino, i_nlink);
	if (bpf_core_field_exists(ino->i_mtime_sec)) {
		fi->mtime_sec = BPF_CORE_READ(ino, i_mtime_sec);
		fi->mtime_nsec = BPF_CORE_READ(ino, i_mtime_nsec);
	} else if (bpf_core_field_exists(old->__i_mtime)) {
		fi->mtime_sec = BPF_CORE_READ(old, __i_mtime.tv_sec);
		fi->mtime_nsec = BPF_CORE_READ(old, __i_mtime.tv_nsec);
	} else {
		fi->mtime_sec = BPF_CORE_READ(old, i_mtime.tv_sec);
		fi->mtime_nsec = BPF_CORE_READ(old, i_mtime.tv_nsec);
	}
	if (bpf_core_field_exists(ino->i_ctime_sec)) {
		fi->ctime_sec = BPF_CORE_READ(ino, i_ctime_sec);
		/* Since 6.13 the top bit flags a queried multigrain ctime. */
		fi->ctime_nsec = BPF_CORE_READ(ino, i_ctime_nsec) & ~(1U << 31);
	} else if (bpf_core_field_exists(old->__i_ctime)) {
		fi->ctime_sec = BPF_CORE_READ(old, __i_ctime.tv_sec);
		fi->ctime_nsec = BPF_CORE_READ(old, __i_ctime.tv_nsec);
	} else {
		fi->ctime_sec = BPF_CORE_READ(old, i_ctime.tv_sec);
		fi->ctime_nsec = BPF_CORE_READ(old, i_ctime.tv_nsec);
	}
}

/* Builds the absolute path of (d, vm) right-aligned in s->path, ending at
 * PATH_END: names are prepended from the dentry up to the task's root,
 * crossing mount points through struct mount. Returns the path length; the
 * path starts at s->path[s->pos]. s->trunc is set when the walk gave up
 * (too deep or too long), in which case the path lacks its leading part.
 *
 * The loop keeps its position in map memory (volatile s->pos) rather than
 * in a register: the verifier then sees an unknown but masked offset in
 * every iteration, so the iterations' branches converge instead of
 * multiplying the states it explores. */
static __always_inline __u32 walk_path(struct scratch *s, struct dentry *d, struct vfsmount *vm)
{
	struct task_struct *t = current_task();
	struct dentry *root_d = BPF_CORE_READ(t, fs, root.dentry);
	struct vfsmount *root_m = BPF_CORE_READ(t, fs, root.mnt);
	struct mount *mnt = (void *)((char *)vm - bpf_core_field_offset(struct mount, mnt));

	s->pos = PATH_END;
	s->trunc = 1;
	for (int i = 0; i < PATH_DEPTH; i++) {
		struct dentry *mnt_root, *parent;
		const unsigned char *name;
		__u32 len, pos;

		if (d == root_d && vm == root_m) {
			s->trunc = 0;
			break;
		}
		mnt_root = BPF_CORE_READ(vm, mnt_root);
		parent = BPF_CORE_READ(d, d_parent);
		if (d == mnt_root) {
			struct mount *up = BPF_CORE_READ(mnt, mnt_parent);

			/* The global root or a detached mount: complete. */
			if (up == mnt) {
				s->trunc = 0;
				break;
			}
			d = BPF_CORE_READ(mnt, mnt_mountpoint);
			mnt = up;
			vm = (void *)((char *)up + bpf_core_field_offset(struct mount, mnt));
			continue;
		}
		/* A dentry that is its own parent without being a mount's root
		 * is a pseudo file's (memfd, ...): its name completes the path. */
		if (d == parent)
			s->trunc = 0;
		name = BPF_CORE_READ(d, d_name.name);
		len = BPF_CORE_READ(d, d_name.len);
		if (len > NAME_MAX)
			len = NAME_MAX;
		pos = s->pos;
		if (pos < len + 1 || pos > PATH_END)
			break;
		pos -= len;
		bpf_probe_read_kernel(&s->path[pos & PATH_MASK], len & NAME_MAX, name);
		pos -= 1;
		s->path[pos & PATH_MASK] = '/';
		s->pos = pos;
		if (d == parent)
			break;
		d = parent;
	}
	if (s->pos >= PATH_END) {
		s->path[PATH_END - 1] = '/';
		s->pos = PATH_END - 1;
	}
	return PATH_END - (s->pos & PATH_MASK);
}

/* Reports whether the walked path (len bytes from s->pos) is one of the
 * read_prefixes or below one. The key is the path with a '/' appended, so
 * that the entry "/lib/" matches "/lib" and "/lib/x" but not "/lib64". A
 * path longer than the key is cut to PREFIX_KEY_MAX bytes, which decides
 * every entry exactly since entries are no longer than that. */
static __always_inline int read_excluded(struct scratch *s, __u32 len)
{
	__u32 n = len;

	if (n >= PREFIX_KEY_MAX)
		n = PREFIX_KEY_MAX;
	bpf_probe_read_kernel(s->key.data, n & (2 * PREFIX_KEY_MAX - 1), &s->path[s->pos & PATH_MASK]);
	if (n < PREFIX_KEY_MAX) {
		s->key.data[n & (PREFIX_KEY_MAX - 1)] = '/';
		n++;
	}
	s->key.bits = n * 8;
	return bpf_map_lookup_elem(&read_prefixes, &s->key) != NULL;
}

/* Copies the walked path (len bytes from s->pos) to the record at off. */
static __always_inline __u32 put_walked(struct scratch *s, __u32 off, __u32 len)
{
	barrier_var(off);
	if (off > REC_MASK || len > XDR_STR_MAX)
		return 0;
	bpf_probe_read_kernel(&s->rec[off & REC_MASK], len & LEN_MASK, &s->path[s->pos & PATH_MASK]);
	return len;
}

/* Walks the path of f and appends it at off. */
static __always_inline __u32 put_file_path(struct scratch *s, __u32 off, struct file *f, __u32 *flags, __u32 trunc_flag)
{
	__u32 n = walk_path(s, BPF_CORE_READ(f, f_path.dentry), BPF_CORE_READ(f, f_path.mnt));

	if (s->trunc) {
		*flags |= trunc_flag;
		drop(XDR_DROP_PATH_TRUNCATED);
	}
	return put_walked(s, off, n);
}

/* Appends a user string at off, without its NUL; returns its length. */
static __always_inline __u32 put_user_str(struct scratch *s, __u32 off, const char *u)
{
	long n;

	barrier_var(off);
	if (off > REC_MASK)
		return 0;
	n = bpf_probe_read_user_str(&s->rec[off & REC_MASK], XDR_STR_MAX, u);
	if (n <= 0)
		return 0;
	return (__u32)(n - 1) & (XDR_STR_MAX - 1);
}

/* Appends the absolute path named by (dfd, upath) as the system call saw
 * it: upath if absolute, else the directory of dfd (or the cwd for
 * AT_FDCWD) joined with upath. An empty or NULL upath names dfd's file
 * itself. The joined form is lexical (".." and symbolic links are kept), so
 * raw_flag is set on it. */
static __always_inline __u32 put_path_at(struct scratch *s, __u32 off, struct task_struct *t, long dfd,
					 const char *upath, __u32 *flags, __u32 raw_flag, __u32 trunc_flag)
{
	struct dentry *d;
	struct vfsmount *vm;
	__u32 len, n;
	char c = 0;

	if (upath)
		bpf_probe_read_user(&c, 1, upath);
	if (c == '/') {
		*flags |= raw_flag;
		return put_user_str(s, off, upath);
	}
	if ((int)dfd == AT_FDCWD) {
		d = BPF_CORE_READ(t, fs, pwd.dentry);
		vm = BPF_CORE_READ(t, fs, pwd.mnt);
	} else {
		struct file *f = fd_file(t, dfd);

		if (!f) {
			*flags |= raw_flag | trunc_flag;
			return put_user_str(s, off, upath);
		}
		d = BPF_CORE_READ(f, f_path.dentry);
		vm = BPF_CORE_READ(f, f_path.mnt);
	}
	n = walk_path(s, d, vm);
	if (s->trunc) {
		*flags |= trunc_flag;
		drop(XDR_DROP_PATH_TRUNCATED);
	}
	len = put_walked(s, off, n);
	if (c == 0)
		return len;
	*flags |= raw_flag;
	if (len != 1) {
		off += len;
		barrier_var(off);
		if (off > REC_MASK)
			return len;
		s->rec[off & REC_MASK] = '/';
		len++;
		off++;
	}
	return len + put_user_str(s, off, upath);
}

/* Saves the nargs arguments of the system call being entered. Reading
 * past a call's last argument is not allowed: the kernel refuses to attach
 * a program whose context accesses exceed the tracepoint's record. */
static __always_inline struct sys_state *stash(struct trace_event_raw_sys_enter *ctx, __u32 op, int nargs)
{
	struct sys_state *st;

	st = bpf_task_storage_get(&states, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!st) {
		drop(XDR_DROP_STATE_FULL);
		return NULL;
	}
	st->op = op;
	if (nargs > 0)
		st->args[0] = ctx->args[0];
	if (nargs > 1)
		st->args[1] = ctx->args[1];
	if (nargs > 2)
		st->args[2] = ctx->args[2];
	if (nargs > 3)
		st->args[3] = ctx->args[3];
	if (nargs > 4)
		st->args[4] = ctx->args[4];
	if (nargs > 5)
		st->args[5] = ctx->args[5];
	return st;
}

/* Moves the saved state of the system call being left into *st; false
 * when nothing was saved (the entry was filtered) or it was another
 * call's. */
static __always_inline int unstash(__u32 op, struct sys_state *st)
{
	struct sys_state *p = bpf_task_storage_get(&states, bpf_get_current_task_btf(), 0, 0);

	if (!p || p->op != op) {
		if (p)
			p->op = 0;
		return 0;
	}
	__builtin_memcpy(st, p, sizeof(*st));
	p->op = 0;
	return 1;
}

/* Enter handler that only saves the arguments, for callers not ignored. */
static __always_inline int stash_unless_ignored(struct trace_event_raw_sys_enter *ctx, __u32 op, int nargs)
{
	if (ignored(bpf_get_current_pid_tgid() >> 32))
		return 0;
	stash(ctx, op, nargs);
	return 0;
}

#define SYS_ENTER(sys) SEC("tracepoint/syscalls/sys_enter_" #sys) int sys_enter_##sys(struct trace_event_raw_sys_enter *ctx)
#define SYS_EXIT(sys) SEC("tracepoint/syscalls/sys_exit_" #sys) int sys_exit_##sys(struct trace_event_raw_sys_exit *ctx)

/* An entry that saves its nargs arguments for the exit handler. */
#define STASH_ENTER(sys, op, nargs)                             \
	SYS_ENTER(sys)                                          \
	{                                                       \
		return stash_unless_ignored(ctx, op, nargs);    \
	}

/* A system call whose entry stashes nargs arguments and whose exit is
 * handled by exit_fn(ctx, op). */
#define STASHED(sys, op, nargs, exit_fn)                        \
	STASH_ENTER(sys, op, nargs)                             \
	SYS_EXIT(sys)                                           \
	{                                                       \
		return exit_fn(ctx, op);                        \
	}

#endif /* XDR_COMMON_H */
