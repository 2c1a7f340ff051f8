package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/xdr-sensor/xdr/aggregator/bundle"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

func TestXFilter(t *testing.T) {
	path := writeSample(t, t.TempDir(), true)
	var all []*xdrv1.Record
	if err := bundle.ReadFile(path, func(r *xdrv1.Record) error {
		all = append(all, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// all: 0 header, 1-4 events (FILE_OPEN, PROCESS_EXECUTE, BM_INVOKE,
	// FILE_OPEN), 5-7 footprints (FILE_OPEN, PROCESS_EXECUTE,
	// BM_INVOKE), 8 statistics, 9 agent_counters, 10 trailer.
	pick := func(idx ...int) []*xdrv1.Record {
		var recs []*xdrv1.Record
		for _, i := range idx {
			recs = append(recs, all[i])
		}
		return recs
	}
	tests := []struct {
		name string
		args []string // path is appended
		want []*xdrv1.Record
	}{
		{"no filter", nil, all},
		{"type", []string{"--type", "event"}, pick(1, 2, 3, 4)},
		{"types", []string{"-type=Header,trailer"}, pick(0, 10)},
		{"access name", []string{"--access", "file_open"}, pick(0, 1, 4, 5, 8, 9, 10)},
		{"access with prefix", []string{"--type", "event", "--access", "XDR_ACCESS_TYPE_BM_INVOKE"}, pick(3)},
		{"access numbers", []string{"--type", "footprint", "--access", "102,1101"}, pick(5, 7)},
		{"access without match", []string{"--type", "event", "--access", "Connection_Connect,dns_query"}, nil},
		{"types of no access", []string{"--type", "statistics,agent_counters", "--access", "102"}, pick(8, 9)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, out, errOut := runSnr(append(append([]string{"x"}, tc.args...), path)...)
			if status != 0 || errOut != "" {
				t.Fatalf("status %d, stderr %q", status, errOut)
			}
			if d := cmp.Diff(tc.want, parseRecords(t, out), protocmp.Transform()); d != "" {
				t.Errorf("records (-want +got):\n%s", d)
			}
		})
	}

	// Flags may follow the files; after "--" everything is a file.
	status, out, errOut := runSnr("x", path, "--type", "event", "-P", "--access", "1101")
	if status != 0 || errOut != "" || !strings.HasPrefix(out, "{\n") {
		t.Fatalf("flags after file: status %d, stderr %q, output %q", status, errOut, out)
	}
	if d := cmp.Diff(pick(3), parseRecords(t, out), protocmp.Transform()); d != "" {
		t.Errorf("flags after file: records (-want +got):\n%s", d)
	}
	status, out, errOut = runSnr("x", "--type", "trailer", "--", path, "-P")
	if status != 1 || !strings.Contains(errOut, "snr: open -P: no such file") {
		t.Errorf(`file after "--": status %d, stderr %q`, status, errOut)
	}
	if d := cmp.Diff(pick(10), parseRecords(t, out), protocmp.Transform()); d != "" {
		t.Errorf(`file after "--": records (-want +got):\n%s`, d)
	}
}

func TestXVerify(t *testing.T) {
	dir := t.TempDir()
	good := writeSample(t, dir, true)
	bad := filepath.Join(dir, "tampered.gpbz")
	tamper(t, good, bad)
	unsealed := writeUnsealed(t, t.TempDir())
	recovered := writeRecovered(t)

	// The records of the tampered bundle are printed, the mismatch is
	// reported, and the next file is read.
	status, out, errOut := runSnr("x", bad, unsealed, recovered, good)
	if status != 1 {
		t.Errorf("status %d, want 1", status)
	}
	recs := parseRecords(t, out)
	// Sealed bundles have 11 records, the unsealed one 10.
	if len(recs) != 4*11-1 {
		t.Errorf("%d records printed, want 43", len(recs))
	}
	if got := recs[2].GetEvent().GetSubject().GetExe(); got != "/tmp/evil" {
		t.Errorf("tampered event printed with exe %q", got)
	}
	if tr := recs[len(recs)-1].GetTrailer(); !tr.GetHitCriticalEvent() {
		t.Errorf("last record %v, want the critical trailer", recs[len(recs)-1])
	}
	errRE := regexp.MustCompile(`^snr: ` + regexp.QuoteMeta(bad) + `: trailer does not match the records: records_sha256 [0-9a-f]{64}, trailer says "[0-9a-f]{64}"\n$`)
	if !errRE.MatchString(errOut) {
		t.Errorf("stderr %q does not match %s", errOut, errRE)
	}
}
