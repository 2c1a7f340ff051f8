package bundle

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// errNoHeader is why recovery sets a file aside.
var errNoHeader = errors.New("no readable header")

// recoverAll recovers the open bundles left by an earlier run (see
// recoverPart) and logs a summary.
func (w *Writer) recoverAll(parts []nameInfo) {
	if len(parts) == 0 {
		return
	}
	before := w.Stats()
	renamed := false
	for _, n := range parts {
		renamed = w.recoverPart(n) || renamed
	}
	if renamed {
		if err := syncDir(w.dir); err != nil {
			w.fail(w.dir, 0, fmt.Errorf("recover: fsync directory: %w", err))
		}
	}
	after := w.Stats()
	w.log.Info("unsealed bundles of an earlier run handled", "dir", w.dir, "found", len(parts),
		"recovered", after.Recovered-before.Recovered,
		"records_kept", after.RecoveredRecords-before.RecoveredRecords,
		"bytes_cut", after.RecoveredCutBytes-before.RecoveredCutBytes,
		"set_aside", after.SetAside-before.SetAside,
		"empty_removed", after.EmptyRemoved-before.EmptyRemoved,
		"failed", after.WriteErrors-before.WriteErrors)
}

// recoverPart seals an open bundle left by an earlier run: it keeps every
// record read before the first damage, cuts the file at the end of the
// last whole frame, writes the records read from the damaged frame (if
// any) as a new frame, appends a trailer with recovered set, fsyncs and
// renames the file to its sealed name. A trailer already in the file (of
// a seal whose fsync failed) is replaced. A file without a readable
// header is renamed to its .gpbz.corrupt name, and an empty file removed.
// Failures are recorded with fail and leave the file as it is. It reports
// whether it renamed a file.
func (w *Writer) recoverPart(n nameInfo) (renamed bool) {
	path := filepath.Join(w.dir, fileName(n.base, n.critical, statePart))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		w.fail(path, 0, fmt.Errorf("recover: %w", bare(err)))
		return false
	}
	// Close errors matter only where the file was written.
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		w.fail(path, 0, fmt.Errorf("recover: %w", bare(err)))
		return false
	}
	if fi.Size() == 0 {
		f.Close()
		if err := os.Remove(path); err != nil {
			w.fail(path, 0, fmt.Errorf("recover: remove empty file: %w", bare(err)))
			return false
		}
		w.stats.emptyRemoved.Add(1)
		w.log.Info("empty unsealed bundle removed", "path", path)
		return false
	}

	s, err := scanPart(f)
	if err != nil {
		w.fail(path, 0, fmt.Errorf("recover: %w", err))
		return false
	}
	if s.damage != nil && errors.Is(s.damage, errNoHeader) {
		f.Close()
		aside := filepath.Join(w.dir, fileName(n.base, n.critical, stateCorrupt))
		if err := renameNew(path, aside); err != nil {
			w.fail(path, 0, fmt.Errorf("recover: set aside: %w", err))
			return false
		}
		w.stats.setAside.Add(1)
		w.log.Warn("unsealed bundle without a readable header set aside", "path", aside, "bytes", fi.Size(), "err", s.damage)
		return true
	}

	tr := s.digest.trailer(s.digest.sum)
	tr.Recovered, tr.HitCriticalEvent = true, n.critical
	raw, err := appendDelimited(nil, &xdrv1.Record{Record: &xdrv1.Record_Trailer{Trailer: tr}})
	if err != nil {
		w.fail(path, 0, fmt.Errorf("recover: trailer: %w", err))
		return false
	}
	var frames []byte
	if len(s.tail) > 0 {
		frames = w.enc.EncodeAll(s.tail, nil)
	}
	frames = w.enc.EncodeAll(raw, frames)
	if err := f.Truncate(s.cut); err != nil {
		w.fail(path, 0, fmt.Errorf("recover: cut at offset %d: %w", s.cut, bare(err)))
		return false
	}
	if _, err := f.WriteAt(frames, s.cut); err != nil {
		w.fail(path, 0, fmt.Errorf("recover: write trailer at offset %d: %w", s.cut, bare(err)))
		return false
	}
	if err := f.Sync(); err != nil {
		w.fail(path, 0, fmt.Errorf("recover: fsync: %w", bare(err)))
		return false
	}
	if err := f.Close(); err != nil {
		w.fail(path, 0, fmt.Errorf("recover: close: %w", bare(err)))
		return false
	}
	final := filepath.Join(w.dir, fileName(n.base, n.critical, stateSealed))
	if err := renameNew(path, final); err != nil {
		w.fail(path, 0, fmt.Errorf("recover: %w", err))
		return false
	}
	cut := fi.Size() - s.cut
	w.stats.recovered.Add(1)
	w.stats.recoveredRecords.Add(s.records)
	w.stats.recoveredCutBytes.Add(uint64(cut))
	attrs := []any{"path", final, "records", s.records, "bytes_cut", cut, "critical", n.critical}
	if s.damage != nil {
		attrs = append(attrs, "reason", s.damage)
	}
	w.log.Warn("unsealed bundle of an earlier run recovered", attrs...)
	return true
}

// partScan is what scanPart learns from an unsealed bundle.
type partScan struct {
	digest  *digest // records kept, header included
	records uint64  // records kept, header not included
	cut     int64   // offset after the last whole frame kept
	// tail holds the delimited records kept from the frame at cut,
	// which is damaged or ends in a trailer.
	tail []byte
	// damage is why the scan stopped before the end: a *CorruptError,
	// errNoHeader, or a trailer found.
	damage error
}

// scanPart reads an unsealed bundle for recovery. It returns an error only
// if reading fails; damage is reported in partScan.damage.
func scanPart(f io.Reader) (partScan, error) {
	s := partScan{digest: newDigest()}
	r := NewReader(f)
	first := true
	for {
		rec, err := r.Next()
		if err == io.EOF {
			s.cut = r.clean
			if first {
				s.damage = errNoHeader
			}
			return s, nil
		}
		var ce *CorruptError
		if errors.As(err, &ce) {
			s.cut, s.tail, s.damage = r.clean, r.returned(), err
			if first {
				s.damage = fmt.Errorf("%w: %w", errNoHeader, err)
			}
			return s, nil
		}
		if err != nil {
			return s, err
		}
		_, isHeader := rec.GetRecord().(*xdrv1.Record_Header)
		if first && !isHeader {
			s.damage = fmt.Errorf("%w: first record is not a header", errNoHeader)
			return s, nil
		}
		if rec.GetTrailer() != nil {
			ret := r.returned()
			s.cut, s.tail = r.clean, ret[:len(ret)-len(r.raw)]
			s.damage = errors.New("trailer of a failed seal")
			return s, nil
		}
		first = false
		s.digest.add(rec, r.raw)
		if !isHeader {
			s.records++
		}
	}
}

// renameNew renames from to a name that must not exist yet.
func renameNew(from, to string) error {
	if _, err := os.Lstat(to); !errors.Is(err, fs.ErrNotExist) {
		if err == nil {
			return fmt.Errorf("rename to %s: file exists", to)
		}
		return err
	}
	return os.Rename(from, to)
}
