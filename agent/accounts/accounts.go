package accounts

import (
	"errors"
	"fmt"
	"hash/maphash"
	"io/fs"
	"log/slog"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/xdr-sensor/xdr/agent/userdb"
)

// File is one of the account files a Watcher compares.
type File uint8

// The account files.
const (
	Passwd File = iota // etc/passwd: users
	Shadow             // etc/shadow: users' passwords and password aging
	Group              // etc/group: groups and their members

	// NumFiles is the number of account files: Files are 0 to NumFiles-1.
	NumFiles
)

var fileNames = [NumFiles]string{"passwd", "shadow", "group"}

// String returns the file's name in etc/.
func (f File) String() string {
	if f < NumFiles {
		return fileNames[f]
	}
	return fmt.Sprintf("File(%d)", uint8(f))
}

// Options configure New. A nil *Options means all defaults; so does a zero
// field.
type Options struct {
	// Root is the directory whose etc/passwd, etc/shadow and etc/group
	// are compared (default "/").
	Root string
	// MaxFileSize caps the size of each file (default 4 MiB). A larger
	// file is not read: its snapshot stays as it was.
	MaxFileSize int64
	// MaxEntries caps the entries kept per file (default 65536). Entries
	// after that many are not compared; a warning is logged.
	MaxEntries int
	// MaxChanges caps the changes one Diff returns (default 1024); the
	// rest are counted in Result.Unreported.
	MaxChanges int
	// Logger receives read errors and warnings (group "accounts");
	// nil discards them.
	Logger *slog.Logger
}

const (
	defaultMaxFileSize = 4 << 20
	defaultMaxEntries  = 65536
	defaultMaxChanges  = 1024
)

// Watcher holds a snapshot of each account file and reports how the files
// changed since. It is not safe for concurrent use (the agent's collector
// goroutine owns it) and holds no open files: nothing to close.
type Watcher struct {
	log        *slog.Logger
	maxSize    int64
	maxEntries int
	maxChanges int
	// seed keys the password fingerprints, so that they tell nothing
	// about a password outside this process.
	seed  maphash.Seed
	files [NumFiles]state
	// gone holds the passwd entries that the last Diff of passwd
	// reported deleted (at most MaxChanges), by name: account tools
	// rewrite passwd before shadow, and the user of a shadow entry
	// deleted next is found there.
	gone map[string]entry
}

// state is what a Watcher knows of one file.
type state struct {
	path string
	// known is false until a snapshot was taken (the file could not be
	// read so far).
	known bool
	snap  table
	// id identifies the contents the snapshot was made from (zero: the
	// file did not exist), sum is their fingerprint.
	id  fileID
	sum uint64
	// deferred is the identity of contents that looked incomplete once
	// (see Result.Deferred); seeing them again, Diff compares them.
	deferred    fileID
	hasDeferred bool
	// lastErr is the last read error logged, to log each distinct error
	// once; overflow reports whether the MaxEntries warning is logged.
	lastErr  string
	overflow bool
}

// fileID identifies a version of a file; the zero value stands for a file
// that does not exist.
type fileID = userdb.FileVersion

