package userdb

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Options configure a DB. The zero value of each field means its default.
type Options struct {
	// Root is the directory whose etc/passwd and etc/group are read
	// (default "/").
	Root string
	// CheckInterval is how often, at most, the files are stat'ed for
	// changes (default 2s). The check happens on a lookup: a DB starts no
	// goroutine.
	CheckInterval time.Duration
	// MaxFileSize caps the size of each file (default 4 MiB). A larger
	// file is not read; the names loaded before stay in use.
	MaxFileSize int64
	// Logger receives read errors (default: discard).
	Logger *slog.Logger
}

const (
	defaultCheckInterval = 2 * time.Second
	defaultMaxFileSize   = 4 << 20
)

// DB resolves ids to names from the passwd and group files under a root. It
// is safe for concurrent use and holds no open files: nothing to close.
//
// Only the local files are read: accounts that NSS serves from elsewhere
// (LDAP, SSSD, systemd-homed) have no name here.
type DB struct {
	log      *slog.Logger
	interval time.Duration
	maxSize  int64
	now      func() time.Time // a test clock replaces time.Now

	// nextCheck is when, in Unix nanoseconds, the files are next due for
	// a stat. Lookups read it without a lock.
	nextCheck atomic.Int64

	// reloadMu is held by the one lookup that checks the files; others
	// go on with the current maps meanwhile.
	reloadMu sync.Mutex
	passwd   source
	group    source

	// gen counts the reloads that replaced the maps, so that callers
	// caching names know when to look them up again.
	gen atomic.Uint64

	mu     sync.RWMutex
	byUID  map[uint32]User
	byName map[string]User
	byGID  map[uint32]string
}

// source is one of the files and what was last loaded from it.
type source struct {
	path    string
	id      FileVersion // of the contents in use; zero before the first load
	lastErr string      // last error logged, to log each distinct error once
}

// FileVersion identifies a version of a file: its device, inode, size
// and modification and change times. The zero value stands for no file.
type FileVersion struct {
	dev, ino         uint64
	size             int64
	mtimeNs, ctimeNs int64
}

// VersionOf returns the version of the file st describes.
func VersionOf(st *unix.Stat_t) FileVersion {
	return FileVersion{
		dev:     uint64(st.Dev),
		ino:     uint64(st.Ino),
		size:    int64(st.Size),
		mtimeNs: int64(st.Mtim.Sec)*1e9 + int64(st.Mtim.Nsec),
		ctimeNs: int64(st.Ctim.Sec)*1e9 + int64(st.Ctim.Nsec),
	}
}

// New returns a DB for opts (nil means defaults) with the files loaded. A
// file that cannot be read is logged and resolves no names until a later
// check reads it.
func New(opts *Options) *DB {
	return newDB(opts, time.Now)
}

