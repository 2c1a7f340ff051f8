// Package daemon runs the aggregator: it serves the agent socket, turns
// what agents send into bundle records, and writes them into rotating
// .gpbz bundles in the data directory.
//
// Connection goroutines hand records to a single writer goroutine through
// a bounded queue; when the writer falls behind, the connection readers
// wait, the socket buffers fill, and the agents' own bounded queues
// absorb (and count) the overflow. Nothing is dropped here silently.
package daemon