// New returns a Watcher with a snapshot of each file taken. A file that
// does not exist has an empty snapshot; one that cannot be read (shadow,
// when not root) is logged, and its first later successful read is
// taken as its snapshot.
func New(opts *Options) *Watcher {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Root == "" {
		o.Root = "/"
	}
	if o.MaxFileSize <= 0 {
		o.MaxFileSize = defaultMaxFileSize
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = defaultMaxEntries
	}
	if o.MaxChanges <= 0 {
		o.MaxChanges = defaultMaxChanges
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	w := &Watcher{
		log:        o.Logger.WithGroup("accounts"),
		maxSize:    o.MaxFileSize,
		maxEntries: o.MaxEntries,
		maxChanges: o.MaxChanges,
		seed:       maphash.MakeSeed(),
	}
	for f := range NumFiles {
		w.files[f].path = filepath.Join(o.Root, "etc", f.String())
		w.Diff(f) // takes the snapshot, or logs why it cannot
	}
	return w
}

// Path returns the path of f.
func (w *Watcher) Path(f File) string { return w.files[f].path }

// Match reports which account file path names: a path as the kernel
// reports it, compared after lexical cleaning (symbolic links are not
// resolved).
func (w *Watcher) Match(path string) (File, bool) {
	if path == "" {
		return 0, false
	}
	path = filepath.Clean(path)
	for f := range NumFiles {
		if w.files[f].path == path {
			return f, true
		}
	}
	return 0, false
}

// Changed reports whether f may differ from its snapshot: its identity
// (device, inode, size, modification and change time) is not the
// snapshot's, or no snapshot could be taken yet. It costs one stat(2).
func (w *Watcher) Changed(f File) bool {
	s := &w.files[f]
	if !s.known {
		return true
	}
	var st unix.Stat_t
	err := unix.Stat(s.path, &st)
	if errors.Is(err, unix.ENOENT) {
		return s.id != fileID{}
	}
	return err != nil || userdb.VersionOf(&st) != s.id
}

// Kind says what happened to an entry.
type Kind uint8

// Kinds of change.
const (
	Added Kind = iota + 1
	Deleted
	Modified
)

// String returns the kind's name.
func (k Kind) String() string {
	switch k {
	case Added:
		return "added"
	case Deleted:
		return "deleted"
	case Modified:
		return "modified"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Field is a set of the fields of an entry.
type Field uint32

// Fields of the entries. FieldPassword stands for the password field, of
// passwd or shadow; the aging fields are shadow's.
const (
	FieldUID Field = 1 << iota
	FieldGID
	FieldGecos
	FieldHome
	FieldShell
	FieldPassword
	FieldLastChange
	FieldMinAge
	FieldMaxAge
	FieldWarnDays
	FieldInactiveDays
	FieldExpireDate
	FieldMembers
)

var fieldNames = [...]string{"uid", "gid", "gecos", "home", "shell", "password", "last_change",
	"min_age", "max_age", "warn_days", "inactive_days", "expire_date", "members"}

// Names returns the names of the fields in f, in the order of the Field
// constants (nil for none).
func (f Field) Names() []string {
	var out []string
	for i, name := range fieldNames {
		if f&(1<<i) != 0 {
			out = append(out, name)
		}
	}
	return out
}

// Change is an entry of an account file that was added, deleted or
// modified.
type Change struct {
	Kind Kind
	File File
	Path string // the file's path
	Name string
	// The entry's values after the change, or for a deletion, before it.
	// A group has only GID. A shadow entry has those of the passwd entry
	// of its name, if there is one (else NoUser is set).
	UID, GID           uint32
	Gecos, Home, Shell string
	NoUser             bool
	// PasswordEmpty reports an empty password field (passwd, shadow): the
	// account needs no password.
	PasswordEmpty bool
	// For Modified: the fields that changed and the values before, which
	// equal the current ones for fields that did not change.
	Changed                     Field
	OldUID, OldGID              uint32
	OldGecos, OldHome, OldShell string
	// MembersAdded and MembersRemoved are the user names that a group
	// gained and lost: for an added group, all its members; for a deleted
	// one, all it had.
	MembersAdded, MembersRemoved []string
}

// Result is what Diff found.
type Result struct {
	// Changes are the entries deleted (in the old file's order), then
	// those added or modified (in the new file's order).
	Changes []Change
	// Unreported counts the changes beyond Options.MaxChanges, left out.
	Unreported int
	// Deferred reports contents that look incomplete, as a file being
	// rewritten in place does: missing, empty, or not ending in a
	// newline. Nothing was compared and the snapshot was kept; when Diff
	// sees the very same contents (same identity) again, it compares them,
	// so a file left that way is still reported.
	Deferred bool
}

// Diff reads f, compares it with its snapshot and returns what changed;
// the snapshot becomes the file as read. A read error (other than the
// file not existing, which is an empty file) leaves the snapshot as it
// was; it is returned, and logged once per distinct error. The first
// successful read of a file that could not be read before only takes the
// snapshot.
func (w *Watcher) Diff(f File) (Result, error) {
	s := &w.files[f]
	b, id, err := readCapped(s.path, w.maxSize)
	if err != nil {
		if msg := err.Error(); msg != s.lastErr {
			s.lastErr = msg
			w.log.Warn("cannot read account file; its changes are not reported until it can be", "path", s.path, "err", err)
		}
		return Result{}, err
	}
	s.lastErr = ""
	sum := maphash.Bytes(w.seed, b)
	// A byte-identical file (often: another mount namespace's file of
	// the same path was written) needs no parsing.
	if s.known && sum == s.sum && (id == fileID{}) == (s.id == fileID{}) {
		s.id, s.hasDeferred = id, false
		return Result{}, nil
	}
	if s.known && (len(b) == 0 || b[len(b)-1] != '\n') && (!s.hasDeferred || s.deferred != id) {
		s.deferred, s.hasDeferred = id, true
		return Result{Deferred: true}, nil
	}
	next := w.parse(f, b)
	clear(b) // shadow's password hashes go no further
	if n := next.overflow; n > 0 && !s.overflow {
		w.log.Warn("account file has more entries than kept; changes to the others are not reported",
			"path", s.path, "kept", len(next.entries), "not_kept", n)
	}
	s.overflow = next.overflow > 0
	var res Result
	if s.known {
		res = w.compare(f, &s.snap, &next)
	} else {
		w.log.Debug("account file snapshot taken", "path", s.path, "entries", len(next.entries))
	}
	s.snap, s.id, s.sum, s.known, s.hasDeferred = next, id, sum, true, false
	return res, nil
}

// readCapped reads the file at path (see userdb.ReadFile); a file that
// does not exist reads as empty with a zero identity.
func readCapped(path string, max int64) ([]byte, fileID, error) {
	b, id, err := userdb.ReadFile(path, max)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fileID{}, nil
	}
	return b, id, err
}
