// Package configtest holds the checks the commands' tests run against the
// reference configuration file, deploy/xdr.conf.
package configtest

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

var (
	keyLine       = regexp.MustCompile(`(?m)^(?:# )?([a-z][a-z0-9-]*) = `)
	commentedLine = regexp.MustCompile(`(?m)^# ([a-z][a-z0-9-]* = )`)
)

// commandLineOnly are the flags a configuration file may not set.
var commandLineOnly = map[string]bool{"config": true, "version": true, "help": true, "cpuprofile": true}

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
		if !commandLineOnly[f.Name] && !keys[f.Name] {
			tb.Errorf("flag --%s is missing from the reference configuration", f.Name)
		}
	})
}
