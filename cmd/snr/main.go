package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
)

const usage = `usage: snr <command> [arguments]

commands:
  x [-P] [--type TYPE,...] [--access ACCESS,...] FILE...
                  print the records of .gpbz bundles as JSON, one per line
                  (-P: indented), checking each trailer; X is the same
  stat [--json] FILE...
                  summarize bundles: records per type, time range,
                  critical hits, footprint reduction, sealed/recovered/
                  verified status; per file and in total
  help            print this help

Run "snr <command> -h" for the options of a command. The exit status is 0
on success, 1 if a file is unreadable, damaged or fails verification, or
the output cannot be written, and 2 for usage errors.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the command line args and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "x", "X":
		return runX(args[1:], stdout, stderr)
	case "stat":
		return runStat(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "snr: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

// parseArgs parses the flags of a command, which may come before, between
// or after the file names, and returns the file names. Arguments after
// "--" are file names. A usage error or -h is reported on stdout or
// stderr, with the command's usage; status is then the exit status.
func parseArgs(flags *flag.FlagSet, args []string, cmdUsage string, stdout, stderr io.Writer) (files []string, status int, ok bool) {
	flags.SetOutput(io.Discard)
	var rest []string
	if i := slices.Index(args, "--"); i >= 0 {
		args, rest = args[:i], args[i+1:]
	}
	for {
		if err := flags.Parse(args); err != nil {
			if err == flag.ErrHelp {
				fmt.Fprint(stdout, cmdUsage)
				return nil, 0, false
			}
			fmt.Fprintf(stderr, "snr %s: %v\n\n%s", flags.Name(), err, cmdUsage)
			return nil, 2, false
		}
		if flags.NArg() == 0 {
			break
		}
		files = append(files, flags.Arg(0))
		args = flags.Args()[1:]
	}
	files = append(files, rest...)
	if len(files) == 0 {
		fmt.Fprintf(stderr, "snr %s: no file given\n\n%s", flags.Name(), cmdUsage)
		return nil, 2, false
	}
	return files, 0, true
}
