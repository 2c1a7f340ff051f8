package config

import (
	"errors"
	"flag"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// testFlags is a flag set with one flag of each kind the binaries use.
func testFlags() *flag.FlagSet {
	fl := flag.NewFlagSet("test", flag.ContinueOnError)
	fl.SetOutput(io.Discard)
	fl.String("socket", "/run/xdr/agent.sock", "")
	fl.String("log-level", "info", "")
	fl.String("method", "auto", "")
	fl.Int("queue", 16384, "")
	fl.Int("socket-group", -1, "")
	fl.Int64("hash-max-size", 64<<20, "")
	fl.Uint("workers", 2, "")
	fl.Bool("capture-env", false, "")
	fl.Duration("flush-interval", 100*time.Millisecond, "")
	fl.String("allow-uid", "", "")
	fl.Float64("ratio", 0.5, "a flag of a type the file has no values of")
	fl.Func("level", "a flag whose Value does not tell its type", func(s string) error {
		if s != "low" && s != "high" {
			return errors.New("want low or high")
		}
		return nil
	})
	fl.String("config", "", "")
	fl.Bool("version", false, "")
	return fl
}

// flagValues returns every flag's value as a string.
func flagValues(fl *flag.FlagSet) map[string]string {
	m := map[string]string{}
	fl.VisitAll(func(f *flag.Flag) { m[f.Name] = f.Value.String() })
	return m
}

func TestApply(t *testing.T) {
	defaults := flagValues(testFlags())
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range defaults {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name        string
		conf        string
		section     string
		args        []string
		want        map[string]string // flag values after Apply
		wantOrigins map[string]string
		wantErr     string
	}{
		{
			name:        "empty file",
			section:     "agent",
			want:        defaults,
			wantOrigins: map[string]string{},
		},
		{
			name: "every kind",
			conf: "socket = \"/tmp/a.sock\"\n[agent]\nmethod = \"proc\"\nqueue = 1_024\nsocket-group = -5\n" +
				"hash-max-size = 1048576\nworkers = 4\ncapture-env = true\nflush-interval = \"1m30s\"\n" +
				"allow-uid = [\"0\", \"1000\",]\nlevel = \"high\"\n",
			section: "agent",
			want: with("socket", "/tmp/a.sock", "method", "proc", "queue", "1024", "socket-group", "-5",
				"hash-max-size", "1048576", "workers", "4", "capture-env", "true", "flush-interval", "1m30s",
				"allow-uid", "0,1000"),
			wantOrigins: map[string]string{
				"socket": "xdr.conf:1", "method": "xdr.conf:3", "queue": "xdr.conf:4", "socket-group": "xdr.conf:5",
				"hash-max-size": "xdr.conf:6", "workers": "xdr.conf:7", "capture-env": "xdr.conf:8",
				"flush-interval": "xdr.conf:9", "allow-uid": "xdr.conf:10", "level": "xdr.conf:11",
			},
		},
		{
			name:        "boolean false over a true command line is not applied",
			conf:        "[agent]\ncapture-env = false\n",
			section:     "agent",
			args:        []string{"--capture-env"},
			want:        with("capture-env", "true"),
			wantOrigins: map[string]string{},
		},
		{
			name:        "command line wins",
			conf:        "socket = \"/file.sock\"\n[agent]\nqueue = 5\nmethod = \"ebpf\"\n",
			section:     "agent",
			args:        []string{"--queue", "7", "--socket=/cmdline.sock"},
			want:        with("socket", "/cmdline.sock", "queue", "7", "method", "ebpf"),
			wantOrigins: map[string]string{"method": "xdr.conf:4"},
		},
		{
			name:        "command line equal to the default still wins",
			conf:        "[agent]\nqueue = 5\n",
			section:     "agent",
			args:        []string{"--queue=16384"},
			want:        defaults,
			wantOrigins: map[string]string{},
		},
		{
			name:        "only its own section",
			conf:        "[agent]\nqueue = 5\n[aggregator]\nqueue = 6\ndata-dir = \"/d\"\n",
			section:     "agent",
			want:        with("queue", "5"),
			wantOrigins: map[string]string{"queue": "xdr.conf:2"},
		},
		{
			name:        "the other section's unknown keys are not checked",
			conf:        "[agent]\nno-such-flag = 1\n[aggregator]\nqueue = 6\n",
			section:     "aggregator",
			want:        with("queue", "6"),
			wantOrigins: map[string]string{"queue": "xdr.conf:4"},
		},
		{
			name:        "empty array",
			conf:        "[aggregator]\nallow-uid = []\n",
			section:     "aggregator",
			args:        []string{},
			want:        defaults,
			wantOrigins: map[string]string{"allow-uid": "xdr.conf:2"},
		},
		{
			name:        "array for a plain string flag is its joined form",
			conf:        "[agent]\nmethod = [\"proc\"]\n",
			section:     "agent",
			want:        with("method", "proc"),
			wantOrigins: map[string]string{"method": "xdr.conf:2"},
		},
		{
			name:    "unknown key",
			conf:    "[agent]\n\nmetod = \"proc\"\n",
			section: "agent",
			wantErr: `xdr.conf:3: unknown key "metod" in [agent] (did you mean "method"?)`,
		},
		{
			name:    "unknown short key",
			conf:    "[agent]\nqeue = 1\n",
			section: "agent",
			wantErr: `xdr.conf:2: unknown key "qeue" in [agent] (did you mean "queue"?)`,
		},
		{
			name:        "flag of another type takes any value its Set parses",
			conf:        "[agent]\nratio = 2\n",
			section:     "agent",
			want:        with("ratio", "2"),
			wantOrigins: map[string]string{"ratio": "xdr.conf:2"},
		},
		{
			name:    "flag of another type rejecting a value",
			conf:    "[agent]\nratio = true\n",
			section: "agent",
			wantErr: `xdr.conf:2: [agent] ratio: invalid value "true": parse error`,
		},
		{
			name:    "unknown key with nothing close",
			conf:    "[aggregator]\nbundle-max-age = \"5m\"\n",
			section: "aggregator",
			wantErr: `xdr.conf:2: unknown key "bundle-max-age" in [aggregator]`,
		},
		{
			name:    "unknown key even when given on the command line",
			conf:    "[agent]\nqueue = 1\nsokcet = \"/s\"\n",
			section: "agent",
			args:    []string{"--queue=2"},
			wantErr: `xdr.conf:3: unknown key "sokcet" in [agent] (did you mean "socket"?)`,
		},
		{
			name:    "no suggestion of a command-line-only flag",
			conf:    "[agent]\nversio = true\n",
			section: "agent",
			wantErr: `xdr.conf:2: unknown key "versio" in [agent]`,
		},
		{
			name:    "bad value for the flag",
			conf:    "[agent]\nlevel = \"medium\"\n",
			section: "agent",
			wantErr: `xdr.conf:2: [agent] level: invalid value "medium": want low or high`,
		},
		{
			name:    "bad duration",
			conf:    "[agent]\nflush-interval = \"soon\"\n",
			section: "agent",
			wantErr: `xdr.conf:2: [agent] flush-interval: invalid value "soon": parse error`,
		},
		{
			name:    "integer out of the flag's range",
			conf:    "[agent]\nqueue = 9223372036854775807\nworkers = -1\n",
			section: "agent",
			wantErr: `xdr.conf:3: [agent] workers: invalid value "-1": parse error`,
		},
		{
			name:    "integer for a duration",
			conf:    "[agent]\nflush-interval = 100\n",
			section: "agent",
			wantErr: `xdr.conf:2: [agent] flush-interval: want a duration string such as "5m" or "100ms", not an integer`,
		},
		{
			name:    "string for an integer",
			conf:    "[agent]\nqueue = \"5\"\n",
			section: "agent",
			wantErr: `xdr.conf:2: [agent] queue: want an integer, not a string`,
		},
		{
			name:    "string for a boolean",
			conf:    "[agent]\ncapture-env = \"true\"\n",
			section: "agent",
			wantErr: `xdr.conf:2: [agent] capture-env: want a boolean, not a string`,
		},
		{
			name:    "integer for a boolean",
			conf:    "[agent]\ncapture-env = 1\n",
			section: "agent",
			wantErr: `xdr.conf:2: [agent] capture-env: want a boolean, not an integer`,
		},
		{
			name:    "boolean for a string",
			conf:    "[agent]\nmethod = true\n",
			section: "agent",
			wantErr: `xdr.conf:2: [agent] method: want a string, not a boolean`,
		},
		{
			name:    "integer for a string",
			conf:    "socket = 1\n",
			section: "agent",
			wantErr: `xdr.conf:1: socket: want a string, not an integer`,
		},
		{
			name:    "array for an integer",
			conf:    "[agent]\nqueue = [\"1\"]\n",
			section: "agent",
			wantErr: `xdr.conf:2: [agent] queue: want an integer, not an array`,
		},
		{
			name:    "array item with a comma",
			conf:    "[aggregator]\nallow-uid = [\"0\", \"1,2\"]\n",
			section: "aggregator",
			wantErr: `xdr.conf:2: [aggregator] allow-uid: array item "1,2" holds a comma, which would split it in two`,
		},
		{
			name:    "blank array item",
			conf:    "[aggregator]\nallow-uid = [\"0\", \" \"]\n",
			section: "aggregator",
			wantErr: `xdr.conf:2: [aggregator] allow-uid: array item is blank`,
		},
		{
			name:    "unknown section",
			section: "snr",
			wantErr: `apply configuration: unknown section "snr" (want "agent" or "aggregator")`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("xdr.conf", []byte(tt.conf))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			fl := testFlags()
			if err := fl.Parse(tt.args); err != nil {
				t.Fatalf("flag Parse: %v", err)
			}
			err = f.Apply(fl, tt.section)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("Apply succeeded, want error %q", tt.wantErr)
				}
				if diff := cmp.Diff(tt.wantErr, err.Error()); diff != "" {
					t.Errorf("error (-want +got):\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if diff := cmp.Diff(tt.want, flagValues(fl)); diff != "" {
				t.Errorf("flag values (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantOrigins, f.origins); diff != "" {
				t.Errorf("origins (-want +got):\n%s", diff)
			}
			fl.VisitAll(func(fl *flag.Flag) {
				if got, want := f.Origin(fl.Name), tt.wantOrigins[fl.Name]; got != want {
					t.Errorf("Origin(%q) = %q, want %q", fl.Name, got, want)
				}
			})
		})
	}
}

func TestApplyBeforeParse(t *testing.T) {
	f, err := Parse("xdr.conf", []byte("[agent]\nqueue = 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	err = f.Apply(testFlags(), "agent")
	if diff := cmp.Diff("apply configuration: the command line must be parsed first", errString(err)); diff != "" {
		t.Errorf("error (-want +got):\n%s", diff)
	}
}

func TestWithoutFile(t *testing.T) {
	var f *File
	fl := testFlags()
	if err := fl.Parse([]string{"--queue=3"}); err != nil {
		t.Fatal(err)
	}
	if err := f.Apply(fl, "agent"); err != nil {
		t.Errorf("nil File: Apply: %v", err)
	}
	if diff := cmp.Diff(flagValues(testFlags()), flagValues(fl), cmpopts.IgnoreMapEntries(func(k, _ string) bool { return k == "queue" })); diff != "" {
		t.Errorf("nil File: flag values changed (-want +got):\n%s", diff)
	}
	if got := f.Origin("socket"); got != "" {
		t.Errorf("nil File: Origin = %q, want \"\"", got)
	}
	f, err := Parse("xdr.conf", []byte("socket = \"/s\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Origin("socket"); got != "" {
		t.Errorf("before Apply: Origin = %q, want \"\"", got)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.conf", []byte("socket = \"/s\"\n[agent]\nqueue = 3\n"))
	bad := write("bad.conf", []byte("socket = \"/s\"\n[agent]\nqueue = 3.5\n"))
	atLimit := write("limit.conf", append([]byte("socket = \"/s\"\n"), []byte(strings.Repeat("#", maxFileSize-len("socket = \"/s\"\n")))...))
	tooLarge := write("large.conf", []byte(strings.Repeat("\n", maxFileSize+1)))
	missing := filepath.Join(dir, "missing.conf")
	writable := write("writable.conf", []byte("socket = \"/s\"\n"))
	os.Chmod(writable, 0o664)

	f, err := Load(good)
	if err != nil {
		t.Fatalf("Load(good): %v", err)
	}
	want := []entry{
		{key: "socket", line: 1, val: str("/s")},
		{section: "agent", key: "queue", line: 3, val: num(3)},
	}
	if diff := cmp.Diff(want, f.entries, cmpEntries); diff != "" {
		t.Errorf("Load(good) entries (-want +got):\n%s", diff)
	}
	if _, err := Load(atLimit); err != nil {
		t.Errorf("Load(file of the largest size): %v", err)
	}

	errTests := []struct {
		name     string
		path     string
		want     string
		notExist bool
	}{
		{"syntax error", bad, bad + ":3: floats are not supported: \"3.5\"", false},
		{"missing", missing, "configuration file " + missing + ": file does not exist (install deploy/xdr.conf there or pass --config FILE)", true},
		{"too large", tooLarge, "configuration file " + tooLarge + " is larger than 1024 KiB", false},
		{"directory", dir, "configuration file " + dir + " is not a regular file", false},
		{"group-writable", writable, "configuration file " + writable + " is writable by group or others (mode 0664); make it 0640 or 0644", false},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.path)
			if diff := cmp.Diff(tt.want, errString(err)); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if got := errors.Is(err, fs.ErrNotExist); got != tt.notExist {
				t.Errorf("errors.Is(err, fs.ErrNotExist) = %v, want %v", got, tt.notExist)
			}
		})
	}
}

