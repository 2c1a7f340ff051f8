// Package bundle writes and reads .gpbz bundles, the files in which the
// aggregator stores records for upload: concatenated zstd frames holding
// size-delimited xdrv1.Record messages, opened by a BundleHeader and, once
// sealed, closed by a BundleTrailer. FORMAT.md in this directory describes
// the format, the names of critical bundles, crash recovery and the disk
// quota. Writer is used by the aggregator; it recovers the bundles a crash
// left unsealed and keeps the directory within a quota. Reader, ReadFile
// and Verify (which checks a trailer against the records) are used by
// cmd/snr and the uploader.
package bundle
