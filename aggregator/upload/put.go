package upload

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/xdr-sensor/xdr/aggregator/bundle"
)

// Limits on what is read of an answer.
const (
	maxAckBytes    = 4096     // acknowledgement body
	maxTextBytes   = 256      // server text quoted in an error
	maxHeaderBytes = 64 << 10 // response headers
)

// The request; see PROTOCOL.md.
const (
	bundlesPath    = "v1/bundles"
	contentType    = "application/vnd.xdr.gpbz"
	headerSHA256   = "X-Xdr-Sha256"
	headerCritical = "X-Xdr-Critical"
	headerAgentID  = "X-Xdr-Agent-Id"
	headerDeviceID = "X-Xdr-Device-Id"
)

// outcome is the result of one upload attempt.
type outcome struct {
	kind       kind
	err        error         // for the failure kinds
	retryAfter time.Duration // Retry-After of a failServer answer
	size       int64         // bytes sent, for acked
}

// put uploads b once and judges the answer.
func (u *Uploader) put(ctx context.Context, b *bundle.Sealed) outcome {
	f, err := os.OpenFile(b.Path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return outcome{kind: vanished}
	}
	if err != nil {
		return outcome{kind: failLocal, err: fmt.Errorf("open bundle: %w", err)}
	}
	defer f.Close()
	size, sum, err := digest(f)
	if err != nil {
		return outcome{kind: failLocal, err: fmt.Errorf("read bundle %s: %w", b.Path, err)}
	}

	reqCtx, cancel := context.WithTimeout(ctx, u.timeout)
	defer cancel()
	target := u.base.JoinPath(bundlesPath, url.PathEscape(b.Name))
	req, err := http.NewRequestWithContext(reqCtx, http.MethodPut, target.String(), http.NoBody)
	if err != nil {
		return outcome{kind: failLocal, err: fmt.Errorf("make request: %w", err)}
	}
	if size > 0 {
		// The transport may send the body again on a fresh connection.
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(io.NewSectionReader(f, 0, size)), nil }
		req.Body, _ = req.GetBody()
		req.ContentLength = size
	}
	req.Header.Set("Authorization", u.auth)
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Expect", "100-continue")
	req.Header.Set("User-Agent", u.userAgent)
	req.Header.Set(headerSHA256, sum)
	req.Header.Set(headerCritical, strconv.FormatBool(b.Critical))
	if u.agentID != "" {
		req.Header.Set(headerAgentID, u.agentID)
	}
	if u.deviceID != "" {
		req.Header.Set(headerDeviceID, u.deviceID)
	}

	resp, err := u.client.Do(req)
	if err != nil {
		return u.transportFailure(ctx, reqCtx, err)
	}
	defer resp.Body.Close()
	switch code := resp.StatusCode; {
	case code == http.StatusOK || code == http.StatusCreated:
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxAckBytes+1))
		if err != nil {
			return u.transportFailure(ctx, reqCtx, fmt.Errorf("read acknowledgement: %w", err))
		}
		if err := checkAck(body, b.Name, sum); err != nil {
			return outcome{kind: failBadAck, err: fmt.Errorf("HTTP %d: %w", code, err)}
		}
		return outcome{kind: acked, size: size}
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return outcome{kind: failAuth, err: statusError(resp)}
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		o := outcome{kind: failServer, err: statusError(resp)}
		o.retryAfter, _ = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		return o
	case code >= 300 && code < 400:
		return outcome{kind: failServer, err: fmt.Errorf("server answered HTTP %d, a redirect to %q, which is not followed: check the server URL",
			code, clip(resp.Header.Get("Location")))}
	case code >= 400:
		return outcome{kind: failRejected, err: statusError(resp)}
	default:
		return outcome{kind: failBadAck, err: fmt.Errorf("server answered HTTP %d, which is not an acknowledgement (200 or 201)", code)}
	}
}

// digest returns the size and the hex SHA-256 of a regular file.
func digest(f *os.File) (int64, string, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, "", err
	}
	if !fi.Mode().IsRegular() {
		return 0, "", errors.New("not a regular file")
	}
	h := sha256.New()
	n, err := io.Copy(h, io.NewSectionReader(f, 0, fi.Size()))
	if err != nil {
		return 0, "", err
	}
	if n != fi.Size() {
		return 0, "", fmt.Errorf("file cut from %d to %d bytes while read", fi.Size(), n)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// transportFailure classifies a failed request or response read.
func (u *Uploader) transportFailure(ctx, reqCtx context.Context, err error) outcome {
	switch {
	case ctx.Err() != nil:
		return outcome{kind: canceled}
	case errors.Is(reqCtx.Err(), context.DeadlineExceeded):
		return outcome{kind: failTimeout, err: fmt.Errorf("upload not acknowledged within %v: %w", u.timeout, err)}
	}
	return outcome{kind: failNetwork, err: err}
}

// statusError describes an answer that is not an acknowledgement, with the
// start of the server's text.
func statusError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxTextBytes)) // the text only helps; a failed read leaves less of it
	if text := strings.TrimSpace(string(b)); text != "" {
		return fmt.Errorf("server answered HTTP %d %s: %q", resp.StatusCode, http.StatusText(resp.StatusCode), text)
	}
	return fmt.Errorf("server answered HTTP %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
}

// clip cuts a server-provided string for an error message.
func clip(s string) string {
	if len(s) > maxTextBytes {
		return s[:maxTextBytes] + "..."
	}
	return s
}

// ack is the acknowledgement body.
type ack struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
}

// checkAck reports whether body acknowledges the bundle with this file
// name and hex SHA-256.
func checkAck(body []byte, name, sum string) error {
	if len(body) > maxAckBytes {
		return fmt.Errorf("acknowledgement longer than %d bytes", maxAckBytes)
	}
	var a ack
	if err := json.Unmarshal(body, &a); err != nil {
		return fmt.Errorf("acknowledgement is not the expected JSON object: %w", err)
	}
	if a.Name != name {
		return fmt.Errorf("acknowledgement is for bundle %q, not %q", clip(a.Name), name)
	}
	if !strings.EqualFold(a.SHA256, sum) {
		return fmt.Errorf("acknowledgement has sha256 %q, but the bundle's is %s", clip(a.SHA256), sum)
	}
	return nil
}
