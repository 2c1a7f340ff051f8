package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var cmpEntries = cmp.AllowUnexported(entry{}, value{})

func str(s string) value     { return value{kind: kindString, str: s} }
func num(n int64) value      { return value{kind: kindInt, num: n} }
func boolean(b bool) value   { return value{kind: kindBool, b: b} }
func list(s ...string) value { return value{kind: kindArray, list: append([]string{}, s...)} }

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []entry
	}{
		{name: "empty", in: "", want: nil},
		{name: "blank and comments", in: "\n  \n\t\n# a comment\n   # indented\t# again\n", want: nil},
		{name: "comment with tab and unicode", in: "#\tgrüße ✓\n", want: nil},
		{name: "no final newline", in: `socket = "/s"`, want: []entry{{key: "socket", line: 1, val: str("/s")}}},
		{name: "CRLF", in: "# c\r\nsocket = \"/s\"\r\n[agent]\r\nqueue = 1\r\n", want: []entry{
			{key: "socket", line: 2, val: str("/s")},
			{section: "agent", key: "queue", line: 4, val: num(1)},
		}},
		{name: "spacing", in: "\tsocket=\"/s\"   \n[ agent ]\t# c\n  queue\t=\t1#c\n", want: []entry{
			{key: "socket", line: 1, val: str("/s")},
			{section: "agent", key: "queue", line: 3, val: num(1)},
		}},
		{name: "sections", in: "log-level = \"debug\"\n[aggregator]\nmodel-id = \"m\"\n[agent]\nmethod = \"proc\"\n", want: []entry{
			{key: "log-level", line: 1, val: str("debug")},
			{section: "aggregator", key: "model-id", line: 3, val: str("m")},
			{section: "agent", key: "method", line: 5, val: str("proc")},
		}},
		{name: "empty section", in: "[agent]\n[aggregator]\nx = 1\n", want: []entry{
			{section: "aggregator", key: "x", line: 3, val: num(1)},
		}},
		{name: "bare key characters", in: "[agent]\nA-z_0-9 = 1\n0 = 2\n", want: []entry{
			{section: "agent", key: "A-z_0-9", line: 2, val: num(1)},
			{section: "agent", key: "0", line: 3, val: num(2)},
		}},
		{name: "same key in two sections", in: "[agent]\nflush-interval = \"1s\"\n[aggregator]\nflush-interval = \"2s\"\n", want: []entry{
			{section: "agent", key: "flush-interval", line: 2, val: str("1s")},
			{section: "aggregator", key: "flush-interval", line: 4, val: str("2s")},
		}},
		{name: "shared key only in a section", in: "[agent]\nsocket = \"/a\"\n[aggregator]\nsocket = \"/b\"\n", want: []entry{
			{section: "agent", key: "socket", line: 2, val: str("/a")},
			{section: "aggregator", key: "socket", line: 4, val: str("/b")},
		}},
		{name: "strings", in: "[agent]\n" +
			"a = \"\"\n" +
			`b = "q\" b\\ n\n t\t"` + "\n" +
			`c = "\u00e9\u2713\uFFFD"` + "\n" +
			"d = \"grüße # not a comment\" # a comment\n" +
			`e = "\u0000"` + "\n",
			want: []entry{
				{section: "agent", key: "a", line: 2, val: str("")},
				{section: "agent", key: "b", line: 3, val: str("q\" b\\ n\n t\t")},
				{section: "agent", key: "c", line: 4, val: str("é✓\uFFFD")},
				{section: "agent", key: "d", line: 5, val: str("grüße # not a comment")},
				{section: "agent", key: "e", line: 6, val: str("\x00")},
			}},
		{name: "integers", in: "[agent]\na = 0\nb = +0\nc = -0\nd = 42\ne = -17\nf = +99\ng = 1_000_000\nh = 9223372036854775807\ni = -9223372036854775808\nj = 5_3_4\n", want: []entry{
			{section: "agent", key: "a", line: 2, val: num(0)},
			{section: "agent", key: "b", line: 3, val: num(0)},
			{section: "agent", key: "c", line: 4, val: num(0)},
			{section: "agent", key: "d", line: 5, val: num(42)},
			{section: "agent", key: "e", line: 6, val: num(-17)},
			{section: "agent", key: "f", line: 7, val: num(99)},
			{section: "agent", key: "g", line: 8, val: num(1000000)},
			{section: "agent", key: "h", line: 9, val: num(9223372036854775807)},
			{section: "agent", key: "i", line: 10, val: num(-9223372036854775808)},
			{section: "agent", key: "j", line: 11, val: num(534)},
		}},
		{name: "booleans", in: "[agent]\na = true\nb = false # off\n", want: []entry{
			{section: "agent", key: "a", line: 2, val: boolean(true)},
			{section: "agent", key: "b", line: 3, val: boolean(false)},
		}},
		{name: "arrays", in: "[aggregator]\n" +
			"a = []\n" +
			"b = [ ]\n" +
			"c = [\"x\"]\n" +
			"d = [ \"x\" , \"y\" ]\n" +
			"e = [\"x\", \"y\",]\n" +
			"f = [\"x\",\t\"\\\"#]\" ,  ] # c\n",
			want: []entry{
				{section: "aggregator", key: "a", line: 2, val: list()},
				{section: "aggregator", key: "b", line: 3, val: list()},
				{section: "aggregator", key: "c", line: 4, val: list("x")},
				{section: "aggregator", key: "d", line: 5, val: list("x", "y")},
				{section: "aggregator", key: "e", line: 6, val: list("x", "y")},
				{section: "aggregator", key: "f", line: 7, val: list("x", "\"#]")},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("xdr.conf", []byte(tt.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tt.want, f.entries, cmpEntries); diff != "" {
				t.Errorf("entries (-want +got):\n%s", diff)
			}
		})
	}
}

