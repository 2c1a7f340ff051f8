package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xdr-sensor/xdr/cmd/internal/config/configtest"
)

// The reference configuration documents every flag a file may set, and
// this binary accepts every key in it.
func TestReferenceConfig(t *testing.T) {
	path, keys := configtest.AllKeysOn(t, "../../deploy/xdr.conf")
	o, err := parseFlags([]string{"--config", path})
	if err != nil {
		t.Fatalf("reference configuration with every key set: %v", err)
	}
	configtest.CheckDocumented(t, o.fl, keys)
}

// A key of another binary in this binary's section names its line; the
// command line wins over the file, and errors name where a value came from.
func TestConfigFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.conf")
	os.WriteFile(p, []byte("socket = \"/from/file\"\n[aggregator]\n\nno-such-key = 1\n"), 0o600)
	if _, err := parseFlags([]string{"--config", p}); err == nil || !strings.Contains(err.Error(), "c.conf:4:") {
		t.Errorf("unknown key: err = %v, want it to name c.conf:4", err)
	}
	os.WriteFile(p, []byte("socket = \"/from/file\"\nlog-level = \"warn\"\n"), 0o600)
	o, err := parseFlags([]string{"--config", p, "--log-level", "error"})
	if err != nil {
		t.Fatal(err)
	}
	if o.socket != "/from/file" || o.logLevel != "error" {
		t.Errorf("socket %q log-level %q: want the file's socket and the command line's level", o.socket, o.logLevel)
	}
	if got := o.cfg.Setting("socket"); got != "socket ("+p+":1)" {
		t.Errorf("Setting(socket) = %q", got)
	}
	if got := o.cfg.Setting("log-level"); got != "--log-level" {
		t.Errorf("Setting(log-level) = %q", got)
	}
}
