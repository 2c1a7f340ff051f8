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
	for f := range Entries(b, 7) {
		if len(f) != 7 {
			continue
		}
		uid, ok1 := ParseID(f[2])
		gid, ok2 := ParseID(f[3])
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
	for f := range Entries(b, 4) {
		if len(f) != 4 {
			continue
		}
		gid, ok := ParseID(f[2])
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

// Entries yields the fields of each entry of an account file in the
// colon-separated format of passwd, group and shadow: lines (ending in \n
// or \r\n) of at most max fields whose first, the name, is not empty. The
// yielded slice holds the line's fields; the caller checks their number.
// Blank lines, comments ('#'), NIS compat lines ('+' or '-') and lines of
// more than max fields are skipped. The yielded slice and its fields alias
// b and are only valid until the next iteration. A max below 1 yields
// nothing.
func Entries(b []byte, max int) iter.Seq[[][]byte] {
	return func(yield func([][]byte) bool) {
		if max < 1 {
			return
		}
		buf := make([][]byte, max)
		for line := range bytes.SplitSeq(b, []byte("\n")) {
			line = bytes.TrimRight(line, "\r")
			if len(line) == 0 || line[0] == '#' || line[0] == '+' || line[0] == '-' {
				continue
			}
			f := splitFields(line, buf)
			if f == nil || len(f[0]) == 0 {
				continue
			}
			if !yield(f) {
				return
			}
		}
	}
}

// splitFields splits a line at ':' into buf and returns the fields, or nil
// when the line has more than len(buf).
func splitFields(line []byte, buf [][]byte) [][]byte {
	for i := range buf {
		var ok bool
		buf[i], line, ok = bytes.Cut(line, []byte(":"))
		if !ok {
			return buf[:i+1]
		}
	}
	return nil
}

// ParseID parses a decimal uid or gid as the account files hold them.
func ParseID(b []byte) (uint32, bool) {
	if len(b) == 0 || b[0] < '0' || b[0] > '9' {
		return 0, false
	}
	v, err := strconv.ParseUint(string(b), 10, 32)
	return uint32(v), err == nil
}
