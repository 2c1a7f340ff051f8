package main

import (
	"fmt"
	"io"
	"os"
)

const usage = `usage: snr <command> [arguments]

commands:
  x [-P] FILE...  print the records of .gpbz bundles as JSON, one per line
                  (-P: indented); X is the same
  help            print this help
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
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "snr: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}
