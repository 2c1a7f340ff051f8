package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/xdr-sensor/xdr/aggregator/bundle"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

func testEvent(seq uint64) *xdrv1.Record {
	return &xdrv1.Record{Record: &xdrv1.Record_Event{Event: &xdrv1.ActEvent{
		Seq:         seq,
		TimestampNs: 1_741_064_767_000_000_000 + int64(seq),
		EventType:   xdrv1.XdrEventType_XDR_EVENT_TYPE_FILE,
		AccessType:  xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_OPEN,
		Subject:     &xdrv1.Process{Pid: 42, Tgid: 42, Exe: "/usr/bin/cat", Argv: []string{"cat", "/etc/hosts"}},
		Target:      &xdrv1.ActEvent_File{File: &xdrv1.File{Path: fmt.Sprintf("/tmp/f%d", seq)}},
	}}}
}

// writeBundle writes a sealed bundle of n events into dir, with a frame
// per 10 events, and returns its path, its records and the end offsets of
// the frames of 10 events.
func writeBundle(t *testing.T, dir string, n int) (string, []*xdrv1.Record, []int) {
	t.Helper()
	w, err := bundle.NewWriter(&bundle.WriterOptions{
		Dir:    dir,
		Header: func() *xdrv1.BundleHeader { return &xdrv1.BundleHeader{AgentId: "agent-1"} },
	})
	if err != nil {
		t.Fatal(err)
	}
	var path string
	var frameEnds []int
	w.OnSeal(func(p string) { path = p })
	for seq := 1; seq <= n; seq++ {
		if err := w.Write(testEvent(uint64(seq))); err != nil {
			t.Fatal(err)
		}
		if seq%10 == 0 {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			frameEnds = append(frameEnds, int(w.Stats().BytesWritten))
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var recs []*xdrv1.Record
	if err := bundle.ReadFile(path, func(r *xdrv1.Record) error {
		recs = append(recs, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return path, recs, frameEnds
}

// runSnr runs the command line and returns its exit status and output.
func runSnr(args ...string) (status int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	status = run(args, &out, &errOut)
	return status, out.String(), errOut.String()
}

// parseRecords parses a stream of JSON records.
func parseRecords(t *testing.T, out string) []*xdrv1.Record {
	t.Helper()
	var recs []*xdrv1.Record
	dec := json.NewDecoder(strings.NewReader(out))
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err == io.EOF {
			return recs
		} else if err != nil {
			t.Fatalf("output is not JSON: %v", err)
		}
		r := new(xdrv1.Record)
		if err := protojson.Unmarshal(raw, r); err != nil {
			t.Fatalf("record %d does not parse: %v", len(recs), err)
		}
		recs = append(recs, r)
	}
}

func TestX(t *testing.T) {
	path, want, _ := writeBundle(t, t.TempDir(), 25)
	status, out, errOut := runSnr("x", path)
	if status != 0 || errOut != "" {
		t.Fatalf("status %d, stderr %q", status, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want one per record (%d)", len(lines), len(want))
	}
	for i, line := range lines {
		if !json.Valid([]byte(line)) {
			t.Fatalf("line %d is not a JSON object: %s", i, line)
		}
	}
	if d := cmp.Diff(want, parseRecords(t, out), protocmp.Transform()); d != "" {
		t.Errorf("records (-want +got):\n%s", d)
	}
	var ev map[string]map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &ev); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]any{
		"access_type":  "XDR_ACCESS_TYPE_FILE_OPEN",
		"event_type":   "XDR_EVENT_TYPE_FILE",
		"timestamp_ns": "1741064767000000001",
	} {
		if got := ev["event"][key]; got != want {
			t.Errorf("event field %q = %v, want %v (line %s)", key, got, want, lines[1])
		}
	}
	// protojson varies white space between builds on purpose.
	if !regexp.MustCompile(`"format_version":\s*1`).MatchString(lines[0]) || !strings.Contains(lines[len(lines)-1], `"records_sha256":`) {
		t.Errorf("header or trailer not printed with proto names:\n%s\n%s", lines[0], lines[len(lines)-1])
	}
}

func TestXPretty(t *testing.T) {
	path, want, _ := writeBundle(t, t.TempDir(), 3)
	status, out, errOut := runSnr("X", "-P", path)
	if status != 0 || errOut != "" {
		t.Fatalf("status %d, stderr %q", status, errOut)
	}
	if d := cmp.Diff(want, parseRecords(t, out), protocmp.Transform()); d != "" {
		t.Errorf("records (-want +got):\n%s", d)
	}
	for _, re := range []string{`(?m)^\{$`, `(?m)^  "event": +\{$`, `(?m)^    "access_type": +"XDR_ACCESS_TYPE_FILE_OPEN",?$`, `(?m)^}$`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("output does not match %s:\n%s", re, out)
		}
	}
}

func TestXDamaged(t *testing.T) {
	dir := t.TempDir()
	path, want, frameEnds := writeBundle(t, dir, 25)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Cut the file inside the third frame: the first two (header and 20
	// events) survive.
	cut := filepath.Join(dir, "cut.gpbz")
	if err := os.WriteFile(cut, data[:frameEnds[1]+10], 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.gpbz")

	status, out, errOut := runSnr("x", cut, missing, path)
	if status != 1 {
		t.Errorf("status %d, want 1", status)
	}
	wantOut := append(append([]*xdrv1.Record{}, want[:21]...), want...)
	if d := cmp.Diff(wantOut, parseRecords(t, out), protocmp.Transform()); d != "" {
		t.Errorf("records (-want +got):\n%s", d)
	}
	errRE := regexp.MustCompile(`^snr: ` + regexp.QuoteMeta(cut) + `: corrupt at offset ` + strconv.Itoa(frameEnds[1]) + ` after 21 records: truncated zstd frame
snr: open ` + regexp.QuoteMeta(missing) + `: no such file or directory
$`)
	if !errRE.MatchString(errOut) {
		t.Errorf("stderr %q does not match %s", errOut, errRE)
	}
}

func TestUsage(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantStatus int
		wantOut    string // substring of stdout
		wantErr    string // substring of stderr
	}{
		{"no arguments", nil, 2, "", "usage: snr"},
		{"help", []string{"help"}, 0, "x [-P] [--type TYPE,...] [--access ACCESS,...] FILE...", ""},
		{"help lists stat", []string{"help"}, 0, "stat [--json] FILE...", ""},
		{"-h", []string{"-h"}, 0, "commands:", ""},
		{"--help", []string{"--help"}, 0, "commands:", ""},
		{"unknown command", []string{"y"}, 2, "", `unknown command "y"`},
		{"x without file", []string{"x"}, 2, "", "no file given"},
		{"x unknown flag", []string{"x", "-Q", "f"}, 2, "", "flag provided but not defined: -Q"},
		{"x unknown flag after file", []string{"x", "f", "--Q"}, 2, "", "flag provided but not defined: -Q"},
		{"x help", []string{"x", "-h"}, 0, "usage: snr x", ""},
		{"x --help", []string{"x", "--help"}, 0, "--access ACCESS,...", ""},
		{"x unknown type", []string{"x", "--type", "event,bogus", "f"}, 2, "", `invalid value "event,bogus" for flag -type: unknown record type "bogus" (known: header, event, footprint, statistics, agent_counters, trailer)`},
		{"x empty type", []string{"x", "--type=", "f"}, 2, "", `unknown record type ""`},
		{"x unknown access", []string{"x", "--access", "FILE_OPEN,nope", "f"}, 2, "", `unknown access type "nope" (use a name like FILE_OPEN`},
		{"x missing access value", []string{"x", "f", "--access"}, 2, "", "flag needs an argument: -access"},
		{"stat without file", []string{"stat", "--json"}, 2, "", "snr stat: no file given"},
		{"stat help", []string{"stat", "-h"}, 0, "usage: snr stat [--json] FILE...", ""},
		{"stat unknown flag", []string{"stat", "-P", "f"}, 2, "", "flag provided but not defined: -P"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, out, errOut := runSnr(tc.args...)
			if status != tc.wantStatus || !strings.Contains(out, tc.wantOut) || !strings.Contains(errOut, tc.wantErr) {
				t.Errorf("status %d, stdout %q, stderr %q; want %d, %q, %q", status, out, errOut, tc.wantStatus, tc.wantOut, tc.wantErr)
			}
			if tc.wantOut == "" && out != "" {
				t.Errorf("unexpected stdout %q", out)
			}
		})
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestXOutputError(t *testing.T) {
	path, _, _ := writeBundle(t, t.TempDir(), 3)
	var errOut bytes.Buffer
	if status := run([]string{"x", path, path}, failWriter{}, &errOut); status != 1 {
		t.Errorf("status %d, want 1", status)
	}
	if got := errOut.String(); got != "snr: write output: broken pipe\n" {
		t.Errorf("stderr %q, want one write error", got)
	}
}

// BenchmarkX measures printing a bundle of many records.
func BenchmarkX(b *testing.B) {
	dir := b.TempDir()
	w, err := bundle.NewWriter(&bundle.WriterOptions{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	var path string
	w.OnSeal(func(p string) { path = p })
	const n = 10000
	for seq := 1; seq <= n; seq++ {
		if err := w.Write(testEvent(uint64(seq))); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if status := run([]string{"x", path}, io.Discard, io.Discard); status != 0 {
			b.Fatalf("status %d", status)
		}
	}
	b.ReportMetric(float64(b.N*(n+2))/b.Elapsed().Seconds(), "records/s")
}
