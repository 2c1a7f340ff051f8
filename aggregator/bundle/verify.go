package bundle

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// ErrTrailerMismatch is wrapped by the error Verify returns when a
// bundle's trailer does not describe the records before it, or records
// follow it: the bundle was altered or is corrupt.
var ErrTrailerMismatch = errors.New("trailer does not match the records")

// VerifyResult is what Verify found in a bundle.
type VerifyResult struct {
	// Header is the first record if it is a header, else nil.
	Header *xdrv1.BundleHeader
	// Trailer is the first trailer, nil if there is none: the bundle is
	// open, or was left unsealed.
	Trailer *xdrv1.BundleTrailer
	// Sealed is set if there is a trailer; Recovered and Critical are its
	// recovered and hit_critical_event fields.
	Sealed, Recovered, Critical bool
	// Counts, FirstTimeNs, LastTimeNs and RecordsSha256 are computed from
	// the records read before the trailer (all records read if there is
	// none) the way the Writer computes the trailer's fields.
	Counts                  map[string]uint64
	FirstTimeNs, LastTimeNs int64
	RecordsSha256           string
}

// Verify reads the bundle at path and checks it: the first record must be
// a header and, if there is a trailer, it must be the last record and its
// record counts, time range and records_sha256 must match the records
// before it. A bundle without trailer is not an error.
//
// The result is nil only if the file cannot be opened. The error says
// every problem found, prefixed with the path: damage (a *CorruptError),
// a missing header, a trailer mismatch (ErrTrailerMismatch), or a read
// error.
func Verify(path string) (*VerifyResult, error) {
	return ReadFileVerified(path, nil)
}

// ReadFileVerified is ReadFile and Verify in one pass: it calls fn, if not
// nil, with every record of the bundle at path in order, the trailer
// included, up to the end or the first damage, then checks the bundle
// like Verify. It returns fn's error unchanged, with a nil result.
func ReadFileVerified(path string, fn func(*xdrv1.Record) error) (*VerifyResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := NewReader(f)
	d := newDigest()
	res := &VerifyResult{}
	var errs []error
	var records, afterTrailer int
	firstType := ""
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
			break
		}
		if fn != nil {
			if err := fn(rec); err != nil {
				return nil, err
			}
		}
		if records == 0 {
			res.Header = rec.GetHeader()
			firstType = recordType(rec)
		}
		records++
		switch {
		case res.Trailer != nil:
			afterTrailer++
		case rec.GetTrailer() != nil:
			res.Trailer = rec.GetTrailer()
		default:
			d.add(rec, r.raw)
		}
	}
	res.Counts = d.countsMap()
	res.FirstTimeNs, res.LastTimeNs = d.first, d.last
	res.RecordsSha256 = d.trailer(d.sum).GetRecordsSha256()
	if tr := res.Trailer; tr != nil {
		res.Sealed, res.Recovered, res.Critical = true, tr.GetRecovered(), tr.GetHitCriticalEvent()
	}

	switch {
	case records == 0 && len(errs) == 0:
		errs = append(errs, fmt.Errorf("%s: no header: the file holds no record", path))
	case records > 0 && res.Header == nil:
		errs = append(errs, fmt.Errorf("%s: first record (%s) is not a header", path, firstType))
	}
	if res.Trailer != nil {
		if problems := res.mismatches(afterTrailer); len(problems) > 0 {
			errs = append(errs, fmt.Errorf("%s: %w: %s", path, ErrTrailerMismatch, strings.Join(problems, "; ")))
		}
	}
	switch len(errs) {
	case 0:
		return res, nil
	case 1:
		return res, errs[0]
	default:
		return res, errors.Join(errs...)
	}
}

// mismatches lists how the trailer differs from the computed fields.
func (res *VerifyResult) mismatches(afterTrailer int) []string {
	var problems []string
	tr := res.Trailer
	keys := slices.Collect(maps.Keys(res.Counts))
	for k := range tr.GetRecordCounts() {
		if _, ok := res.Counts[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b string) int {
		ia, ib := kindIndex(a), kindIndex(b)
		if ia != ib {
			return ia - ib
		}
		return strings.Compare(a, b)
	})
	for _, k := range keys {
		if got, want := res.Counts[k], tr.GetRecordCounts()[k]; got != want {
			problems = append(problems, fmt.Sprintf("%d %s records, trailer says %d", got, k, want))
		}
	}
	if res.FirstTimeNs != tr.GetFirstTimeNs() || res.LastTimeNs != tr.GetLastTimeNs() {
		problems = append(problems, fmt.Sprintf("time range %d..%d ns, trailer says %d..%d",
			res.FirstTimeNs, res.LastTimeNs, tr.GetFirstTimeNs(), tr.GetLastTimeNs()))
	}
	if res.RecordsSha256 != tr.GetRecordsSha256() {
		problems = append(problems, fmt.Sprintf("records_sha256 %s, trailer says %q", res.RecordsSha256, tr.GetRecordsSha256()))
	}
	if afterTrailer > 0 {
		problems = append(problems, fmt.Sprintf("%d records after the trailer", afterTrailer))
	}
	return problems
}

// kindIndex orders record type names as kindNames, unknown names last.
func kindIndex(name string) int {
	if i := slices.Index(kindNames[:], name); i >= 0 {
		return i
	}
	return len(kindNames)
}

// recordType returns the Record oneof field name set in r, or "unknown
// type".
func recordType(r *xdrv1.Record) string {
	od := r.ProtoReflect().Descriptor().Oneofs().ByName("record")
	if fd := r.ProtoReflect().WhichOneof(od); fd != nil {
		return string(fd.Name())
	}
	return "unknown type"
}
