package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/xdr-sensor/xdr/aggregator/control"
)

const statusUsage = `Usage: xdr-aggregator status [--json] [--control-socket PATH]

Asks the running xdr-aggregator for its state: mode, connected agents with
the collector method each uses and the kernel features it found, events
per second, drops by reason, footprints held, bundles on disk and pending
upload, disk use. Exits 1 when the daemon cannot be reached.

Flags:
`

// runStatus is the status subcommand.
func runStatus(args []string) int {
	fl := flag.NewFlagSet("xdr-aggregator status", flag.ContinueOnError)
	fl.Usage = func() {
		fmt.Fprint(fl.Output(), statusUsage)
		fl.PrintDefaults()
	}
	socket := fl.String("control-socket", defaultControlSocket, "the daemon's control socket `path`")
	asJSON := fl.Bool("json", false, "print the status as one JSON document")
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fl.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "xdr-aggregator status: unexpected argument %q\n", fl.Arg(0))
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := control.Query(ctx, *socket)
	if err != nil {
		fmt.Fprintln(os.Stderr, "xdr-aggregator status:", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(st)
	} else {
		err = control.Print(os.Stdout, st)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "xdr-aggregator status:", err)
		return 1
	}
	return 0
}
