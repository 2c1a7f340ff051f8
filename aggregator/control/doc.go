// Package control is the aggregator's control socket: a running
// xdr-aggregator answers status queries on it, and `xdr-aggregator
// status` asks. The protocol is one request line ("status") and one JSON
// document in reply per connection; the Status type is that document.
package control
