// Package sdnotify tells systemd about a service's state through the
// notification socket of Type=notify units (sd_notify(3)): that start-up
// is done (Ready), that shutdown began (Stopping) and a free-form status
// line (Status).
//
// The socket is the one named by $NOTIFY_SOCKET, a file system path or,
// when it starts with "@", an abstract socket. When the variable is unset
// (the binary was not started by systemd, or by a unit of another type)
// every function does nothing and returns nil, so callers need no check
// of their own. The functions are safe for concurrent use; each sends one
// datagram on a socket of its own.
package sdnotify
