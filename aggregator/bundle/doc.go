// Package bundle writes and reads .gpbz bundles, the files in which the
// aggregator stores records for upload: concatenated zstd frames holding
// size-delimited xdrv1.Record messages, opened by a BundleHeader and, once
// sealed, closed by a BundleTrailer. FORMAT.md in this directory describes
// the format. Writer is used by the aggregator, Reader by cmd/snr and the
// uploader.
package bundle
