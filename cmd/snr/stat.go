package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/xdr-sensor/xdr/aggregator/bundle"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

const statUsage = `usage: snr stat [--json] FILE...

Summarize .gpbz bundles, each and in total: records per type, time range
(RFC 3339, UTC), critical hits (events with access type BM_INVOKE, and
whether the trailer says hit_critical_event), status (sealed or not,
recovered after a crash, trailer verified), and the footprint reduction:
how many events the footprints stand for (the sum of their counts).

  --json  print one JSON object instead of text
`

// counts is what stat adds up over records, for a file and in total.
type counts struct {
	Records         map[string]uint64 `json:"records"`
	RecordsTotal    uint64            `json:"records_total"`
	FirstTime       string            `json:"first_time,omitempty"`
	LastTime        string            `json:"last_time,omitempty"`
	CriticalEvents  uint64            `json:"critical_events"`
	Footprints      uint64            `json:"footprints"`
	FootprintEvents uint64            `json:"footprint_events"`
	// Reduction is FootprintEvents / Footprints, absent without
	// footprints.
	Reduction float64 `json:"footprint_reduction,omitempty"`

	first, last int64 // time range in ns since the epoch, 0 if none
}

func (c *counts) addRecord(r *xdrv1.Record) {
	t := recordType(r)
	if t == "" {
		t = "unknown"
	}
	if c.Records == nil {
		c.Records = map[string]uint64{}
	}
	c.Records[t]++
	c.RecordsTotal++
	switch v := r.GetRecord().(type) {
	case *xdrv1.Record_Event:
		if v.Event.GetAccessType() == xdrv1.XdrAccessType_XDR_ACCESS_TYPE_BM_INVOKE {
			c.CriticalEvents++
		}
	case *xdrv1.Record_Footprint:
		c.Footprints++
		c.FootprintEvents += v.Footprint.GetCount()
	}
}

func (c *counts) addTime(first, last int64) {
	if first != 0 && (c.first == 0 || first < c.first) {
		c.first = first
	}
	if last != 0 && last > c.last {
		c.last = last
	}
}

func (c *counts) merge(o *counts) {
	for t, n := range o.Records {
		if c.Records == nil {
			c.Records = map[string]uint64{}
		}
		c.Records[t] += n
	}
	c.RecordsTotal += o.RecordsTotal
	c.CriticalEvents += o.CriticalEvents
	c.Footprints += o.Footprints
	c.FootprintEvents += o.FootprintEvents
	c.addTime(o.first, o.last)
}

// finish fills the derived fields.
func (c *counts) finish() {
	if c.Records == nil {
		c.Records = map[string]uint64{}
	}
	c.FirstTime, c.LastTime = formatTime(c.first), formatTime(c.last)
	if c.Footprints > 0 {
		c.Reduction = float64(c.FootprintEvents) / float64(c.Footprints)
	}
}

func formatTime(ns int64) string {
	if ns == 0 {
		return ""
	}
	return time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
}

// fileStat is the summary of one file.
type fileStat struct {
	Path string `json:"path"`
	// Sealed: has a trailer; Recovered: the trailer says so; Verified:
	// sealed and the trailer matches the records, no damage.
	Sealed    bool `json:"sealed"`
	Recovered bool `json:"recovered"`
	Verified  bool `json:"verified"`
	// HitCriticalEvent is the trailer's field.
	HitCriticalEvent bool `json:"hit_critical_event"`
	// Error says why the file could not be read to its end or failed
	// verification.
	Error string `json:"error,omitempty"`
	counts

	err    error // as returned, naming the file
	opened bool  // the file could be opened
}

// totalStat is the summary of all files.
type totalStat struct {
	Files     int `json:"files"`
	Sealed    int `json:"sealed"`
	Recovered int `json:"recovered"`
	Verified  int `json:"verified"`
	// Failed counts the files with an error.
	Failed int `json:"failed"`
	// CriticalBundles counts the files whose trailer says
	// hit_critical_event.
	CriticalBundles int `json:"critical_bundles"`
	counts
}

