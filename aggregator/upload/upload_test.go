package upload

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/xdr-sensor/xdr/aggregator/bundle"
)

func TestUploadAll(t *testing.T) {
	dir := t.TempDir()
	paths := writeBundles(t, dir, false, true, false, true, false)
	want := readFiles(t, paths)
	srv := newTestServer(t, dir, nil)
	u := newUploader(t, srv.options(t, dir))
	start(t, u)

	waitFor(t, "every bundle acknowledged and deleted", func() bool {
		for _, p := range paths {
			if exists(p) {
				return false
			}
		}
		return len(srv.ackedNames()) == len(paths)
	})
	// Critical first, then oldest first.
	n := names(paths)
	if diff := cmp.Diff([]string{n[1], n[3], n[0], n[2], n[4]}, srv.ackedNames()); diff != "" {
		t.Errorf("upload order (-want +got):\n%s", diff)
	}
	var total uint64
	for name, data := range want {
		if !bytes.Equal(srv.body(name), data) {
			t.Errorf("bundle %s: the server got %d bytes that differ from the file's %d", name, len(srv.body(name)), len(data))
		}
		total += uint64(len(data))
	}
	waitFor(t, "the pending count to drop to 0", func() bool { return u.Stats().Pending == 0 })
	st := u.Stats()
	if st.Uploaded != 5 || st.UploadedBytes != total || st.PendingBytes != 0 || st.Held != 0 || st.Backoff != 0 ||
		st.Failures != (Failures{}) || st.LastError != "" || st.LastSuccess.IsZero() {
		t.Errorf("Stats = %+v, want 5 bundles and %d bytes uploaded, no failure", st, total)
	}
}