func newDB(opts *Options, now func() time.Time) *DB {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Root == "" {
		o.Root = "/"
	}
	if o.CheckInterval <= 0 {
		o.CheckInterval = defaultCheckInterval
	}
	if o.MaxFileSize <= 0 {
		o.MaxFileSize = defaultMaxFileSize
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	d := &DB{
		log:      o.Logger.WithGroup("userdb"),
		interval: o.CheckInterval,
		maxSize:  o.MaxFileSize,
		now:      now,
		passwd:   source{path: filepath.Join(o.Root, "etc", "passwd")},
		group:    source{path: filepath.Join(o.Root, "etc", "group")},
		byUID:    map[uint32]User{},
		byName:   map[string]User{},
		byGID:    map[uint32]string{},
	}
	d.reloadMu.Lock()
	d.check(now())
	d.reloadMu.Unlock()
	return d
}

// Generation changes whenever the names loaded change (after a check
// that found a file changed): names looked up under one generation stay
// right until it changes. It checks the files when they are due.
func (d *DB) Generation() uint64 {
	d.maybeCheck()
	return d.gen.Load()
}

// UserName returns the name of user uid, or "" when unknown.
func (d *DB) UserName(uid uint32) string {
	u, _ := d.User(uid)
	return u.Name
}

// GroupName returns the name of group gid, or "" when unknown.
func (d *DB) GroupName(gid uint32) string {
	d.maybeCheck()
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.byGID[gid]
}

// User returns the first passwd entry with uid.
func (d *DB) User(uid uint32) (User, bool) {
	d.maybeCheck()
	d.mu.RLock()
	defer d.mu.RUnlock()
	u, ok := d.byUID[uid]
	return u, ok
}

// UserByName returns the first passwd entry named name.
func (d *DB) UserByName(name string) (User, bool) {
	d.maybeCheck()
	d.mu.RLock()
	defer d.mu.RUnlock()
	u, ok := d.byName[name]
	return u, ok
}

// maybeCheck checks the files when they are due. Only one caller does;
// concurrent callers don't wait for it.
func (d *DB) maybeCheck() {
	now := d.now()
	if now.UnixNano() < d.nextCheck.Load() || !d.reloadMu.TryLock() {
		return
	}
	defer d.reloadMu.Unlock()
	if now.UnixNano() >= d.nextCheck.Load() {
		d.check(now)
	}
}

// check reloads whichever file changed. The caller holds reloadMu.
func (d *DB) check(now time.Time) {
	d.nextCheck.Store(now.Add(d.interval).UnixNano())
	if b, id, ok := d.changed(&d.passwd); ok {
		users := ParsePasswd(b)
		byUID := make(map[uint32]User, len(users))
		byName := make(map[string]User, len(users))
		for _, u := range users {
			if _, dup := byUID[u.UID]; !dup {
				byUID[u.UID] = u
			}
			if _, dup := byName[u.Name]; !dup {
				byName[u.Name] = u
			}
		}
		d.mu.Lock()
		d.byUID, d.byName = byUID, byName
		d.mu.Unlock()
		d.gen.Add(1)
		d.passwd.id = id
		d.log.Debug("loaded users", "path", d.passwd.path, "entries", len(users))
	}
	if b, id, ok := d.changed(&d.group); ok {
		groups := ParseGroup(b)
		byGID := make(map[uint32]string, len(groups))
		for _, g := range groups {
			if _, dup := byGID[g.GID]; !dup {
				byGID[g.GID] = g.Name
			}
		}
		d.mu.Lock()
		d.byGID = byGID
		d.mu.Unlock()
		d.gen.Add(1)
		d.group.id = id
		d.log.Debug("loaded groups", "path", d.group.path, "entries", len(groups))
	}
}

// changed returns the contents of s's file and their identity when the file
// changed since it was last loaded. On an error it logs (each distinct error
// once) and reports no change, so the names loaded before stay in use and
// the next check tries again.
func (d *DB) changed(s *source) ([]byte, FileVersion, bool) {
	var st unix.Stat_t
	err := unix.Stat(s.path, &st)
	if err == nil && VersionOf(&st) == s.id {
		return nil, FileVersion{}, false
	}
	var b []byte
	var id FileVersion
	if err == nil {
		b, id, err = ReadFile(s.path, d.maxSize)
	}
	if err != nil {
		if msg := err.Error(); msg != s.lastErr {
			s.lastErr = msg
			d.log.Warn("cannot read account file; keeping the names loaded before", "path", s.path, "err", err)
		}
		return nil, FileVersion{}, false
	}
	s.lastErr = ""
	return b, id, true
}

// ReadFile reads the file at path if it is a regular file of at most max
// bytes, and returns what it read and the version it read it from (taken
// before reading: a write during the read shows as a new version at the
// next check). It never blocks on a FIFO put in the file's place.
func ReadFile(path string, max int64) ([]byte, FileVersion, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, FileVersion{}, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, FileVersion{}, fmt.Errorf("stat %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, FileVersion{}, fmt.Errorf("%s: not a regular file", path)
	}
	if int64(st.Size) > max {
		return nil, FileVersion{}, fmt.Errorf("%s: too large (%d bytes, limit %d)", path, st.Size, max)
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, FileVersion{}, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > max {
		return nil, FileVersion{}, fmt.Errorf("%s: too large (grew past the limit of %d bytes while read)", path, max)
	}
	return b, VersionOf(&st), nil
}
