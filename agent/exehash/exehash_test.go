package exehash

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/testing/protocmp"

	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

func open(t testing.TB, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// The digests were computed with md5sum, sha1sum and sha256sum.
func TestHashFixtures(t *testing.T) {
	for _, tc := range []struct {
		file string
		want *xdrv1.Hashes
	}{
		{"empty", &xdrv1.Hashes{
			Md5:    "d41d8cd98f00b204e9800998ecf8427e",
			Sha1:   "da39a3ee5e6b4b0d3255bfef95601890afd80709",
			Sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		}},
		{"hello.txt", &xdrv1.Hashes{
			Md5:     "6f5902ac237024bdd0c176cb93063dc4",
			Sha1:    "22596363b3de40b06f981fb85d82312e8c0ed511",
			Sha256:  "a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447",
			Entropy: 3.0220552088742,
		}},
		{"zeros", &xdrv1.Hashes{ // 4096 zero bytes: entropy 0
			Md5:    "620f0b67a91f7f74151bc5be745b7110",
			Sha1:   "1ceaf73df40e531df3bfb26b4fb7cd95fb7bff1d",
			Sha256: "ad7facb2586fc6e966c004d7d1d16b024f5805ff7cb47c7a85dabd8b48892ca7",
		}},
		{"allbytes", &xdrv1.Hashes{ // bytes 0 to 255 once each: entropy 8
			Md5:     "e2c865db4162bed963bfaa9ef6ac18f0",
			Sha1:    "4916d6bdb7f78e6803698cab32d1586ea457dfc8",
			Sha256:  "40aff2e9d2d8922e47afd4648e6967497158785fbd1da870e7110266bf944880",
			Entropy: 8,
		}},
		{"script.sh", &xdrv1.Hashes{
			Md5:     "1d483fe9dad91878fb87f4e0c12fc5eb",
			Sha1:    "521acb151e4c9755c37e47f7d13654d159c10fd4",
			Sha256:  "2070010432f8c39ee3047fddba2e32f33152a3b0a5680052f90ad7002ab251fd",
			Entropy: 4.114718016821339,
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			got, _, err := New(nil).Hash(open(t, filepath.Join("testdata", tc.file)))
			if err != nil {
				t.Fatal(err)
			}
			opt := protocmp.FilterField(&xdrv1.Hashes{}, "entropy", cmp.Comparer(func(a, b float64) bool { return math.Abs(a-b) < 1e-12 }))
			if d := cmp.Diff(tc.want, got, protocmp.Transform(), opt); d != "" {
				t.Errorf("Hash(%s) (-want +got):\n%s", tc.file, d)
			}
		})
	}
}

// TestHashLarge checks a file spanning many read buffers against the
// digests of its whole contents.
func TestHashLarge(t *testing.T) {
	b := make([]byte, 5*bufSize+123)
	r := rand.NewChaCha8([32]byte{1})
	r.Read(b)
	path := filepath.Join(t.TempDir(), "large")
	writeFile(t, path, b)
	got, key, err := New(nil).Hash(open(t, path))
	if err != nil {
		t.Fatal(err)
	}
	m, s1, s256 := md5.Sum(b), sha1.Sum(b), sha256.Sum256(b)
	if got.Md5 != hex.EncodeToString(m[:]) || got.Sha1 != hex.EncodeToString(s1[:]) || got.Sha256 != hex.EncodeToString(s256[:]) {
		t.Errorf("Hash = %v, want md5 %x sha1 %x sha256 %x", got, m, s1, s256)
	}
	if got.Entropy < 7.9 || got.Entropy > 8 {
		t.Errorf("entropy of random bytes = %v, want close to 8", got.Entropy)
	}
	if key.Size != int64(len(b)) {
		t.Errorf("key size %d, want %d", key.Size, len(b))
	}
}

func TestKeyOf(t *testing.T) {
	path := filepath.Join("testdata", "hello.txt")
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	sys := fi.Sys().(*syscall.Stat_t)
	want := Key{
		Dev:     uint64(sys.Dev),
		Ino:     sys.Ino,
		Size:    fi.Size(),
		MtimeNs: fi.ModTime().UnixNano(),
		CtimeNs: time.Unix(int64(sys.Ctim.Sec), int64(sys.Ctim.Nsec)).UnixNano(),
	}
	if d := cmp.Diff(want, KeyOf(&st)); d != "" {
		t.Errorf("KeyOf (-want +got):\n%s", d)
	}
	_, key, err := New(nil).Hash(open(t, path))
	if err != nil {
		t.Fatal(err)
	}
	if key != want {
		t.Errorf("Hash key = %+v, want %+v", key, want)
	}
}

func TestCacheHit(t *testing.T) {
	c := New(nil)
	path := filepath.Join("testdata", "script.sh")
	first, key, err := c.Hash(open(t, path))
	if err != nil {
		t.Fatal(err)
	}
	second, key2, err := c.Hash(open(t, path)) // another open of the same file
	if err != nil {
		t.Fatal(err)
	}
	if second != first || key2 != key {
		t.Errorf("second Hash = %p %+v, want the cached %p %+v", second, key2, first, key)
	}
	if got, ok := c.Lookup(key); !ok || got != first {
		t.Errorf("Lookup = %p, %v; want %p", got, ok, first)
	}
	if d := cmp.Diff(Stats{Hits: 1, Misses: 1}, c.Stats()); d != "" {
		t.Errorf("Stats (-want +got):\n%s", d)
	}
}

func TestChangedFileMisses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "prog")
	writeFile(t, path, []byte("version 1"))
	c := New(nil)
	h1, k1, err := c.Hash(open(t, path))
	if err != nil {
		t.Fatal(err)
	}

	// A new modification time is a new key.
	mtime := time.Unix(1700000000, 123456789)
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	h2, k2, err := c.Hash(open(t, path))
	if err != nil {
		t.Fatal(err)
	}
	if k2 == k1 || k2.MtimeNs != mtime.UnixNano() {
		t.Errorf("key after chtimes %+v, before %+v", k2, k1)
	}
	if h2 == h1 || h2.Sha256 != h1.Sha256 {
		t.Errorf("same contents under a new key: got %v, first %v", h2, h1)
	}

	// Same size, mtime set back: the change time still tells.
	writeFile(t, path, []byte("version 2"))
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	h3, k3, err := c.Hash(open(t, path))
	if err != nil {
		t.Fatal(err)
	}
	if k3.MtimeNs != k2.MtimeNs || k3.Size != k2.Size || k3 == k2 {
		t.Errorf("key after rewrite %+v, before %+v: want same size and mtime, different key", k3, k2)
	}
	if h3.Sha256 == h2.Sha256 {
		t.Error("rewritten file served the old digest")
	}
	if d := cmp.Diff(Stats{Misses: 3}, c.Stats()); d != "" {
		t.Errorf("Stats (-want +got):\n%s", d)
	}
	if _, ok := c.Lookup(k1); !ok {
		t.Error("old key was dropped: only the LRU bound evicts")
	}
}

