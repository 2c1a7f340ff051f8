package upload

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xdr-sensor/xdr/aggregator/bundle"
)

// Defaults of Options.
const (
	defaultTimeout    = 2 * time.Minute
	defaultBackoffMin = time.Second
	defaultBackoffMax = 10 * time.Minute
	defaultRescan     = time.Minute
	// limitBackoffMax bounds BackoffMax, so that a wait is never longer
	// than a day and the backoff arithmetic cannot overflow.
	limitBackoffMax = 24 * time.Hour
)

// Options configures an Uploader. URL, Dir and Key are required; other
// zero fields select the defaults.
type Options struct {
	// URL is the server's base URL, https only: bundles are sent to
	// URL/v1/bundles/NAME. It may have a path but no credentials, query
	// or fragment.
	URL string
	// Dir is the data directory the bundle writer fills.
	Dir string
	// Prefix selects the bundles by name, as bundle.WriterOptions.Prefix;
	// default that of the writer.
	Prefix string
	// Key is the agent key, sent as a bearer token; see LoadKey.
	Key []byte
	// TLS configures the connection: RootCAs (nil: the system's roots)
	// and Certificates for mTLS; see TLSConfig. It is cloned, and its
	// MinVersion raised to TLS 1.2. Nil: system roots, no client
	// certificate.
	TLS *tls.Config
	// AgentID, DeviceID and Version identify the sender, in the headers
	// X-Xdr-Agent-Id, X-Xdr-Device-Id and User-Agent; empty ones are
	// left out.
	AgentID, DeviceID, Version string
	// Timeout bounds one upload as a whole: connecting, sending the
	// bundle and reading the acknowledgement, so that a stalled server
	// cannot hold the Uploader. It must leave time to send the largest
	// bundle over the slowest link expected. Default 2 minutes.
	Timeout time.Duration
	// BackoffMin and BackoffMax shape the wait after a failure: drawn
	// at random from [0, BackoffMin] after the first failure, the bound
	// doubling with each consecutive failure up to BackoffMax. Defaults
	// 1 second and 10 minutes; BackoffMax is at most 24 hours.
	BackoffMin, BackoffMax time.Duration
	// Rescan is how often the directory is listed for bundles without a
	// Notify. Default 1 minute.
	Rescan time.Duration
	// Logger; default discards.
	Logger *slog.Logger
}

// Uploader uploads the sealed bundles of a directory; see the package
// comment. Run does the work; Notify and Stats may be called from any
// goroutine, during Run or not. An Uploader holds no resource outside Run
// and needs no Close.
type Uploader struct {
	dir, prefix string
	base        *url.URL
	auth        string // Authorization header value
	agentID     string
	deviceID    string
	userAgent   string
	timeout     time.Duration
	backoffMin  time.Duration
	backoffMax  time.Duration
	rescan      time.Duration
	transport   *http.Transport
	client      *http.Client
	log         *slog.Logger
	rand        func(n int64) int64 // in [0, n); tests substitute it
	notify      chan struct{}
	running     atomic.Bool

	// Run's state.
	linkFails int       // consecutive failures that hold back every bundle
	retryAt   time.Time // no upload before, after such failures
	held      map[string]*heldBundle

	mu    sync.Mutex
	stats Stats
}

// heldBundle is a bundle that failed on its own (refused by the server,
// unreadable, or acknowledged but not deleted) and waits for its own
// backoff while the others go.
type heldBundle struct {
	fails int
	until time.Time
	// acked: the server acknowledged the bundle but deleting it failed;
	// the next attempt only deletes it.
	acked bool
	seen  bool // in the latest listing
}

