// Package objid derives the stable 64-bit identities used as hash ids: the
// identity of an activity's target object (ActEvent.target_hash_id) and of
// a whole activity (Footprint.hash_id).
//
// Identities depend only on what an object is, never on which process
// instance touched it or when, so the same activity on two devices, or
// after a reboot, has the same id: a file by its normalised path, a
// process by its executable, a connection by protocol, remote address,
// remote port and direction (not the ephemeral local port), a DNS query by
// its lowercased name and type, an account by uid (or gid) and name, a rule
// by its id. The hash is 64-bit FNV-1a over a tagged, length-delimited
// encoding of those fields, so ids are stable across builds and
// architectures. Changing the encoding changes every id: don't.
package objid
