// Package proccon collects process lifecycle events from the Linux proc
// connector: a netlink socket (NETLINK_CONNECTOR) subscribed to the
// CN_IDX_PROC multicast group, on which the kernel reports fork, exec,
// credential, session, ptrace, comm, coredump and exit events.
//
// Dial opens and subscribes the socket, Conn.Receive returns decoded events
// and Decode decodes a single connector message (it is exported so that
// captured bytes can be replayed and fuzzed).
//
// The proc connector carries only identifiers (pids, tgids, uids, gids, exit
// codes, the 16-byte comm); it does not say which file was executed, with
// which arguments, in which directory or cgroup. Everything else about a
// process must be read from /proc by another package, racing against the
// process's exit, which is why the reader here must keep up and why every
// loss is counted (Stats) and reported (ErrOverrun).
//
// Requirements: a kernel built with CONFIG_PROC_EVENTS, and a caller in the
// initial user, pid and network namespaces. Subscribing needs
// CAP_NET_ADMIN before Linux 6.6 and again on some later kernels (6.18.44
// refuses without it, where earlier 6.18 builds did not); raising the
// receive buffer beyond net.core.rmem_max always needs CAP_NET_ADMIN.
// In another network namespace Dial fails; from another user or pid
// namespace the kernel silently ignores the subscription request, so no
// events (not even the acknowledgement, a What of None) arrive.
package proccon
