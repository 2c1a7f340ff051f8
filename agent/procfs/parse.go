package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strings"
)

var errMalformed = errors.New("malformed")

// parseStat parses the contents of /proc/PID/stat. It also returns the task
// flags (field 9), used internally to recognize kernel threads.
//
// The command name is between the first '(' and the LAST ')': it may itself
// contain spaces, parentheses and newlines, while the fields after it are
// all numeric.
func parseStat(b []byte) (Stat, uint64, error) {
	var st Stat
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 1 || end < open || b[open-1] != ' ' {
		return st, 0, fmt.Errorf("stat: %w: no (comm)", errMalformed)
	}
	pid, ok := parsePID(b[:open-1])
	if !ok {
		return st, 0, fmt.Errorf("stat: %w pid %q", errMalformed, string(b[:open-1]))
	}
	st.PID = pid
	st.Comm = string(b[open+1 : end])

	// Fields 3 (state) to 22 (starttime) follow, each preceded by one space.
	rest := b[end+1:]
	var flags uint64
	for field := 3; field <= 22; field++ {
		if len(rest) < 2 || rest[0] != ' ' {
			return st, 0, fmt.Errorf("stat: %w: %d fields, want at least 22", errMalformed, field-1)
		}
		rest = rest[1:]
		n := bytes.IndexAny(rest, " \n")
		if n < 0 {
			n = len(rest)
		}
		tok := rest[:n]
		rest = rest[n:]
		var ok bool
		switch field {
		case 3:
			if ok = len(tok) == 1; ok {
				st.State = tok[0]
			}
		case 4:
			st.PPID, ok = parsePID(tok)
		case 5:
			st.PGRP, ok = parsePID(tok)
		case 6:
			st.Session, ok = parsePID(tok)
		case 9:
			flags, ok = parseUint(tok)
		case 22:
			st.StartTicks, ok = parseUint(tok)
		default:
			ok = isInt(tok)
		}
		if !ok {
			return st, 0, fmt.Errorf("stat: %w field %d %q", errMalformed, field, string(tok))
		}
	}
	return st, flags, nil
}

// Fields of Status found, as a bit set.
const (
	hasName = 1 << iota
	hasTGID
	hasPPID
	hasUID
	hasGID
	hasAll = hasName | hasTGID | hasPPID | hasUID | hasGID
)

// parseStatus parses the contents of /proc/PID/status: "Key:\tvalue" lines,
// of which it needs Name, Tgid, PPid, Uid and Gid.
func parseStatus(b []byte) (Status, error) {
	var st Status
	found := 0
	for len(b) > 0 && found != hasAll {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte("\n"))
		key, val, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		var bit int
		switch string(key) {
		case "Name":
			// The name starts after exactly one tab: it may itself begin
			// with blanks.
			bit = hasName
			st.Name = unescapeName(bytes.TrimPrefix(val, []byte("\t")))
		case "Tgid":
			bit = hasTGID
			st.TGID, ok = parsePID(bytes.TrimSpace(val))
		case "PPid":
			bit = hasPPID
			st.PPID, ok = parsePID(bytes.TrimSpace(val))
		case "Uid":
			bit = hasUID
			ok = parseIDs(val, &st.UID)
		case "Gid":
			bit = hasGID
			ok = parseIDs(val, &st.GID)
		default:
			continue
		}
		if !ok {
			return st, fmt.Errorf("status: %w %s line %q", errMalformed, string(key), string(line))
		}
		found |= bit
	}
	if found != hasAll {
		return st, fmt.Errorf("status: %w: missing Name, Tgid, PPid, Uid or Gid line", errMalformed)
	}
	return st, nil
}

// parseIDs parses the four tab-separated ids of a Uid or Gid line.
func parseIDs(b []byte, ids *[4]uint32) bool {
	for i := range ids {
		b = bytes.TrimLeft(b, " \t")
		n := bytes.IndexAny(b, " \t")
		if n < 0 {
			n = len(b)
		}
		v, ok := parseUint(b[:n])
		if !ok || v > math.MaxUint32 {
			return false
		}
		ids[i] = uint32(v)
		b = b[n:]
	}
	return len(bytes.TrimSpace(b)) == 0
}

