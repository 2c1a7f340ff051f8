package upload

import (
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestBackoff(t *testing.T) {
	const lo, hi = time.Second, 10 * time.Second
	tests := []struct {
		name     string
		n        int
		draw     func(n int64) int64
		wantCeil time.Duration // the bound passed to the draw is wantCeil+1
		want     time.Duration
	}{
		{"first failure, longest", 1, func(n int64) int64 { return n - 1 }, lo, lo},
		{"first failure, shortest", 1, func(int64) int64 { return 0 }, lo, 0},
		{"second failure doubles", 2, func(n int64) int64 { return n - 1 }, 2 * lo, 2 * lo},
		{"fourth failure", 4, func(n int64) int64 { return n / 2 }, 8 * lo, 4 * lo},
		{"capped", 5, func(n int64) int64 { return n - 1 }, hi, hi},
		{"capped long after", 1_000_000, func(n int64) int64 { return n - 1 }, hi, hi},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var bound int64
			got := backoff(tt.n, lo, hi, func(n int64) int64 { bound = n; return tt.draw(n) })
			if diff := cmp.Diff([]time.Duration{tt.wantCeil + 1, tt.want}, []time.Duration{time.Duration(bound), got}); diff != "" {
				t.Errorf("backoff(%d): [draw bound, wait] (-want +got):\n%s", tt.n, diff)
			}
		})
	}
}

func TestBackoffJitterWithinBounds(t *testing.T) {
	const lo, hi = 100 * time.Millisecond, 3 * time.Second
	for n := 1; n <= 8; n++ {
		ceil := min(lo<<(n-1), hi)
		for range 1000 {
			if d := backoff(n, lo, hi, rand.Int64N); d < 0 || d > ceil {
				t.Fatalf("backoff(%d) = %v, want within [0, %v]", n, d, ceil)
			}
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"3", 3 * time.Second, true},
		{" 120 ", 2 * time.Minute, true},
		{"0", 0, true},
		{"99999999999999999999999", maxRetryAfter, true},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"Tue, 04 Mar 2025 05:06:37 GMT", 30 * time.Second, true},
		{"", 0, false},
		{"-1", 0, false},
		{"+5", 0, false},
		{"1.5", 0, false},
		{"5s", 0, false},
		{"soon", 0, false},
	}
	for _, tt := range tests {
		d, ok := parseRetryAfter(tt.in, now)
		if d != tt.want || ok != tt.wantOK {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, d, ok, tt.want, tt.wantOK)
		}
	}
}

func TestCheckAck(t *testing.T) {
	const name = "xdr-20250304T050607.000Z-000001.gpbz"
	sum := strings.Repeat("ab", 32)
	tests := []struct {
		name, body string
		wantErr    string // substring; "" for an acknowledgement
	}{
		{"ack", `{"name":"` + name + `","sha256":"` + sum + `"}`, ""},
		{"upper-case sha256", `{"name":"` + name + `","sha256":"` + strings.ToUpper(sum) + `"}`, ""},
		{"extra fields", `{"name":"` + name + `","sha256":"` + sum + `","stored":true}`, ""},
		{"other name", `{"name":"xdr-x.gpbz","sha256":"` + sum + `"}`, `for bundle "xdr-x.gpbz"`},
		{"other sha256", `{"name":"` + name + `","sha256":"00"}`, `sha256 "00"`},
		{"no sha256", `{"name":"` + name + `"}`, `sha256 ""`},
		{"empty", ``, "not the expected JSON"},
		{"null", `null`, "for bundle"},
		{"array", `[]`, "not the expected JSON"},
		{"trailing garbage", `{"name":"` + name + `","sha256":"` + sum + `"} x`, "not the expected JSON"},
		{"too long", `{"name":"` + name + `","sha256":"` + sum + `","pad":"` + strings.Repeat("x", maxAckBytes) + `"}`, "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkAck([]byte(tt.body), name, sum)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("checkAck = %v, want error with %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	ok := func() *Options {
		return &Options{URL: "https://collector.example/xdr", Dir: "/var/lib/xdr", Key: []byte("key")}
	}
	tests := []struct {
		name    string
		edit    func(o *Options)
		wantErr string
	}{
		{"no directory", func(o *Options) { o.Dir = "" }, "no data directory"},
		{"no URL", func(o *Options) { o.URL = "" }, "no server URL"},
		{"http", func(o *Options) { o.URL = "http://collector.example" }, "only sent over TLS"},
		{"no scheme", func(o *Options) { o.URL = "collector.example" }, "only sent over TLS"},
		{"no host", func(o *Options) { o.URL = "https:///v1" }, "has no host"},
		{"credentials", func(o *Options) { o.URL = "https://user:secret@collector.example" }, "must not hold credentials"},
		{"query", func(o *Options) { o.URL = "https://collector.example/?a=b" }, "query or fragment"},
		{"fragment", func(o *Options) { o.URL = "https://collector.example/#x" }, "query or fragment"},
		{"bad URL", func(o *Options) { o.URL = "https://collector.example/%zz" }, "server URL"},
		{"no key", func(o *Options) { o.Key = nil }, "agent key is empty"},
		{"key with a space", func(o *Options) { o.Key = []byte("two words") }, "at byte 3"},
		{"agent id with a newline", func(o *Options) { o.AgentID = "a\nb" }, "agent id"},
		{"prefix with a slash", func(o *Options) { o.Prefix = "a/b" }, "path separator"},
		{"negative timeout", func(o *Options) { o.Timeout = -1 }, "negative duration"},
		{"backoff too long", func(o *Options) { o.BackoffMax = 48 * time.Hour }, "longer than 24h"},
		{"backoff bounds swapped", func(o *Options) { o.BackoffMin = time.Hour; o.BackoffMax = time.Minute }, "minimum backoff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := ok()
			tt.edit(o)
			_, err := New(o)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New = %v, want an error with %q", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q shows the URL's password", err)
			}
		})
	}
	if _, err := New(nil); err == nil {
		t.Error("New(nil) succeeded")
	}
	if _, err := New(ok()); err != nil {
		t.Errorf("New with valid options: %v", err)
	}
}

func TestLoadKey(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, content string
		want          string
		wantErr       string
	}{
		{"plain", "s3cr3t-key", "s3cr3t-key", ""},
		{"trailing newline", "s3cr3t-key\n", "s3cr3t-key", ""},
		{"surrounding space", "  \ts3cr3t-key \r\n", "s3cr3t-key", ""},
		{"empty", "", "", "is empty"},
		{"blank", "\n \n", "", "is empty"},
		{"inner space", "s3cr3t key", "", "at byte 6"},
		{"two lines", "s3cr3t\nkey", "", "at byte 6"},
		{"too large", strings.Repeat("k", maxKeyBytes+1), "", "larger than 4096 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_"))
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := LoadKey(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), path) {
					t.Errorf("LoadKey = %v, want an error naming the file, with %q", err, tt.wantErr)
				}
				if err != nil && strings.Contains(err.Error(), "s3cr3t") {
					t.Errorf("error %q shows the key", err)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Errorf("LoadKey = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	open := filepath.Join(dir, "world-readable")
	os.WriteFile(open, []byte("s3cr3t-key"), 0o644)
	os.Chmod(open, 0o644) // whatever the umask
	if _, err := LoadKey(open); err == nil || !strings.Contains(err.Error(), "readable by every user") {
		t.Errorf("LoadKey of a world-readable key = %v, want it refused", err)
	}
	missing := filepath.Join(dir, "missing")
	if _, err := LoadKey(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("LoadKey of a missing file = %v, want an error naming it", err)
	}
}
