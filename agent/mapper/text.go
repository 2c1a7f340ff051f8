package mapper

import "unicode/utf8"

const hexDigits = "0123456789abcdef"

// cleanText makes s valid UTF-8, as protobuf strings must be: bytes that
// are not UTF-8 become \xNN escapes (and a literal backslash before x is
// left as it is: the escape is for people, not a reversible encoding).
// Command lines and paths are bytes on Linux; without this an event with
// such an argument could not be sent.
func cleanText(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	b := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 {
			c := s[i]
			b = append(b, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
			i++
			continue
		}
		b = append(b, s[i:i+size]...)
		i += size
	}
	return string(b)
}

// cleanList applies cleanText to every element, copying the slice only
// when something changes (the table's slices are shared and read-only).
func cleanList(l []string) []string {
	for i, s := range l {
		if c := cleanText(s); c != s {
			out := make([]string, len(l))
			copy(out, l[:i])
			out[i] = c
			for j := i + 1; j < len(l); j++ {
				out[j] = cleanText(l[j])
			}
			return out
		}
	}
	return l
}
