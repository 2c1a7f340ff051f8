package e2e

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// copyExe copies /bin/sleep to dir/name and returns its path.
func copyExe(t *testing.T, dir, name string) string {
	t.Helper()
	src, err := os.Open("/bin/sleep")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	p := filepath.Join(dir, name)
	dst, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestIntegrationFootprintsStatisticsAndRules(t *testing.T) {
	s := startSensor(t, "--vehicle-id", "VIN-E2E", "--model-id", "model-e2e", "--customer-guid", "cust-e2e", "--stats-window", "1s")

	// 30 identical execs of a marker binary outside the watched
	// temporary directories. Each lives 50 ms: the proc connector names
	// only the pid, and a process gone before /proc is read is reported
	// partial, without its executable (a footprint of its own).
	// (Not below the checkout: CI may clone it under /tmp.)
	dir, err := os.MkdirTemp("/var/lib", "xdr-e2e-marker-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	marker := copyExe(t, dir, "xdr-e2e-marker")
	for i := 0; i < 30; i++ {
		if err := exec.Command(marker, "0.05").Run(); err != nil {
			t.Fatal(err)
		}
	}
	// ...and one binary run from /tmp.
	tmpExe := copyExe(t, t.TempDir(), "xdr-e2e-dropper")
	if err := exec.Command(tmpExe, "0.05").Run(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	s.stop()
	recs := s.records()

	var count uint64
	var footprints int
	for _, r := range recs {
		fp, ok := r["footprint"].(map[string]any)
		if !ok || fp["access_type"] != "XDR_ACCESS_TYPE_PROCESS_EXECUTE" || get(fp, "file", "filename") != marker {
			continue
		}
		footprints++
		count = num(fp["count"]) // cumulative: the latest record counts
	}
	if footprints == 0 || count != 30 {
		t.Errorf("marker exec footprint: %d records, count %d; want count 30", footprints, count)
	}
	// With the default raw-events setting, ordinary execs are not kept
	// raw.
	for _, e := range events(recs) {
		if get(e, "subject", "exe") == marker {
			t.Fatalf("raw event of an ordinary exec kept: %v", e)
		}
	}

	// The /tmp exec hit exec-tmp: the BM_INVOKE activity and the
	// matching exec, in full, are in a critical bundle.
	var hit, cause map[string]any
	for _, e := range events(recs) {
		if e["access_type"] == "XDR_ACCESS_TYPE_BM_INVOKE" && get(e, "rule", "id") == "exec-tmp" && get(e, "subject", "exe") == tmpExe {
			hit = e
		}
		if e["access_type"] == "XDR_ACCESS_TYPE_PROCESS_EXECUTE" && get(e, "file", "path") == tmpExe {
			cause = e
		}
	}
	if hit == nil || cause == nil {
		t.Fatalf("no BM_INVOKE of exec-tmp with its exec for %s (hit %v, cause %v)", tmpExe, hit != nil, cause != nil)
	}
	if hit["event_type"] != "XDR_EVENT_TYPE_BM" || num(hit["cause_seq"]) != num(cause["seq"]) {
		t.Errorf("rule hit %v does not name its cause (seq %v)", hit, cause["seq"])
	}
	crit, _ := filepath.Glob(filepath.Join(s.data, "*.crit.gpbz"))
	if len(crit) == 0 {
		t.Error("no critical bundle (*.crit.gpbz)")
	}

	// Statistics carry the identity and the critical hit.
	var stats, critical int
	for _, r := range recs {
		st, ok := r["statistics"].(map[string]any)
		if !ok {
			continue
		}
		stats++
		if st["vehicle_id"] != "VIN-E2E" || st["model_id"] != "model-e2e" || st["customer_guid"] != "cust-e2e" || len(st["agent_guid"].(string)) != 36 {
			t.Errorf("statistics identity: %v", st)
		}
		if st["hit_critical_event"] == true {
			critical++
		}
	}
	if stats == 0 || critical == 0 {
		t.Errorf("%d statistics records, %d with hit_critical_event; want some of each", stats, critical)
	}

	// snr stat summarises and verifies every bundle.
	files, _ := filepath.Glob(filepath.Join(s.data, "*.gpbz"))
	out, err := exec.Command(filepath.Join(binaries(t), "snr"), append([]string{"stat"}, files...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("snr stat: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "footprint") {
		t.Errorf("snr stat output names no footprints:\n%s", out)
	}
}
