package sensor

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/xdr-sensor/xdr/agent/ebpf"
)

// DefaultExcludeReads are the path prefixes whose read-only opens are not
// reported unless configured otherwise: what the dynamic loader and the C
// library read for every program started (the loader cache, shared
// objects, whose executable mappings are reported as image loads, locale
// and time zone data, the locale aliases). On a device that starts programs often they are
// most of the file events and tell nothing about what a program does.
var DefaultExcludeReads = []string{
	"/etc/ld.so.cache",
	"/etc/locale.alias",
	"/lib",
	"/lib64",
	"/usr/lib",
	"/usr/lib64",
	"/usr/share/locale",
	"/usr/share/zoneinfo",
}

// readFilter holds the prefixes whose read-only opens are not reported.
type readFilter struct {
	prefixes []string // clean, absolute, without a trailing slash
}

// newReadFilter checks and cleans prefixes: each must be an absolute path.
func newReadFilter(prefixes []string) (readFilter, error) {
	var f readFilter
	for _, p := range prefixes {
		if !path.IsAbs(p) {
			return readFilter{}, fmt.Errorf("exclude-reads: %q is not an absolute path", p)
		}
		if p = path.Clean(p); p == "/" {
			return readFilter{}, fmt.Errorf("exclude-reads: / would exclude every read")
		}
		f.prefixes = append(f.prefixes, p)
	}
	return f, nil
}

// without returns the filter for the prefixes not in taken: those the
// kernel filters need no second look.
func (f readFilter) without(taken []string) readFilter {
	var rest readFilter
	for _, p := range f.prefixes {
		if !slices.Contains(taken, p) {
			rest.prefixes = append(rest.prefixes, p)
		}
	}
	return rest
}

// excludes reports whether e is a read-only open of a file under one of
// the prefixes (the prefix itself, or a path below it). Opens that may
// write (write access, O_TRUNC) or that created the file, and every other
// kind of event, are kept; so is an open whose path is not the kernel's
// resolved one (as passed, it may climb out with "..") or lacks its start.
func (f *readFilter) excludes(e *ebpf.Event) bool {
	if len(f.prefixes) == 0 || e.Kind != ebpf.KindFileOpen || e.File == nil || e.File.Created ||
		e.File.Flags&unix.O_ACCMODE != unix.O_RDONLY || e.File.Flags&unix.O_TRUNC != 0 ||
		e.File.PathRaw || e.File.PathTruncated {
		return false
	}
	p := e.File.Path
	for _, pre := range f.prefixes {
		if strings.HasPrefix(p, pre) && (len(p) == len(pre) || p[len(pre)] == '/') {
			return true
		}
	}
	return false
}
