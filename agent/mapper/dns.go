package mapper

import (
	"encoding/binary"
	"strings"
)

// parseDNSQuery reads the first question of a DNS query message (RFC
// 1035 section 4.1): the name, as dotted text without the trailing dot,
// and the query type. b is untrusted (the first bytes of a datagram a
// process sent to port 53); ok is false unless b holds a query with a
// complete, uncompressed first question. Label bytes outside printable
// ASCII, and dots within labels, are escaped as \DDD (RFC 4343).
func parseDNSQuery(b []byte) (name string, qtype uint16, ok bool) {
	const headerLen, maxName = 12, 255
	if len(b) < headerLen {
		return "", 0, false
	}
	flags := binary.BigEndian.Uint16(b[2:4])
	if flags&0x8000 != 0 || binary.BigEndian.Uint16(b[4:6]) == 0 {
		// A response, or no question.
		return "", 0, false
	}
	var sb strings.Builder
	i, wire := headerLen, 0
	for {
		if i >= len(b) {
			return "", 0, false
		}
		n := int(b[i])
		i++
		wire += n + 1
		if n&0xc0 != 0 || wire > maxName {
			// Compression pointers have no place in a question
			// sent first; oversize names are malformed.
			return "", 0, false
		}
		if n == 0 {
			break
		}
		if i+n > len(b) {
			return "", 0, false
		}
		if sb.Len() > 0 {
			sb.WriteByte('.')
		}
		for _, c := range b[i : i+n] {
			if c <= ' ' || c > '~' || c == '.' || c == '\\' {
				sb.WriteByte('\\')
				sb.WriteByte('0' + c/100)
				sb.WriteByte('0' + c/10%10)
				sb.WriteByte('0' + c%10)
				continue
			}
			sb.WriteByte(c)
		}
		i += n
	}
	if i+4 > len(b) {
		return "", 0, false
	}
	if sb.Len() == 0 {
		return ".", binary.BigEndian.Uint16(b[i:]), true
	}
	return sb.String(), binary.BigEndian.Uint16(b[i:]), true
}
