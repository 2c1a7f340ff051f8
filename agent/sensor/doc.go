// Package sensor runs the agent's pipeline: a kernel collector (the proc
// connector or the eBPF collector, Options.Method) feeds the process table
// and the mapper, whose ActEvents get executable hashes and go to the
// transport. Both collectors share the table, mapper, hashing and
// dispatch; the eBPF collector's exec records carry the new image (exe,
// argv, cwd), which then need not come from /proc, and its kernel-side
// losses are added to the counters (DROPPED_RINGBUF_FULL, DROPPED_KERNEL,
// DROPPED_MALFORMED).
//
// Account changes: the pipeline keeps a snapshot of /etc/passwd,
// /etc/shadow and /etc/group (agent/accounts) and reports each user or
// group added, deleted or modified as an ACCOUNT_ADD, ACCOUNT_DELETE or
// ACCOUNT_MODIFY event. With the eBPF collector a rename onto one of the
// files or the close of a written one compares it at once, and the
// process that did it is the subject; the files are also polled each
// counters interval, which finds changes that no such event ended (a
// writer that exited without closing) and, for the proc connector, all
// of them (subject unknown).
//
// Two goroutines share the work so that the kernel reader never waits on
// hashing: the collector goroutine receives kernel events and reads /proc
// at once (the process may be gone a moment later), building complete
// ActEvents, and hands each kernel read's events to the transport in one
// go. Only when an event's executable has not been hashed yet does the
// batch go through the hashing goroutine, which computes the hashes once
// per file identity, from a descriptor the collector opened so the exact
// file is hashed; while it has work queued, later batches follow the same
// way, so events keep their order. When it falls behind, its bounded
// queue fills and the collector waits; the kernel buffer then absorbs the
// burst, and if it overruns the loss is counted (for the proc connector,
// the process table is also resynchronised from /proc). The transport
// never blocks.
package sensor
