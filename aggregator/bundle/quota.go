package bundle

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// sealedFile is a sealed bundle in the directory.
type sealedFile struct {
	name nameInfo
	path string
	size int64
}

// listSealed returns the sealed bundles in the directory in the order the
// quota deletes them, non-critical before critical and each oldest first,
// and their total size.
func (w *Writer) listSealed() ([]sealedFile, int64, error) {
	entries, err := os.ReadDir(w.dir)
	if err != nil {
		return nil, 0, fmt.Errorf("list bundle directory: %w", err)
	}
	var files []sealedFile
	var total int64
	for _, e := range entries {
		n, ok := parseName(w.prefix, e.Name())
		if !ok || n.state != stateSealed || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile, by an uploader
		}
		if err != nil {
			return nil, 0, fmt.Errorf("stat bundle: %w", err)
		}
		files = append(files, sealedFile{name: n, path: filepath.Join(w.dir, e.Name()), size: fi.Size()})
		total += fi.Size()
	}
	slices.SortFunc(files, func(a, b sealedFile) int {
		switch {
		case a.name.critical == b.name.critical:
			return strings.Compare(a.name.base, b.name.base) // creation order
		case a.name.critical:
			return 1
		default:
			return -1
		}
	})
	return files, total, nil
}

// enforceQuota deletes sealed bundles while they take more than
// MaxDirBytes, in the order of listSealed. It stops at the first bundle it
// fails to delete, so that a critical bundle is never deleted while an
// older non-critical one is left.
func (w *Writer) enforceQuota() {
	if w.maxDirBytes == 0 {
		return
	}
	files, total, err := w.listSealed()
	if err != nil {
		w.fail(w.dir, 0, fmt.Errorf("quota: %w", err))
		return
	}
	for _, f := range files {
		if total <= w.maxDirBytes {
			return
		}
		if _, err := w.deleteSealed(f, "quota"); err != nil {
			return
		}
		total -= f.size
	}
}

// makeRoom is called when a write failed for lack of space. With a quota
// set, it deletes the oldest non-critical sealed bundles until it has
// freed MaxBytes or none is left; it never deletes a critical bundle for
// this, since the space may have been taken by something else. It
// reports whether it deleted any.
func (w *Writer) makeRoom() bool {
	if w.maxDirBytes == 0 {
		return false
	}
	files, _, err := w.listSealed()
	if err != nil {
		w.fail(w.dir, 0, fmt.Errorf("make room on full disk: %w", err))
		return false
	}
	var freed int64
	deleted := 0
	for _, f := range files {
		if f.name.critical || freed >= w.maxBytes {
			break
		}
		ok, err := w.deleteSealed(f, "disk full")
		if err != nil {
			break
		}
		if ok {
			freed += f.size
			deleted++
		}
	}
	if deleted > 0 {
		w.log.Warn("disk full: deleted the oldest bundles to make room", "dir", w.dir, "bundles", deleted, "bytes", freed)
	}
	return deleted > 0
}

// deleteSealed deletes a sealed bundle, counts and logs it. It reports
// whether it deleted the file: not if it was gone already. A failure is
// recorded with fail and returned.
func (w *Writer) deleteSealed(f sealedFile, reason string) (bool, error) {
	if err := os.Remove(f.path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		err = fmt.Errorf("delete for %s: %w", reason, bare(err))
		w.fail(f.path, 0, err)
		return false, err
	}
	w.stats.quotaDeleted.Add(1)
	w.stats.quotaDeletedBytes.Add(uint64(f.size))
	w.log.Info("bundle deleted", "path", f.path, "bytes", f.size, "critical", f.name.critical, "reason", reason)
	if w.onDelete != nil {
		w.onDelete(f.path)
	}
	return true, nil
}
