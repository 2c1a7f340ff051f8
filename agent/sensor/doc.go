// Package sensor runs the agent's pipeline: a kernel collector feeds the
// process table and the mapper, whose ActEvents get executable hashes and
// go to the transport.
//
// Two goroutines share the work so that the kernel reader never waits on
// hashing: the collector goroutine receives kernel events and reads /proc
// at once (the process may be gone a moment later), building complete
// ActEvents; the hashing goroutine fills in executable hashes (computed
// once per file identity, from a descriptor opened by the collector so
// the exact file is hashed) and hands the events to the transport, which
// never blocks. Events keep their order. When the hashing goroutine falls
// behind, its bounded queue fills and the collector waits; the kernel
// buffer then absorbs the burst, and if it overruns the loss is counted
// and the process table is resynchronised from /proc.
package sensor
