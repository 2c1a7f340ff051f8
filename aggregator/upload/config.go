package upload

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
)

// maxKeyBytes bounds the agent key file.
const maxKeyBytes = 4096

// LoadKey reads the agent key from a file: its content without leading
// and trailing white space. The key must be 1 to 4096 bytes of printable
// ASCII without spaces, as it is sent in an HTTP header.
func LoadKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("agent key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("agent key: %w", err)
	}
	if fi.Mode().Perm()&0o004 != 0 {
		return nil, fmt.Errorf("agent key file %s: readable by every user (mode %04o); make it 0640 or 0600", path, fi.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("agent key: %w", err)
	}
	if len(b) > maxKeyBytes {
		return nil, fmt.Errorf("agent key file %s: larger than %d bytes (is it the right file?)", path, maxKeyBytes)
	}
	key := bytes.TrimSpace(b)
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("agent key file %s: %w", path, err)
	}
	return key, nil
}

// checkKey reports whether key can be sent as a bearer token. The error
// never quotes the key.
func checkKey(key []byte) error {
	if len(key) == 0 {
		return errors.New("the agent key is empty")
	}
	for i, c := range key {
		if c < 0x21 || c > 0x7e {
			return fmt.Errorf("the agent key has a space, control or non-ASCII character at byte %d, which cannot be sent in an HTTP header", i)
		}
	}
	return nil
}

// TLSConfig returns the TLS settings for New: the server is verified
// against the PEM certificates in caFile, or the system's roots if caFile
// is empty; with certFile and keyFile (PEM, both or neither) the client
// presents that certificate (mTLS). The minimum version is TLS 1.2.
func TLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificate in it", caFile)
		}
		c.RootCAs = pool
	}
	switch {
	case certFile == "" && keyFile == "":
	case certFile == "" || keyFile == "":
		return nil, fmt.Errorf("client certificate %q and key %q: give both files for mTLS, or neither", certFile, keyFile)
	default:
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate %s with key %s: %w", certFile, keyFile, err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}
