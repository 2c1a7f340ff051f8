package bundle

import (
	"path/filepath"
	"regexp"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMarkCritical(t *testing.T) {
	dir := t.TempDir()
	w, err := NewWriter(&WriterOptions{Dir: dir, Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	var sealed []string
	w.OnSeal(func(path string) { sealed = append(sealed, filepath.Base(path)) })

	// Nothing open: nothing to mark, and the next bundle is not critical.
	w.MarkCritical()
	if err := writeEvents(t, w, 1, 4); err != nil {
		t.Fatal(err)
	}
	if err := w.Rotate(); err != nil {
		t.Fatal(err)
	}

	// Marked: the open file is renamed by Sync, with the event.
	if err := w.Write(testEvent(4)); err != nil {
		t.Fatal(err)
	}
	w.MarkCritical()
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	parts := listBundles(t, dir, PartExt)
	if len(parts) != 1 || !regexp.MustCompile(`-000002\.crit\.gpbz\.part$`).MatchString(parts[0]) {
		t.Fatalf("open bundles %v, want bundle 2 with the critical mark", parts)
	}
	if d := cmp.Diff([]uint64{4}, eventSeqs(mustReadRecords(t, parts[0]))); d != "" {
		t.Errorf("events on disk after Sync (-want +got):\n%s", d)
	}
	// Marking again changes nothing.
	w.MarkCritical()
	if err := writeEvents(t, w, 5, 6); err != nil {
		t.Fatal(err)
	}
	if err := w.Rotate(); err != nil {
		t.Fatal(err)
	}
	if err := writeEvents(t, w, 6, 7); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	want := []string{
		"xdr-20250304T050607.891Z-000001.gpbz",
		"xdr-20250304T050607.892Z-000002.crit.gpbz",
		"xdr-20250304T050607.893Z-000003.gpbz",
	}
	if d := cmp.Diff(want, sealed); d != "" {
		t.Errorf("sealed bundles (-want +got):\n%s", d)
	}
	for i, name := range want {
		res, err := Verify(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if res.Critical != (i == 1) || res.Recovered {
			t.Errorf("%s: critical %v, recovered %v", name, res.Critical, res.Recovered)
		}
	}
	if n := len(listBundles(t, dir, PartExt)); n != 0 {
		t.Errorf("%d .part files left", n)
	}
}

// TestMarkCriticalAfterFullBundle checks that the bundle holding the
// record of the last Write is the one marked, even when that Write
// filled it past MaxBytes.
func TestMarkCriticalAfterFullBundle(t *testing.T) {
	dir := t.TempDir()
	w, err := NewWriter(&WriterOptions{Dir: dir, MaxBytes: 2 << 10, FrameBytes: 1 << 10, Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	seq := uint64(1)
	for ; w.cur == nil || w.cur.size <= 2<<10; seq++ {
		if err := w.Write(testEvent(seq)); err != nil {
			t.Fatal(err)
		}
	}
	if len(w.pending) != 0 {
		t.Fatal("the last Write did not flush")
	}
	w.MarkCritical()
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	// The next Write seals the full bundle and opens another.
	if err := w.Write(testEvent(seq)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	crit := listBundles(t, dir, CritExt)
	if len(crit) != 1 {
		t.Fatalf("critical bundles %v, want 1", crit)
	}
	if d := cmp.Diff(seqRange(1, seq), eventSeqs(mustReadRecords(t, crit[0]))); d != "" {
		t.Errorf("events of the critical bundle (-want +got):\n%s", d)
	}
	if all := listBundles(t, dir, Ext); len(all) != 2 {
		t.Errorf("bundles %v, want 2", all)
	}
}

func TestParseName(t *testing.T) {
	tests := []struct {
		name   string
		wantOK bool
		want   nameInfo // base, seq, critical, state
	}{
		{"xdr-20250304T050607.891Z-000042.gpbz", true, nameInfo{base: "xdr-20250304T050607.891Z-000042", seq: 42, state: stateSealed}},
		{"xdr-20250304T050607.891Z-000042.crit.gpbz", true, nameInfo{base: "xdr-20250304T050607.891Z-000042", seq: 42, critical: true, state: stateSealed}},
		{"xdr-20250304T050607.891Z-1000000.gpbz.part", true, nameInfo{base: "xdr-20250304T050607.891Z-1000000", seq: 1000000, state: statePart}},
		{"xdr-20250304T050607.891Z-000042.crit.gpbz.part", true, nameInfo{base: "xdr-20250304T050607.891Z-000042", seq: 42, critical: true, state: statePart}},
		{"xdr-20250304T050607.891Z-000042.crit.gpbz.corrupt", true, nameInfo{base: "xdr-20250304T050607.891Z-000042", seq: 42, critical: true, state: stateCorrupt}},
		{"xdr-20250304T050607.891Z-000042.gpbz.tmp", false, nameInfo{}},
		{"xdr-20250304T050607.891Z-000042.crit.crit.gpbz", false, nameInfo{}},
		{"xdr-20250304T050607.891Z-42.gpbz", false, nameInfo{}},
		{"other-20250304T050607.891Z-000042.gpbz", false, nameInfo{}},
		{"xdr-2025-000042.gpbz", false, nameInfo{}},
	}
	for _, tc := range tests {
		got, ok := parseName("xdr", tc.name)
		if ok != tc.wantOK {
			t.Errorf("%s: ok %v, want %v", tc.name, ok, tc.wantOK)
			continue
		}
		if !ok {
			continue
		}
		if !got.t.Equal(t0) {
			t.Errorf("%s: time %v, want %v", tc.name, got.t, t0)
		}
		got.t = tc.want.t
		if d := cmp.Diff(tc.want, got, cmp.AllowUnexported(nameInfo{})); d != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, d)
		}
		if back := fileName(got.base, got.critical, got.state); back != tc.name {
			t.Errorf("fileName gives %s, want %s", back, tc.name)
		}
	}
}
