package main

import (
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
	configtest.CheckDefaults(t, o.fl)
}

// A key of another binary in this binary's section names its line; the
// command line wins over the file, and errors name where a value came from.
func TestConfigFile(t *testing.T) {
	configtest.CheckFileAndFlags(t, "agent", func(args []string) (configtest.Parsed, error) {
		o, err := parseFlags(args)
		if err != nil {
			return configtest.Parsed{}, err
		}
		return configtest.Parsed{Socket: o.socket, LogLevel: o.logLevel, File: o.cfg}, nil
	})
}
