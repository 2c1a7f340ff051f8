package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"
)

// maxFileSize is the largest configuration file Load reads.
const maxFileSize = 1 << 20

// File is a parsed configuration file. Apply sets a flag set from it and
// records where each value came from, for Origin. A File is not safe for
// concurrent use; it holds no resources and needs no Close.
type File struct {
	name    string
	entries []entry
	origins map[string]string // flag name -> "file:line", by the last Apply
}

// Parse parses a configuration file held in data; name is how errors and
// Origin refer to it (its path, usually). It checks the syntax of the
// whole file and the placement of keys (top level, sections, duplicates),
// but not whether a key is a flag: that is for Apply, which knows the
// binary's flags. Errors start with "name:line: ".
func Parse(name string, data []byte) (*File, error) {
	entries, le := parse(data)
	if le != nil {
		return nil, fmt.Errorf("%s:%d: %s", name, le.line, le.msg)
	}
	return &File{name: name, entries: entries}, nil
}

// Load reads and parses the configuration file at path, which must be a
// regular file of at most 1 MiB. When the file does not exist the error
// satisfies errors.Is(err, fs.ErrNotExist).
func Load(path string) (*File, error) {
	fh, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("configuration file %s: %w (install deploy/xdr.conf there or pass --config FILE)", path, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("read configuration file: %w", err)
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("read configuration file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("configuration file %s is not a regular file", path)
	}
	// The privileged agent reads it: a file others may write would let
	// them reconfigure it.
	if fi.Mode().Perm()&0o022 != 0 {
		return nil, fmt.Errorf("configuration file %s is writable by group or others (mode %04o); make it 0640 or 0644", path, fi.Mode().Perm())
	}
	data, err := io.ReadAll(io.LimitReader(fh, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read configuration file %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("configuration file %s is larger than %d KiB", path, maxFileSize>>10)
	}
	return Parse(path, data)
}

// Apply sets flags from the file's top-level keys and those of section:
// "agent" for xdr-agent, "aggregator" for xdr-aggregator. Call it once,
// after flags.Parse: a flag already set then (on the command line) keeps
// its value and the file's is ignored. A key that is not one of flags, a
// value of the wrong type and a value the flag rejects are errors naming
// the line; flags may then be partly set, and the command should exit. A
// nil File (no configuration file) sets nothing.
func (f *File) Apply(flags *flag.FlagSet, section string) error {
	if section != sectionAgent && section != sectionAggregator {
		return fmt.Errorf("apply configuration: unknown section %q (want %q or %q)", section, sectionAgent, sectionAggregator)
	}
	if !flags.Parsed() {
		return errors.New("apply configuration: the command line must be parsed first")
	}
	if f == nil {
		return nil
	}
	onCmdline := map[string]bool{}
	flags.Visit(func(fl *flag.Flag) { onCmdline[fl.Name] = true })
	f.origins = map[string]string{}
	for _, e := range f.entries {
		if e.section != "" && e.section != section {
			continue
		}
		at := fmt.Sprintf("%s:%d", f.name, e.line)
		label := e.key
		if e.section != "" {
			label = "[" + e.section + "] " + e.key
		}
		fl := flags.Lookup(e.key)
		if fl == nil {
			where := "at the top level"
			if e.section != "" {
				where = "in [" + e.section + "]"
			}
			msg := fmt.Sprintf("%s: unknown key %q %s", at, e.key, where)
			if s := suggest(flags, e.key); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			return errors.New(msg)
		}
		if onCmdline[e.key] {
			continue
		}
		s, err := flagValue(fl, e.val)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", at, label, err)
		}
		if err := flags.Set(e.key, s); err != nil {
			return fmt.Errorf("%s: %s: invalid value %q: %w", at, label, s, err)
		}
		f.origins[e.key] = at
	}
	return nil
}

// Origin returns "file:line" when the last Apply set the named flag from
// the file, and "" when the flag came from the command line or its
// default, or f is nil (no file was read). Commands use it to name the
// line in errors they find after Apply.
func (f *File) Origin(flagName string) string {
	if f == nil {
		return ""
	}
	return f.origins[flagName]
}

// flagValue checks that v has the type fl takes and returns it in the
// form fl.Value.Set parses.
func flagValue(fl *flag.Flag, v value) (string, error) {
	want := flagKind(fl)
	switch {
	case want == 0, v.kind == want:
	case want == kindString && v.kind == kindArray:
	case want == kindDuration && v.kind == kindString:
	default:
		return "", fmt.Errorf("want %s, not %s", want, v.kind)
	}
	switch v.kind {
	case kindString:
		return v.str, nil
	case kindInt:
		return strconv.FormatInt(v.num, 10), nil
	case kindBool:
		return strconv.FormatBool(v.b), nil
	}
	for _, item := range v.list {
		if strings.Contains(item, ",") {
			return "", fmt.Errorf("array item %q holds a comma, which would split it in two", item)
		}
		if strings.TrimSpace(item) == "" {
			return "", errors.New("array item is blank")
		}
	}
	return strings.Join(v.list, ","), nil
}

// flagKind is the value kind a flag takes, or 0 when the flag does not
// say (a flag.Value that is not one of the standard ones).
func flagKind(fl *flag.Flag) kind {
	if b, ok := fl.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return kindBool
	}
	g, ok := fl.Value.(flag.Getter)
	if !ok {
		return 0
	}
	switch g.Get().(type) {
	case int, int64, uint, uint64:
		return kindInt
	case string:
		return kindString
	case time.Duration:
		return kindDuration
	}
	return 0
}

// suggest returns the flag closest to key when it is close enough to be
// a typo, else "".
func suggest(flags *flag.FlagSet, key string) string {
	best, bestDist := "", 3 // at most two edits
	if len(key) < 5 {
		bestDist = 2
	}
	flags.VisitAll(func(fl *flag.Flag) {
		if cmdlineOnly[fl.Name] {
			return
		}
		if d := editDistance(key, fl.Name); d < bestDist {
			best, bestDist = fl.Name, d
		}
	})
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
