// Snr inspects the .gpbz bundles written by the aggregator.
//
// Usage:
//
//	snr x [-P] [--type TYPE,...] [--access ACCESS,...] FILE...
//	snr stat [--json] FILE...
//	snr help
//
// x (or X) prints every record of each file as JSON, one object per line,
// or indented over several lines with -P. Fields have their protobuf
// names and enum values their names. --type keeps only records of the
// given types (header, event, footprint, statistics, agent_counters,
// trailer); --access keeps only the event and footprint records of the
// given access types (FILE_OPEN, xdr_access_type_bm_invoke, 102), and
// leaves records of other types alone. When a file has a trailer, x
// checks it against the records and reports a mismatch on stderr after
// printing them. On a damaged or truncated file it prints every readable
// record, reports the damage on stderr and goes on with the next file.
//
// stat prints, for each file and in total, the records per type, the time
// range they cover, critical hits (events with access type BM_INVOKE, and
// the trailer's hit_critical_event), whether the file is sealed, was
// recovered after a crash and verifies against its trailer, and the
// footprint reduction ("N events in M footprints (R x)"); --json prints
// the same as one JSON object.
//
// Flags may come before or after the file names; arguments after "--" are
// file names. The exit status is 0 on success, 1 if a file could not be
// read to its end or failed verification, or the output could not be
// written, and 2 for usage errors.
package main
