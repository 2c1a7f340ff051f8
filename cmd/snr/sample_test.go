package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"google.golang.org/protobuf/encoding/protodelim"

	"github.com/xdr-sensor/xdr/aggregator/bundle"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// t1 is the time of the sample records.
var t1 = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

// sampleRecords are the records of a sample bundle: events of two access
// types, one a BM_INVOKE rule hit, footprints with counts, statistics and
// agent counters.
func sampleRecords() []*xdrv1.Record {
	ev := func(seq uint64, access xdrv1.XdrAccessType) *xdrv1.Record {
		r := testEvent(seq)
		r.GetEvent().AccessType = access
		r.GetEvent().TimestampNs = t1.UnixNano() + int64(seq)*int64(time.Second)
		return r
	}
	fp := func(hash uint64, access xdrv1.XdrAccessType, count uint64) *xdrv1.Record {
		return &xdrv1.Record{Record: &xdrv1.Record_Footprint{Footprint: &xdrv1.Footprint{
			HashId: hash, FirstSeen: t1.Unix() - 60, LastSeen: t1.Unix() + 30, Count: count,
			EventType: xdrv1.XdrEventType_XDR_EVENT_TYPE_FILE, AccessType: access,
			Object: &xdrv1.Footprint_File{File: &xdrv1.FileFootprint{Filename: "/etc/hosts"}},
		}}}
	}
	return []*xdrv1.Record{
		ev(1, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_OPEN),
		ev(2, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_PROCESS_EXECUTE),
		ev(3, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_BM_INVOKE),
		ev(4, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_OPEN),
		fp(1, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_FILE_OPEN, 40),
		fp(2, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_PROCESS_EXECUTE, 7),
		fp(3, xdrv1.XdrAccessType_XDR_ACCESS_TYPE_BM_INVOKE, 1),
		{Record: &xdrv1.Record_Statistics{Statistics: &xdrv1.Statistics{Timestamp: t1.Unix() + 60, ElapseTime: 60, HitCriticalEvent: true}}},
		{Record: &xdrv1.Record_AgentCounters{AgentCounters: &xdrv1.AgentCounters{TimestampNs: t1.UnixNano() + 5, LastSeq: 4}}},
	}
}

// writeSample writes the sample records into a sealed bundle in dir, marked
// critical if asked, and returns its path.
func writeSample(t testing.TB, dir string, critical bool) string {
	t.Helper()
	w, err := bundle.NewWriter(&bundle.WriterOptions{Dir: dir, Now: func() time.Time { return t1 }})
	if err != nil {
		t.Fatal(err)
	}
	var path string
	w.OnSeal(func(p string) { path = p })
	for _, r := range sampleRecords() {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if critical {
		w.MarkCritical()
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeUnsealed writes the sample records into a bundle, flushes it and
// copies the open .part file into dir, as a crash would leave it, and
// returns the copy's path.
func writeUnsealed(t testing.TB, dir string) string {
	t.Helper()
	src := t.TempDir()
	w, err := bundle.NewWriter(&bundle.WriterOptions{Dir: src, Now: func() time.Time { return t1 }})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range sampleRecords() {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	parts, err := filepath.Glob(filepath.Join(src, "*"+bundle.PartExt))
	if err != nil || len(parts) != 1 {
		t.Fatalf("open bundles %v, %v", parts, err)
	}
	data, err := os.ReadFile(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, filepath.Base(parts[0]))
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeRecovered leaves an unsealed bundle of the sample records in a new
// directory and lets a Writer recover it; it returns the sealed path.
func writeRecovered(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	part := writeUnsealed(t, dir)
	w, err := bundle.NewWriter(&bundle.WriterOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if st := w.Stats(); st.Recovered != 1 {
		t.Fatalf("writer stats %+v, want 1 bundle recovered", st)
	}
	return strings.TrimSuffix(part, bundle.PartExt) + bundle.Ext
}

// tamper rewrites the bundle at path into out as one zstd frame, with the
// exe of the second event changed and the trailer kept.
func tamper(t testing.TB, path, out string) {
	t.Helper()
	var buf bytes.Buffer
	events := 0
	err := bundle.ReadFile(path, func(r *xdrv1.Record) error {
		if r.GetEvent() != nil {
			if events++; events == 2 {
				r.GetEvent().GetSubject().Exe = "/tmp/evil"
			}
		}
		_, err := protodelim.MarshalTo(&buf, r)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderCRC(true))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, enc.EncodeAll(buf.Bytes(), nil), 0o600); err != nil {
		t.Fatal(err)
	}
}
