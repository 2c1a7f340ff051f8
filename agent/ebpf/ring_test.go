package ebpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"unsafe"
)

// fakeRing is a ring buffer in Go memory laid out as the kernel's: the
// data area written twice in a row, positions as unsigned longs.
type fakeRing struct {
	cons, prod []byte
	data       []byte // 2*size
	size       int
	pos        uintptr // producer position
	r          *ring
}

func newFakeRing(size int) *fakeRing {
	f := &fakeRing{
		cons: make([]byte, 64), prod: make([]byte, 64),
		data: make([]byte, 2*size), size: size,
	}
	f.r = newRing(f.cons, f.prod, f.data, size)
	return f
}

// put writes a record with header bits flags and returns its offset.
func (f *fakeRing) put(payload []byte, flags uint32) uintptr {
	at := f.pos
	hdr := make([]byte, ringHdrSize)
	binary.NativeEndian.PutUint32(hdr, uint32(len(payload))|flags)
	rec := append(hdr, payload...)
	for len(rec)%8 != 0 {
		rec = append(rec, 0)
	}
	for i, b := range rec {
		o := (int(at) + i) % f.size
		f.data[o], f.data[o+f.size] = b, b // mapped twice
	}
	f.pos += uintptr(len(rec))
	atomic.StoreUintptr((*uintptr)(unsafe.Pointer(&f.prod[0])), f.pos)
	return at
}

func (f *fakeRing) commit(at uintptr) {
	o := int(at) % f.size
	v := binary.NativeEndian.Uint32(f.data[o:]) &^ ringBusy
	binary.NativeEndian.PutUint32(f.data[o:], v)
	binary.NativeEndian.PutUint32(f.data[o+f.size:], v)
}

func (f *fakeRing) consumer() uintptr {
	return atomic.LoadUintptr((*uintptr)(unsafe.Pointer(&f.cons[0])))
}

func (f *fakeRing) take(t *testing.T) []string {
	t.Helper()
	var got []string
	for {
		b, ok, err := f.r.peek()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return got
		}
		got = append(got, string(b))
	}
}

func TestRingRecords(t *testing.T) {
	f := newFakeRing(64)
	f.put([]byte("first"), 0)
	f.put([]byte("gone"), ringDiscard)
	busy := f.put([]byte("third"), ringBusy)
	f.put([]byte("fourth"), 0)
	if got := f.take(t); fmt.Sprint(got) != "[first]" {
		t.Fatalf("before the busy record: %q, want [first] (a busy record stops the reader)", got)
	}
	f.r.release()
	if got, want := f.consumer(), uintptr(32); got != want {
		t.Errorf("consumer position %d, want %d (first and the discarded record)", got, want)
	}
	f.commit(busy)
	if got := f.take(t); fmt.Sprint(got) != "[third fourth]" {
		t.Fatalf("after the commit: %q", got)
	}
	if f.r.available() != 0 {
		t.Errorf("available %d after reading everything", f.r.available())
	}
	// The next record wraps around the end of the data area: it reads
	// contiguously through the second mapping.
	f.r.release()
	for _, s := range []string{"abc", "def", "ghi"} {
		f.put([]byte(s), 0)
	}
	f.take(t)
	f.r.release()
	long := []byte("0123456789abcdefghijklmnop")
	at := f.put(long, 0)
	if int(at)%f.size+len(long) <= f.size {
		t.Fatalf("test record does not wrap: at %d, size %d", at, f.size)
	}
	if got := f.take(t); len(got) != 1 || got[0] != string(long) {
		t.Errorf("wrapped record %q, want %q", got, long)
	}
}

func TestRingCorrupt(t *testing.T) {
	f := newFakeRing(64)
	at := f.put([]byte("x"), 0)
	binary.NativeEndian.PutUint32(f.data[at:], 1000) // longer than what was produced
	if _, _, err := f.r.peek(); !errors.Is(err, errRingCorrupt) {
		t.Errorf("oversized record: %v, want errRingCorrupt", err)
	}
}

// FuzzRing feeds the reader arbitrary ring contents and producer
// positions: it must return records inside the data it was given, or an
// error, and never read out of bounds.
func FuzzRing(f *testing.F) {
	good := newFakeRing(256)
	good.put([]byte("first"), 0)
	good.put([]byte("skip"), ringDiscard)
	good.put([]byte("busy"), ringBusy)
	f.Add(good.data[:256], uint16(good.pos), uint16(0))
	f.Add(make([]byte, 256), uint16(300), uint16(250))
	f.Fuzz(func(t *testing.T, data []byte, prod, cons uint16) {
		const size = 256
		r := newFakeRing(size)
		copy(r.data, data)
		copy(r.data[size:], r.data[:size]) // mapped twice
		c, p := uintptr(cons), uintptr(cons)+uintptr(prod)%(size+1)
		atomic.StoreUintptr((*uintptr)(unsafe.Pointer(&r.cons[0])), c)
		atomic.StoreUintptr((*uintptr)(unsafe.Pointer(&r.prod[0])), p)
		r.r = newRing(r.cons, r.prod, r.data, size)
		for range size {
			b, ok, err := r.r.peek()
			if err != nil || !ok {
				break
			}
			if len(b) > size || r.r.next > p {
				t.Fatalf("record of %d bytes, consumer %d past producer %d", len(b), r.r.next, p)
			}
		}
	})
}