func TestUploadNotify(t *testing.T) {
	dir := t.TempDir()
	srv := newTestServer(t, dir, nil)
	o := srv.options(t, dir)
	o.Rescan = time.Hour // only Notify can wake the uploader in time
	u := newUploader(t, o)
	w, err := bundle.NewWriter(&bundle.WriterOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	w.OnSeal(func(string) { u.Notify() })
	start(t, u)

	for i := range 3 {
		if err := w.Write(testRecord(uint64(i))); err != nil {
			t.Fatal(err)
		}
		if err := w.Rotate(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the sealed bundle uploaded", func() bool { return len(srv.ackedNames()) == i+1 })
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestUploadRetriesServerErrors(t *testing.T) {
	tests := []struct {
		name    string
		act     action
		minGaps []time.Duration // lower bounds of the waits between attempts
	}{
		// Backoff ceilings 5ms, then 10ms; the test draws the ceiling.
		{"500", actServerError, []time.Duration{5 * time.Millisecond, 10 * time.Millisecond}},
		// Retry-After: 1 raises the waits to 1s, capped at BackoffMax.
		{"429 with Retry-After", actRetryAfter, []time.Duration{time.Second, time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			paths := writeBundles(t, dir, false)
			srv := newTestServer(t, dir, nil)
			srv.setDecide(func(_ string, n int) action {
				if n <= 2 {
					return tt.act
				}
				return actAck
			})
			o := srv.options(t, dir)
			o.BackoffMax = 2 * time.Second
			u := newUploader(t, o)
			start(t, u)

			waitFor(t, "the bundle acknowledged and deleted", func() bool { return len(srv.ackedNames()) == 1 && !exists(paths[0]) })
			hits := srv.hitsFor("")
			if len(hits) != 3 {
				t.Fatalf("server got %d requests, want 3", len(hits))
			}
			for i, min := range tt.minGaps {
				if gap := hits[i+1].at.Sub(hits[i].at); gap < min {
					t.Errorf("wait before attempt %d = %v, want at least %v", i+2, gap, min)
				}
			}
			st := u.Stats()
			if st.Failures != (Failures{Server: 2}) || st.Uploaded != 1 || !strings.Contains(st.LastError, "HTTP") || st.Backoff != 0 {
				t.Errorf("Stats = %+v, want 2 server failures, then the upload", st)
			}
		})
	}
}

func TestUploadStalledServer(t *testing.T) {
	dir := t.TempDir()
	paths := writeBundles(t, dir, false)
	srv := newTestServer(t, dir, nil)
	srv.setDecide(func(_ string, n int) action {
		if n <= 2 {
			return actStall
		}
		return actAck
	})
	o := srv.options(t, dir)
	o.Timeout = 500 * time.Millisecond
	u := newUploader(t, o)
	start(t, u)

	for range 2 {
		<-srv.stalled
		if !exists(paths[0]) {
			t.Fatal("bundle deleted while the server stalls")
		}
	}
	waitFor(t, "the bundle uploaded once the server answers", func() bool { return len(srv.ackedNames()) == 1 && !exists(paths[0]) })
	st := u.Stats()
	// At least the two stalls time out; a slow machine may add a
	// handshake that did.
	if st.Failures.Timeout < 2 || st.Failures != (Failures{Timeout: st.Failures.Timeout}) || st.Uploaded != 1 ||
		!strings.Contains(st.LastError, "not acknowledged within 500ms") {
		t.Errorf("Stats = %+v, want timeouts only, then the upload", st)
	}
}

func TestUploadNotAnAcknowledgement(t *testing.T) {
	tests := []struct {
		name string
		act  action
		want Failures
	}{
		{"connection closed mid-body", actCut, Failures{Network: 1}},
		{"wrong sha256", actBadSum, Failures{BadAck: 1}},
		{"wrong name", actBadName, Failures{BadAck: 1}},
		{"200 without body", actEmptyOK, Failures{BadAck: 1}},
		{"204", actNoContent, Failures{BadAck: 1}},
		{"redirect", actRedirect, Failures{Server: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			paths := writeBundles(t, dir, false)
			srv := newTestServer(t, dir, nil)
			srv.setDecide(func(_ string, n int) action {
				if n == 1 {
					return tt.act
				}
				return actAck // checks that the file is still there
			})
			u := newUploader(t, srv.options(t, dir))
			start(t, u)

			waitFor(t, "the bundle uploaded on the second attempt", func() bool { return len(srv.ackedNames()) == 1 && !exists(paths[0]) })
			st := u.Stats()
			if diff := cmp.Diff(tt.want, st.Failures); diff != "" {
				t.Errorf("failures (-want +got):\n%s", diff)
			}
			if st.Uploaded != 1 {
				t.Errorf("Uploaded = %d, want 1", st.Uploaded)
			}
		})
	}
}

func TestUploadKeyRejected(t *testing.T) {
	dir := t.TempDir()
	paths := writeBundles(t, dir, false, false)
	srv := newTestServer(t, dir, nil)
	srv.setDecide(func(string, int) action { return actUnauthorized })
	o := srv.options(t, dir)
	u := newUploader(t, o)
	start(t, u)

	waitFor(t, "two rejections", func() bool { return u.Stats().Failures.Auth >= 2 })
	st := u.Stats()
	if st.Backoff != o.BackoffMax || !strings.Contains(st.LastError, "401") || st.Uploaded != 0 || st.Pending != 2 {
		t.Errorf("Stats = %+v, want the longest backoff, a 401 error and both bundles pending", st)
	}
	for _, p := range paths {
		if !exists(p) {
			t.Errorf("%s deleted, though never acknowledged", p)
		}
	}
	// Each retry is of the oldest bundle: the key holds back every one.
	for _, h := range srv.hitsFor("") {
		if h.name != filepath.Base(paths[0]) {
			t.Errorf("request for %s during the rejection, want only %s", h.name, filepath.Base(paths[0]))
		}
	}
}

func TestUploadRefusedBundleHeldBack(t *testing.T) {
	dir := t.TempDir()
	paths := writeBundles(t, dir, false, false, false)
	refused := filepath.Base(paths[0])
	srv := newTestServer(t, dir, nil)
	srv.setDecide(func(name string, _ int) action {
		if name == refused {
			return actTooLarge
		}
		return actAck
	})
	u := newUploader(t, srv.options(t, dir))
	start(t, u)

	waitFor(t, "the other bundles uploaded", func() bool { return len(srv.ackedNames()) == 2 && u.Stats().Pending == 1 })
	if !exists(paths[0]) {
		t.Fatal("refused bundle deleted")
	}
	waitFor(t, "the refused bundle tried again", func() bool { return len(srv.hitsFor(refused)) >= 2 })
	st := u.Stats()
	if st.Held != 1 || st.Failures.Rejected < 2 || st.Failures != (Failures{Rejected: st.Failures.Rejected}) ||
		!strings.Contains(st.LastError, "413") || !strings.Contains(st.LastError, "bundle too large") {
		t.Errorf("Stats = %+v, want 1 bundle held after 413s and no other failure", st)
	}

	srv.setDecide(func(string, int) action { return actAck })
	waitFor(t, "the refused bundle uploaded once accepted", func() bool {
		st := u.Stats()
		return st.Uploaded == 3 && st.Held == 0 && st.Pending == 0
	})
	if exists(paths[0]) {
		t.Error("bundle left after its upload")
	}
}

func TestUploadResumeAfterRestart(t *testing.T) {
	dir := t.TempDir()
	paths := writeBundles(t, dir, false, false, false, false)
	n := names(paths)
	srv := newTestServer(t, dir, nil)
	srv.setDecide(func(name string, _ int) action {
		if name == n[1] {
			return actStall
		}
		return actAck
	})
	u1 := newUploader(t, srv.options(t, dir))
	stop := start(t, u1)
	<-srv.stalled // bundle 0 uploaded, bundle 1 in flight
	stop()
	if diff := cmp.Diff([]bool{false, true, true, true}, []bool{exists(paths[0]), exists(paths[1]), exists(paths[2]), exists(paths[3])}); diff != "" {
		t.Fatalf("files left after the first run (-want +got):\n%s", diff)
	}
	if err := os.Remove(paths[2]); err != nil { // by the quota, while the uploader was down
		t.Fatal(err)
	}

	srv.setDecide(func(string, int) action { return actAck })
	u2 := newUploader(t, srv.options(t, dir))
	start(t, u2)
	waitFor(t, "the rest uploaded", func() bool { return !exists(paths[1]) && !exists(paths[3]) })
	if diff := cmp.Diff([]string{n[0], n[1], n[3]}, srv.ackedNames()); diff != "" {
		t.Errorf("acknowledged (-want +got):\n%s", diff)
	}
	if len(srv.hitsFor(n[2])) != 0 {
		t.Errorf("the bundle deleted by the quota was requested")
	}
	if st := u2.Stats(); st.Uploaded != 2 || st.Failures != (Failures{}) {
		t.Errorf("Stats of the second run = %+v, want 2 uploads and no failure", st)
	}
}

func TestUploadVanishedBundle(t *testing.T) {
	// The quota deletes a bundle between the listing and the upload.
	dir := t.TempDir()
	paths := writeBundles(t, dir, false)
	srv := newTestServer(t, dir, nil)
	u := newUploader(t, srv.options(t, dir))
	files, err := bundle.ListSealed(dir, "")
	if err != nil || len(files) != 1 {
		t.Fatalf("ListSealed = %v, %v", files, err)
	}
	if err := os.Remove(paths[0]); err != nil {
		t.Fatal(err)
	}
	u.attempt(context.Background(), &files[0])
	if st := u.Stats(); st.Vanished != 1 || st.Failures != (Failures{}) || st.LastError != "" || len(u.held) != 0 {
		t.Errorf("Stats = %+v, held %d, want 1 vanished bundle and no failure", st, len(u.held))
	}
	if len(srv.hitsFor("")) != 0 {
		t.Error("server got a request for a vanished bundle")
	}
}

func TestUploadUnreadableBundle(t *testing.T) {
	// A bundle that cannot be read is held back; the others go.
	dir := t.TempDir()
	paths := writeBundles(t, dir, false, false)
	srv := newTestServer(t, dir, nil)
	u := newUploader(t, srv.options(t, dir))
	files, err := bundle.ListSealed(dir, "")
	if err != nil || len(files) != 2 {
		t.Fatalf("ListSealed = %v, %v", files, err)
	}
	bad := files[0]
	bad.Path = t.TempDir() // a directory in place of the file
	u.attempt(context.Background(), &bad)
	if st := u.Stats(); st.Held != 1 || st.Failures != (Failures{Local: 1}) || !strings.Contains(st.LastError, "not a regular file") {
		t.Errorf("Stats = %+v, want the bundle held after a local failure", st)
	}
	b, _ := u.pick(files, time.Now())
	if b == nil || b.Name != files[1].Name {
		t.Errorf("next bundle = %+v, want %s while the first is held", b, files[1].Name)
	}
	start(t, u)
	waitFor(t, "both bundles uploaded once the first is due again", func() bool {
		st := u.Stats()
		return st.Uploaded == 2 && st.Held == 0 && st.Pending == 0
	})
	if exists(paths[0]) || exists(paths[1]) {
		t.Error("bundle left after its upload")
	}
}

func TestUploadUndeletableBundle(t *testing.T) {
	// Acknowledged, but deleting fails: the next attempt only deletes it.
	dir := t.TempDir()
	paths := writeBundles(t, dir, false)
	name := filepath.Base(paths[0])
	moved := filepath.Join(t.TempDir(), name)
	srv := newTestServer(t, dir, nil)
	srv.setDecide(func(string, int) action {
		// While the uploader sends from the open file, put a
		// non-empty directory in its place, which remove fails on.
		if err := os.Rename(paths[0], moved); err != nil {
			t.Error(err)
		}
		if err := os.MkdirAll(filepath.Join(paths[0], "x"), 0o700); err != nil {
			t.Error(err)
		}
		return actAck
	})
	u := newUploader(t, srv.options(t, dir))
	files, err := bundle.ListSealed(dir, "")
	if err != nil || len(files) != 1 {
		t.Fatalf("ListSealed = %v, %v", files, err)
	}
	u.attempt(context.Background(), &files[0])
	if st := u.Stats(); st.Uploaded != 1 || st.Held != 1 || st.Failures != (Failures{Local: 1}) || !strings.Contains(st.LastError, "delete acknowledged bundle") {
		t.Errorf("Stats = %+v, want 1 upload and the bundle held after its delete failed", st)
	}

	if err := os.RemoveAll(paths[0]); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(moved, paths[0]); err != nil {
		t.Fatal(err)
	}
	u.attempt(context.Background(), &files[0])
	if exists(paths[0]) {
		t.Error("acknowledged bundle not deleted on the next attempt")
	}
	if n := len(srv.hitsFor(name)); n != 1 {
		t.Errorf("server got %d requests, want 1: an acknowledged bundle is not sent again", n)
	}
	if st := u.Stats(); st.Uploaded != 1 || st.Held != 0 {
		t.Errorf("Stats = %+v, want 1 upload, nothing held", st)
	}
}

func TestUploadShutdownDuringStall(t *testing.T) {
	dir := t.TempDir()
	paths := writeBundles(t, dir, false)
	srv := newTestServer(t, dir, nil)
	srv.setDecide(func(string, int) action { return actStall })
	o := srv.options(t, dir)
	o.Timeout = time.Hour
	u := newUploader(t, o)
	stop := start(t, u)
	<-srv.stalled
	stop() // fails the test if Run does not return within 5s
	if !exists(paths[0]) {
		t.Error("bundle deleted, though never acknowledged")
	}
	if st := u.Stats(); st.Failures != (Failures{}) || st.Uploaded != 0 {
		t.Errorf("Stats = %+v, want neither failure nor upload for a shutdown", st)
	}
}

func TestUploadRunTwice(t *testing.T) {
	dir := t.TempDir()
	writeBundles(t, dir, false)
	srv := newTestServer(t, dir, nil)
	u := newUploader(t, srv.options(t, dir))
	start(t, u)
	waitFor(t, "the first Run to upload", func() bool { return len(srv.ackedNames()) == 1 })
	if err := u.Run(context.Background()); err == nil {
		t.Error("a second Run during the first returned nil, want an error")
	}
}

func TestUploadQuotaWhileLinkDown(t *testing.T) {
	// The writer's quota deletes the oldest non-critical bundles while
	// the server fails; once it answers, the rest are uploaded, and every
	// sealed bundle is accounted for.
	dir := t.TempDir()
	srv := newTestServer(t, dir, nil)
	srv.setDecide(func(string, int) action { return actServerError })
	o := srv.options(t, dir)
	u := newUploader(t, o)
	start(t, u)

	w, err := bundle.NewWriter(&bundle.WriterOptions{Dir: dir, MaxBytes: 4096, MaxDirBytes: 5 * 4096})
	if err != nil {
		t.Fatal(err)
	}
	var crit []string
	w.OnSeal(func(path string) {
		if strings.HasSuffix(path, bundle.CritExt) {
			crit = append(crit, filepath.Base(path))
		}
		u.Notify()
	})
	const sealed = 30
	for i := range sealed {
		for j := range 20 {
			if err := w.Write(testRecord(uint64(i*100 + j))); err != nil {
				t.Fatal(err)
			}
		}
		if i%10 == 0 {
			w.MarkCritical()
		}
		if err := w.Rotate(); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	ws := w.Stats()
	if ws.Sealed != sealed || ws.QuotaDeleted == 0 {
		t.Fatalf("writer stats %+v: want %d sealed and some deleted by the quota", ws, sealed)
	}
	waitFor(t, "a server failure", func() bool { return u.Stats().Failures.Server > 0 })

	srv.setDecide(func(string, int) action { return actAck })
	waitFor(t, "every bundle left uploaded", func() bool {
		files, err := bundle.ListSealed(dir, "")
		return err == nil && len(files) == 0
	})
	st := u.Stats()
	if st.Uploaded+ws.QuotaDeleted != sealed {
		t.Errorf("uploaded %d + deleted by the quota %d != %d sealed", st.Uploaded, ws.QuotaDeleted, sealed)
	}
	acked := srv.ackedNames()
	for _, c := range crit {
		if !strings.Contains(strings.Join(acked, " "), c) {
			t.Errorf("critical bundle %s not uploaded", c)
		}
	}
}

func TestUploadBackoffHoldsNotify(t *testing.T) {
	// During a backoff Notify refreshes the counts but sends nothing.
	dir := t.TempDir()
	writeBundles(t, dir, false)
	srv := newTestServer(t, dir, nil)
	srv.setDecide(func(string, int) action { return actServerError })
	o := srv.options(t, dir)
	o.BackoffMin, o.BackoffMax = time.Hour, time.Hour
	u := newUploader(t, o)
	stop := start(t, u)
	waitFor(t, "the first failure", func() bool { return u.Stats().Failures.Server == 1 })
	writeBundles(t, dir, true)
	u.Notify()
	waitFor(t, "the new bundle counted", func() bool { return u.Stats().Pending == 2 })
	st := u.Stats()
	if st.Backoff != time.Hour || time.Until(st.NextAttempt) < 50*time.Minute {
		t.Errorf("Stats = %+v, want an hour's backoff", st)
	}
	stop() // returns at once, though the backoff has not ended
	if n := len(srv.hitsFor("")); n != 1 {
		t.Errorf("server got %d requests during the backoff, want 1", n)
	}
}

func TestUploadDirectoryMissing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	srv := newTestServer(t, dir, nil)
	u := newUploader(t, srv.options(t, dir))
	start(t, u)
	waitFor(t, "a failed listing", func() bool { return u.Stats().Failures.Local > 0 })
	if st := u.Stats(); !strings.Contains(st.LastError, "list bundle directory") {
		t.Errorf("LastError = %q, want the failed listing", st.LastError)
	}
	// The writer creates the directory later, and seals a bundle.
	paths := writeBundles(t, dir, false)
	u.Notify()
	waitFor(t, "the bundle uploaded", func() bool { return !exists(paths[0]) })
}
