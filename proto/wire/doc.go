// Package wire frames AgentMessages on the agent socket: each frame is a
// 4-byte big-endian payload length followed by one protobuf-encoded
// xdrv1.AgentMessage. The agent (agent/transport) writes frames and the
// aggregator (aggregator/server) reads them; both share this code so the
// format has a single definition.
package wire
