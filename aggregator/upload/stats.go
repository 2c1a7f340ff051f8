package upload

import "time"

// Stats are an Uploader's counts since New and its current state.
type Stats struct {
	// Pending and PendingBytes are the sealed bundles waiting in the
	// directory, held ones included, at the latest listing.
	Pending      int
	PendingBytes int64
	// Held is the number of bundles held back on their own (see
	// Failures.Rejected and Failures.Local) while the others go.
	Held int
	// Uploaded and UploadedBytes count the bundles the server
	// acknowledged.
	Uploaded, UploadedBytes uint64
	// Vanished counts bundles that were deleted, by the bundle writer's
	// quota, between the listing and their upload; the writer counts
	// them as deleted.
	Vanished uint64
	// Failures counts the failed attempts by kind.
	Failures Failures
	// LastSuccess is the time of the latest acknowledgement.
	LastSuccess time.Time
	// LastError and LastErrorTime describe the latest failure.
	LastError     string
	LastErrorTime time.Time
	// NextAttempt is when the Uploader will try next while it waits for
	// a backoff to end; zero while it uploads or waits for a bundle.
	NextAttempt time.Time
	// Backoff is the wait after the latest failure that held back every
	// bundle; zero since the latest success.
	Backoff time.Duration
}

// Failures counts failed upload attempts by kind. Each kind but Rejected
// and Local holds back every bundle until the backoff ends.
type Failures struct {
	// Network: connecting, the TLS handshake (a certificate refused on
	// either side included) or the transfer failed.
	Network uint64
	// Timeout: the upload took longer than Options.Timeout.
	Timeout uint64
	// Server: the server answered 5xx, 408 or 429, or redirected (the
	// redirect is not followed).
	Server uint64
	// Auth: the server answered 401 or 403; the agent key was rejected.
	Auth uint64
	// BadAck: the server answered 2xx without a matching
	// acknowledgement.
	BadAck uint64
	// Rejected: the server refused the bundle itself (another 4xx, such
	// as 413); it is held back and the others go.
	Rejected uint64
	// Local: listing the directory, or reading or deleting a bundle,
	// failed. A bundle that cannot be read or deleted is held back.
	Local uint64
}

// kind is the outcome of an upload attempt.
type kind int

const (
	acked    kind = iota // acknowledged
	vanished             // the file was gone
	canceled             // Run's context was done
	failNetwork
	failTimeout
	failServer
	failAuth
	failBadAck
	failRejected
	failLocal
)

var kindNames = [...]string{
	acked: "acked", vanished: "vanished", canceled: "canceled",
	failNetwork: "network", failTimeout: "timeout", failServer: "server", failAuth: "auth",
	failBadAck: "bad_ack", failRejected: "rejected", failLocal: "local",
}

func (k kind) String() string { return kindNames[k] }

// add counts a failure of kind k.
func (f *Failures) add(k kind) {
	switch k {
	case failNetwork:
		f.Network++
	case failTimeout:
		f.Timeout++
	case failServer:
		f.Server++
	case failAuth:
		f.Auth++
	case failBadAck:
		f.BadAck++
	case failRejected:
		f.Rejected++
	case failLocal:
		f.Local++
	}
}

// Stats returns the counts and state. It is safe to call from any
// goroutine.
func (u *Uploader) Stats() Stats {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.stats
}
