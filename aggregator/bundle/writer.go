package bundle

import (
	"cmp"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"math/bits"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"
	"google.golang.org/protobuf/proto"

	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// Defaults of WriterOptions.
const (
	defaultPrefix     = "xdr"
	defaultMaxBytes   = 4 << 20
	defaultMaxAge     = 5 * time.Minute
	defaultFrameBytes = 128 << 10
)

// WriterOptions configures a Writer. Dir is required; other zero fields
// select the defaults.
type WriterOptions struct {
	// Dir holds the bundles. It is created (mode 0750) if missing.
	Dir string
	// Prefix starts every file name; default "xdr".
	Prefix string
	// MaxBytes: the open bundle is sealed once its file is larger; it
	// grows past MaxBytes by less than one frame. Default 4 MiB.
	MaxBytes int64
	// MaxAge: the open bundle is sealed once it is older, checked by Write
	// and Tick. Default 5 minutes.
	MaxAge time.Duration
	// FrameBytes: pending records are compressed into a frame and written
	// once their encoded size exceeds FrameBytes. It bounds the records a
	// crash can lose and the Writer's buffers. Default 128 KiB, at most
	// 8 MiB.
	FrameBytes int
	// MaxDirBytes bounds the bytes of the sealed bundles in Dir; 0 means
	// no bound. After each seal, and in NewWriter, the Writer deletes
	// sealed bundles while they take more than MaxDirBytes: the oldest
	// non-critical bundles first, and critical ones, oldest first, only
	// when no other sealed bundle is left. The open bundle is never
	// deleted. With a bound set, a write that fails because the disk is
	// full also deletes the oldest non-critical sealed bundles, up to
	// MaxBytes of them, and is tried once more. It must be at least
	// MaxBytes.
	MaxDirBytes int64
	// Header, if set, is called for each new bundle. The Writer sets
	// FormatVersion, CreateTimeNs and BundleSeq on a copy of the result.
	Header func() *xdrv1.BundleHeader
	// Logger; default discards.
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// WriterStats are a Writer's counts since it was created.
type WriterStats struct {
	// Records is the number of records from Write that are in frames
	// written to disk.
	Records uint64
	// Frames and BytesWritten count the frames written, header and
	// trailer included, and their compressed size.
	Frames       uint64
	BytesWritten uint64
	// Sealed counts bundles sealed and renamed.
	Sealed uint64
	// WriteErrors counts failed file operations.
	WriteErrors uint64
	// Lost counts records from Write that were dropped because a file
	// operation failed; each is also reported in a WriteError.
	Lost uint64
	// Recovered counts the unsealed bundles of an earlier run that
	// NewWriter sealed with a recovered trailer, RecoveredRecords the
	// records they kept (headers not counted) and RecoveredCutBytes the
	// bytes of damaged tails cut off.
	Recovered, RecoveredRecords, RecoveredCutBytes uint64
	// SetAside counts unsealed bundles without a readable header that
	// NewWriter renamed to *.gpbz.corrupt; EmptyRemoved counts empty
	// ones (created but never written) that it removed.
	SetAside, EmptyRemoved uint64
	// QuotaDeleted and QuotaDeletedBytes count the sealed bundles deleted
	// to keep within MaxDirBytes or to make room on a full disk, and
	// their size.
	QuotaDeleted, QuotaDeletedBytes uint64
}

// writerStats backs WriterStats; Stats may read it from any goroutine.
type writerStats struct {
	records, frames, bytesWritten, sealed, writeErrors, lost atomic.Uint64
	recovered, recoveredRecords, recoveredCutBytes           atomic.Uint64
	setAside, emptyRemoved, quotaDeleted, quotaDeletedBytes  atomic.Uint64
}

// WriteError is the error a Writer method returns when file operations
// failed during the call. Lost is the number of records passed to Write,
// in this call or earlier ones, that were dropped by these failures: the
// records of a frame that could not be written, or the record of a Write
// that could not create a bundle file. Records not counted in Lost are in
// the file or still pending. The Writer stays usable: the next call tries
// again.
type WriteError struct {
	// Path is the bundle file of the first failure.
	Path string
	Lost int
	Err  error
}

func (e *WriteError) Error() string {
	if e.Lost == 0 {
		return fmt.Sprintf("bundle %s: %v", e.Path, e.Err)
	}
	return fmt.Sprintf("bundle %s: %v (%d records lost)", e.Path, e.Err, e.Lost)
}

func (e *WriteError) Unwrap() error { return e.Err }

var errClosed = errors.New("bundle writer closed")

// file is the part of *os.File a Writer uses; tests substitute failing
// files.
type file interface {
	io.WriterAt
	Truncate(size int64) error
	Sync() error
	Close() error
}

func createFile(path string) (file, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Writer writes records into rotating bundle files in one directory; see
// FORMAT.md. A bundle is opened by the first Write after the previous one
// was sealed, so no bundle is empty. A bundle is never sealed by the Write
// that put a record in it, but by a later call: after Write the bundle
// holding its record is open, for MarkCritical.
//
// NewWriter recovers the unsealed bundles a crash left in the directory
// and, with WriterOptions.MaxDirBytes, keeps the sealed bundles within
// a disk quota. Only one Writer may use a directory at a time.
//
// Write returns an error that is not a *WriteError, and writes nothing,
// for a record it rejects: one with no type set, a header or trailer
// (which the Writer writes itself), one larger than MaxRecordSize or one
// that does not encode (invalid UTF-8). File failures are returned as a
// *WriteError that says how many records were lost. A bundle that cannot
// be sealed, or whose file cannot be cut back after a failed write, is
// closed and left as a .part file, which the next NewWriter on the
// directory recovers; the next Write opens a new bundle.
//
// A Writer is not safe for concurrent use, except Stats. The caller must
// Close it to seal the open bundle.
type Writer struct {
	dir         string
	prefix      string
	maxBytes    int64
	maxAge      time.Duration
	frameBytes  int
	maxDirBytes int64
	header      func() *xdrv1.BundleHeader
	log         *slog.Logger
	now         func() time.Time
	create      func(path string) (file, error)
	onSeal      func(path string)
	onDelete    func(path string)
	enc         *zstd.Encoder

	lastSeq  uint64    // seq of the newest bundle
	lastTime time.Time // time in the newest bundle's name

	cur          *openBundle // nil when no bundle is open
	pending      []byte      // delimited records not yet written; empty when cur is nil
	pendingN     int         // records from Write in pending
	pendingTally tally
	scratch      []byte // first record of a bundle, encoded before the bundle is opened
	frame        []byte // compressed frame

	stats   writerStats
	callErr *WriteError // failures of the current call
	closed  bool
}

// openBundle is the bundle being written.
type openBundle struct {
	path   string // the .gpbz.part file
	base   string // file name without critical mark and extension
	seq    uint64
	f      file
	size   int64 // bytes of complete frames
	opened time.Time
	sum    hash.Hash // SHA-256 of the records in complete frames
	tally  tally     // records in complete frames
	// critical is set by MarkCritical; critNamed once the file was
	// renamed (or failed to be) to its critical .part name, and
	// dirDirty until the directory is fsynced after that rename.
	critical, critNamed, dirDirty bool
}

// NewWriter returns a Writer for opts.Dir. Bundle sequence numbers continue
// after the highest one found there. Open bundles (.gpbz.part) left by an
// earlier run are recovered: sealed with a trailer that says so, after
// cutting off a damaged tail, or set aside if they have no readable
// header (see FORMAT.md); then the quota is applied. Failures of this
// clean-up are logged and counted in WriteErrors, not returned: the
// files stay for the next start.
func NewWriter(opts *WriterOptions) (*Writer, error) {
	if opts == nil || opts.Dir == "" {
		return nil, errors.New("bundle writer: no directory given")
	}
	w := &Writer{
		dir:         opts.Dir,
		prefix:      cmp.Or(opts.Prefix, defaultPrefix),
		maxBytes:    cmp.Or(opts.MaxBytes, defaultMaxBytes),
		maxAge:      cmp.Or(opts.MaxAge, defaultMaxAge),
		frameBytes:  cmp.Or(opts.FrameBytes, defaultFrameBytes),
		maxDirBytes: opts.MaxDirBytes,
		header:      opts.Header,
		log:         opts.Logger,
		now:         opts.Now,
		create:      createFile,
	}
	switch {
	case strings.ContainsRune(w.prefix, filepath.Separator):
		return nil, fmt.Errorf("bundle writer: prefix %q contains a path separator", w.prefix)
	case w.maxBytes < 0 || w.maxAge < 0 || w.frameBytes < 0 || w.maxDirBytes < 0:
		return nil, errors.New("bundle writer: negative limit")
	case w.frameBytes > maxFrameBytes:
		return nil, fmt.Errorf("bundle writer: frame size %d larger than %d", w.frameBytes, maxFrameBytes)
	case w.maxDirBytes > 0 && w.maxDirBytes < w.maxBytes:
		return nil, fmt.Errorf("bundle writer: directory quota %d smaller than the bundle size %d (every bundle would be deleted once sealed)", w.maxDirBytes, w.maxBytes)
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	w.log = w.log.WithGroup("bundle")
	if w.now == nil {
		w.now = time.Now
	}
	// Frames are compressed independently, so a window larger than a
	// frame only costs memory (the default would take 18 MiB).
	window := max(zstd.MinWindowSize, 1<<bits.Len(uint(w.frameBytes-1)))
	var err error
	w.enc, err = zstd.NewWriter(nil,
		zstd.WithWindowSize(window),
		zstd.WithEncoderLevel(zstd.SpeedDefault),
		zstd.WithEncoderConcurrency(1),
		zstd.WithLowerEncoderMem(true),
		zstd.WithEncoderCRC(true))
	if err != nil {
		return nil, fmt.Errorf("bundle writer: create zstd encoder: %w", err)
	}
	if err := os.MkdirAll(w.dir, 0o750); err != nil {
		return nil, fmt.Errorf("create bundle directory: %w", err)
	}
	st, err := scanDir(w.dir, w.prefix)
	if err != nil {
		return nil, err
	}
	w.lastSeq, w.lastTime = st.lastSeq, st.lastTime
	w.recoverAll(st.parts)
	w.enforceQuota()
	if err := w.takeErr(); err != nil {
		w.log.Error("clean-up of the bundle directory failed; the files stay for the next start", "dir", w.dir, "err", err)
	}
	return w, nil
}

// OnSeal sets fn to be called with the path of each bundle sealed, on the
// goroutine that caused the seal. Set it before the first Write. Bundles
// recovered by NewWriter are not reported.
func (w *Writer) OnSeal(fn func(path string)) { w.onSeal = fn }

// OnDelete sets fn to be called with the path of each sealed bundle the
// quota deletes, on the goroutine that caused the deletion. Set it before
// the first Write. Deletions by NewWriter are not reported.
func (w *Writer) OnDelete(fn func(path string)) { w.onDelete = fn }

// MarkCritical marks the open bundle as holding a critical event: its
// trailer will say hit_critical_event and its name carry the critical
// mark (CritExt once sealed), so that the quota keeps it longest. The
// open file is renamed by the next flush (Flush, Sync, or a Write that
// fills a frame), before the frame is written. Call it right after the
// Write of the critical record, and then Sync to get the record and the
// new name to disk at once. If no bundle is open, because that Write
// failed and its record was counted as lost, MarkCritical does nothing.
func (w *Writer) MarkCritical() {
	if w.cur != nil {
		w.cur.critical = true
	}
}

// Stats returns the Writer's counts. Unlike the other methods it may be
// called from any goroutine.
func (w *Writer) Stats() WriterStats {
	return WriterStats{
		Records:      w.stats.records.Load(),
		Frames:       w.stats.frames.Load(),
		BytesWritten: w.stats.bytesWritten.Load(),
		Sealed:       w.stats.sealed.Load(),
		WriteErrors:  w.stats.writeErrors.Load(),
		Lost:         w.stats.lost.Load(),

		Recovered:         w.stats.recovered.Load(),
		RecoveredRecords:  w.stats.recoveredRecords.Load(),
		RecoveredCutBytes: w.stats.recoveredCutBytes.Load(),
		SetAside:          w.stats.setAside.Load(),
		EmptyRemoved:      w.stats.emptyRemoved.Load(),
		QuotaDeleted:      w.stats.quotaDeleted.Load(),
		QuotaDeletedBytes: w.stats.quotaDeletedBytes.Load(),
	}
}

// Write appends r to the open bundle, opening one if needed. It seals the
// open bundle first if it is older than MaxAge or its file is larger than
// MaxBytes.
func (w *Writer) Write(r *xdrv1.Record) error { return w.WriteEncoded(r, nil) }

// WriteEncoded is Write for a record already encoded: enc, when not nil,
// is r's protobuf encoding and is written instead of encoding r again (r
// still gives the trailer its counts and times).
func (w *Writer) WriteEncoded(r *xdrv1.Record, enc []byte) error {
	if w.closed {
		return errClosed
	}
	k, lo, hi, err := classify(r)
	if err != nil {
		return fmt.Errorf("write record: %w", err)
	}
	now := w.now()
	w.rotateIfDue(now)
	if w.cur == nil {
		// Encode before opening, so that a record that does not encode
		// does not open a bundle.
		if w.scratch, err = appendRecord(w.scratch[:0], r, enc); err != nil {
			return errors.Join(w.takeErr(), fmt.Errorf("write record: %w", err))
		}
		if !w.open(now) {
			return w.takeErr()
		}
		w.pending = append(w.pending, w.scratch...)
		if cap(w.scratch) > w.frameBytes {
			w.scratch = nil
		}
	} else if w.pending, err = appendRecord(w.pending, r, enc); err != nil {
		return errors.Join(w.takeErr(), fmt.Errorf("write record: %w", err))
	}
	w.pendingN++
	w.pendingTally.add(k, lo, hi)
	if len(w.pending) > w.frameBytes {
		w.flush()
	}
	return w.takeErr()
}

// Flush compresses the pending records into one frame and writes it,
// without fsync.
func (w *Writer) Flush() error {
	if w.closed {
		return errClosed
	}
	w.flush()
	return w.takeErr()
}

// Sync flushes and fsyncs the open bundle, and the directory if the
// bundle was renamed by MarkCritical. If fsync of the file fails the
// bundle is left unsealed, since its content on disk is uncertain, and
// the next Write opens a new one.
func (w *Writer) Sync() error {
	if w.closed {
		return errClosed
	}
	w.flush()
	if b := w.cur; b != nil {
		if err := b.f.Sync(); err != nil {
			w.fail(b.path, 0, fmt.Errorf("fsync: %w", bare(err)))
			w.abandon(false)
		} else if b.dirDirty {
			b.dirDirty = false
			if err := syncDir(w.dir); err != nil {
				w.fail(b.path, 0, fmt.Errorf("fsync directory: %w", err))
			}
		}
	}
	return w.takeErr()
}

// Tick seals the open bundle if it is older than MaxAge at now. Call it
// periodically so that bundles are sealed when records stop coming.
func (w *Writer) Tick(now time.Time) error {
	if w.closed {
		return errClosed
	}
	w.rotateIfDue(now)
	return w.takeErr()
}

// Rotate seals the open bundle, if any.
func (w *Writer) Rotate() error {
	if w.closed {
		return errClosed
	}
	w.seal()
	return w.takeErr()
}

// Close seals the open bundle, if any, and stops the Writer; later calls
// fail, except Close which does nothing.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	w.seal()
	w.closed = true
	return w.takeErr()
}

func (w *Writer) rotateIfDue(now time.Time) {
	if w.cur != nil && (now.Sub(w.cur.opened) >= w.maxAge || w.cur.size > w.maxBytes) {
		w.seal()
	}
}

// open creates a bundle file and puts its header into pending. It reports
// failure, losing the record the caller is writing.
func (w *Writer) open(now time.Time) bool {
	// Names must sort in creation order even if the clock steps back.
	t := now.UTC().Truncate(time.Millisecond)
	if !t.After(w.lastTime) {
		t = w.lastTime.Add(time.Millisecond)
	}
	seq := w.lastSeq + 1
	base := bundleName(w.prefix, t, seq)
	path := filepath.Join(w.dir, fileName(base, false, statePart))

	hdr := &xdrv1.BundleHeader{}
	if w.header != nil {
		if h := w.header(); h != nil {
			hdr = proto.CloneOf(h)
		}
	}
	hdr.FormatVersion = FormatVersion
	hdr.CreateTimeNs = now.UnixNano()
	hdr.BundleSeq = seq
	var err error
	w.pending, err = appendDelimited(w.pending[:0], &xdrv1.Record{Record: &xdrv1.Record_Header{Header: hdr}})
	if err != nil {
		w.fail(path, 1, fmt.Errorf("header: %w", err))
		return false
	}
	f, err := w.create(path)
	if errors.Is(err, syscall.ENOSPC) && w.makeRoom() {
		f, err = w.create(path)
	}
	if err != nil {
		w.resetPending()
		w.fail(path, 1, fmt.Errorf("create: %w", bare(err)))
		return false
	}
	w.lastSeq, w.lastTime = seq, t
	w.cur = &openBundle{path: path, base: base, seq: seq, f: f, opened: now, sum: sha256.New()}
	w.pendingTally.add(kindHeader, 0, 0)
	return true
}

// flush writes pending as a frame of the open bundle. If that fails the
// pending records are lost; the bundle stays open unless the file could
// not be cut back to its last complete frame, or holds no frame (so no
// header) at all.
func (w *Writer) flush() {
	b := w.cur
	if b == nil {
		return
	}
	if b.critical && !b.critNamed {
		w.nameCritical(b)
	}
	if len(w.pending) == 0 {
		return
	}
	intact, err := w.writeFrame(b)
	if err == nil {
		b.sum.Write(w.pending)
		b.tally.merge(&w.pendingTally)
		w.stats.records.Add(uint64(w.pendingN))
		w.resetPending()
		return
	}
	w.fail(b.path, w.pendingN, err)
	w.resetPending()
	if b.size == 0 || !intact {
		w.abandon(b.size == 0)
	}
}

// nameCritical renames the open bundle's file to its critical .part name,
// once: if that fails, the critical mark is still in the trailer and the
// sealed name.
func (w *Writer) nameCritical(b *openBundle) {
	b.critNamed = true
	path := filepath.Join(w.dir, fileName(b.base, true, statePart))
	if err := os.Rename(b.path, path); err != nil {
		w.fail(b.path, 0, fmt.Errorf("mark critical: %w", err))
		return
	}
	b.path, b.dirDirty = path, true
}

// writeFrame compresses pending into one frame and appends it to b. When
// the write fails it cuts the file back to its previous size, so that the
// frames written later stay readable; intact reports whether it could. A
// write that fails for lack of space is tried again if makeRoom freed
// some.
func (w *Writer) writeFrame(b *openBundle) (intact bool, err error) {
	frame := w.enc.EncodeAll(w.pending, w.frame[:0])
	w.frame = frame[:0]
	if cap(frame) > 2*w.frameBytes {
		w.frame = nil
	}
	n := len(frame)
	_, err = b.f.WriteAt(frame, b.size)
	if errors.Is(err, syscall.ENOSPC) && w.makeRoom() {
		_, err = b.f.WriteAt(frame, b.size)
	}
	if err != nil {
		err = fmt.Errorf("write frame at offset %d: %w", b.size, bare(err))
		if terr := b.f.Truncate(b.size); terr != nil {
			return false, errors.Join(err, fmt.Errorf("cut back to offset %d: %w", b.size, bare(terr)))
		}
		return true, err
	}
	b.size += int64(n)
	w.stats.frames.Add(1)
	w.stats.bytesWritten.Add(uint64(n))
	return true, nil
}

// seal finishes the open bundle: flush, trailer frame, fsync, close,
// rename, fsync of the directory. If a step before the rename fails the
// file is left as a .part without trailer.
func (w *Writer) seal() {
	w.flush()
	b := w.cur
	if b == nil {
		return
	}
	tr := b.tally.trailer(b.sum)
	tr.HitCriticalEvent = b.critical
	var err error
	w.pending, err = appendDelimited(w.pending, &xdrv1.Record{Record: &xdrv1.Record_Trailer{Trailer: tr}})
	if err == nil {
		_, err = w.writeFrame(b)
	}
	w.resetPending()
	if err == nil {
		if err = b.f.Sync(); err != nil {
			err = fmt.Errorf("fsync: %w", bare(err))
		}
	}
	if err != nil {
		w.fail(b.path, 0, fmt.Errorf("seal: %w", err))
		w.abandon(false)
		return
	}
	w.cur = nil
	if err := b.f.Close(); err != nil {
		w.fail(b.path, 0, fmt.Errorf("seal: close: %w", bare(err)))
		w.log.Warn("bundle left unsealed", "path", b.path)
		return
	}
	final := filepath.Join(w.dir, fileName(b.base, b.critical, stateSealed))
	if err := os.Rename(b.path, final); err != nil {
		w.fail(b.path, 0, fmt.Errorf("seal: %w", err))
		w.log.Warn("bundle left unsealed", "path", b.path)
		return
	}
	w.stats.sealed.Add(1)
	if err := syncDir(w.dir); err != nil {
		w.fail(final, 0, fmt.Errorf("seal: fsync directory: %w", err))
	}
	w.log.Debug("bundle sealed", "path", final, "records", b.tally.records(), "bytes", b.size, "critical", b.critical)
	if w.onSeal != nil {
		w.onSeal(final)
	}
	w.enforceQuota()
}

// abandon closes the open bundle without sealing it. The file is removed
// if remove is set (it holds no complete frame), else left as a .part.
func (w *Writer) abandon(remove bool) {
	b := w.cur
	w.cur = nil
	w.resetPending()
	if err := b.f.Close(); err != nil {
		w.fail(b.path, 0, fmt.Errorf("close: %w", bare(err)))
	}
	if !remove {
		w.log.Warn("bundle left unsealed", "path", b.path)
		return
	}
	if err := os.Remove(b.path); err != nil {
		w.fail(b.path, 0, fmt.Errorf("remove: %w", bare(err)))
		return
	}
	w.lastSeq = b.seq - 1 // the seq was not used
}

func (w *Writer) resetPending() {
	if cap(w.pending) > 2*w.frameBytes {
		w.pending = nil
	}
	w.pending = w.pending[:0]
	w.pendingN = 0
	w.pendingTally = tally{}
}

// fail records a failed file operation of the current call.
func (w *Writer) fail(path string, lost int, err error) {
	w.stats.writeErrors.Add(1)
	w.stats.lost.Add(uint64(lost))
	if w.callErr == nil {
		w.callErr = &WriteError{Path: path, Lost: lost, Err: err}
		return
	}
	if path != w.callErr.Path {
		err = fmt.Errorf("bundle %s: %w", path, err)
	}
	w.callErr.Lost += lost
	w.callErr.Err = errors.Join(w.callErr.Err, err)
}

// takeErr returns the failures of the current call, if any, and clears
// them.
func (w *Writer) takeErr() error {
	if w.callErr == nil {
		return nil
	}
	err := w.callErr
	w.callErr = nil
	return err
}

// bare strips an *fs.PathError to its cause: the WriteError carries the
// path and the message says the operation.
func bare(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
