//go:build ignore

/* Feature probe: the smallest programs using what the collector needs from
 * the kernel: a tracepoint program writing a CO-RE read to a ring buffer,
 * and a BTF-typed tracepoint program. */

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual MIT/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096); /* set from Go to the page size */
} probe_events SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getppid")
int probe_tracepoint(struct trace_event_raw_sys_enter *ctx)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	__u64 *v = bpf_ringbuf_reserve(&probe_events, sizeof(*v), 0);

	if (!v)
		return 0;
	*v = BPF_CORE_READ(t, group_leader, start_boottime);
	bpf_ringbuf_submit(v, BPF_RB_NO_WAKEUP);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(probe_tp_btf, struct task_struct *parent, struct task_struct *child)
{
	return BPF_CORE_READ(child, pid) == 0;
}