// runStat runs the stat command.
func runStat(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("stat", flag.ContinueOnError)
	asJSON := flags.Bool("json", false, "")
	files, status, ok := parseArgs(flags, args, statUsage, stdout, stderr)
	if !ok {
		return status
	}
	var total totalStat
	stats := make([]*fileStat, 0, len(files))
	for _, path := range files {
		s := statFile(path)
		if s.err != nil {
			for _, line := range strings.Split(s.err.Error(), "\n") {
				fmt.Fprintf(stderr, "snr: %s\n", line)
			}
			status = 1
		}
		stats = append(stats, s)
		total.add(s)
	}
	total.finish()

	w := bufio.NewWriter(stdout)
	if *asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		// Encode errors are write errors; Flush reports them.
		_ = enc.Encode(struct {
			Files []*fileStat `json:"files"`
			Total *totalStat  `json:"total"`
		}{stats, &total})
	} else {
		for _, s := range stats {
			writeFileStat(w, s)
		}
		writeTotal(w, &total)
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintf(stderr, "snr: write output: %v\n", err)
		return 1
	}
	return status
}

// statFile reads and verifies one file.
func statFile(path string) *fileStat {
	s := &fileStat{Path: path}
	res, err := bundle.ReadFileVerified(path, func(r *xdrv1.Record) error {
		s.addRecord(r)
		return nil
	})
	s.err, s.opened = err, res != nil
	if err != nil {
		// The error names the file on each line; the summary is
		// under its name.
		lines := strings.Split(err.Error(), "\n")
		for i, l := range lines {
			lines[i] = strings.TrimPrefix(l, path+": ")
		}
		s.Error = strings.Join(lines, "; ")
	}
	if res != nil {
		s.Sealed, s.Recovered, s.HitCriticalEvent = res.Sealed, res.Recovered, res.Critical
		s.Verified = res.Sealed && err == nil
		s.addTime(res.FirstTimeNs, res.LastTimeNs)
	}
	s.finish()
	return s
}

func (t *totalStat) add(s *fileStat) {
	t.Files++
	t.Sealed += b2i(s.Sealed)
	t.Recovered += b2i(s.Recovered)
	t.Verified += b2i(s.Verified)
	t.Failed += b2i(s.Error != "")
	t.CriticalBundles += b2i(s.HitCriticalEvent)
	t.merge(&s.counts)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// status describes a file's state in a few words.
func (s *fileStat) status() string {
	if !s.opened {
		return "unreadable: " + s.Error
	}
	var words []string
	if s.Sealed {
		words = append(words, "sealed")
	} else {
		words = append(words, "unsealed (no trailer)")
	}
	if s.Recovered {
		words = append(words, "recovered")
	}
	switch {
	case s.Verified:
		words = append(words, "verified")
	case s.Error != "":
		words = append(words, "CORRUPT: "+s.Error)
	}
	return strings.Join(words, ", ")
}

func writeFileStat(w io.Writer, s *fileStat) {
	fmt.Fprintf(w, "%s\n", s.Path)
	fmt.Fprintf(w, "  status:     %s\n", s.status())
	writeCounts(w, &s.counts)
	fmt.Fprintf(w, "  critical:   %d BM_INVOKE events, trailer hit_critical_event: %v\n", s.CriticalEvents, s.HitCriticalEvent)
	writeFootprints(w, &s.counts)
}

func writeTotal(w io.Writer, t *totalStat) {
	fmt.Fprintf(w, "total: %d files\n", t.Files)
	fmt.Fprintf(w, "  status:     %d sealed, %d recovered, %d verified, %d failed\n", t.Sealed, t.Recovered, t.Verified, t.Failed)
	writeCounts(w, &t.counts)
	fmt.Fprintf(w, "  critical:   %d BM_INVOKE events, %d bundles with hit_critical_event\n", t.CriticalEvents, t.CriticalBundles)
	writeFootprints(w, &t.counts)
}

func writeCounts(w io.Writer, c *counts) {
	var parts []string
	for _, t := range append(recordTypes, "unknown") {
		if n := c.Records[t]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", t, n))
		}
	}
	fmt.Fprintf(w, "  records:    %d", c.RecordsTotal)
	if len(parts) > 0 {
		fmt.Fprintf(w, " (%s)", strings.Join(parts, ", "))
	}
	fmt.Fprintln(w)
	if c.FirstTime == "" {
		fmt.Fprintln(w, "  time:       none")
	} else {
		fmt.Fprintf(w, "  time:       %s .. %s\n", c.FirstTime, c.LastTime)
	}
}

func writeFootprints(w io.Writer, c *counts) {
	fmt.Fprintf(w, "  footprints: %d events in %d footprints", c.FootprintEvents, c.Footprints)
	if c.Footprints > 0 {
		fmt.Fprintf(w, " (%.1f x)", c.Reduction)
	}
	fmt.Fprintln(w)
}
