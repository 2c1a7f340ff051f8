package bundle

import (
	"bytes"
	"io"
	"os"
	"testing"

	"google.golang.org/protobuf/proto"

	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// BenchmarkWrite measures Write with default options for typical events;
// bytes/s is the rate of encoded records.
func BenchmarkWrite(b *testing.B) {
	w, err := NewWriter(&WriterOptions{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	recs := make([]*xdrv1.Record, 1024)
	for i := range recs {
		recs[i] = testEvent(uint64(i + 1))
	}
	b.SetBytes(int64(proto.Size(recs[0])))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := w.Write(recs[i%len(recs)]); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	st := w.Stats()
	b.ReportMetric(float64(st.BytesWritten)/float64(st.Records), "file-bytes/record")
}

// BenchmarkRead measures Reader on a bundle of typical events.
func BenchmarkRead(b *testing.B) {
	dir := b.TempDir()
	w, err := NewWriter(&WriterOptions{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	const n = 10000
	for seq := uint64(1); seq <= n; seq++ {
		if err := w.Write(testEvent(seq)); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	data, err := os.ReadFile(listBundles(b, dir, Ext)[0])
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		r := NewReader(bytes.NewReader(data))
		for {
			if _, err := r.Next(); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*(n+2))/b.Elapsed().Seconds(), "records/s")
}
