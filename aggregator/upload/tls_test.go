package upload

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA is a certificate authority made for a test.
type testCA struct {
	dir    string
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	caFile string // PEM of cert
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{dir: t.TempDir(), cert: cert, key: key}
	ca.caFile = ca.write(t, name+"-ca.pem", "CERTIFICATE", der)
	return ca
}

func (ca *testCA) write(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(ca.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// issue makes a certificate for a server on 127.0.0.1 or for a client,
// and returns it with the PEM files of the certificate and its key.
func (ca *testCA) issue(t *testing.T, name string, server bool) (cert tls.Certificate, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = ca.write(t, name+".pem", "CERTIFICATE", der)
	keyFile = ca.write(t, name+"-key.pem", "PRIVATE KEY", keyDER)
	cert, err = tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return cert, certFile, keyFile
}

func TestUploadMutualTLS(t *testing.T) {
	ca := newTestCA(t, "collector")
	serverCert, _, _ := ca.issue(t, "server", true)
	_, clientCert, clientKey := ca.issue(t, "client", false)
	other := newTestCA(t, "other")
	_, otherCert, otherKey := other.issue(t, "intruder", false)
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(ca.cert)

	tests := []struct {
		name                      string
		caFile, certFile, keyFile string
		wantUpload                bool
	}{
		{"client certificate of the server's CA", ca.caFile, clientCert, clientKey, true},
		{"no client certificate", ca.caFile, "", "", false},
		{"client certificate of another CA", ca.caFile, otherCert, otherKey, false},
		{"server certificate not trusted", other.caFile, clientCert, clientKey, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			paths := writeBundles(t, dir, false)
			srv := newTestServer(t, dir, &tls.Config{
				Certificates: []tls.Certificate{serverCert},
				ClientAuth:   tls.RequireAndVerifyClientCert,
				ClientCAs:    clientCAs,
			})
			o := srv.options(t, dir)
			var err error
			if o.TLS, err = TLSConfig(tt.caFile, tt.certFile, tt.keyFile); err != nil {
				t.Fatal(err)
			}
			u := newUploader(t, o)
			start(t, u)
			if tt.wantUpload {
				waitFor(t, "the bundle uploaded", func() bool { return !exists(paths[0]) })
				return
			}
			waitFor(t, "a refused connection", func() bool { return u.Stats().Failures.Network >= 2 })
			if !exists(paths[0]) || len(srv.hitsFor("")) != 0 {
				t.Errorf("bundle deleted or request served without a valid TLS connection")
			}
			if st := u.Stats(); st.Failures != (Failures{Network: st.Failures.Network}) || st.LastError == "" {
				t.Errorf("Stats = %+v, want only network failures", st)
			}
		})
	}
}

func TestTLSConfig(t *testing.T) {
	ca := newTestCA(t, "ca")
	_, certFile, keyFile := ca.issue(t, "client", false)
	_, _, otherKey := ca.issue(t, "other", false)
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing.pem")

	tests := []struct {
		name                      string
		caFile, certFile, keyFile string
		wantErr                   string // substring; "" for success
		wantRoots, wantCert       bool
	}{
		{"system roots", "", "", "", "", false, false},
		{"CA file", ca.caFile, "", "", "", true, false},
		{"mTLS", ca.caFile, certFile, keyFile, "", true, true},
		{"missing CA file", missing, "", "", missing, false, false},
		{"CA file without PEM", notPEM, "", "", notPEM + ": no PEM certificate", false, false},
		{"certificate without key", "", certFile, "", "give both files", false, false},
		{"key without certificate", "", "", keyFile, "give both files", false, false},
		{"missing certificate", "", missing, keyFile, missing, false, false},
		{"key of another certificate", "", certFile, otherKey, "does not match", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := TLSConfig(tt.caFile, tt.certFile, tt.keyFile)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("TLSConfig = %v, want an error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.MinVersion != tls.VersionTLS12 || (c.RootCAs != nil) != tt.wantRoots || (len(c.Certificates) == 1) != tt.wantCert {
				t.Errorf("TLSConfig = min version %x, roots %v, %d certificates; want TLS 1.2, roots %v, certificate %v",
					c.MinVersion, c.RootCAs != nil, len(c.Certificates), tt.wantRoots, tt.wantCert)
			}
		})
	}
}

func TestNewRaisesTLSVersion(t *testing.T) {
	conf := &tls.Config{MinVersion: tls.VersionTLS10}
	u, err := New(&Options{URL: "https://collector.example", Dir: t.TempDir(), Key: []byte(testKey), TLS: conf})
	if err != nil {
		t.Fatal(err)
	}
	if got := u.transport.TLSClientConfig.MinVersion; got != tls.VersionTLS12 {
		t.Errorf("minimum TLS version %x, want TLS 1.2", got)
	}
	if conf.MinVersion != tls.VersionTLS10 {
		t.Error("New changed the caller's TLS config")
	}
}
