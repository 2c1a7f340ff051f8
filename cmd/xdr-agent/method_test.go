package main

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/xdr-sensor/xdr/agent/ebpf"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// Each way the eBPF collector can be missing sends --method auto to the
// proc connector with one log line naming the cause, and fails --method
// ebpf; the hello's features show what the probe found.
func TestChooseMethod(t *testing.T) {
	missing := func(name, why string) probeFunc {
		return func() ([]ebpf.Feature, error) {
			err := fmt.Errorf("%w: %s", ebpf.ErrNotSupported, why)
			return []ebpf.Feature{{Name: "btf", Available: name != "btf", Detail: "x"}, {Name: name, Detail: err.Error()}}, err
		}
	}
	ok := func() ([]ebpf.Feature, error) {
		return []ebpf.Feature{{Name: "btf", Available: true}, {Name: "ringbuf", Available: true}}, nil
	}
	probeMustNotRun := func() ([]ebpf.Feature, error) {
		t.Error("--method proc probed the kernel")
		return nil, nil
	}
	proc, bpf := xdrv1.CollectorMethod_COLLECTOR_METHOD_PROC_CONNECTOR, xdrv1.CollectorMethod_COLLECTOR_METHOD_EBPF
	tests := []struct {
		name, method string
		probe        probeFunc
		want         xdrv1.CollectorMethod
		wantReason   string // substring
		wantErr      string // substring; "" for none
		wantLog      string // the one log line's level
	}{
		{"auto with eBPF", "auto", ok, bpf, "supports", "", "INFO"},
		{"auto without BTF", "auto", missing("btf", "kernel BTF"), proc, "kernel BTF", "", "WARN"},
		{"auto without ring buffer", "auto", missing("ringbuf", "BPF ring buffer"), proc, "ring buffer", "", "WARN"},
		{"auto with verifier rejection", "auto", missing("verifier", "the verifier rejected"), proc, "verifier rejected", "", "WARN"},
		{"auto without tracefs", "auto", missing("tracefs", "tracefs is not mounted"), proc, "tracefs", "", "WARN"},
		{"forced proc", "proc", probeMustNotRun, proc, "--method proc", "", "INFO"},
		{"forced ebpf", "ebpf", ok, bpf, "supports", "", "INFO"},
		{"forced ebpf without ring buffer", "ebpf", missing("ringbuf", "BPF ring buffer"), 0, "", "ring buffer", ""},
		{"unknown", "kprobe", probeMustNotRun, 0, "", `want auto, proc or ebpf`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, nil))
			c, err := chooseMethod(tt.method, tt.probe, log)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.method != tt.want || !strings.Contains(c.reason, tt.wantReason) {
				t.Errorf("chose %v (%q), want %v with reason containing %q", c.method, c.reason, tt.want, tt.wantReason)
			}
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], "level="+tt.wantLog) || !strings.Contains(lines[0], "collector method chosen") {
				t.Errorf("log = %q, want one %s line", buf.String(), tt.wantLog)
			}
			if tt.method != "proc" && len(c.features) == 0 {
				t.Error("no kernel features recorded for the hello")
			}
		})
	}
}

// A collector that fails to load after the probe passed falls back too.
func TestChoiceFallBack(t *testing.T) {
	var buf bytes.Buffer
	c := choice{method: xdrv1.CollectorMethod_COLLECTOR_METHOD_EBPF}
	c.fallBack(errors.New("load BPF programs: invalid argument"), slog.New(slog.NewTextHandler(&buf, nil)))
	if c.method != xdrv1.CollectorMethod_COLLECTOR_METHOD_PROC_CONNECTOR || !strings.Contains(c.reason, "invalid argument") {
		t.Errorf("after fallBack: %v %q", c.method, c.reason)
	}
	if n := strings.Count(buf.String(), "\n"); n != 1 {
		t.Errorf("%d log lines, want 1: %s", n, buf.String())
	}
}
