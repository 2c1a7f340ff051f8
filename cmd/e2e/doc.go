// Package e2e holds the end-to-end tests and benchmarks: they build the
// real xdr-agent, xdr-aggregator and snr binaries, run them against this
// kernel (as root), drive real workloads and read the resulting bundles
// back with snr.
package e2e
