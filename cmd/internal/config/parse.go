package config

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// kind is the type of a parsed value.
type kind uint8

const (
	kindString kind = iota + 1
	kindInt
	kindBool
	kindArray
	// kindDuration is what a duration flag takes: a string such as "5m".
	// No parsed value has this kind.
	kindDuration
)

// String names the kind with its article, for error messages.
func (k kind) String() string {
	switch k {
	case kindString:
		return "a string"
	case kindInt:
		return "an integer"
	case kindBool:
		return "a boolean"
	case kindArray:
		return "an array"
	default: // kindDuration
		return `a duration string such as "5m" or "100ms"`
	}
}

// value is the right-hand side of one key = value line; the field that
// matches kind holds it.
type value struct {
	kind kind
	str  string
	num  int64
	b    bool
	list []string
}

// entry is one key = value line.
type entry struct {
	section string // "" before any section header
	key     string
	line    int
	val     value
}

// Section names, and the keys allowed before the first section.
const (
	sectionAgent      = "agent"
	sectionAggregator = "aggregator"
)

var (
	sharedKeys = map[string]bool{"socket": true, "log-level": true}
	// cmdlineOnly are flags a file may not set: they choose the file or
	// do something other than run the sensor.
	cmdlineOnly = map[string]bool{"config": true, "version": true, "help": true, "cpuprofile": true}
)

// lineError is a problem on one line of the file; Parse adds the file
// name.
type lineError struct {
	line int
	msg  string
}

func errorf(line int, format string, args ...any) *lineError {
	return &lineError{line: line, msg: fmt.Sprintf(format, args...)}
}

// parse splits data into entries, checking the syntax and the placement
// rules that hold for both binaries. Errors carry the line number but not
// the file name.
func parse(data []byte) ([]entry, *lineError) {
	if bytes.HasPrefix(data, []byte("\uFEFF")) {
		return nil, errorf(1, "byte order mark at the start of the file (save it as UTF-8 without one)")
	}
	var (
		entries  []entry
		section  string
		sections = map[string]int{} // section -> line of its header
		keys     = map[string]int{} // section + "\x00" + key -> line
		shared   = map[string]int{} // top-level key -> line
	)
	for n := 1; len(data) > 0; n++ {
		var raw []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			// A CR is part of the line ending only before a LF.
			raw, data = bytes.TrimSuffix(data[:i], []byte("\r")), data[i+1:]
		} else {
			raw, data = data, nil
		}
		if !utf8.Valid(raw) {
			return nil, errorf(n, "invalid UTF-8")
		}
		p := lineParser{s: string(raw), line: n}
		l, err := p.parseLine()
		if err != nil {
			return nil, err
		}
		switch {
		case l.section != "":
			if l.section != sectionAgent && l.section != sectionAggregator {
				return nil, errorf(n, "unknown section [%s] (want [agent] or [aggregator])", l.section)
			}
			if prev, ok := sections[l.section]; ok {
				return nil, errorf(n, "section [%s] already started on line %d", l.section, prev)
			}
			sections[l.section] = n
			section = l.section
		case l.key != "":
			e := entry{section: section, key: l.key, line: n, val: l.val}
			if err := checkPlacement(e, keys, shared); err != nil {
				return nil, err
			}
			entries = append(entries, e)
		}
	}
	return entries, nil
}

// checkPlacement rejects a key that is repeated, only for the command
// line, or in the wrong place, and records it.
func checkPlacement(e entry, keys, shared map[string]int) *lineError {
	where := "at the top level"
	if e.section != "" {
		where = "in [" + e.section + "]"
	}
	if cmdlineOnly[e.key] {
		return errorf(e.line, "%q cannot be set in the configuration file, only on the command line", e.key)
	}
	id := e.section + "\x00" + e.key
	if prev, ok := keys[id]; ok {
		return errorf(e.line, "key %q already set %s on line %d", e.key, where, prev)
	}
	keys[id] = e.line
	if e.section == "" {
		if !sharedKeys[e.key] {
			return errorf(e.line, "key %q is not allowed at the top level: only socket and log-level are shared; put it under [agent] or [aggregator]", e.key)
		}
		shared[e.key] = e.line
	} else if prev, ok := shared[e.key]; ok {
		return errorf(e.line, "key %q %s is already set at the top level on line %d (set it in one place)", e.key, where, prev)
	}
	return nil
}

