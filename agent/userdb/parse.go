package userdb

import (
	"bytes"
	"iter"
	"strconv"
)

// User is one /etc/passwd entry.
type User struct {
	Name  string
	UID   uint32
	GID   uint32
	Home  string
	Shell string
	Gecos string
}

// Group is one /etc/group entry.
type Group struct {
	Name    string
	GID     uint32
	Members []string // nil when the group lists none
}

// ParsePasswd parses /etc/passwd contents ("name:password:uid:gid:gecos:home:shell"
// lines). It skips blank lines, comments ('#'), NIS compat lines ('+' or
// '-') and malformed lines (not seven fields, empty name, ids that are not
// decimal 32-bit numbers). It returns every other entry in file order,
// duplicates included: a second account with uid 0 is exactly what a diff
// of account files must see. It does not retain b.
func ParsePasswd(b []byte) []User {
	var users []User
	var f [7][]byte
	for line := range lines(b) {
		if !splitFields(line, f[:]) || len(f[0]) == 0 {
			continue
		}
		uid, ok1 := parseID(f[2])
		gid, ok2 := parseID(f[3])
		if !ok1 || !ok2 {
			continue
		}
		users = append(users, User{
			Name:  string(f[0]),
			UID:   uid,
			GID:   gid,
			Gecos: string(f[4]),
			Home:  string(f[5]),
			Shell: string(f[6]),
		})
	}
	return users
}

// ParseGroup parses /etc/group contents ("name:password:gid:member,member"
// lines), skipping lines like ParsePasswd. Member names are trimmed of
// blanks; empty ones are dropped. It returns every other entry in file
// order, duplicates included. It does not retain b.
func ParseGroup(b []byte) []Group {
	var groups []Group
	var f [4][]byte
	for line := range lines(b) {
		if !splitFields(line, f[:]) || len(f[0]) == 0 {
			continue
		}
		gid, ok := parseID(f[2])
		if !ok {
			continue
		}
		g := Group{Name: string(f[0]), GID: gid}
		for m := range bytes.SplitSeq(f[3], []byte(",")) {
			if m = bytes.TrimSpace(m); len(m) > 0 {
				g.Members = append(g.Members, string(m))
			}
		}
		groups = append(groups, g)
	}
	return groups
}

// lines yields the lines of b that can hold an entry: without their line
// ending (\n or \r\n), and neither blank, nor comments, nor NIS compat
// lines.
func lines(b []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for line := range bytes.SplitSeq(b, []byte("\n")) {
			line = bytes.TrimRight(line, "\r")
			if len(line) == 0 || line[0] == '#' || line[0] == '+' || line[0] == '-' {
				continue
			}
			if !yield(line) {
				return
			}
		}
	}
}

// splitFields splits a line at ':' into exactly len(f) fields.
func splitFields(line []byte, f [][]byte) bool {
	for i := range len(f) - 1 {
		var ok bool
		f[i], line, ok = bytes.Cut(line, []byte(":"))
		if !ok {
			return false
		}
	}
	if bytes.IndexByte(line, ':') >= 0 {
		return false
	}
	f[len(f)-1] = line
	return true
}

// parseID parses a decimal uid or gid.
func parseID(b []byte) (uint32, bool) {
	if len(b) == 0 || b[0] < '0' || b[0] > '9' {
		return 0, false
	}
	v, err := strconv.ParseUint(string(b), 10, 32)
	return uint32(v), err == nil
}