func TestTooLarge(t *testing.T) {
	c := New(&Options{MaxFileSize: 11})
	got, key, err := c.Hash(open(t, filepath.Join("testdata", "hello.txt"))) // 12 bytes
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(&xdrv1.Hashes{TooLarge: true}, got, protocmp.Transform()); d != "" {
		t.Errorf("Hash (-want +got):\n%s", d)
	}
	if _, ok := c.Lookup(key); ok {
		t.Error("too large result was cached")
	}
	// At the limit it is hashed.
	if got, _, err := c.Hash(open(t, filepath.Join("testdata", "empty"))); err != nil || got.TooLarge || got.Md5 == "" {
		t.Errorf("Hash(empty) = %v, %v", got, err)
	}
	c2 := New(&Options{MaxFileSize: 12})
	if got, _, err := c2.Hash(open(t, filepath.Join("testdata", "hello.txt"))); err != nil || got.TooLarge {
		t.Errorf("Hash at exactly the limit = %v, %v", got, err)
	}
	if d := cmp.Diff(Stats{TooLarge: 1, Misses: 1}, c.Stats()); d != "" {
		t.Errorf("Stats (-want +got):\n%s", d)
	}
}

func TestEviction(t *testing.T) {
	c := New(&Options{MaxEntries: 2})
	hash := func(name string) Key {
		t.Helper()
		_, k, err := c.Hash(open(t, filepath.Join("testdata", name)))
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	a := hash("hello.txt")
	b := hash("zeros")
	hash("hello.txt") // a is now the most recently used
	d := hash("allbytes")
	for _, tc := range []struct {
		name string
		key  Key
		want bool
	}{{"a", a, true}, {"b", b, false}, {"d", d, true}} {
		if _, ok := c.Lookup(tc.key); ok != tc.want {
			t.Errorf("Lookup(%s) = %v, want %v", tc.name, ok, tc.want)
		}
	}
	if diff := cmp.Diff(Stats{Hits: 1, Misses: 3, Evictions: 1}, c.Stats()); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
}

func TestOffsetUntouched(t *testing.T) {
	f := open(t, filepath.Join("testdata", "hello.txt"))
	if _, err := f.Seek(6, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if _, _, err := New(nil).Hash(f); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if string(rest) != "world\n" {
		t.Errorf("read after Hash = %q, want the rest from offset 6", rest)
	}
}

func TestChangedWhileHashing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "prog")
	writeFile(t, path, []byte("original"))
	c := New(nil)
	c.afterRead = func() {
		c.afterRead = nil
		w, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		if _, err := w.WriteString(" and appended"); err != nil {
			t.Fatal(err)
		}
	}
	f := open(t, path)
	h, key, err := c.Hash(f)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256([]byte("original")); h.Sha256 != hex.EncodeToString(sum[:]) {
		t.Errorf("digest %s is not that of what was read", h.Sha256)
	}
	if _, ok := c.Lookup(key); ok {
		t.Error("result of a file that changed while read was cached")
	}
	if d := cmp.Diff(Stats{Changed: 1}, c.Stats()); d != "" {
		t.Errorf("Stats (-want +got):\n%s", d)
	}
	// The next call reads the new contents and caches them.
	h2, key2, err := c.Hash(f)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256([]byte("original and appended")); h2.Sha256 != hex.EncodeToString(sum[:]) {
		t.Errorf("digest after the change %s", h2.Sha256)
	}
	if _, ok := c.Lookup(key2); !ok {
		t.Error("stable file not cached")
	}
}