// unescapeName undoes the escaping of the Name line of status: the kernel
// writes '\n' as `\n` and '\\' as `\\` (kernels before 4.x wrote octal
// `\ooo`). Other backslashes are kept.
func unescapeName(b []byte) string {
	if bytes.IndexByte(b, '\\') < 0 {
		return string(b)
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '\\' || i+1 == len(b) {
			out = append(out, c)
			continue
		}
		switch next := b[i+1]; {
		case next == 'n':
			out = append(out, '\n')
			i++
		case next == '\\':
			out = append(out, '\\')
			i++
		case i+3 < len(b) && next <= '3' && isOctal(next) && isOctal(b[i+2]) && isOctal(b[i+3]):
			out = append(out, (next-'0')<<6|(b[i+2]-'0')<<3|(b[i+3]-'0'))
			i += 3
		default:
			out = append(out, c)
		}
	}
	return string(out)
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// parseCgroup parses /proc/PID/cgroup ("id:controllers:path" lines); see
// FS.Cgroup for which path it picks.
func parseCgroup(b []byte) (path, containerID string) {
	var v2, v1 []byte
	haveV2 := false
	for rest := b; len(rest) > 0; {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte("\n"))
		_, after, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		_, p, ok := bytes.Cut(after, []byte(":"))
		if !ok || len(p) == 0 {
			continue
		}
		if bytes.HasPrefix(line, []byte("0::")) {
			if !haveV2 {
				v2, haveV2 = p, true
			}
		} else if v1 == nil || (isRoot(v1) && !isRoot(p)) {
			v1 = p
		}
	}
	chosen := v2
	if !haveV2 || (isRoot(v2) && v1 != nil && !isRoot(v1)) {
		chosen = v1
	}
	if chosen == nil {
		return "", ""
	}
	if id := findContainerID(chosen); id != nil {
		return string(chosen), string(id)
	}
	for rest := b; len(rest) > 0; {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte("\n"))
		if id := findContainerID(line); id != nil {
			return string(chosen), string(id)
		}
	}
	return string(chosen), ""
}

func isRoot(p []byte) bool { return len(p) == 1 && p[0] == '/' }

// containerIDLen is the length of a docker/containerd/cri-o/podman id.
const containerIDLen = 64

// findContainerID returns the deepest path element of a cgroup path that
// names a container, as its 64 lowercase hex digits: "/docker/<id>",
// "/kubepods/.../<id>", "docker-<id>.scope", "cri-containerd-<id>.scope",
// "crio-<id>.scope", "libpod-<id>.scope" and the like. The deepest wins so
// that a nested container reports itself, not its host container.
func findContainerID(path []byte) []byte {
	for len(path) > 0 {
		i := bytes.LastIndexByte(path, '/')
		elem := path[i+1:]
		path = path[:max(i, 0)]
		elem = bytes.TrimSuffix(elem, []byte(".scope"))
		if j := bytes.LastIndexAny(elem, "-:"); j >= 0 {
			elem = elem[j+1:]
		}
		if isContainerID(elem) {
			return elem
		}
	}
	return nil
}

func isContainerID(b []byte) bool {
	if len(b) != containerIDLen {
		return false
	}
	for _, c := range b {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// splitNUL splits a NUL-separated list (cmdline, environ). One trailing NUL
// ends the last element; empty elements in the middle are kept. It returns
// nil for empty input.
func splitNUL(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	if b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	s := string(b) // one allocation; the elements share it
	out := make([]string, 0, bytes.Count(b, []byte{0})+1)
	for {
		i := strings.IndexByte(s, 0)
		if i < 0 {
			return append(out, s)
		}
		out = append(out, s[:i])
		s = s[i+1:]
	}
}

// parseUint parses a non-empty decimal number without sign.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (math.MaxUint64-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// isInt reports whether b is a decimal integer, possibly negative.
func isInt(b []byte) bool {
	if len(b) > 1 && b[0] == '-' {
		b = b[1:]
	}
	_, ok := parseUint(b)
	return ok
}

// parsePID parses a process id: a decimal number that fits in int32.
func parsePID(b []byte) (int, bool) {
	v, ok := parseUint(b)
	if !ok || v > math.MaxInt32 {
		return 0, false
	}
	return int(v), true
}
