// Snr inspects the .gpbz bundles written by the aggregator.
//
// Usage:
//
//	snr x [-P] FILE...
//	snr help
//
// x (or X) prints every record of each file as JSON, one object per line,
// or indented over several lines with -P. Fields have their protobuf
// names and enum values their names. On a damaged or truncated file it
// prints every readable record, reports the damage on stderr and goes on
// with the next file.
//
// The exit status is 0 on success, 1 if a file could not be read to its
// end or the output could not be written, and 2 for usage errors.
package main