// referencePath is deploy/xdr.conf, from this package's directory.
const referencePath = "../../../deploy/xdr.conf"

// TestReference checks the documented reference file: it parses, its
// commented-out keys parse too once uncommented, and the keys that
// deploy/install.sh edits with sed are each on one line of their own in
// [aggregator].
func TestReference(t *testing.T) {
	data, err := os.ReadFile(referencePath)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse("xdr.conf", data)
	if err != nil {
		t.Fatalf("reference file: %v", err)
	}
	set := map[string]value{}
	for _, e := range f.entries {
		set[e.section+"."+e.key] = e.val
	}
	wantSet := map[string]value{
		".socket":                   str("/run/xdr/agent.sock"),
		"aggregator.data-dir":       str("/var/lib/xdr"),
		"aggregator.control-socket": str("/run/xdr/control.sock"),
		"aggregator.offline":        boolean(false),
		"aggregator.upload-url":     str(""),
		"aggregator.agent-key":      str("/etc/xdr/agent.key"),
		"aggregator.customer-guid":  str(""),
		"aggregator.vehicle-id":     str(""),
		"aggregator.model-id":       str(""),
	}
	if diff := cmp.Diff(wantSet, set, cmpEntries); diff != "" {
		t.Errorf("keys set in the reference file (-want +got):\n%s", diff)
	}

	// Uncommenting every "# key = value" line must give a valid file
	// that documents every flag but those of the command line only.
	commented := regexp.MustCompile(`(?m)^# ([A-Za-z0-9_-]+ = .*)$`)
	all, err := Parse("xdr.conf", commented.ReplaceAll(data, []byte("$1")))
	if err != nil {
		t.Fatalf("reference file with every key uncommented: %v", err)
	}
	var keys []string
	for _, e := range all.entries {
		keys = append(keys, e.section+"."+e.key)
	}
	wantKeys := []string{
		".socket", ".log-level",
		"agent.method", "agent.agent-id", "agent.queue", "agent.flush-interval", "agent.argv-max",
		"agent.capture-env", "agent.env-max", "agent.hash-max-size", "agent.btf", "agent.ring-size",
		"agent.memory-limit", "agent.exclude-reads",
		"aggregator.offline", "aggregator.upload-url", "aggregator.agent-key", "aggregator.upload-ca",
		"aggregator.upload-cert", "aggregator.upload-key", "aggregator.upload-timeout",
		"aggregator.upload-backoff-max", "aggregator.data-dir", "aggregator.data-max-bytes",
		"aggregator.bundle-max-bytes", "aggregator.bundle-max-age", "aggregator.flush-interval",
		"aggregator.raw-events", "aggregator.customer-guid", "aggregator.vehicle-id", "aggregator.model-id",
		"aggregator.control-socket", "aggregator.socket-mode", "aggregator.socket-group",
		"aggregator.allow-uid", "aggregator.stats-window", "aggregator.footprint-flush",
		"aggregator.footprint-max-entries", "aggregator.footprint-max-bytes", "aggregator.disable-rules",
		"aggregator.rule-exec-dirs", "aggregator.rule-well-known-names", "aggregator.rule-setuid-tools",
		"aggregator.rule-tracers", "aggregator.rule-account-files", "aggregator.rule-account-tools",
	}
	if diff := cmp.Diff(wantKeys, keys); diff != "" {
		t.Errorf("keys of the reference file with every key uncommented (-want +got):\n%s", diff)
	}

	// deploy/install.sh sets these with sed.
	lines := strings.Split(string(data), "\n")
	for _, key := range []string{"model-id", "offline", "upload-url", "agent-key"} {
		re := regexp.MustCompile(`^(# )?` + regexp.QuoteMeta(key) + ` = `)
		var at []int
		for i, l := range lines {
			if re.MatchString(l) {
				at = append(at, i+1)
			}
		}
		if len(at) != 1 {
			t.Errorf("key %s is on lines %v, want exactly one line matching %q", key, at, re)
			continue
		}
		var section string
		for _, e := range all.entries {
			if e.key == key && e.line == at[0] {
				section = e.section
			}
		}
		if section != "aggregator" {
			t.Errorf("key %s on line %d is in section %q, want aggregator", key, at[0], section)
		}
	}
}

