package exehash

import (
	"container/list"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// Options configure a Cache. The zero value of each field means its default.
type Options struct {
	// MaxFileSize is the largest file hashed (default 64 MiB). Larger
	// files get Hashes{TooLarge: true}.
	MaxFileSize int64
	// MaxEntries bounds the cache (default 2048); the least recently used
	// entry goes first.
	MaxEntries int
}

const (
	defaultMaxFileSize = 64 << 20
	defaultMaxEntries  = 2048
	bufSize            = 64 << 10
)

// Key identifies one version of a file. Any write to the file changes the
// change time, even when the modification time is set back afterwards, so
// a file modified in place never matches the key of its old contents.
type Key struct {
	Dev, Ino uint64
	Size     int64
	MtimeNs  int64 // modification time, Unix nanoseconds
	CtimeNs  int64 // inode change time, Unix nanoseconds
}

// KeyOf returns the key of the file st describes.
func KeyOf(st *unix.Stat_t) Key {
	// The field types of Stat_t differ between architectures (Dev is
	// uint64 on amd64 and arm64 but Timespec fields are int32 on arm):
	// convert each explicitly.
	return Key{
		Dev:     uint64(st.Dev),
		Ino:     uint64(st.Ino),
		Size:    int64(st.Size),
		MtimeNs: int64(st.Mtim.Sec)*1e9 + int64(st.Mtim.Nsec),
		CtimeNs: int64(st.Ctim.Sec)*1e9 + int64(st.Ctim.Nsec),
	}
}

// Stats are cumulative counts of a Cache.
type Stats struct {
	// Hits counts results served without reading the file: from the
	// cache, or from a concurrent Hash of the same key.
	Hits uint64
	// Misses counts files read and hashed.
	Misses uint64
	// Evictions counts entries dropped to stay within MaxEntries.
	Evictions uint64
	// TooLarge counts files not hashed because they exceed MaxFileSize.
	TooLarge uint64
	// Changed counts files that changed while being hashed: their result
	// was returned but not cached.
	Changed uint64
}

// Cache computes and remembers file hashes by Key. It is safe for concurrent
// use and holds no open files: nothing to close.
type Cache struct {
	maxSize    int64
	maxEntries int

	mu       sync.Mutex
	lru      *list.List // of *entry, most recently used first
	entries  map[Key]*list.Element
	inflight map[Key]*call
	stats    Stats

	afterRead func() // test hook: runs between reading and re-checking the file
}

type entry struct {
	key Key
	h   *xdrv1.Hashes
}

// call is a hash in progress; concurrent Hash calls for its key wait on done
// instead of reading the file again.
type call struct {
	done   chan struct{}
	h      *xdrv1.Hashes
	cached bool // h is valid for the key
}

// tooLarge is the shared result for files over the size cap.
var tooLarge = &xdrv1.Hashes{TooLarge: true}

var bufPool = sync.Pool{New: func() any { return new([bufSize]byte) }}

// New returns an empty cache configured by opts (nil means defaults).
func New(opts *Options) *Cache {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.MaxFileSize <= 0 {
		o.MaxFileSize = defaultMaxFileSize
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = defaultMaxEntries
	}
	return &Cache{
		maxSize:    o.MaxFileSize,
		maxEntries: o.MaxEntries,
		lru:        list.New(),
		entries:    make(map[Key]*list.Element),
		inflight:   make(map[Key]*call),
	}
}

// Hash returns the hashes of the open regular file f and its key. It fstat's
// f for the key and returns the cached result on a hit; otherwise it reads f
// from offset 0 with pread, leaving f's offset alone, computes the MD5,
// SHA-1 and SHA-256 digests (lowercase hex) and the Shannon entropy of its
// bytes (bits per byte, 0 to 8) in one pass, and caches the result unless
// the file changed meanwhile. Files larger than MaxFileSize are not read:
// the result has only TooLarge set.
//
// The returned Hashes is shared with the cache and other callers: treat it
// as read-only (proto.Clone it to modify it).
func (c *Cache) Hash(f *os.File) (*xdrv1.Hashes, Key, error) {
	key, err := fstatKey(f)
	if err != nil {
		return nil, Key{}, err
	}
	if key.Size > c.maxSize {
		c.mu.Lock()
		c.stats.TooLarge++
		c.mu.Unlock()
		return tooLarge, key, nil
	}

	c.mu.Lock()
	if e, ok := c.entries[key]; ok {
		c.lru.MoveToFront(e)
		c.stats.Hits++
		c.mu.Unlock()
		return e.Value.(*entry).h, key, nil
	}
	if cl, ok := c.inflight[key]; ok {
		c.mu.Unlock()
		<-cl.done
		if cl.cached {
			c.mu.Lock()
			c.stats.Hits++
			c.mu.Unlock()
			return cl.h, key, nil
		}
		// The other read failed or saw the file change: read it here.
		return c.hashUncached(f, key)
	}
	cl := &call{done: make(chan struct{})}
	c.inflight[key] = cl
	c.mu.Unlock()

	h, ok, err := c.read(f, key)

	c.mu.Lock()
	delete(c.inflight, key)
	if ok {
		c.add(key, h)
		cl.h, cl.cached = h, true
	}
	c.mu.Unlock()
	close(cl.done)
	if err != nil {
		return nil, key, err
	}
	return h, key, nil
}

// hashUncached reads f without joining or registering an in-flight call,
// caching the result if it is valid for key.
func (c *Cache) hashUncached(f *os.File, key Key) (*xdrv1.Hashes, Key, error) {
	h, ok, err := c.read(f, key)
	if err != nil {
		return nil, key, err
	}
	if ok {
		c.mu.Lock()
		c.add(key, h)
		c.mu.Unlock()
	}
	return h, key, nil
}

// read hashes f, whose key was key before reading, and counts the outcome.
// ok reports that the result is valid for key and may be cached.
func (c *Cache) read(f *os.File, key Key) (h *xdrv1.Hashes, ok bool, err error) {
	h, n, err := hashFile(f, c.maxSize)
	if err != nil {
		return nil, false, err
	}
	if c.afterRead != nil {
		c.afterRead()
	}
	after, err := fstatKey(f)
	changed := err != nil || after != key || n != key.Size
	c.mu.Lock()
	switch {
	case h.GetTooLarge():
		c.stats.TooLarge++ // grew past the cap while read
	case changed:
		c.stats.Changed++
	default:
		c.stats.Misses++
	}
	c.mu.Unlock()
	return h, !changed && !h.GetTooLarge(), nil
}

// add caches h under key, evicting the least recently used entries beyond
// the bound. The caller holds c.mu.
func (c *Cache) add(key Key, h *xdrv1.Hashes) {
	if e, ok := c.entries[key]; ok {
		c.lru.MoveToFront(e)
		return
	}
	c.entries[key] = c.lru.PushFront(&entry{key: key, h: h})
	for c.lru.Len() > c.maxEntries {
		oldest := c.lru.Back()
		c.lru.Remove(oldest)
		delete(c.entries, oldest.Value.(*entry).key)
		c.stats.Evictions++
	}
}

// Lookup returns the cached hashes for k, if any, marking them recently
// used. It does not count in Stats. The result is shared: treat it as
// read-only.
func (c *Cache) Lookup(k Key) (*xdrv1.Hashes, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok {
		return nil, false
	}
	c.lru.MoveToFront(e)
	return e.Value.(*entry).h, true
}

// Stats returns the cache's counts so far.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// fstatKey returns the key of the open file f, which must be a regular file.
func fstatKey(f *os.File) (Key, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return Key{}, fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	var st unix.Stat_t
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Fstat(int(fd), &st) }); err != nil {
		return Key{}, fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	if serr != nil {
		return Key{}, fmt.Errorf("stat %s: %w", f.Name(), serr)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return Key{}, fmt.Errorf("hash %s: not a regular file", f.Name())
	}
	return KeyOf(&st), nil
}

