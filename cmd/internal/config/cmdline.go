package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
)

// ErrUsage is a command-line error that the flag package has already
// printed, with the usage, to the flag set's output.
var ErrUsage = errors.New("usage")

// ParseCommandLine parses args with flags, which must define a string
// flag "config", then loads the configuration file it names (if any) and
// applies its top-level keys and those of section for what the command
// line left unset. It returns the file (nil without --config), or
// flag.ErrHelp after printing the help, ErrUsage after printing a
// command-line error, or an error naming the file and line.
func ParseCommandLine(flags *flag.FlagSet, args []string, section string) (*File, error) {
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, ErrUsage
	}
	if flags.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", flags.Arg(0))
	}
	path := flags.Lookup("config").Value.String()
	if path == "" {
		return nil, nil
	}
	f, err := Load(path)
	if err != nil {
		return nil, err
	}
	if err := f.Apply(flags, section); err != nil {
		return nil, err
	}
	return f, nil
}

// Setting names a setting in an error message: "--name" when it came from
// the command line or its default, "name (file:line)" when it came from
// the configuration file. f may be nil.
func (f *File) Setting(name string) string {
	if at := f.Origin(name); at != "" {
		return name + " (" + at + ")"
	}
	return "--" + name
}

// List splits a comma-separated flag value (how a list from the file
// reaches a flag) into its non-empty, trimmed items.
func List(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// CommandLineOnly reports whether flag name may be given on the command
// line only, never in the file.
func CommandLineOnly(name string) bool { return cmdlineOnly[name] }

// ExitStatus prints err, a ParseCommandLine error, as prog's unless the
// flag package has printed it already, and returns the status to exit
// with: 0 after --help, 2 otherwise (a usage or configuration error).
func ExitStatus(prog string, err error) int {
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, ErrUsage):
		return 2
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", prog, err)
	return 2
}
