package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/xdr-sensor/xdr/proto/objid"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// reductionWorkload is a shell loop touching files and spawning the usual
// tools, as a device's scripts do.
const reductionWorkload = `
d=$(mktemp -d)
for i in $(seq 150); do
	ls /etc > /dev/null
	cat /etc/hostname > /dev/null
	id -u > /dev/null
	date +%s > "$d/stamp"
	grep -c root /etc/passwd > /dev/null
	sh -c 'uname -r' > /dev/null
done
rm -rf "$d"
`

// BenchmarkReduction runs a realistic workload with every raw event kept
// next to the footprints, and reports raw events against footprint
// records and compressed bytes, checking that every distinct activity
// among the raw events has a footprint. Run it with -benchtime 1x.
func BenchmarkReduction(b *testing.B) {
	needRoot(b)
	binaries(b)
	for i := 0; i < b.N; i++ {
		s := startSensor(b, "--raw-events", "all")
		if out, err := exec.Command("/bin/sh", "-c", reductionWorkload).CombinedOutput(); err != nil {
			b.Fatalf("workload: %v\n%s", err, out)
		}
		time.Sleep(time.Second)
		s.stop()
		recs := s.records()

		activities := map[uint64]bool{}
		footprints := map[uint64]bool{}
		var raw, fpRecords int
		for _, r := range recs {
			if e, ok := r["event"]; ok {
				raw++
				js, _ := json.Marshal(e)
				var ev xdrv1.ActEvent
				if err := protojson.Unmarshal(js, &ev); err != nil {
					b.Fatal(err)
				}
				activities[objid.Activity(&ev)] = true
			}
			if fp, ok := r["footprint"].(map[string]any); ok {
				fpRecords++
				footprints[num(fp["hash_id"])] = true
			}
		}
		lost := 0
		for a := range activities {
			if !footprints[a] {
				lost++
			}
		}
		rawBytes := bundleBytes(s.data)

		// The same workload with the default setting (footprints,
		// statistics and only critical events raw).
		s2 := startSensor(b)
		if out, err := exec.Command("/bin/sh", "-c", reductionWorkload).CombinedOutput(); err != nil {
			b.Fatalf("workload: %v\n%s", err, out)
		}
		time.Sleep(time.Second)
		s2.stop()
		fpBytes := bundleBytes(s2.data)
		b.ReportMetric(float64(rawBytes), "bytes-with-raw")
		b.ReportMetric(float64(fpBytes), "bytes-default")
		b.ReportMetric(float64(raw), "raw-events")
		b.ReportMetric(float64(fpRecords), "footprints")
		b.ReportMetric(float64(raw)/float64(max(fpRecords, 1)), "reduction-x")
		b.ReportMetric(float64(lost), "activities-lost")
		b.Logf("%d raw events, %d distinct activities, %d footprint records; bundles: %d bytes with raw events, %d bytes by default",
			raw, len(activities), fpRecords, rawBytes, fpBytes)
		if lost != 0 {
			b.Errorf("%d distinct activities have no footprint", lost)
		}
	}
}

// bundleBytes is the size of the sealed bundles in dir.
func bundleBytes(dir string) int64 {
	var n int64
	files, _ := filepath.Glob(filepath.Join(dir, "*.gpbz"))
	for _, f := range files {
		if st, err := os.Stat(f); err == nil {
			n += st.Size()
		}
	}
	return n
}
