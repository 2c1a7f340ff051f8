// Package footprint folds repeated activity into footprints: one record per
// distinct activity (who did what to which object, identified by
// objid.Activity) with when it was first and last seen, how often, and the
// metadata of the last subject process and target object seen.
//
// A Generator keeps footprints in memory, bounded by an entry count and a
// byte budget, and hands them to an Emit callback: changed footprints on a
// flush interval, unchanged ones again after a re-emit interval, evicted
// ones before they leave memory, and the changed rest at shutdown.
//
// Every emitted footprint carries the cumulative count since its
// first_seen, never a delta. A consumer therefore keeps, per hash_id and
// first_seen, the latest record (the one with the highest count). A
// footprint that was evicted and later seen again starts over: same
// hash_id, a new first_seen and a count from zero, so the consumer adds the
// counts of different first_seen values of one hash_id.
package footprint
