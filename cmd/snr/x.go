package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/xdr-sensor/xdr/aggregator/bundle"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

const xUsage = `usage: snr x [-P] FILE...

Print every record of each .gpbz bundle as JSON, one object per line.

  -P  pretty-print: indented, over several lines
`

// runX runs the x command: print bundles as JSON.
func runX(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("x", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	pretty := flags.Bool("P", false, "")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, xUsage)
			return 0
		}
		fmt.Fprintf(stderr, "snr x: %v\n\n%s", err, xUsage)
		return 2
	}
	if flags.NArg() == 0 {
		fmt.Fprintf(stderr, "snr x: no file given\n\n%s", xUsage)
		return 2
	}
	p := newPrinter(stdout, *pretty)
	status := 0
	for _, path := range flags.Args() {
		err := bundle.ReadFile(path, func(r *xdrv1.Record) error {
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
