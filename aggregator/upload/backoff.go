package upload

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// backoff returns the wait after n ≥ 1 consecutive failures, with full
// jitter: uniform in [0, ceiling], where the ceiling starts at lo and
// doubles with each failure up to hi. rnd(k) returns a number in [0, k).
func backoff(n int, lo, hi time.Duration, rnd func(int64) int64) time.Duration {
	ceil := lo
	for i := 1; i < n && ceil < hi; i++ {
		ceil *= 2 // no overflow: New bounds hi
	}
	ceil = min(ceil, hi)
	return time.Duration(rnd(int64(ceil) + 1))
}

// maxRetryAfter bounds what parseRetryAfter returns; the caller caps it
// further.
const maxRetryAfter = 1 << 32 * time.Second

// parseRetryAfter reads a Retry-After header value: a number of seconds
// or an HTTP date (a date in the past means now). ok is false for an
// empty or invalid value.
func parseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		secs, err := strconv.ParseUint(v, 10, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return 0, false
		}
		return min(time.Duration(min(secs, 1<<32))*time.Second, maxRetryAfter), true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return min(max(t.Sub(now), 0), maxRetryAfter), true
}