// parseErrorTests are files Parse rejects, with the error it returns.
// FuzzParse seeds from them too.
var parseErrorTests = []struct {
	name string
	in   string
	want string
}{
	// Encoding and line endings.
	{"byte order mark", "\uFEFFsocket = \"/s\"\n", `xdr.conf:1: byte order mark at the start of the file (save it as UTF-8 without one)`},
	{"invalid UTF-8", "# ok\n# \xff\n", `xdr.conf:2: invalid UTF-8`},
	{"lone CR", "socket = \"/s\"\rlog-level = \"info\"\n", `xdr.conf:1: unexpected "\rlog-level = \"info\"" after the value`},
	{"CR at end of file", "# c\r", `xdr.conf:1: control character U+000D in a comment`},
	{"control character in comment", "\n# a\x01b\n", `xdr.conf:2: control character U+0001 in a comment`},
	{"DEL in comment", "# \x7f\n", `xdr.conf:1: control character U+007F in a comment`},

	// Lines.
	{"garbage", "!\n", `xdr.conf:1: expected a key, a [section] or a # comment, found "!"`},
	{"key without value", "socket\n", `xdr.conf:1: expected "=" after key "socket"`},
	{"key with colon", "socket: \"/s\"\n", `xdr.conf:1: expected "=" after key "socket", found ": \"/s\""`},
	{"missing value", "socket =\n", `xdr.conf:1: missing value after "="`},
	{"missing value before comment", "socket = # c\n", `xdr.conf:1: missing value after "="`},
	{"two values", "socket = \"/a\" \"/b\"\n", `xdr.conf:1: unexpected "\"/b\"" after the value`},
	{"text after value", "[agent]\nqueue = 1 2\n", `xdr.conf:2: unexpected "2" after the value`},
	{"quoted key", "\"socket\" = \"/s\"\n", `xdr.conf:1: quoted keys are not supported; write the key bare`},
	{"literal key", "'socket' = \"/s\"\n", `xdr.conf:1: quoted keys are not supported; write the key bare`},
	{"dotted key", "agent.queue = 1\n", `xdr.conf:1: dotted keys are not supported; use a [section]`},
	{"dotted key with space", "agent . queue = 1\n", `xdr.conf:1: dotted keys are not supported; use a [section]`},

	// Sections.
	{"unknown section", "[agnet]\n", `xdr.conf:1: unknown section [agnet] (want [agent] or [aggregator])`},
	{"duplicate section", "[agent]\nqueue = 1\n[aggregator]\n[agent]\n", `xdr.conf:4: section [agent] already started on line 1`},
	{"array of tables", "[[agent]]\n", `xdr.conf:1: arrays of tables ([[...]]) are not supported`},
	{"dotted section", "[agent.x]\n", `xdr.conf:1: dotted section names are not supported (want [agent] or [aggregator])`},
	{"quoted section", "[\"agent\"]\n", `xdr.conf:1: quoted section names are not supported`},
	{"empty section name", "[]\n", `xdr.conf:1: expected a section name after "["`},
	{"unclosed section", "[agent\n", `xdr.conf:1: expected "]" after section name "agent"`},
	{"text after section", "[agent] queue = 1\n", `xdr.conf:1: unexpected "queue = 1" after the section header`},

	// Placement of keys.
	{"duplicate key", "[agent]\nqueue = 1\n\nqueue = 2\n", `xdr.conf:4: key "queue" already set in [agent] on line 2`},
	{"duplicate top-level key", "socket = \"/a\"\nsocket = \"/a\"\n", `xdr.conf:2: key "socket" already set at the top level on line 1`},
	{"unshared top-level key", "queue = 1\n", `xdr.conf:1: key "queue" is not allowed at the top level: only socket and log-level are shared; put it under [agent] or [aggregator]`},
	{"shared key also in section", "log-level = \"info\"\n[aggregator]\nlog-level = \"debug\"\n", `xdr.conf:3: key "log-level" in [aggregator] is already set at the top level on line 1 (set it in one place)`},
	{"config in file", "[agent]\nconfig = \"/etc/xdr/other.conf\"\n", `xdr.conf:2: "config" cannot be set in the configuration file, only on the command line`},
	{"version in file", "[aggregator]\nversion = true\n", `xdr.conf:2: "version" cannot be set in the configuration file, only on the command line`},
	{"help at top level", "help = true\n", `xdr.conf:1: "help" cannot be set in the configuration file, only on the command line`},
	{"cpuprofile in file", "[agent]\ncpuprofile = \"/tmp/p\"\n", `xdr.conf:2: "cpuprofile" cannot be set in the configuration file, only on the command line`},

	// Strings.
	{"unterminated string", "socket = \"/s\n", `xdr.conf:1: unterminated string (strings end on the line they start)`},
	{"backslash at end", "socket = \"/s\\\n", `xdr.conf:1: unterminated string (strings end on the line they start)`},
	{"multi-line string", "socket = \"\"\"/s\"\"\"\n", `xdr.conf:1: multi-line strings are not supported`},
	{"literal string", "socket = '/s'\n", `xdr.conf:1: literal strings ('...') are not supported; use "..." and escape \ as \\`},
	{"raw tab in string", "socket = \"a\tb\"\n", `xdr.conf:1: control character U+0009 in a string (write a tab as \t)`},
	{"raw control in string", "socket = \"a\x1bb\"\n", `xdr.conf:1: control character U+001B in a string (write a tab as \t)`},
	{"escape r", `socket = "a\r"`, `xdr.conf:1: unsupported escape \r in a string (supported: \" \\ \n \t \uXXXX)`},
	{"escape b", `socket = "a\b"`, `xdr.conf:1: unsupported escape \b in a string (supported: \" \\ \n \t \uXXXX)`},
	{"escape U", `socket = "\U0001F600"`, `xdr.conf:1: unsupported escape \U in a string (supported: \" \\ \n \t \uXXXX)`},
	{"escape x", `socket = "\x41"`, `xdr.conf:1: unsupported escape \x in a string (supported: \" \\ \n \t \uXXXX)`},
	{"escape quote", `socket = "\'"`, `xdr.conf:1: unsupported escape \' in a string (supported: \" \\ \n \t \uXXXX)`},
	{"escape space", `socket = "\ "`, `xdr.conf:1: unsupported escape \  in a string (supported: \" \\ \n \t \uXXXX)`},
	{"escape control", "socket = \"\\\x01\"", `xdr.conf:1: unsupported escape \ followed by U+0001 in a string (supported: \" \\ \n \t \uXXXX)`},
	{"short u escape", `socket = "\u12"`, `xdr.conf:1: \u must be followed by 4 hexadecimal digits`},
	{"bad u escape", `socket = "\u12G4"`, `xdr.conf:1: \u must be followed by 4 hexadecimal digits`},
	{"signed u escape", `socket = "\u+123"`, `xdr.conf:1: \u must be followed by 4 hexadecimal digits`},
	{"surrogate", `socket = "\uD800"`, `xdr.conf:1: \uD800 is not a Unicode scalar value`},

	// Numbers, dates and other values.
	{"float", "[agent]\nqueue = 1.5\n", `xdr.conf:2: floats are not supported: "1.5"`},
	{"float exponent", "[agent]\nqueue = 1e6\n", `xdr.conf:2: floats are not supported: "1e6"`},
	{"float negative exponent", "[agent]\nqueue = -2E-3\n", `xdr.conf:2: floats are not supported: "-2E-3"`},
	{"inf", "[agent]\nqueue = +inf\n", `xdr.conf:2: floats are not supported: "+inf"`},
	{"nan", "[agent]\nqueue = nan\n", `xdr.conf:2: floats are not supported: "nan"`},
	{"hex", "[agent]\nqueue = 0x10\n", `xdr.conf:2: only decimal integers are supported: "0x10"`},
	{"octal", "[aggregator]\nsocket-mode = 0o600\n", `xdr.conf:2: only decimal integers are supported: "0o600"`},
	{"binary", "[agent]\nqueue = 0b101\n", `xdr.conf:2: only decimal integers are supported: "0b101"`},
	{"leading zero", "[aggregator]\nsocket-mode = 0600\n", `xdr.conf:2: invalid integer "0600" (decimal digits, no leading zero, _ only between digits)`},
	{"double underscore", "[agent]\nqueue = 1__0\n", `xdr.conf:2: invalid integer "1__0" (decimal digits, no leading zero, _ only between digits)`},
	{"trailing underscore", "[agent]\nqueue = 10_\n", `xdr.conf:2: invalid integer "10_" (decimal digits, no leading zero, _ only between digits)`},
	{"leading underscore", "[agent]\nqueue = _10\n", `xdr.conf:2: invalid value "_10": want a "string", an integer, true, false or an array of strings`},
	{"sign only", "[agent]\nqueue = -\n", `xdr.conf:2: invalid value "-": want a "string", an integer, true, false or an array of strings`},
	{"double sign", "[agent]\nqueue = +-1\n", `xdr.conf:2: invalid integer "+-1" (decimal digits, no leading zero, _ only between digits)`},
	{"too large", "[agent]\nqueue = 9223372036854775808\n", `xdr.conf:2: integer "9223372036854775808" does not fit in 64 bits`},
	{"too small", "[agent]\nqueue = -9_223_372_036_854_775_809\n", `xdr.conf:2: integer "-9_223_372_036_854_775_809" does not fit in 64 bits`},
	{"date", "[aggregator]\nvehicle-id = 1979-05-27\n", `xdr.conf:2: dates and times are not supported: "1979-05-27" (quote it if it is a string)`},
	{"date time", "[aggregator]\nvehicle-id = 1979-05-27T07:32:00Z\n", `xdr.conf:2: dates and times are not supported: "1979-05-27T07:32:00Z" (quote it if it is a string)`},
	{"time", "[aggregator]\nvehicle-id = 07:32:00\n", `xdr.conf:2: dates and times are not supported: "07:32:00" (quote it if it is a string)`},
	{"capitalised boolean", "[aggregator]\noffline = True\n", `xdr.conf:2: invalid value "True": want a "string", an integer, true, false or an array of strings`},
	{"bare word", "socket = /run/xdr/agent.sock\n", `xdr.conf:1: invalid value "/run/xdr/agent.sock": want a "string", an integer, true, false or an array of strings`},
	{"inline table", "[agent]\nqueue = { a = 1 }\n", `xdr.conf:2: inline tables are not supported`},
	{"equals twice", "[agent]\nqueue = = 1\n", `xdr.conf:2: expected a value, found "= 1"`},

	// Arrays.
	{"unterminated array", "[aggregator]\nallow-uid = [\"0\",\n", `xdr.conf:2: unterminated array (arrays must end on the line they start)`},
	{"multi-line array", "[aggregator]\nallow-uid = [\n  \"0\",\n]\n", `xdr.conf:2: unterminated array (arrays must end on the line they start)`},
	{"comment in array", "[aggregator]\nallow-uid = [\"0\" # root\n", `xdr.conf:2: unterminated array (arrays must end on the line they start)`},
	{"array of integers", "[aggregator]\nallow-uid = [0, 1000]\n", `xdr.conf:2: arrays may hold only "strings", found "0, 1000]"`},
	{"nested array", "[aggregator]\nallow-uid = [[\"0\"]]\n", `xdr.conf:2: arrays may hold only "strings", found "[\"0\"]]"`},
	{"array of literal strings", "[aggregator]\nallow-uid = ['0']\n", `xdr.conf:2: arrays may hold only "strings", found "'0']"`},
	{"array with multi-line string", "[aggregator]\nallow-uid = [\"\"\"0\"\"\"]\n", `xdr.conf:2: multi-line strings are not supported`},
	{"leading comma", "[aggregator]\nallow-uid = [,]\n", `xdr.conf:2: expected a string or "]" in the array, found ","`},
	{"double comma", "[aggregator]\nallow-uid = [\"0\",,]\n", `xdr.conf:2: expected a string or "]" in the array, found ","`},
	{"missing comma", "[aggregator]\nallow-uid = [\"0\" \"1\"]\n", `xdr.conf:2: expected "," or "]" after an array item, found "\"1\"]"`},
	{"bad string in array", "[aggregator]\nallow-uid = [\"\\q\"]\n", `xdr.conf:2: unsupported escape \q in a string (supported: \" \\ \n \t \uXXXX)`},
	{"text after array", "[aggregator]\nallow-uid = [] x\n", `xdr.conf:2: unexpected "x" after the value`},

	// The first error wins, with its own line.
	{"first error", "# ok\n[agent]\nqueue = 1\nqueue = 1.5\nqueue = 2\n", `xdr.conf:4: floats are not supported: "1.5"`},
	{"long text quoted short", "socket = \"/s\" x" + strings.Repeat("é", 30) + "\n", `xdr.conf:1: unexpected "x` + strings.Repeat("é", 19) + `"... after the value`},
}

func TestParseErrors(t *testing.T) {
	for _, tt := range parseErrorTests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("xdr.conf", []byte(tt.in))
			if err == nil {
				t.Fatalf("Parse accepted %q: %+v", tt.in, f.entries)
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseErrorNamesFile(t *testing.T) {
	_, err := Parse("/etc/xdr/xdr.conf", []byte("[agent]\n\nqueue = 0x1\n"))
	if err == nil || !strings.HasPrefix(err.Error(), "/etc/xdr/xdr.conf:3: ") {
		t.Errorf("Parse error = %v, want it to start with /etc/xdr/xdr.conf:3:", err)
	}
}
