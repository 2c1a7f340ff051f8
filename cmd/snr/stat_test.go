package main

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestStat(t *testing.T) {
	critical := writeSample(t, t.TempDir(), true)
	recovered := writeRecovered(t)
	unsealed := writeUnsealed(t, t.TempDir())

	status, out, errOut := runSnr("stat", critical, recovered, unsealed)
	if status != 0 || errOut != "" {
		t.Fatalf("status %d, stderr %q", status, errOut)
	}
	want := critical + `
  status:     sealed, verified
  records:    11 (header 1, event 4, footprint 3, statistics 1, agent_counters 1, trailer 1)
  time:       2025-03-04T05:05:07Z .. 2025-03-04T05:07:07Z
  critical:   1 BM_INVOKE events, trailer hit_critical_event: true
  footprints: 48 events in 3 footprints (16.0 x)
` + recovered + `
  status:     sealed, recovered, verified
  records:    11 (header 1, event 4, footprint 3, statistics 1, agent_counters 1, trailer 1)
  time:       2025-03-04T05:05:07Z .. 2025-03-04T05:07:07Z
  critical:   1 BM_INVOKE events, trailer hit_critical_event: false
  footprints: 48 events in 3 footprints (16.0 x)
` + unsealed + `
  status:     unsealed (no trailer)
  records:    10 (header 1, event 4, footprint 3, statistics 1, agent_counters 1)
  time:       2025-03-04T05:05:07Z .. 2025-03-04T05:07:07Z
  critical:   1 BM_INVOKE events, trailer hit_critical_event: false
  footprints: 48 events in 3 footprints (16.0 x)
total: 3 files
  status:     2 sealed, 1 recovered, 2 verified, 0 failed
  records:    32 (header 3, event 12, footprint 9, statistics 3, agent_counters 3, trailer 2)
  time:       2025-03-04T05:05:07Z .. 2025-03-04T05:07:07Z
  critical:   3 BM_INVOKE events, 1 bundles with hit_critical_event
  footprints: 144 events in 9 footprints (16.0 x)
`
	if d := cmp.Diff(want, out); d != "" {
		t.Errorf("output (-want +got):\n%s", d)
	}
}

func TestStatFailures(t *testing.T) {
	dir := t.TempDir()
	good := writeSample(t, dir, false)
	bad := filepath.Join(dir, "tampered.gpbz")
	tamper(t, good, bad)
	missing := filepath.Join(dir, "missing.gpbz")

	status, out, errOut := runSnr("stat", bad, missing, good)
	if status != 1 {
		t.Errorf("status %d, want 1", status)
	}
	mismatch := `trailer does not match the records: records_sha256 [0-9a-f]{64}, trailer says "[0-9a-f]{64}"`
	errRE := regexp.MustCompile(`^snr: ` + regexp.QuoteMeta(bad) + `: ` + mismatch + `
snr: open ` + regexp.QuoteMeta(missing) + `: no such file or directory
$`)
	if !errRE.MatchString(errOut) {
		t.Errorf("stderr %q does not match %s", errOut, errRE)
	}
	for _, re := range []string{
		`(?m)^` + regexp.QuoteMeta(bad) + `\n  status:     sealed, CORRUPT: ` + mismatch + `\n  records:    11 \(`,
		`(?m)^` + regexp.QuoteMeta(missing) + `\n  status:     unreadable: open ` + regexp.QuoteMeta(missing) + `: no such file or directory\n  records:    0\n  time:       none\n`,
		`(?m)^` + regexp.QuoteMeta(good) + `\n  status:     sealed, verified\n`,
		`(?m)^total: 3 files\n  status:     2 sealed, 0 recovered, 1 verified, 2 failed\n  records:    22 `,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("output does not match %s:\n%s", re, out)
		}
	}
}

