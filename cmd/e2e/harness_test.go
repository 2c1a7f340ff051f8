package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds the three commands once per test binary run.
func binaries(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "xdr-e2e-bin")
		if buildErr != nil {
			return
		}
		gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
		cmd := exec.Command(gobin, "build", "-o", binDir+"/", "../xdr-agent", "../xdr-aggregator", "../snr")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return binDir
}

func needRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root: the agent subscribes to the kernel's proc connector")
	}
}

// proc is a started binary whose stderr (its log) is watched.
type proc struct {
	tb   testing.TB
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  bytes.Buffer
	done chan struct{}
}

func start(tb testing.TB, name string, args ...string) *proc {
	tb.Helper()
	p := &proc{tb: tb, name: name, done: make(chan struct{})}
	p.cmd = exec.Command(filepath.Join(binaries(tb), name), args...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.log.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
	}()
	tb.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
		if tb.Failed() {
			tb.Logf("%s log:\n%s", name, p.logText())
		}
	})
	return p
}

func (p *proc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// waitLog waits until the log contains s.
func (p *proc) waitLog(s string) {
	p.tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(p.logText(), s) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.tb.Fatalf("%s: no %q in log within 20s:\n%s", p.name, s, p.logText())
}

// stop sends SIGTERM and requires a clean exit.
func (p *proc) stop() {
	p.tb.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.done
	if err := p.cmd.Wait(); err != nil {
		p.tb.Fatalf("%s exited with %v after SIGTERM:\n%s", p.name, err, p.logText())
	}
}

// kill sends SIGKILL.
func (p *proc) kill() {
	p.cmd.Process.Kill()
	<-p.done
	p.cmd.Wait()
}

// sensor is an aggregator and an agent talking over a socket in a
// temporary directory.
type sensor struct {
	tb     testing.TB
	dir    string
	socket string
	// control is the aggregator's control socket.
	control string
	data    string
	agg     *proc
	agent   *proc
	// aggArgs are added to the aggregator's flags.
	aggArgs []string
}

// startSensor starts an aggregator (with aggArgs added to its flags) and
// an agent using the proc connector, and waits until they are connected.
func startSensor(tb testing.TB, aggArgs ...string) *sensor {
	tb.Helper()
	return startSensorMethod(tb, "proc", aggArgs...)
}

// startSensorMethod is startSensor with the agent's --method.
func startSensorMethod(tb testing.TB, method string, aggArgs ...string) *sensor {
	tb.Helper()
	return startSensorWith(tb, []string{"--method", method}, aggArgs...)
}

// startSensorWith is startSensor with the agent's flags besides --socket.
func startSensorWith(tb testing.TB, agentArgs []string, aggArgs ...string) *sensor {
	tb.Helper()
	needRoot(tb)
	dir := tb.TempDir()
	s := &sensor{tb: tb, dir: dir, socket: filepath.Join(dir, "agent.sock"), data: filepath.Join(dir, "data"), aggArgs: aggArgs}
	s.control = filepath.Join(dir, "control.sock")
	s.startAggregator()
	s.agent = start(tb, "xdr-agent", append([]string{"--socket", s.socket}, agentArgs...)...)
	s.agent.waitLog("collector started")
	s.agg.waitLog("agent connected")
	return s
}

func (s *sensor) startAggregator() {
	args := []string{"--socket", s.socket, "--control-socket", s.control, "--data-dir", s.data, "--flush-interval", "200ms"}
	if !slices.Contains(s.aggArgs, "--upload-url") {
		args = append(args, "--offline")
	}
	args = append(args, s.aggArgs...)
	s.agg = start(s.tb, "xdr-aggregator", args...)
	s.agg.waitLog("listening")
}

// stop stops the agent, then the aggregator (which seals its bundle).
func (s *sensor) stop() {
	s.agent.stop()
	s.agg.stop()
}

// records decodes every bundle in the data directory with snr.
func (s *sensor) records() []map[string]any {
	s.tb.Helper()
	// Sealed bundles and, after a crash, the unsealed one it left.
	files, _ := filepath.Glob(filepath.Join(s.data, "*.gpbz"))
	parts, _ := filepath.Glob(filepath.Join(s.data, "*.gpbz.part"))
	files = append(files, parts...)
	if len(files) == 0 {
		s.tb.Fatalf("no bundles in %s", s.data)
	}
	out, err := exec.Command(filepath.Join(binaries(s.tb), "snr"), append([]string{"x"}, files...)...).Output()
	if err != nil {
		s.tb.Fatalf("snr x: %v", err)
	}
	var recs []map[string]any
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var m map[string]any
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			s.tb.Fatalf("snr output is not JSON lines: %v", err)
		}
		recs = append(recs, m)
	}
	return recs
}

// events returns the ActEvents among records.
func events(recs []map[string]any) []map[string]any {
	var evs []map[string]any
	for _, r := range recs {
		if e, ok := r["event"].(map[string]any); ok {
			evs = append(evs, e)
		}
	}
	return evs
}

// get walks a JSON object by keys.
func get(m map[string]any, keys ...string) any {
	var v any = m
	for _, k := range keys {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[k]
	}
	return v
}

// num returns a JSON number (protojson writes 64-bit ints as strings).
func num(v any) uint64 {
	switch x := v.(type) {
	case float64:
		return uint64(x)
	case string:
		var n uint64
		fmt.Sscan(x, &n)
		return n
	}
	return 0
}

func strs(v any) []string {
	var out []string
	for _, x := range asSlice(v) {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

// find returns the events with the access type whose subject tgid is pid.
func find(evs []map[string]any, access string, pid int) []map[string]any {
	var out []map[string]any
	for _, e := range evs {
		if e["access_type"] == "XDR_ACCESS_TYPE_"+access && num(get(e, "subject", "tgid")) == uint64(pid) {
			out = append(out, e)
		}
	}
	return out
}
