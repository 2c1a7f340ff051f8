package upload

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// FuzzCheckAck feeds server answers to checkAck: it must not panic, and
// accept only a body that names the bundle and its sum.
func FuzzCheckAck(f *testing.F) {
	const name = "xdr-20250304T050607.000Z-000001.gpbz"
	sum := strings.Repeat("0f", 32)
	f.Add([]byte(`{"name":"`+name+`","sha256":"`+sum+`"}`), name, sum)
	f.Add([]byte(`{"name":"`+name+`","sha256":"`+sum+`","name":"x"}`), name, sum)
	f.Add([]byte(`{"NAME":"`+name+`","Sha256":"`+sum+`"}`), name, sum)
	f.Add([]byte(`null`), "", "")
	f.Add([]byte(`{"name":"\u0078"}`), "x", "")
	f.Add([]byte(``), name, sum)
	f.Fuzz(func(t *testing.T, body []byte, name, sum string) {
		if checkAck(body, name, sum) != nil {
			return
		}
		var a ack
		if err := json.Unmarshal(body, &a); err != nil || a.Name != name || !strings.EqualFold(a.SHA256, sum) || len(body) > maxAckBytes {
			t.Errorf("checkAck accepted %q for %q %q", body, name, sum)
		}
	})
}

// FuzzParseRetryAfter feeds Retry-After values to parseRetryAfter: it must
// not panic, and return a wait within [0, maxRetryAfter].
func FuzzParseRetryAfter(f *testing.F) {
	now := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, s := range []string{"120", "0", "-1", "99999999999999999999", now.Format(http.TimeFormat), "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := parseRetryAfter(v, now)
		if d < 0 || d > maxRetryAfter || !ok && d != 0 {
			t.Errorf("parseRetryAfter(%q) = %v, %v", v, d, ok)
		}
	})
}
