package sdnotify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
)

// socketEnv names the environment variable systemd passes the socket in.
const socketEnv = "NOTIFY_SOCKET"

// Ready reports that start-up is complete: for a Type=notify unit,
// systemd holds back the units ordered after this one until then.
func Ready() error {
	return send("READY=1")
}

// Stopping reports that the service began shutting down.
func Stopping() error {
	return send("STOPPING=1")
}

// Status sets the line systemctl status shows for the service. A status
// has a single line: line breaks in s become spaces, so that it cannot
// carry other assignments.
func Status(s string) error {
	return send("STATUS=" + strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s))
}

// send writes state, newline-separated VAR=VALUE assignments, as one
// datagram to the socket $NOTIFY_SOCKET names.
func send(state string) error {
	addr := os.Getenv(socketEnv)
	if addr == "" {
		return nil
	}
	// Go's net package maps a leading "@" to the abstract namespace.
	if addr[0] != '/' && addr[0] != '@' {
		return fmt.Errorf("notify systemd: %s=%q is neither an absolute path nor an abstract socket (@name)", socketEnv, addr)
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("notify systemd at %s: %w", addr, err)
	}
	_, werr := conn.Write([]byte(state))
	cerr := conn.Close()
	if err := errors.Join(werr, cerr); err != nil {
		return fmt.Errorf("notify systemd at %s: %w", addr, err)
	}
	return nil
}

// StoppingWhenDone sends STOPPING=1 once ctx is done. The function it
// returns waits until that notification was sent if ctx is done by then;
// call it before the process exits, which would otherwise cut it short.
func StoppingWhenDone(ctx context.Context) (wait func()) {
	sent := make(chan struct{})
	context.AfterFunc(ctx, func() {
		Stopping()
		close(sent)
	})
	return func() {
		if ctx.Err() != nil {
			<-sent
		}
	}
}