func TestStatJSON(t *testing.T) {
	critical := writeSample(t, t.TempDir(), true)
	recovered := writeRecovered(t)
	bad := filepath.Join(t.TempDir(), "tampered.gpbz")
	tamper(t, critical, bad)

	status, out, errOut := runSnr("stat", critical, "--json", recovered, bad)
	if status != 1 || !strings.Contains(errOut, "trailer does not match the records") {
		t.Errorf("status %d, stderr %q; want 1 and the mismatch", status, errOut)
	}
	var got struct {
		Files []map[string]any `json:"files"`
		Total map[string]any   `json:"total"`
	}
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil || dec.More() {
		t.Fatalf("output is not one JSON object (%v):\n%s", err, out)
	}
	records := func(sealed bool) map[string]any {
		m := map[string]any{"header": 1.0, "event": 4.0, "footprint": 3.0, "statistics": 1.0, "agent_counters": 1.0}
		if sealed {
			m["trailer"] = 1.0
		}
		return m
	}
	file := func(path string, recovered, verified, critical bool) map[string]any {
		return map[string]any{
			"path": path, "sealed": true, "recovered": recovered, "verified": verified, "hit_critical_event": critical,
			"records": records(true), "records_total": 11.0,
			"first_time": "2025-03-04T05:05:07Z", "last_time": "2025-03-04T05:07:07Z",
			"critical_events": 1.0, "footprints": 3.0, "footprint_events": 48.0, "footprint_reduction": 16.0,
		}
	}
	wantBad := file(bad, false, false, true)
	if e, ok := got.Files[len(got.Files)-1]["error"].(string); !ok || !strings.HasPrefix(e, "trailer does not match the records: records_sha256 ") {
		t.Errorf("error of the tampered file: %v", got.Files[len(got.Files)-1]["error"])
	} else {
		wantBad["error"] = e
	}
	wantFiles := []map[string]any{file(critical, false, true, true), file(recovered, true, true, false), wantBad}
	if d := cmp.Diff(wantFiles, got.Files); d != "" {
		t.Errorf("files (-want +got):\n%s", d)
	}
	wantTotal := map[string]any{
		"files": 3.0, "sealed": 3.0, "recovered": 1.0, "verified": 2.0, "failed": 1.0, "critical_bundles": 2.0,
		"records":       map[string]any{"header": 3.0, "event": 12.0, "footprint": 9.0, "statistics": 3.0, "agent_counters": 3.0, "trailer": 3.0},
		"records_total": 33.0, "first_time": "2025-03-04T05:05:07Z", "last_time": "2025-03-04T05:07:07Z",
		"critical_events": 3.0, "footprints": 9.0, "footprint_events": 144.0, "footprint_reduction": 16.0,
	}
	if d := cmp.Diff(wantTotal, got.Total); d != "" {
		t.Errorf("total (-want +got):\n%s", d)
	}
}

func TestStatNoFootprints(t *testing.T) {
	path, _, _ := writeBundle(t, t.TempDir(), 3)
	status, out, errOut := runSnr("stat", path)
	if status != 0 || errOut != "" {
		t.Fatalf("status %d, stderr %q", status, errOut)
	}
	for _, s := range []string{"\n  footprints: 0 events in 0 footprints\n", "\n  critical:   0 BM_INVOKE events, trailer hit_critical_event: false\n"} {
		if !strings.Contains(out, s) {
			t.Errorf("output does not contain %q:\n%s", s, out)
		}
	}
	_, out, _ = runSnr("stat", "--json", path)
	if strings.Contains(out, "footprint_reduction") {
		t.Errorf("reduction without footprints:\n%s", out)
	}
}

func TestStatOutputError(t *testing.T) {
	path := writeSample(t, t.TempDir(), false)
	var errOut strings.Builder
	if status := run([]string{"stat", path}, failWriter{}, &errOut); status != 1 {
		t.Errorf("status %d, want 1", status)
	}
	if got := errOut.String(); got != "snr: write output: broken pipe\n" {
		t.Errorf("stderr %q, want the write error", got)
	}
}
