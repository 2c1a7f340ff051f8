// Package configtest holds the checks the commands' tests run against the
// reference configuration file, deploy/xdr.conf.
package configtest

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/xdr-sensor/xdr/cmd/internal/config"
)

var (
	keyLine       = regexp.MustCompile(`(?m)^(?:# )?([a-z][a-z0-9-]*) = `)
	commentedLine = regexp.MustCompile(`(?m)^# ([a-z][a-z0-9-]* = )`)
)

// AllKeysOn writes the reference file at ref with every commented-out key
// turned on to a temporary file and returns its path, and the keys the
// reference documents.
func AllKeysOn(tb testing.TB, ref string) (path string, keys map[string]bool) {
	tb.Helper()
	data, err := os.ReadFile(ref)
	if err != nil {
		tb.Fatal(err)
	}
	keys = map[string]bool{}
	for _, m := range keyLine.FindAllStringSubmatch(string(data), -1) {
		keys[m[1]] = true
	}
	path = filepath.Join(tb.TempDir(), "xdr.conf")
	if err := os.WriteFile(path, commentedLine.ReplaceAll(data, []byte("$1")), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path, keys
}

// CheckDocumented fails tb for every flag of flags that a file may set and
// keys lacks.
func CheckDocumented(tb testing.TB, flags *flag.FlagSet, keys map[string]bool) {
	tb.Helper()
	flags.VisitAll(func(f *flag.Flag) {
		if !config.CommandLineOnly(f.Name) && !keys[f.Name] {
			tb.Errorf("flag --%s is missing from the reference configuration", f.Name)
		}
	})
}

// Parsed is what CheckFileAndFlags reads of a command's parsed options.
type Parsed struct {
	Socket, LogLevel string
	File             *config.File
}

// CheckFileAndFlags checks how a command's parse function, given its
// arguments, combines a file with its command line: a key unknown in the
// command's section is refused naming its line; the file sets what the
// command line leaves unset, the command line wins over it, and a
// setting names where it came from.
func CheckFileAndFlags(t *testing.T, section string, parse func(args []string) (Parsed, error)) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.conf")
	os.WriteFile(p, []byte("socket = \"/from/file\"\n["+section+"]\n\nno-such-key = 1\n"), 0o600)
	if _, err := parse([]string{"--config", p}); err == nil || !strings.Contains(err.Error(), "c.conf:4:") {
		t.Errorf("unknown key: err = %v, want it to name c.conf:4", err)
	}
	os.WriteFile(p, []byte("socket = \"/from/file\"\nlog-level = \"warn\"\n"), 0o600)
	o, err := parse([]string{"--config", p, "--log-level", "error"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Socket != "/from/file" || o.LogLevel != "error" {
		t.Errorf("socket %q log-level %q: want the file's socket and the command line's level", o.Socket, o.LogLevel)
	}
	if got := o.File.Setting("socket"); got != "socket ("+p+":1)" {
		t.Errorf("Setting(socket) = %q", got)
	}
	if got := o.File.Setting("log-level"); got != "--log-level" {
		t.Errorf("Setting(log-level) = %q", got)
	}
}

// CheckDefaults fails tb for every flag whose value, after the reference
// file with every key turned on was applied, differs from its default:
// the reference documents each default, and a default changed in the code
// but not there (or the reverse) is caught.
func CheckDefaults(tb testing.TB, flags *flag.FlagSet) {
	tb.Helper()
	flags.VisitAll(func(f *flag.Flag) {
		if f.Name != "config" && f.Value.String() != f.DefValue {
			tb.Errorf("reference configuration sets %s = %q, the flag's default is %q", f.Name, f.Value.String(), f.DefValue)
		}
	})
}