// parsedLine is what one line holds: a section header, a key and its
// value, or neither (a blank or comment line).
type parsedLine struct {
	section string
	key     string
	val     value
}

// lineParser reads one line (without its line ending).
type lineParser struct {
	s    string
	i    int
	line int
}

func (p *lineParser) errorf(format string, args ...any) *lineError {
	return errorf(p.line, format, args...)
}

func (p *lineParser) eof() bool { return p.i >= len(p.s) }

func (p *lineParser) peek() byte {
	if p.eof() {
		return 0
	}
	return p.s[p.i]
}

func (p *lineParser) skipSpace() {
	for !p.eof() && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func isBareKeyByte(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

func (p *lineParser) bareKey() string {
	start := p.i
	for !p.eof() && isBareKeyByte(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i]
}

// end accepts what may follow a header or value: spaces, then a comment
// or nothing.
func (p *lineParser) end(after string) *lineError {
	p.skipSpace()
	if p.eof() {
		return nil
	}
	if p.peek() != '#' {
		return p.errorf("unexpected %s after %s", quoteRest(p.s[p.i:]), after)
	}
	return p.comment()
}

// comment checks a comment from # to the end of the line.
func (p *lineParser) comment() *lineError {
	for _, r := range p.s[p.i:] {
		if isControl(r) && r != '\t' {
			return p.errorf("control character %U in a comment", r)
		}
	}
	p.i = len(p.s)
	return nil
}

// isControl reports the characters TOML does not allow raw in strings
// and comments (tab aside, which it allows and strings here do not).
func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// quoteRest quotes the start of s for an error message.
func quoteRest(s string) string {
	const limit = 40
	if len(s) > limit {
		cut := limit
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return strconv.Quote(s[:cut]) + "..."
	}
	return strconv.Quote(s)
}

func (p *lineParser) parseLine() (parsedLine, *lineError) {
	p.skipSpace()
	switch c := p.peek(); {
	case p.eof():
		return parsedLine{}, nil
	case c == '#':
		return parsedLine{}, p.comment()
	case c == '[':
		return p.header()
	case c == '"' || c == '\'':
		return parsedLine{}, p.errorf("quoted keys are not supported; write the key bare")
	case !isBareKeyByte(c):
		return parsedLine{}, p.errorf("expected a key, a [section] or a # comment, found %s", quoteRest(p.s[p.i:]))
	}
	key := p.bareKey()
	p.skipSpace()
	switch p.peek() {
	case '=':
		p.i++
	case '.':
		return parsedLine{}, p.errorf("dotted keys are not supported; use a [section]")
	default:
		if p.eof() {
			return parsedLine{}, p.errorf("expected \"=\" after key %q", key)
		}
		return parsedLine{}, p.errorf("expected \"=\" after key %q, found %s", key, quoteRest(p.s[p.i:]))
	}
	p.skipSpace()
	v, err := p.value()
	if err != nil {
		return parsedLine{}, err
	}
	if err := p.end("the value"); err != nil {
		return parsedLine{}, err
	}
	return parsedLine{key: key, val: v}, nil
}

func (p *lineParser) header() (parsedLine, *lineError) {
	p.i++ // [
	if p.peek() == '[' {
		return parsedLine{}, p.errorf("arrays of tables ([[...]]) are not supported")
	}
	p.skipSpace()
	if c := p.peek(); c == '"' || c == '\'' {
		return parsedLine{}, p.errorf("quoted section names are not supported")
	}
	name := p.bareKey()
	if name == "" {
		return parsedLine{}, p.errorf("expected a section name after \"[\"")
	}
	p.skipSpace()
	switch p.peek() {
	case ']':
		p.i++
	case '.':
		return parsedLine{}, p.errorf("dotted section names are not supported (want [agent] or [aggregator])")
	default:
		return parsedLine{}, p.errorf("expected \"]\" after section name %q", name)
	}
	if err := p.end("the section header"); err != nil {
		return parsedLine{}, err
	}
	return parsedLine{section: name}, nil
}

func (p *lineParser) value() (value, *lineError) {
	switch p.peek() {
	case '"':
		if strings.HasPrefix(p.s[p.i:], `"""`) {
			return value{}, p.errorf("multi-line strings are not supported")
		}
		s, err := p.basicString()
		return value{kind: kindString, str: s}, err
	case '\'':
		return value{}, p.errorf(`literal strings ('...') are not supported; use "..." and escape \ as \\`)
	case '[':
		return p.array()
	case '{':
		return value{}, p.errorf("inline tables are not supported")
	case 0:
		if p.eof() {
			return value{}, p.errorf("missing value after \"=\"")
		}
	case '#':
		return value{}, p.errorf("missing value after \"=\"")
	}
	return p.scalar()
}

// token reads a bare value up to a space, comma, bracket or comment.
func (p *lineParser) token() string {
	start := p.i
	for !p.eof() {
		switch p.s[p.i] {
		case ' ', '\t', ',', ']', '[', '#', '"', '\'', '{', '}', '=':
			return p.s[start:p.i]
		}
		p.i++
	}
	return p.s[start:p.i]
}

// scalar reads a boolean or an integer and explains the TOML values
// that are not supported.
func (p *lineParser) scalar() (value, *lineError) {
	tok := p.token()
	switch tok {
	case "true":
		return value{kind: kindBool, b: true}, nil
	case "false":
		return value{kind: kindBool, b: false}, nil
	case "":
		return value{}, p.errorf("expected a value, found %s", quoteRest(p.s[p.i:]))
	}
	if n, ok, err := p.integer(tok); ok || err != nil {
		return value{kind: kindInt, num: n}, err
	}
	digits := strings.TrimLeft(tok, "+-")
	switch {
	case digits == "inf" || digits == "nan":
		return value{}, p.errorf("floats are not supported: %s", quoteRest(tok))
	case len(digits) > 1 && digits[0] == '0' && strings.ContainsAny(digits[1:2], "xob"):
		return value{}, p.errorf("only decimal integers are supported: %s", quoteRest(tok))
	case startsWithDigit(digits) && (strings.Contains(tok, ":") || len(tok) > 4 && tok[4] == '-' && startsWithDigit(tok)):
		return value{}, p.errorf("dates and times are not supported: %s (quote it if it is a string)", quoteRest(tok))
	case startsWithDigit(digits) && strings.ContainsAny(digits, ".eE"):
		return value{}, p.errorf("floats are not supported: %s", quoteRest(tok))
	case startsWithDigit(digits):
		return value{}, p.errorf("invalid integer %s (decimal digits, no leading zero, _ only between digits)", quoteRest(tok))
	}
	return value{}, p.errorf(`invalid value %s: want a "string", an integer, true, false or an array of strings`, quoteRest(tok))
}

func startsWithDigit(s string) bool { return s != "" && s[0] >= '0' && s[0] <= '9' }

// integer parses tok as a TOML decimal integer. ok is false when tok is
// not one; err is set when it is one but does not fit in 64 bits.
func (p *lineParser) integer(tok string) (n int64, ok bool, err *lineError) {
	digits := tok
	if digits != "" && (digits[0] == '+' || digits[0] == '-') {
		digits = digits[1:]
	}
	if digits == "" || digits[0] < '0' || digits[0] > '9' || digits[0] == '0' && len(digits) > 1 {
		return 0, false, nil
	}
	clean := make([]byte, 0, len(tok))
	if tok[0] == '-' {
		clean = append(clean, '-')
	}
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		switch {
		case c >= '0' && c <= '9':
			clean = append(clean, c)
		case c == '_' && i+1 < len(digits) && digits[i+1] >= '0' && digits[i+1] <= '9' && digits[i-1] != '_':
		default:
			return 0, false, nil
		}
	}
	n, perr := strconv.ParseInt(string(clean), 10, 64)
	if perr != nil {
		return 0, true, p.errorf("integer %s does not fit in 64 bits", quoteRest(tok))
	}
	return n, true, nil
}

// basicString reads a "..." string starting at the opening quote.
func (p *lineParser) basicString() (string, *lineError) {
	p.i++ // "
	var b strings.Builder
	for !p.eof() {
		r, size := utf8.DecodeRuneInString(p.s[p.i:])
		p.i += size
		switch {
		case r == '"':
			return b.String(), nil
		case r == '\\':
			if err := p.escape(&b); err != nil {
				return "", err
			}
		case isControl(r):
			return "", p.errorf(`control character %U in a string (write a tab as \t)`, r)
		default:
			b.WriteRune(r)
		}
	}
	return "", p.errorf("unterminated string (strings end on the line they start)")
}

// escape reads the escape after a backslash into b.
func (p *lineParser) escape(b *strings.Builder) *lineError {
	if p.eof() {
		return p.errorf("unterminated string (strings end on the line they start)")
	}
	c := p.s[p.i]
	p.i++
	switch c {
	case '"', '\\':
		b.WriteByte(c)
	case 'n':
		b.WriteByte('\n')
	case 't':
		b.WriteByte('\t')
	case 'u':
		if len(p.s)-p.i < 4 || !isHex(p.s[p.i:p.i+4]) {
			return p.errorf(`\u must be followed by 4 hexadecimal digits`)
		}
		u, _ := strconv.ParseUint(p.s[p.i:p.i+4], 16, 32)
		p.i += 4
		if !utf8.ValidRune(rune(u)) {
			return p.errorf(`\u%04X is not a Unicode scalar value`, u)
		}
		b.WriteRune(rune(u))
	default:
		r, _ := utf8.DecodeRuneInString(p.s[p.i-1:])
		esc := `\` + string(r)
		if !unicode.IsPrint(r) {
			esc = fmt.Sprintf(`\ followed by %U`, r)
		}
		return p.errorf(`unsupported escape %s in a string (supported: \" \\ \n \t \uXXXX)`, esc)
	}
	return nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// array reads a one-line array of basic strings starting at "[".
func (p *lineParser) array() (value, *lineError) {
	p.i++ // [
	v := value{kind: kindArray, list: []string{}}
	for {
		p.skipSpace()
		switch c := p.peek(); {
		case p.eof() || c == '#':
			return value{}, p.errorf("unterminated array (arrays must end on the line they start)")
		case c == ']':
			p.i++
			return v, nil
		case c == '"':
			if strings.HasPrefix(p.s[p.i:], `"""`) {
				return value{}, p.errorf("multi-line strings are not supported")
			}
			s, err := p.basicString()
			if err != nil {
				return value{}, err
			}
			v.list = append(v.list, s)
		case c == ',':
			return value{}, p.errorf("expected a string or \"]\" in the array, found \",\"")
		default:
			return value{}, p.errorf(`arrays may hold only "strings", found %s`, quoteRest(p.s[p.i:]))
		}
		p.skipSpace()
		switch c := p.peek(); {
		case c == ',':
			p.i++
		case c == ']':
			p.i++
			return v, nil
		case p.eof() || c == '#':
			return value{}, p.errorf("unterminated array (arrays must end on the line they start)")
		default:
			return value{}, p.errorf("expected \",\" or \"]\" after an array item, found %s", quoteRest(p.s[p.i:]))
		}
	}
}
