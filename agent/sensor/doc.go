// Package sensor runs the agent's pipeline: a kernel collector feeds the
// process table and the mapper, whose ActEvents get executable hashes and
// go to the transport.
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
// burst, and if it overruns the loss is counted and the process table is
// resynchronised from /proc. The transport never blocks.
package sensor
