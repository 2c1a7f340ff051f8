package main

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// referenceConfig is deploy/xdr.conf with every commented-out key turned
// on, written to a temporary file.
func referenceConfig(t *testing.T) (path string, keys map[string]bool) {
	t.Helper()
	data, err := os.ReadFile("../../deploy/xdr.conf")
	if err != nil {
		t.Fatal(err)
	}
	keyLine := regexp.MustCompile(`(?m)^(?:# )?([a-z][a-z0-9-]*) = `)
	keys = map[string]bool{}
	for _, m := range keyLine.FindAllStringSubmatch(string(data), -1) {
		keys[m[1]] = true
	}
	on := regexp.MustCompile(`(?m)^# ([a-z][a-z0-9-]* = )`).ReplaceAllString(string(data), "$1")
	path = filepath.Join(t.TempDir(), "xdr.conf")
	if err := os.WriteFile(path, []byte(on), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, keys
}

// The reference configuration documents every flag that may come from a
// file, and every key in it is accepted by this binary.
func TestReferenceConfig(t *testing.T) {
	path, keys := referenceConfig(t)
	o, err := parseFlags([]string{"--config", path})
	if err != nil {
		t.Fatalf("reference configuration with every key set: %v", err)
	}
	o.fl.VisitAll(func(f *flag.Flag) {
		switch f.Name {
		case "config", "version", "cpuprofile":
			return
		}
		if !keys[f.Name] {
			t.Errorf("flag --%s is missing from deploy/xdr.conf", f.Name)
		}
	})
}

func TestConfigErrorsAndOverride(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "c.conf")
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	_, err := parseFlags([]string{"--config", write("log-level = \"debug\"\n[agent]\n\nno-such-key = 1\n")})
	if err == nil || !strings.Contains(err.Error(), "c.conf:4:") || !strings.Contains(err.Error(), "no-such-key") {
		t.Errorf("unknown key: err = %v, want it to name c.conf:4 and the key", err)
	}
	_, err = parseFlags([]string{"--config", filepath.Join(dir, "missing.conf")})
	if err == nil || !strings.Contains(err.Error(), "missing.conf") {
		t.Errorf("missing file: err = %v", err)
	}
	p := write("log-level = \"debug\"\n[agent]\nlog-level = \"warn\"\n")
	if _, err := parseFlags([]string{"--config", p}); err == nil {
		t.Error("a key set at the top and in a section was accepted")
	}
	p = write("socket = \"/from/file\"\nlog-level = \"warn\"\n")
	o, err := parseFlags([]string{"--config", p, "--log-level", "error"})
	if err != nil {
		t.Fatal(err)
	}
	if o.socket != "/from/file" || o.logLevel != "error" {
		t.Errorf("socket %q log-level %q: want the file's socket and the command line's level", o.socket, o.logLevel)
	}
	if got := o.setting("socket"); got != "socket ("+p+":1)" {
		t.Errorf("setting(socket) = %q", got)
	}
	if got := o.setting("log-level"); got != "--log-level" {
		t.Errorf("setting(log-level) = %q", got)
	}
}