// New checks the options and returns an Uploader. It does not connect.
func New(o *Options) (*Uploader, error) {
	if o == nil {
		return nil, errors.New("upload: no options given")
	}
	u := &Uploader{
		dir:        o.Dir,
		prefix:     o.Prefix,
		agentID:    o.AgentID,
		deviceID:   o.DeviceID,
		userAgent:  "xdr-aggregator/" + cmp.Or(o.Version, "unknown"),
		timeout:    cmp.Or(o.Timeout, defaultTimeout),
		backoffMin: cmp.Or(o.BackoffMin, defaultBackoffMin),
		backoffMax: cmp.Or(o.BackoffMax, defaultBackoffMax),
		rescan:     cmp.Or(o.Rescan, defaultRescan),
		log:        o.Logger,
		rand:       rand.Int64N,
		notify:     make(chan struct{}, 1),
		held:       make(map[string]*heldBundle),
	}
	switch {
	case o.Dir == "":
		return nil, errors.New("upload: no data directory given")
	case strings.ContainsRune(o.Prefix, '/'):
		return nil, fmt.Errorf("upload: bundle prefix %q contains a path separator", o.Prefix)
	case u.timeout < 0 || u.backoffMin < 0 || u.backoffMax < 0 || u.rescan < 0:
		return nil, errors.New("upload: negative duration in the options")
	case u.backoffMax > limitBackoffMax:
		return nil, fmt.Errorf("upload: maximum backoff %v longer than %v", u.backoffMax, limitBackoffMax)
	case u.backoffMin > u.backoffMax:
		return nil, fmt.Errorf("upload: minimum backoff %v longer than the maximum %v", u.backoffMin, u.backoffMax)
	}
	for _, h := range []struct{ name, v string }{{"agent id", o.AgentID}, {"device id", o.DeviceID}, {"version", o.Version}} {
		if strings.ContainsFunc(h.v, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
			return nil, fmt.Errorf("upload: %s %q: only printable ASCII can be sent in an HTTP header", h.name, h.v)
		}
	}
	if err := checkKey(o.Key); err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	u.auth = "Bearer " + string(o.Key)
	var err error
	if u.base, err = parseURL(o.URL); err != nil {
		return nil, err
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.TLS != nil {
		tlsConf = o.TLS.Clone()
		tlsConf.MinVersion = max(tlsConf.MinVersion, tls.VersionTLS12)
	}
	u.transport = &http.Transport{
		Proxy:       http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		// HTTP/1.1: no ForceAttemptHTTP2 with a custom TLS config.
		TLSClientConfig:        tlsConf,
		ExpectContinueTimeout:  time.Second,
		MaxIdleConns:           1,
		IdleConnTimeout:        90 * time.Second,
		DisableCompression:     true,
		MaxResponseHeaderBytes: maxHeaderBytes,
	}
	u.client = &http.Client{
		Transport: u.transport,
		// A redirect is not an acknowledgement, and the bundle and key
		// go to the configured server only.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	if u.log == nil {
		u.log = slog.New(slog.DiscardHandler)
	}
	u.log = u.log.WithGroup("upload")
	return u, nil
}

// parseURL checks the base URL.
func parseURL(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("upload: no server URL given")
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("upload: server URL: %w", err)
	}
	switch {
	case u.Scheme != "https":
		return nil, fmt.Errorf("upload: server URL %q: want https://HOST[:PORT][/PATH] (bundles are only sent over TLS)", u.Redacted())
	case u.Host == "":
		return nil, fmt.Errorf("upload: server URL %q has no host", u.Redacted())
	case u.User != nil:
		return nil, fmt.Errorf("upload: server URL %q must not hold credentials (the agent key authenticates)", u.Redacted())
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return nil, fmt.Errorf("upload: server URL %q must not have a query or fragment", u.Redacted())
	}
	return u, nil
}

// Notify tells the Uploader that a bundle was sealed, so that it lists
// the directory at once rather than at the next rescan. It never blocks;
// calls while one is pending are merged. Call it from the bundle writer's
// OnSeal hook. During a backoff it does not cut the wait short.
func (u *Uploader) Notify() {
	select {
	case u.notify <- struct{}{}:
	default:
	}
}

// Run uploads bundles until ctx is done, then returns nil, promptly even
// in the middle of an upload (which is then not acknowledged, and done
// again by the next Run). Failures are retried, never returned: see
// Stats. It returns an error only if another Run of the Uploader is in
// progress.
func (u *Uploader) Run(ctx context.Context) error {
	if !u.running.CompareAndSwap(false, true) {
		return errors.New("upload: Run is already running")
	}
	defer u.running.Store(false)
	defer u.transport.CloseIdleConnections()
	u.log.Info("uploading bundles", "url", u.base.String(), "dir", u.dir)
	for ctx.Err() == nil {
		if time.Now().Before(u.retryAt) {
			u.sleep(ctx, u.retryAt, false)
			continue
		}
		files, err := bundle.ListSealed(u.dir, u.prefix)
		if err != nil {
			u.linkFailed(&outcome{kind: failLocal, err: err})
			continue
		}
		b, wake := u.pick(files, time.Now())
		if b == nil {
			u.sleep(ctx, wake, true)
			continue
		}
		u.attempt(ctx, b)
	}
	return nil
}

// sleep waits until the time until (zero: no limit) or ctx is done. With
// early set it also returns on Notify and after the rescan period; without
// (a backoff of every bundle) these only refresh the pending counts.
func (u *Uploader) sleep(ctx context.Context, until time.Time, early bool) {
	u.setNextAttempt(until)
	defer u.setNextAttempt(time.Time{})
	var deadline <-chan time.Time
	if !until.IsZero() {
		t := time.NewTimer(time.Until(until))
		defer t.Stop()
		deadline = t.C
	}
	rescan := time.NewTicker(u.rescan)
	defer rescan.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-deadline:
			return
		case <-u.notify:
		case <-rescan.C:
		}
		if early {
			return
		}
		// A listing that fails only leaves the counts as they were;
		// the next attempt reports the failure.
		if files, err := bundle.ListSealed(u.dir, u.prefix); err == nil {
			u.setPending(files)
		}
	}
}

