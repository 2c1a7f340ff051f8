// Package config reads the XDR sensor's configuration file
// (/etc/xdr/xdr.conf) and applies it to a command's flag set, so that the
// file supplies defaults and the command line overrides them.
//
// # Keys and sections
//
// The keys are the command-line flag names of the binaries, without
// dashes in front. Keys before any section are shared by xdr-agent and
// xdr-aggregator and may only be socket and log-level. Section [agent]
// holds xdr-agent flags and section [aggregator] holds xdr-aggregator
// flags; no other section exists, and each may appear once. A key set at
// the top level may not be set again in a section. The flags config,
// version, help and cpuprofile are accepted on the command line only.
//
// A binary applies the top-level keys and its own section. It checks the
// other section only for syntax, since it does not know the other
// binary's flags.
//
// # Format
//
// The file is a strict subset of TOML 1.0, so every file accepted here is
// valid TOML. It is UTF-8 text (no byte order mark) with LF or CRLF line
// endings. Each line is blank (spaces and tabs only), a comment (# up to
// the end of the line, with no control character but tab), a section
// header ([agent] or [aggregator]) or key = value, where the key is bare
// (letters, digits, _ and -). A comment may also end a header or a
// key = value line. A value is one of:
//
//   - a basic string: "..." with the escapes \" \\ \n \t and \uXXXX
//     (a Unicode scalar value); no other escape and no raw control
//     character, tab included;
//   - a decimal integer fitting in 64 bits: an optional sign, no leading
//     zero, and _ only between two digits (1_000_000);
//   - a boolean: true or false;
//   - an array of basic strings on one line: ["a", "b"], [] or
//     ["a", "b",] (a trailing comma is allowed).
//
// Everything else that TOML allows is rejected with an error naming the
// file and line ("xdr.conf:12: ..."): floats, dates and times,
// hexadecimal, octal and binary integers, literal and multi-line strings,
// the escapes \b \f \r and \U, inline tables, multi-line arrays, arrays
// of anything but strings, quoted and dotted keys, dotted or quoted
// section names and arrays of tables. A key or section given twice is an
// error, as in TOML.
//
// # Values
//
// A value must have the type of its flag: a boolean for a boolean flag, an
// integer for an integer flag, a string for a string or duration flag
// ("5m", "100ms"). An array is accepted for a string flag and becomes its
// comma-separated form, which is how the list flags (allow-uid,
// disable-rules, rule-*) take several items; an item of such an array may
// therefore hold no comma and may not be blank. The flag's own parser then
// checks the value, and a value it rejects is an error naming the line.
// Checks made later by the command (a collector method, a socket mode)
// can name the line too, through [File.Origin].
package config
