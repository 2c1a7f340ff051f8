// Package server is the aggregator's end of the agent socket: it listens
// on a SOCK_STREAM Unix socket, admits peers whose uid is allowed
// (SO_PEERCRED), requires a Hello of the current schema version as the
// first frame, and hands every frame (proto/wire) to a handler.
//
// Each connection has its own goroutine, which calls the handler; a slow
// handler therefore slows only its own agent, through the socket's flow
// control. A malformed, oversized or truncated frame closes its connection
// only, with a log line and a count in Stats.
package server
