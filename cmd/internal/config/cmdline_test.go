package config

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseCommandLine(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "x.conf")
	if err := os.WriteFile(conf, []byte("[agent]\nqueue = 7\nmethod = \"proc\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	newFlags := func() (*flag.FlagSet, *int, *string) {
		fl := flag.NewFlagSet("x", flag.ContinueOnError)
		fl.SetOutput(io.Discard)
		q := fl.Int("queue", 1, "")
		m := fl.String("method", "auto", "")
		fl.String("config", "", "")
		return fl, q, m
	}
	tests := []struct {
		name      string
		args      []string
		wantErr   error
		errText   string
		queue     int
		method    string
		wantFile  bool
		wantWhere string // Setting("queue")
	}{
		{name: "no file", args: []string{"--queue", "3"}, queue: 3, method: "auto", wantWhere: "--queue"},
		{name: "file", args: []string{"--config", conf}, queue: 7, method: "proc", wantFile: true, wantWhere: "queue (" + conf + ":2)"},
		{name: "command line wins", args: []string{"--config", conf, "--queue", "9"}, queue: 9, method: "proc", wantFile: true, wantWhere: "--queue"},
		{name: "help", args: []string{"-h"}, wantErr: flag.ErrHelp},
		{name: "bad flag", args: []string{"--nope"}, wantErr: ErrUsage},
		{name: "argument", args: []string{"status"}, errText: `unexpected argument "status"`},
		{name: "missing file", args: []string{"--config", conf + ".missing"}, errText: ".missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fl, q, m := newFlags()
			f, err := ParseCommandLine(fl, tt.args, "agent")
			switch {
			case tt.wantErr != nil || tt.errText != "":
				if (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) || (tt.errText != "" && (err == nil || !strings.Contains(err.Error(), tt.errText))) {
					t.Fatalf("err = %v, want %v %q", err, tt.wantErr, tt.errText)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if *q != tt.queue || *m != tt.method || (f != nil) != tt.wantFile {
				t.Errorf("queue %d method %q file %v, want %d %q %v", *q, *m, f != nil, tt.queue, tt.method, tt.wantFile)
			}
			if got := f.Setting("queue"); got != tt.wantWhere {
				t.Errorf("Setting(queue) = %q, want %q", got, tt.wantWhere)
			}
		})
	}
}