// hashFile reads f from offset 0 to its end with pread and returns its
// hashes and the number of bytes read. If f holds more than max bytes it
// stops and returns the too-large result.
func hashFile(f *os.File, max int64) (*xdrv1.Hashes, int64, error) {
	buf := bufPool.Get().(*[bufSize]byte)
	defer bufPool.Put(buf)
	hMD5, hSHA1, hSHA256 := md5.New(), sha1.New(), sha256.New()
	var hist [256]uint64
	var off int64
	for {
		n, err := f.ReadAt(buf[:], off)
		if n > 0 {
			if off+int64(n) > max {
				return tooLarge, off + int64(n), nil
			}
			b := buf[:n]
			hMD5.Write(b)
			hSHA1.Write(b)
			hSHA256.Write(b)
			count(&hist, b)
			off += int64(n)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, off, fmt.Errorf("read %s: %w", f.Name(), err)
		}
	}
	return &xdrv1.Hashes{
		Md5:     hex.EncodeToString(hMD5.Sum(nil)),
		Sha1:    hex.EncodeToString(hSHA1.Sum(nil)),
		Sha256:  hex.EncodeToString(hSHA256.Sum(nil)),
		Entropy: entropy(&hist, uint64(off)),
	}, off, nil
}

// count adds the bytes of b to the histogram.
func count(hist *[256]uint64, b []byte) {
	for _, c := range b {
		hist[c]++
	}
}

// entropy returns the Shannon entropy in bits per byte of a byte histogram
// over n bytes: 0 for empty or uniform content, 8 when all byte values are
// equally frequent.
func entropy(hist *[256]uint64, n uint64) float64 {
	if n == 0 {
		return 0
	}
	total := float64(n)
	var h float64
	for _, c := range hist {
		if c > 0 {
			p := float64(c) / total
			h -= p * math.Log2(p)
		}
	}
	return min(max(h, 0), 8)
}