// pick returns the bundle to upload next: the oldest critical one not
// held back, else the oldest other one not held back. If there is none,
// wake is when the first held bundle is due (zero if none is held). It
// updates the pending counts and forgets held bundles that are gone.
func (u *Uploader) pick(files []bundle.Sealed, now time.Time) (b *bundle.Sealed, wake time.Time) {
	u.setPending(files)
	for i := range files {
		f := &files[i]
		h := u.held[f.Name]
		if h != nil {
			h.seen = true
			if h.until.After(now) {
				if wake.IsZero() || h.until.Before(wake) {
					wake = h.until
				}
				continue
			}
		}
		if b == nil || f.Critical && !b.Critical {
			b = f
		}
	}
	for name, h := range u.held {
		if !h.seen {
			delete(u.held, name)
		}
		h.seen = false
	}
	u.syncHeld()
	return b, wake
}

// attempt uploads b and deletes it once acknowledged, or records the
// failure and plans the retry.
func (u *Uploader) attempt(ctx context.Context, b *bundle.Sealed) {
	if h := u.held[b.Name]; h != nil && h.acked {
		u.remove(b)
		return
	}
	start := time.Now()
	o := u.put(ctx, b)
	switch o.kind {
	case canceled:
		return
	case vanished:
		delete(u.held, b.Name)
		u.syncHeld()
		u.mu.Lock()
		u.stats.Vanished++
		u.mu.Unlock()
		u.log.Debug("bundle gone before upload (deleted by the quota)", "bundle", b.Name)
		return
	case acked:
		if u.linkFails > 0 {
			u.log.Info("upload link back", "failures", u.linkFails)
		}
		u.linkFails, u.retryAt = 0, time.Time{}
		u.mu.Lock()
		u.stats.Uploaded++
		u.stats.UploadedBytes += uint64(o.size)
		u.stats.LastSuccess = time.Now()
		u.stats.Backoff = 0
		u.mu.Unlock()
		u.log.Info("bundle uploaded", "bundle", b.Name, "bytes", o.size, "critical", b.Critical, "duration", time.Since(start).Round(time.Millisecond))
		h := u.held[b.Name]
		if h == nil {
			h = &heldBundle{}
			u.held[b.Name] = h
		}
		h.acked = true
		u.remove(b)
	case failRejected, failLocal:
		u.bundleFailed(b, &o)
	default:
		u.linkFailed(&o)
	}
}

// remove deletes an acknowledged bundle. A bundle already gone (deleted
// by the quota meanwhile) is fine; a bundle that cannot be deleted is
// held back and deleting it tried again, without uploading it again.
func (u *Uploader) remove(b *bundle.Sealed) {
	err := os.Remove(b.Path)
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		delete(u.held, b.Name)
		u.syncHeld()
		return
	}
	u.bundleFailed(b, &outcome{kind: failLocal, err: fmt.Errorf("delete acknowledged bundle: %w", err)})
}

// bundleFailed records a failure of b alone and holds it back for its own
// backoff.
func (u *Uploader) bundleFailed(b *bundle.Sealed, o *outcome) {
	h := u.held[b.Name]
	if h == nil {
		h = &heldBundle{}
		u.held[b.Name] = h
	}
	h.fails++
	wait := backoff(h.fails, u.backoffMin, u.backoffMax, u.rand)
	h.until = time.Now().Add(wait)
	u.recordFailure(o)
	u.syncHeld()
	u.log.Warn("bundle held back; the others go on", "bundle", b.Name, "kind", o.kind.String(), "err", o.err,
		"failures", h.fails, "retry_in", wait.Round(time.Millisecond))
}

// linkFailed records a failure that holds back every bundle and plans the
// next attempt.
func (u *Uploader) linkFailed(o *outcome) {
	u.linkFails++
	var wait time.Duration
	if o.kind == failAuth {
		wait = u.backoffMax // a rejected key does not fix itself soon
	} else {
		wait = backoff(u.linkFails, u.backoffMin, u.backoffMax, u.rand)
		if o.retryAfter > 0 {
			wait = max(wait, min(o.retryAfter, u.backoffMax))
		}
	}
	u.retryAt = time.Now().Add(wait)
	u.recordFailure(o)
	u.mu.Lock()
	u.stats.Backoff = wait
	u.mu.Unlock()
	if o.kind == failAuth {
		u.log.Error("agent key rejected by the server: check the agent key (and client certificate) configured", "err", o.err, "retry_in", wait)
		return
	}
	u.log.Warn("upload failed", "kind", o.kind.String(), "err", o.err, "failures", u.linkFails, "retry_in", wait.Round(time.Millisecond))
}

func (u *Uploader) recordFailure(o *outcome) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.stats.Failures.add(o.kind)
	u.stats.LastError = o.err.Error()
	u.stats.LastErrorTime = time.Now()
}

func (u *Uploader) setPending(files []bundle.Sealed) {
	var n int64
	for _, f := range files {
		n += f.Size
	}
	u.mu.Lock()
	u.stats.Pending, u.stats.PendingBytes = len(files), n
	u.mu.Unlock()
}

func (u *Uploader) syncHeld() {
	u.mu.Lock()
	u.stats.Held = len(u.held)
	u.mu.Unlock()
}

func (u *Uploader) setNextAttempt(t time.Time) {
	u.mu.Lock()
	u.stats.NextAttempt = t
	u.mu.Unlock()
}
