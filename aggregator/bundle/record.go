package bundle

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// FormatVersion is the bundle format this package writes, stored in each
// BundleHeader.
const FormatVersion = 1

// File name extensions; see FORMAT.md. The name of a sealed bundle ends in
// Ext, and in CritExt (which ends in Ext) if it holds a critical event.
// An open bundle's name ends in PartExt, with the critical mark before it
// once the bundle is marked critical. A file set aside by crash recovery
// because it has no readable header ends in CorruptExt.
const (
	Ext        = ".gpbz"
	CritExt    = critMark + Ext
	PartExt    = ".gpbz.part"
	CorruptExt = ".gpbz.corrupt"
)

// MaxRecordSize bounds the encoded size of one record. Writer rejects larger
// records and Reader treats a larger length prefix as damage.
const MaxRecordSize = 4 << 20

// maxFrameSize bounds the decompressed size of one frame. A Writer's frame
// holds less than FrameBytes (at most maxFrameBytes) plus one record.
const maxFrameSize = 16 << 20

// maxFrameBytes is the largest WriterOptions.FrameBytes accepted, so that
// every frame written stays below maxFrameSize.
const maxFrameBytes = maxFrameSize - 2*MaxRecordSize

// kind indexes the record types counted in a trailer.
type kind int

const (
	kindHeader kind = iota
	kindEvent
	kindFootprint
	kindStatistics
	kindAgentCounters
	numKinds
)

// kindNames are the Record oneof field names, the keys of
// BundleTrailer.record_counts.
var kindNames = [numKinds]string{"header", "event", "footprint", "statistics", "agent_counters"}

var (
	errNoRecord      = errors.New("record has no type set")
	errReservedType  = errors.New("header and trailer records are written by the bundle writer")
	errRecordTooLong = fmt.Errorf("record longer than %d bytes", MaxRecordSize)
)

// classify returns the kind of a record a caller may write, and the time
// range it carries in nanoseconds since the Unix epoch (0, 0 for none).
func classify(r *xdrv1.Record) (k kind, lo, hi int64, err error) {
	switch v := r.GetRecord().(type) {
	case *xdrv1.Record_Event:
		t := v.Event.GetTimestampNs()
		return kindEvent, t, t, nil
	case *xdrv1.Record_Footprint:
		return kindFootprint, secondsToNs(v.Footprint.GetFirstSeen()), secondsToNs(v.Footprint.GetLastSeen()), nil
	case *xdrv1.Record_Statistics:
		t := secondsToNs(v.Statistics.GetTimestamp())
		return kindStatistics, t, t, nil
	case *xdrv1.Record_AgentCounters:
		t := v.AgentCounters.GetTimestampNs()
		return kindAgentCounters, t, t, nil
	case *xdrv1.Record_Header, *xdrv1.Record_Trailer:
		return 0, 0, 0, errReservedType
	default:
		return 0, 0, 0, errNoRecord
	}
}

// measure returns the kind of any record but a trailer and its time range,
// like classify; ok is false for a trailer and for a record of no known
// type.
func measure(r *xdrv1.Record) (k kind, lo, hi int64, ok bool) {
	if _, isHeader := r.GetRecord().(*xdrv1.Record_Header); isHeader {
		return kindHeader, 0, 0, true
	}
	k, lo, hi, err := classify(r)
	return k, lo, hi, err == nil
}

func secondsToNs(s int64) int64 { return s * 1e9 }

// appendRecord appends r, delimited, to b: enc when it is not nil (r's
// encoding, made elsewhere), else r encoded here.
func appendRecord(b []byte, r *xdrv1.Record, enc []byte) ([]byte, error) {
	if enc == nil {
		return appendDelimited(b, r)
	}
	if len(enc) > MaxRecordSize {
		return b, fmt.Errorf("%w: %d bytes", errRecordTooLong, len(enc))
	}
	b = protowire.AppendVarint(b, uint64(len(enc)))
	return append(b, enc...), nil
}

// appendDelimited appends r to b as one size-delimited record: a varint
// length, then the encoded message. On error b is returned unchanged.
func appendDelimited(b []byte, r *xdrv1.Record) ([]byte, error) {
	size := proto.Size(r)
	if size > MaxRecordSize {
		return b, fmt.Errorf("%w: %d bytes", errRecordTooLong, size)
	}
	start := len(b)
	b = protowire.AppendVarint(b, uint64(size))
	b, err := proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(b, r)
	if err != nil {
		return b[:start], fmt.Errorf("encode record: %w", err)
	}
	return b, nil
}

// tally accumulates what a trailer reports about records.
type tally struct {
	counts      [numKinds]uint64
	timed       bool // first and last are set
	first, last int64
}

func (t *tally) add(k kind, lo, hi int64) {
	t.counts[k]++
	t.addTime(lo)
	t.addTime(hi)
}

func (t *tally) addTime(ns int64) {
	switch {
	case ns == 0:
	case !t.timed:
		t.timed, t.first, t.last = true, ns, ns
	case ns < t.first:
		t.first = ns
	case ns > t.last:
		t.last = ns
	}
}

func (t *tally) merge(o *tally) {
	for k, n := range o.counts {
		t.counts[k] += n
	}
	if o.timed {
		t.addTime(o.first)
		t.addTime(o.last)
	}
}

func (t *tally) records() uint64 {
	var n uint64
	for _, c := range t.counts {
		n += c
	}
	return n
}

// trailer returns a trailer for the records counted by t, whose delimited
// bytes were written to sum.
func (t *tally) trailer(sum hash.Hash) *xdrv1.BundleTrailer {
	return &xdrv1.BundleTrailer{
		RecordCounts:  t.countsMap(),
		FirstTimeNs:   t.first,
		LastTimeNs:    t.last,
		RecordsSha256: hex.EncodeToString(sum.Sum(nil)),
	}
}

// digest accumulates what a trailer says about records read back from a
// file.
type digest struct {
	tally
	sum hash.Hash
}

func newDigest() *digest { return &digest{sum: sha256.New()} }

// add counts rec, whose delimited bytes are raw.
func (d *digest) add(rec *xdrv1.Record, raw []byte) {
	if k, lo, hi, ok := measure(rec); ok {
		d.tally.add(k, lo, hi)
	}
	d.sum.Write(raw)
}

func (t *tally) countsMap() map[string]uint64 {
	m := make(map[string]uint64, numKinds)
	for k, n := range t.counts {
		if n > 0 {
			m[kindNames[k]] = n
		}
	}
	return m
}
