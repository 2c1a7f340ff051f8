package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/xdr-sensor/xdr/aggregator/bundle"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

const xUsage = `usage: snr x [-P] [--type TYPE,...] [--access ACCESS,...] FILE...

Print the records of each .gpbz bundle as JSON, one object per line. A
bundle with a trailer is verified: if the trailer does not match the
records, the records are still printed and the mismatch reported.

  -P                  pretty-print: indented, over several lines
  --type TYPE,...     print only records of these types: header, event,
                      footprint, statistics, agent_counters, trailer
  --access ACCESS,... print only the event and footprint records with
                      these access types (other types are not affected):
                      names with or without the XDR_ACCESS_TYPE_ prefix,
                      in any case (file_open, BM_INVOKE), or numbers (102)
`

// runX runs the x command: print bundles as JSON.
func runX(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("x", flag.ContinueOnError)
	pretty := flags.Bool("P", false, "")
	var f filter
	flags.Func("type", "", func(s string) (err error) {
		f.types, err = parseTypes(s)
		return err
	})
	flags.Func("access", "", func(s string) (err error) {
		f.access, err = parseAccess(s)
		return err
	})
	files, status, ok := parseArgs(flags, args, xUsage, stdout, stderr)
	if !ok {
		return status
	}
	p := newPrinter(stdout, *pretty)
	for _, path := range files {
		_, err := bundle.ReadFileVerified(path, func(r *xdrv1.Record) error {
			if !f.match(r) {
				return nil
			}
			if err := p.print(r); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			return nil
		})
		// Flush before reporting, so the report follows the records.
		p.flush()
		if p.err != nil {
			fmt.Fprintf(stderr, "snr: write output: %v\n", p.err)
			return 1
		}
		if err != nil {
			fmt.Fprintf(stderr, "snr: %v\n", err)
			status = 1
		}
	}
	return status
}

// printer writes records as JSON to a buffered output.
type printer struct {
	w    *bufio.Writer
	opts protojson.MarshalOptions
	buf  []byte
	err  error // first error writing the output; later writes are skipped
}

func newPrinter(w io.Writer, pretty bool) *printer {
	p := &printer{
		w:    bufio.NewWriterSize(w, 64<<10),
		opts: protojson.MarshalOptions{UseProtoNames: true},
	}
	if pretty {
		p.opts.Multiline, p.opts.Indent = true, "  "
	}
	return p
}

// print writes r as one JSON value and a newline.
func (p *printer) print(r *xdrv1.Record) error {
	if p.err != nil {
		return p.err
	}
	b, err := p.opts.MarshalAppend(p.buf[:0], r)
	if err != nil {
		return fmt.Errorf("format record as JSON: %w", err)
	}
	p.buf = append(b, '\n')
	if _, err := p.w.Write(p.buf); err != nil {
		p.err = err
		return err
	}
	return nil
}

func (p *printer) flush() {
	if p.err == nil {
		p.err = p.w.Flush()
	}
}
