// Package sensor runs the agent's pipeline: a kernel collector (the proc
// connector or the eBPF collector, Options.Method) feeds the process table
// and the mapper, whose ActEvents get executable hashes and go to the
// transport. Both collectors share the table, mapper, hashing and
// dispatch; the eBPF collector's exec records carry the new image (exe,
// argv, cwd), which then need not come from /proc, and its kernel-side
// losses are added to the counters (DROPPED_RINGBUF_FULL, DROPPED_KERNEL,
// DROPPED_MALFORMED).
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
