// Package proctable keeps the agent's view of the processes on the
// machine: seeded from /proc at start-up, kept current from kernel events,
// resynchronised from /proc after an event loss, and bounded in memory
// (exited processes stay for a short grace period so late events can still
// name them, then leave).
//
// Enrichment reads /proc the moment an event is handled. When the process
// is already gone, or its pid was reused by another process (detected by
// a changed start time), the entry is marked Partial and keeps only what
// is known to belong to it: it is never filled with another process's
// data.
package proctable