func TestNotRegular(t *testing.T) {
	c := New(nil)
	if _, _, err := c.Hash(open(t, "testdata")); err == nil {
		t.Error("Hash of a directory succeeded")
	}
	f := open(t, filepath.Join("testdata", "hello.txt"))
	f.Close()
	if _, _, err := c.Hash(f); err == nil {
		t.Error("Hash of a closed file succeeded")
	}
	if d := cmp.Diff(Stats{}, c.Stats()); d != "" {
		t.Errorf("Stats (-want +got):\n%s", d)
	}
}

// TestConcurrentSameFile checks that an exec storm of one binary reads it
// once.
func TestConcurrentSameFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big")
	writeFile(t, path, make([]byte, 4<<20))
	c := New(nil)
	const n = 16
	results := make([]*xdrv1.Hashes, n)
	var wg sync.WaitGroup
	for i := range n {
		f := open(t, path)
		wg.Go(func() {
			h, _, err := c.Hash(f)
			if err != nil {
				t.Error(err)
			}
			results[i] = h
		})
	}
	wg.Wait()
	for i, h := range results {
		if h != results[0] {
			t.Errorf("result %d is %p, want the shared %p", i, h, results[0])
		}
	}
	if d := cmp.Diff(Stats{Misses: 1, Hits: n - 1}, c.Stats()); d != "" {
		t.Errorf("Stats (-want +got):\n%s", d)
	}
}

func TestEntropy(t *testing.T) {
	var two [256]uint64
	two['a'], two['b'] = 5, 5
	var skewed [256]uint64
	skewed[0], skewed[1] = 3, 1
	for _, tc := range []struct {
		name string
		hist [256]uint64
		n    uint64
		want float64
	}{
		{"empty", [256]uint64{}, 0, 0},
		{"one value", [256]uint64{7: 100}, 100, 0},
		{"two values", two, 10, 1},
		{"skewed", skewed, 4, 0.8112781244591328},
	} {
		if got := entropy(&tc.hist, tc.n); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%s: entropy = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func benchFile(b *testing.B) *os.File {
	data := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{2}).Read(data)
	path := filepath.Join(b.TempDir(), "bin")
	writeFile(b, path, data)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	return open(b, path)
}

func BenchmarkHash1MiBCold(b *testing.B) {
	f := benchFile(b)
	for b.Loop() {
		if _, _, err := New(nil).Hash(f); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHash1MiBCached(b *testing.B) {
	f := benchFile(b)
	c := New(nil)
	for b.Loop() {
		if _, _, err := c.Hash(f); err != nil {
			b.Fatal(err)
		}
	}
}
