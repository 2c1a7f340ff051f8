package mapper

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// TestMappingDocMatchesRules parses the table in MAPPING.md and compares
// it with Rules, so the documentation cannot drift from the code.
func TestMappingDocMatchesRules(t *testing.T) {
	b, err := os.ReadFile("MAPPING.md")
	if err != nil {
		t.Fatal(err)
	}
	var doc []Rule
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "| ") || strings.HasPrefix(line, "| kernel event") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if len(cells) != 7 {
			t.Fatalf("row %q: %d cells, want 7", line, len(cells))
		}
		doc = append(doc, Rule{
			Kernel:     xdrv1.KernelEvent(xdrv1.KernelEvent_value["KERNEL_EVENT_"+cells[0]]),
			Variant:    cells[1],
			EventType:  xdrv1.XdrEventType(xdrv1.XdrEventType_value["XDR_EVENT_TYPE_"+cells[2]]),
			AccessType: xdrv1.XdrAccessType(xdrv1.XdrAccessType_value["XDR_ACCESS_TYPE_"+cells[3]]),
			Subject:    cells[4],
			Target:     TargetKind(cells[5]),
			Detail:     cells[6],
		})
	}
	if d := cmp.Diff(Rules, doc); d != "" {
		t.Errorf("MAPPING.md differs from Rules (-code +doc):\n%s", d)
	}
	for _, r := range Rules {
		if r.AccessType == 0 || r.EventType == 0 || r.Kernel == 0 {
			t.Errorf("rule %+v has an unset enum", r)
		}
		// The hundreds digit of an access type is its event type group.
		group := map[xdrv1.XdrEventType]int32{
			xdrv1.XdrEventType_XDR_EVENT_TYPE_PROCESS: 0, xdrv1.XdrEventType_XDR_EVENT_TYPE_ACCOUNT: 5,
			xdrv1.XdrEventType_XDR_EVENT_TYPE_MODIFIED_PROCESS: 7, xdrv1.XdrEventType_XDR_EVENT_TYPE_FILE: 1,
			xdrv1.XdrEventType_XDR_EVENT_TYPE_CONNECTION: 2, xdrv1.XdrEventType_XDR_EVENT_TYPE_DNS: 3,
			xdrv1.XdrEventType_XDR_EVENT_TYPE_MEMORY: 10,
		}[r.EventType]
		if int32(r.AccessType)/100 != group {
			t.Errorf("rule %v/%s: access type %v is not in event type %v", r.Kernel, r.Variant, r.AccessType, r.EventType)
		}
	}
}
