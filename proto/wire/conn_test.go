package wire

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// unixPair returns both ends of a connected Unix stream socket.
func unixPair(t *testing.T) (client, server *net.UnixConn) {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(t.TempDir(), "s"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan *net.UnixConn, 1)
	go func() {
		c, err := l.AcceptUnix()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	client, err = net.DialUnix("unix", nil, l.Addr().(*net.UnixAddr))
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func TestConnWriteAndRead(t *testing.T) {
	client, server := unixPair(t)
	// Far more than the socket buffer: the writer must wait for room.
	want := bytes.Repeat([]byte("0123456789abcdef"), 1<<18)
	errc := make(chan error, 1)
	go func() {
		n, err := WriteConn(client, want)
		if err == nil && n != len(want) {
			err = io.ErrShortWrite
		}
		client.Close()
		errc <- err
	}()
	got, err := io.ReadAll(NewConnReader(server))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("read %d bytes, want the %d written", len(got), len(want))
	}
	if err := <-errc; err != nil {
		t.Errorf("WriteConn: %v", err)
	}
}

func TestConnDeadlinesAndErrors(t *testing.T) {
	client, server := unixPair(t)
	r := NewConnReader(server)
	server.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := r.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read past the deadline: %v, want os.ErrDeadlineExceeded", err)
	}
	// A writer whose reader never reads times out at its deadline.
	client.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	if n, err := WriteConn(client, make([]byte, 64<<20)); !errors.Is(err, os.ErrDeadlineExceeded) || n == 0 {
		t.Errorf("write into a full socket: %d bytes, %v; want some bytes, then os.ErrDeadlineExceeded", n, err)
	}
	server.Close()
	if _, err := r.Read(make([]byte, 8)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("read of a closed connection: %v, want net.ErrClosed", err)
	}
	client.SetWriteDeadline(time.Time{})
	if _, err := WriteConn(client, []byte("x")); err == nil {
		t.Error("write to a closed peer succeeded")
	}
}
