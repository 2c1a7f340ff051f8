package deploy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// binDir holds the binaries install.sh installs, built once by TestMain
// from this checkout, or taken from $XDR_TEST_BIN_DIR (to test those of
// a release, e.g. dist/linux-amd64).
var binDir string

var binaries = []string{"xdr-agent", "xdr-aggregator", "snr"}

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if dir := os.Getenv("XDR_TEST_BIN_DIR"); dir != "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, "XDR_TEST_BIN_DIR:", err)
			return 1
		}
		binDir = abs
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "xdr-deploy-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	args := []string{"build", "-trimpath", "-o", dir + "/"}
	for _, b := range binaries {
		args = append(args, "./cmd/"+b)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = ".." // the module root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build the binaries to install: go %s: %v\n%s", strings.Join(args, " "), err, out)
		return 1
	}
	binDir = dir
	return m.Run()
}

// A shell runs install.sh.
type shell struct {
	name string
	argv []string // the shell and its arguments, before the script
	path string   // $PATH; empty: inherited
}

// shells are the shells install.sh is tested with: sh, dash and busybox
// sh with nothing but busybox applets on $PATH, as on a small device.
func shells(t *testing.T) []shell {
	t.Helper()
	out := []shell{{name: "sh", argv: []string{"/bin/sh"}}}
	if p, err := exec.LookPath("dash"); err == nil {
		out = append(out, shell{name: "dash", argv: []string{p}})
	} else {
		t.Log("dash not installed: not testing it")
	}
	p, err := exec.LookPath("busybox")
	if err != nil {
		t.Log("busybox not installed: not testing it")
		return out
	}
	list, err := exec.Command(p, "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	dir := t.TempDir()
	for _, applet := range strings.Fields(string(list)) {
		if err := os.Symlink(p, filepath.Join(dir, applet)); err != nil {
			t.Fatal(err)
		}
	}
	return append(out, shell{name: "busybox", argv: []string{p, "sh"}, path: dir})
}

type result struct {
	stdout, stderr string
	code           int
}

// run runs script (install.sh when "") with args under sh, its standard
// input empty (not a terminal).
func (sh shell) run(t *testing.T, script string, args ...string) result {
	t.Helper()
	if script == "" {
		var err error
		if script, err = filepath.Abs("install.sh"); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(sh.argv[0], append(append(sh.argv[1:], script), args...)...)
	cmd.Env = os.Environ()
	if sh.path != "" {
		cmd.Env = append(cmd.Env, "PATH="+sh.path)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run %v: %v", cmd.Args, err)
	}
	return result{stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()}
}

// mustRun runs install.sh and fails the test unless it succeeds.
func (sh shell) mustRun(t *testing.T, args ...string) result {
	t.Helper()
	r := sh.run(t, "", args...)
	if r.code != 0 {
		t.Fatalf("install.sh %s: exit status %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// entry is what a tree records of a file: its type and permissions, and
// the SHA-256 of a regular file's content.
type entry struct {
	Mode fs.FileMode
	Sum  string
}

// tree lists everything below root, by slash-separated relative path.
func tree(t *testing.T, root string) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == root {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		e := entry{Mode: fi.Mode()}
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			e.Sum = hex.EncodeToString(sum[:])
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		out[filepath.ToSlash(rel)] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// modes is the type and permissions of each entry of a tree.
func modes(tr map[string]entry) map[string]fs.FileMode {
	out := make(map[string]fs.FileMode, len(tr))
	for p, e := range tr {
		out[p] = e.Mode
	}
	return out
}

func sum(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

const dir755 = fs.ModeDir | 0o755

// installedModes is the tree an install into an empty prefix leaves.
var installedModes = map[string]fs.FileMode{
	"etc":                                  dir755,
	"etc/systemd":                          dir755,
	"etc/systemd/system":                   dir755,
	"etc/systemd/system/xdr-agent.service": 0o644,
	"etc/systemd/system/xdr-aggregator.service": 0o644,
	"etc/xdr":                           fs.ModeDir | 0o750,
	"etc/xdr/.install-manifest":         0o644,
	"etc/xdr/agent.key":                 0o640,
	"etc/xdr/xdr.conf":                  0o640,
	"usr":                               dir755,
	"usr/local":                         dir755,
	"usr/local/bin":                     dir755,
	"usr/local/bin/snr":                 0o755,
	"usr/local/bin/xdr-agent":           0o755,
	"usr/local/bin/xdr-aggregator":      0o755,
	"usr/local/lib":                     dir755,
	"usr/local/lib/sysusers.d":          dir755,
	"usr/local/lib/sysusers.d/xdr.conf": 0o644,
	"usr/local/lib/tmpfiles.d":          dir755,
	"usr/local/lib/tmpfiles.d/xdr.conf": 0o644,
	"var":                               dir755,
	"var/lib":                           dir755,
	"var/lib/xdr":                       fs.ModeDir | 0o750,
}

// installedManifest lists what uninstalling an install into an empty
// prefix removes.
const installedManifest = `d /etc
d /etc/systemd
d /etc/systemd/system
d /etc/xdr
d /usr
d /usr/local
d /usr/local/bin
d /usr/local/lib
d /usr/local/lib/sysusers.d
d /usr/local/lib/tmpfiles.d
d /var
d /var/lib
f /etc/systemd/system/xdr-agent.service
f /etc/systemd/system/xdr-aggregator.service
f /etc/xdr/agent.key
f /etc/xdr/xdr.conf
f /usr/local/bin/snr
f /usr/local/bin/xdr-agent
f /usr/local/bin/xdr-aggregator
f /usr/local/lib/sysusers.d/xdr.conf
f /usr/local/lib/tmpfiles.d/xdr.conf
`

// checkConfig checks that got is the reference configuration with only
// the lines of the keys in want changed: each key is set once, by the
// line want holds, in place of the reference's line for that key.
func checkConfig(t *testing.T, got []byte, want map[string]string) {
	t.Helper()
	ref, err := os.ReadFile("xdr.conf")
	if err != nil {
		t.Fatal(err)
	}
	gl, rl := strings.Split(string(got), "\n"), strings.Split(string(ref), "\n")
	if len(gl) != len(rl) {
		t.Fatalf("configuration has %d lines, the reference %d:\n%s", len(gl), len(rl), cmp.Diff(string(ref), string(got)))
	}
	for i := range gl {
		if gl[i] == rl[i] {
			continue
		}
		ok := false
		for key, line := range want {
			if gl[i] == line && regexp.MustCompile(`^#?\s*`+regexp.QuoteMeta(key)+`\s*=`).MatchString(rl[i]) {
				ok = true
			}
		}
		if !ok {
			t.Errorf("configuration line %d: %q, want the reference's %q", i+1, gl[i], rl[i])
		}
	}
	for key, line := range want {
		re := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(key) + `\s*=.*$`)
		if m := re.FindAllString(string(got), -1); !slices.Equal(m, []string{line}) {
			t.Errorf("configuration sets %s by %q, want once by %q", key, m, line)
		}
	}
}

func TestInstall(t *testing.T) {
	for _, sh := range shells(t) {
		t.Run(sh.name, func(t *testing.T) {
			dir := t.TempDir()
			root := filepath.Join(dir, "root")
			key := filepath.Join(dir, "key")
			if err := os.WriteFile(key, []byte("agent-key-0123456789\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			model := `Modèle "M1" \ 2`
			args := []string{"--prefix", root, "-y", "--bin-dir", binDir, "--model", model, "--offline", "--agent-key", key}
			sh.mustRun(t, args...)

			first := tree(t, root)
			if diff := cmp.Diff(installedModes, modes(first)); diff != "" {
				t.Fatalf("installed tree (-want +got):\n%s", diff)
			}
			sources := map[string]string{
				"etc/systemd/system/xdr-agent.service":      "xdr-agent.service",
				"etc/systemd/system/xdr-aggregator.service": "xdr-aggregator.service",
				"usr/local/lib/sysusers.d/xdr.conf":         "xdr-sysusers.conf",
				"usr/local/lib/tmpfiles.d/xdr.conf":         "xdr-tmpfiles.conf",
				"etc/xdr/agent.key":                         key,
			}
			for _, b := range binaries {
				sources["usr/local/bin/"+b] = filepath.Join(binDir, b)
			}
			for dst, src := range sources {
				if got, want := first[dst].Sum, sum(t, src); got != want {
					t.Errorf("%s differs from %s", dst, src)
				}
			}
			manifest, err := os.ReadFile(filepath.Join(root, "etc/xdr/.install-manifest"))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(installedManifest, string(manifest)); diff != "" {
				t.Errorf("manifest (-want +got):\n%s", diff)
			}
			conf, err := os.ReadFile(filepath.Join(root, "etc/xdr/xdr.conf"))
			if err != nil {
				t.Fatal(err)
			}
			checkConfig(t, conf, map[string]string{
				"model-id": `model-id = "Modèle \"M1\" \\ 2"`,
				"offline":  "offline = true",
			})

			// The installed binaries run.
			for _, c := range [][]string{{"xdr-agent", "--version"}, {"xdr-aggregator", "--version"}, {"snr", "help"}} {
				out, err := exec.Command(filepath.Join(root, "usr/local/bin", c[0]), c[1:]...).CombinedOutput()
				if err != nil {
					t.Errorf("installed %s: %v\n%s", strings.Join(c, " "), err, out)
				} else if c[1] == "--version" && !strings.HasPrefix(string(out), c[0]+" ") {
					t.Errorf("installed %s printed %q", strings.Join(c, " "), out)
				}
			}

			// Again: the same tree, and nothing reported as installed.
			r := sh.mustRun(t, args...)
			if diff := cmp.Diff(first, tree(t, root)); diff != "" {
				t.Errorf("tree after a second run (-first +second):\n%s", diff)
			}
			if strings.Contains(r.stdout, "installed ") {
				t.Errorf("a second run installed files again:\n%s", r.stdout)
			}

			// Another model edits the kept configuration in place, and
			// leaves offline alone.
			sh.mustRun(t, "--prefix", root, "-y", "--bin-dir", binDir, "--model", "other")
			conf, err = os.ReadFile(filepath.Join(root, "etc/xdr/xdr.conf"))
			if err != nil {
				t.Fatal(err)
			}
			checkConfig(t, conf, map[string]string{"model-id": `model-id = "other"`, "offline": "offline = true"})
			third := tree(t, root)
			delete(third, "etc/xdr/xdr.conf")
			delete(first, "etc/xdr/xdr.conf")
			if diff := cmp.Diff(first, third); diff != "" {
				t.Errorf("a new model changed more than the configuration (-before +after):\n%s", diff)
			}

			// Uninstalling keeps the data, and nothing else.
			bundle := filepath.Join(root, "var/lib/xdr/x.gpbz")
			if err := os.WriteFile(bundle, []byte("bundle"), 0o640); err != nil {
				t.Fatal(err)
			}
			sh.mustRun(t, "--uninstall", "--prefix", root, "-y")
			want := map[string]fs.FileMode{
				"var": dir755, "var/lib": dir755, "var/lib/xdr": fs.ModeDir | 0o750, "var/lib/xdr/x.gpbz": 0o640,
			}
			if diff := cmp.Diff(want, modes(tree(t, root))); diff != "" {
				t.Errorf("tree after --uninstall (-want +got):\n%s", diff)
			}
			r = sh.mustRun(t, "--uninstall", "--prefix", root, "-y")
			if !strings.Contains(r.stdout, "Nothing to uninstall") {
				t.Errorf("second --uninstall printed %q, want it to say there is nothing to uninstall", r.stdout)
			}
			sh.mustRun(t, "--uninstall", "--purge", "--prefix", root, "-y")
			if diff := cmp.Diff(map[string]fs.FileMode{}, modes(tree(t, root))); diff != "" {
				t.Errorf("tree after --uninstall --purge (-want +got):\n%s", diff)
			}

			// Straight from an install to a purge.
			sh.mustRun(t, "--prefix", root, "-y", "--bin-dir", binDir)
			sh.mustRun(t, "--uninstall", "--purge", "--prefix", root, "-y")
			if diff := cmp.Diff(map[string]fs.FileMode{}, modes(tree(t, root))); diff != "" {
				t.Errorf("tree after install and --uninstall --purge (-want +got):\n%s", diff)
			}
		})
	}
}

// TestInstallConfigEdits runs install.sh on configurations an operator
// may have edited: the options set keys of [aggregator] only, once, and
// leave every other line alone.
func TestInstallConfigEdits(t *testing.T) {
	tests := []struct {
		name string
		conf string
		args []string
		want string
	}{
		{
			name: "commented defaults",
			conf: "[agent]\n# offline = false\n\n[aggregator]\n# model-id = \"\"\n# offline = false\ndata-dir = \"/d\"\n",
			args: []string{"--model", "m", "--offline"},
			want: "[agent]\n# offline = false\n\n[aggregator]\nmodel-id = \"m\"\noffline = true\ndata-dir = \"/d\"\n",
		},
		{
			name: "set lines win over commented ones",
			conf: "[aggregator]\n# offline = false\nmodel-id = \"old\"   # set by hand\n  offline = false\n# model-id = \"x\"\n",
			args: []string{"--model", "new", "--offline"},
			want: "[aggregator]\n# offline = false\nmodel-id = \"new\"\noffline = true\n# model-id = \"x\"\n",
		},
		{
			name: "missing keys end the section",
			conf: "socket = \"/s\"\n[aggregator]\ndata-dir = \"/d\"\n\n# rules\n\n[agent]\nmethod = \"proc\"\n",
			args: []string{"--model", "m", "--offline"},
			want: "socket = \"/s\"\n[aggregator]\ndata-dir = \"/d\"\n\n# rules\nmodel-id = \"m\"\noffline = true\n\n[agent]\nmethod = \"proc\"\n",
		},
		{
			name: "empty section",
			conf: "[aggregator]\n\n[agent]\nmethod = \"proc\"\n",
			args: []string{"--model", "m"},
			want: "[aggregator]\nmodel-id = \"m\"\n\n[agent]\nmethod = \"proc\"\n",
		},
		{
			name: "empty section at the end",
			conf: "[agent]\nmethod = \"proc\"\n\n[aggregator]\n",
			args: []string{"--offline"},
			want: "[agent]\nmethod = \"proc\"\n\n[aggregator]\noffline = true\n",
		},
		{
			name: "no aggregator section",
			conf: "socket = \"/s\"\n[agent]\nmethod = \"proc\"",
			args: []string{"--offline"},
			want: "socket = \"/s\"\n[agent]\nmethod = \"proc\"\n\n[aggregator]\noffline = true\n",
		},
		{
			name: "header with spaces and a comment",
			conf: "[ aggregator ]  # the aggregator\n# model-id = \"\"\n",
			args: []string{"--model", "m"},
			want: "[ aggregator ]  # the aggregator\nmodel-id = \"m\"\n",
		},
		{
			name: "CRLF lines",
			conf: "[aggregator]\r\nmodel-id = \"\"\r\ndata-dir = \"/d\"\r\n",
			args: []string{"--model", "m"},
			want: "[aggregator]\r\nmodel-id = \"m\"\ndata-dir = \"/d\"\r\n",
		},
		{
			name: "upload URL and keys sharing a prefix",
			conf: "[aggregator]\noffline = true\nupload-url-extra = 1\n# upload-url = \"\"\n",
			args: []string{"--upload-url", `https://up.example/v1?a=1&b="2"\n`},
			want: "[aggregator]\noffline = false\nupload-url-extra = 1\nupload-url = \"https://up.example/v1?a=1&b=\\\"2\\\"\\\\n\"\n",
		},
		{
			name: "characters special to sed and awk",
			conf: "[aggregator]\nmodel-id = \"\"\n",
			args: []string{"--model", `a&b\1 /|% $x`},
			want: "[aggregator]\nmodel-id = \"a&b\\\\1 /|% $x\"\n",
		},
		{
			name: "no options, no edit",
			conf: "[aggregator]\n# model-id = \"\"\noffline = true",
			want: "[aggregator]\n# model-id = \"\"\noffline = true",
		},
	}
	// The binaries do not matter here: stand-ins keep the runs quick.
	bins := t.TempDir()
	for _, b := range binaries {
		if err := os.WriteFile(filepath.Join(bins, b), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, sh := range shells(t) {
		for _, tt := range tests {
			t.Run(sh.name+"/"+tt.name, func(t *testing.T) {
				root := t.TempDir()
				conf := filepath.Join(root, "etc/xdr/xdr.conf")
				if err := os.MkdirAll(filepath.Dir(conf), 0o750); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(conf, []byte(tt.conf), 0o600); err != nil {
					t.Fatal(err)
				}
				sh.mustRun(t, append([]string{"--prefix", root, "-y", "--bin-dir", bins}, tt.args...)...)
				got, err := os.ReadFile(conf)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tt.want, string(got)); diff != "" {
					t.Errorf("configuration (-want +got):\n%s", diff)
				}
				// A configuration the operator wrote is theirs: it stays.
				sh.mustRun(t, "--uninstall", "--prefix", root, "-y")
				if _, err := os.Stat(conf); err != nil {
					t.Errorf("--uninstall removed a configuration it did not install: %v", err)
				}
			})
		}
	}
}

func TestInstallErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	noBins := filepath.Join(dir, "nobins")
	someBins := filepath.Join(dir, "somebins")
	for _, d := range []string{noBins, someBins} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range []string{"xdr-agent", "snr"} {
		if err := os.WriteFile(filepath.Join(someBins, b), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(someBins, "xdr-aggregator"), []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	dataRoot := filepath.Join(dir, "data")
	bundle := filepath.Join(dataRoot, "var/lib/xdr/x.gpbz")
	if err := os.MkdirAll(filepath.Dir(bundle), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bundle, []byte("bundle"), 0o640); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{"unknown option", []string{"--bogus"}, 2, "install.sh: unknown option --bogus (see --help)"},
		{"argument", []string{"now"}, 2, "unexpected argument now"},
		{"missing value", []string{"-y", "--model"}, 2, "--model needs an argument"},
		{"purge alone", []string{"--purge"}, 2, "--purge goes with --uninstall"},
		{"uninstall with install options", []string{"--uninstall", "--model", "m"}, 2, "--uninstall takes only -y, --prefix and --purge"},
		{"offline and upload URL", []string{"--offline", "--upload-url", "https://x"}, 2, "--offline and --upload-url contradict each other"},
		{"empty upload URL", []string{"--upload-url="}, 2, "--upload-url: empty URL"},
		{"model with a line break", []string{"--model", "a\nb"}, 2, "--model: the name holds a control character"},
		{"empty prefix", []string{"--prefix="}, 2, "--prefix: empty directory"},
		{"empty agent key name", []string{"--agent-key="}, 2, "--agent-key: empty file name"},
		{"no binaries", []string{"--prefix", root, "-y", "--bin-dir", noBins}, 1,
			"no executable xdr-agent xdr-aggregator snr in " + noBins + ` (build them with "make build", or pass --bin-dir DIR)`},
		{"a binary missing or not executable", []string{"--prefix", root, "-y", "--bin-dir", someBins}, 1,
			"no executable xdr-aggregator in " + someBins},
		{"empty agent key", []string{"--prefix", root, "-y", "--bin-dir", binDir, "--agent-key", empty}, 1,
			"--agent-key " + empty + ": the file is empty"},
		{"missing agent key", []string{"--prefix", root, "-y", "--bin-dir", binDir, "--agent-key", filepath.Join(dir, "absent")}, 1,
			"--agent-key " + filepath.Join(dir, "absent") + ": not a readable file"},
		{"no terminal to confirm on", []string{"--prefix", root, "--bin-dir", binDir}, 1,
			"the standard input is not a terminal, so nothing can be confirmed: pass -y to go ahead without asking"},
		{"no terminal to confirm a purge on", []string{"--prefix", dataRoot, "--uninstall", "--purge"}, 1,
			"pass -y to go ahead without asking"},
	}
	sh := shell{name: "sh", argv: []string{"/bin/sh"}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sh.run(t, "", tt.args...)
			if r.code != tt.wantCode || !strings.Contains(r.stderr, tt.wantStderr) {
				t.Errorf("exit status %d, stderr %q; want %d and %q", r.code, r.stderr, tt.wantCode, tt.wantStderr)
			}
			if _, err := os.Stat(root); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a failed run left %s behind (%v)", root, err)
			}
			if _, err := os.Stat(bundle); err != nil {
				t.Errorf("a failed run removed data: %v", err)
			}
		})
	}
}

func TestInstallHelp(t *testing.T) {
	sh := shell{name: "sh", argv: []string{"/bin/sh"}}
	for _, arg := range []string{"--help", "-h"} {
		r := sh.run(t, "", "--model", "m", arg)
		if r.code != 0 || r.stderr != "" {
			t.Errorf("%s: exit status %d, stderr %q", arg, r.code, r.stderr)
		}
		for _, want := range []string{"Usage: install.sh [options]", "--agent-key FILE", "--model NAME", "--offline",
			"--prefix DIR", "--bin-dir DIR", "--uninstall", "--purge", "-y, --yes", "-h, --help"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("%s: usage lacks %q:\n%s", arg, want, r.stdout)
			}
		}
	}
}

// TestInstallBinDirDefault checks where install.sh finds the binaries
// without --bin-dir: in the checkout's bin, next to deploy, and next to
// itself in a release archive.
func TestInstallBinDirDefault(t *testing.T) {
	files := []string{"install.sh", "xdr.conf", "xdr-agent.service", "xdr-aggregator.service", "xdr-sysusers.conf", "xdr-tmpfiles.conf"}
	copyTo := func(t *testing.T, dir, src string) {
		t.Helper()
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(src)), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	layouts := []struct {
		name              string
		scriptDir, binDir string
	}{
		{"checkout", "deploy", "bin"},
		{"release archive", "xdr", "xdr"},
	}
	sh := shell{name: "sh", argv: []string{"/bin/sh"}}
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, d := range []string{l.scriptDir, l.binDir} {
				if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for _, f := range files {
				copyTo(t, filepath.Join(dir, l.scriptDir), f)
			}
			for _, b := range binaries {
				copyTo(t, filepath.Join(dir, l.binDir), filepath.Join(binDir, b))
			}
			root := filepath.Join(dir, "root")
			r := sh.run(t, filepath.Join(dir, l.scriptDir, "install.sh"), "--prefix", root, "-y")
			if r.code != 0 {
				t.Fatalf("exit status %d: %s", r.code, r.stderr)
			}
			for _, b := range binaries {
				if got, want := sum(t, filepath.Join(root, "usr/local/bin", b)), sum(t, filepath.Join(binDir, b)); got != want {
					t.Errorf("installed %s is not the one in %s", b, l.binDir)
				}
			}
		})
	}
}

// TestInstallInteractive answers install.sh's question on a terminal.
func TestInstallInteractive(t *testing.T) {
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("script (util-linux) is not installed: no terminal to answer on")
	}
	self, err := filepath.Abs("install.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		answer    string
		wantCode  int
		installed bool
	}{
		{"n", 1, false},
		{"", 1, false},
		{"yes", 0, true},
	} {
		t.Run("answer "+tt.answer, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "root")
			command := fmt.Sprintf("/bin/sh '%s' --prefix '%s' --bin-dir '%s'", self, root, binDir)
			cmd := exec.Command(script, "-qec", command, "/dev/null")
			cmd.Stdin = strings.NewReader(tt.answer + "\n")
			out, err := cmd.CombinedOutput()
			code := 0
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				code = exit.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.wantCode || !strings.Contains(string(out), "Proceed? [y/N]") {
				t.Errorf("exit status %d, want %d; output:\n%s", code, tt.wantCode, out)
			}
			_, err = os.Stat(filepath.Join(root, "usr/local/bin/xdr-agent"))
			if installed := err == nil; installed != tt.installed {
				t.Errorf("installed: %v, want %v", installed, tt.installed)
			}
		})
	}
}
