// Package ebpf collects process, file and network activity with eBPF
// programs attached to scheduler and system call tracepoints, and decodes
// it into Events.
//
// Open loads the programs (compiled from collector.c by bpf2go and
// committed, so building needs no C toolchain), attaches them and returns
// a Collector; Collector.Read returns decoded events; Close detaches the
// programs and drains what is left. Probe tells whether the running kernel
// can do all this, so that a caller can fall back to the proc connector and
// say why.
//
// # Records
//
// Every program writes to one BPF ring buffer. A record starts with a
// common header: kind, flags, time, pid, tgid, ppid, real and effective
// uid and gid, session id, the start time of the process (the value
// /proc/PID/stat's starttime is made of, see Header.StartTicks) and comm.
// The kind's payload follows; then its variable parts (paths, names, argv,
// a DNS payload), whose lengths the payload gives. bpf/xdr.h has the
// layout; the Go mirrors are generated from it. Read dispatches on the
// kind through a table of decoders.
//
// To keep wake-ups cheap, records are submitted without waking the reader
// unless the ring holds Options.WakeupBytes; the reader polls with a short
// deadline (Options.PollInterval) for the rest, parked in the Go runtime's
// poller. It takes records straight from the ring's memory mapping and
// decodes them in place: reading costs no system call.
//
// # Sources
//
//   - exec: tp_btf/sched_process_exec. The argument vector is read in the
//     kernel from the new image (mm->arg_start..arg_end) rather than at
//     execve entry: only successful execs are reported, no state is kept
//     between entry and exit, the pages are resident, and argv is what
//     /proc/PID/cmdline shows (for a script, as the kernel rewrote it).
//     Argv beyond 4 KiB goes in continuation records submitted before the
//     exec record, which says how many made it; Read reassembles them.
//   - fork and exit: tp_btf/sched_process_fork (threads are skipped) and
//     tp_btf/sched_process_exit (the last thread of a process, once).
//   - everything else: tracepoint/syscalls/sys_enter_X saves the arguments
//     in the thread's local storage and sys_exit_X reports with the
//     result. Per-call tracepoints were measured against raw_tp
//     sys_enter/sys_exit on Linux 6.18: for a traced call they cost the
//     same (+530 ns against +460 ns per open and close), but raw_tp runs
//     for every system call of every process (getppid: +190 ns against
//     +11 ns) and needs pt_regs, which differ per architecture.
//
// Paths are built in the kernel by walking dentries and mounts up to the
// task's root: from the open file when there is one (canonical), else from
// the directory fd or the cwd joined with the caller's string (lexical,
// FileOp.PathRaw). A read-only open of a path under Options.ExcludeReads
// (an LPM trie) is only counted (Stats.FilteredReads), before any record
// is made. Writes are reported once per file and fd, executable
// mappings once per file and process image, UDP sends once per socket and
// destination; consecutive identical events of a process (by any of its
// threads; an open's descriptor does not count) are merged by Read into
// one with a Count, so that storms stay cheap downstream while the counts
// stay exact. A thread's repeats of its last reported open are counted in
// the kernel (no path walk, no record) and reported in a repeat record
// at its next different open, every 100 ms, when it is switched out, and
// before an exec, a credential change or a rename; Read adds them to the
// open's event, or returns a copy of it with their count.
//
// # Portability
//
// Only tracepoint contexts and BTF-typed tracepoint arguments are used,
// never pt_regs, and kernel structures are read with CO-RE, so the one
// little-endian object serves amd64, arm64 and riscv64 kernels. Kernels
// need BTF (CONFIG_DEBUG_INFO_BTF), BPF ring buffers and bpf_find_vma
// (Linux 5.17). System call tracepoints an architecture or kernel lacks
// (open, rename, ... on arm64; openat2, fchmodat2, ... on older kernels)
// are skipped and logged once. Tasks running 32-bit code on a 64-bit
// kernel are not seen: the kernel does not trace their system calls.
//
// # Losses
//
// Nothing is dropped silently: Stats has the kernel's per-reason drop
// counters, the programs' recursion misses and the reader's decode errors.
// The agent's own processes are filtered in the kernel (Options.IgnoreTGIDs,
// Collector.Ignore).
//
// Loading needs root (CAP_BPF and CAP_PERFMON at least, and CAP_SYS_ADMIN
// to mount tracefs at /sys/kernel/tracing when it is not mounted). The
// collector pins nothing, so it needs no BPF file system.
package ebpf