// TestReferenceApplies applies the reference file to a flag set holding
// the flags it sets (the commands test it against their real flags).
func TestReferenceApplies(t *testing.T) {
	f, err := Load(referencePath)
	if err != nil {
		t.Fatal(err)
	}
	fl := flag.NewFlagSet("xdr-aggregator", flag.ContinueOnError)
	for _, name := range []string{"socket", "data-dir", "control-socket", "upload-url", "agent-key", "customer-guid", "vehicle-id", "model-id"} {
		fl.String(name, "default", "")
	}
	fl.Bool("offline", true, "")
	if err := fl.Parse([]string{"--model-id=m1"}); err != nil {
		t.Fatal(err)
	}
	if err := f.Apply(fl, "aggregator"); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	want := map[string]string{
		"socket": "/run/xdr/agent.sock", "data-dir": "/var/lib/xdr", "control-socket": "/run/xdr/control.sock",
		"upload-url": "", "agent-key": "/etc/xdr/agent.key", "customer-guid": "", "vehicle-id": "",
		"model-id": "m1", "offline": "false",
	}
	if diff := cmp.Diff(want, flagValues(fl)); diff != "" {
		t.Errorf("flag values (-want +got):\n%s", diff)
	}
	if got := f.Origin("model-id"); got != "" {
		t.Errorf("Origin(model-id) = %q, want \"\" (set on the command line)", got)
	}
	if got := f.Origin("offline"); !strings.HasPrefix(got, referencePath+":") {
		t.Errorf("Origin(offline) = %q, want %s:LINE", got, referencePath)
	}
}
