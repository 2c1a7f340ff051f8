package footprint

import (
	"unsafe"
)

// Memory accounting. The byte budget is only as good as the estimate, so
// it counts what the heap really holds for an entry: the entry and object
// allocations with their malloc headers, the map slot, the string block
// and any string outside it, argv's backing array, each at the size the
// allocator gives it, plus an allowance for fragmentation.
// BenchmarkMillionDistinct compares the estimate with the measured heap.

var (
	entrySize = objSize(unsafe.Sizeof(entry{}))
	// mapSlotSize is the share of one entry in map[uint64]*entry: a
	// key/value slot plus a control byte, at a load between 7/16 (just
	// after the table grew) and 7/8, rounded up.
	mapSlotSize = int64(3 * (8 + unsafe.Sizeof(uintptr(0))))
)

// fragmentationPct is the fragmentation allowance, in percent of an
// entry's live bytes. Entries are allocated among short-lived garbage (the
// rest of each event, emitted footprints) and evicted in another order,
// so the heap's spans in use hold more than the live bytes.
// BenchmarkMillionDistinct, with the subject strings shared, measured the
// heap in use 28% above the live heap on amd64 and 56% above on arm
// (32-bit, under qemu); the live heap per entry stays within 3% of the
// estimate's live part. (With a copy of the subject in every entry, larger
// entries, it was 10% and 20%.)
const fragmentationPct = 34 + 28*is32bit

// is32bit is 1 on 32-bit platforms and 0 on 64-bit ones.
const is32bit = 1 - int64(unsafe.Sizeof(uintptr(0)))/8

// withFragmentation adds the fragmentation allowance to n live bytes.
func withFragmentation(n int64) int64 { return n + n*fragmentationPct/100 }

// estimate returns the heap bytes e accounts for, not counting its
// subject's shared strings (see subjectStrings).
func (e *entry) estimate() int64 {
	n := entrySize + mapSlotSize + allocSize(len(e.block))
	if e.object != nil {
		n += e.object.size(e.block)
	}
	return withFragmentation(n)
}

// allocSize approximates, from above, the bytes the Go allocator reserves
// for a pointer-free object of n bytes (string data): its size classes
// are 8, 16, 24, then steps of 16 up to 256, of 32 up to 512, of 64 or
// 128 up to 1024, and waste at most 1/8 above that.
func allocSize(n int) int64 {
	switch {
	case n <= 0:
		return 0
	case n <= 8:
		return 8
	case n <= 24:
		return int64((n + 7) &^ 7)
	case n <= 256:
		return int64((n + 15) &^ 15)
	case n <= 512:
		return int64((n + 31) &^ 31)
	case n <= 1024:
		return int64((n + 127) &^ 127)
	default:
		return int64(n + n/8)
	}
}

// mallocHeaderAbove is the size above which an object holding pointers
// carries an 8-byte malloc header (the runtime's minSizeForMallocHeader:
// one pointer bitmap word's worth of pointers), 512 bytes on 64-bit
// platforms and 128 on 32-bit ones.
const mallocHeaderAbove = unsafe.Sizeof(uintptr(0)) * 8 * unsafe.Sizeof(uintptr(0))

// objSize is allocSize for an object that holds pointers.
func objSize(n uintptr) int64 {
	if n > mallocHeaderAbove {
		n += 8
	}
	return allocSize(int(n))
}

// strSize returns the heap bytes s costs beyond block: none if s points
// into block (or is empty).
func strSize(block, s string) int64 {
	if len(s) == 0 {
		return 0
	}
	b := uintptr(unsafe.Pointer(unsafe.StringData(block)))
	p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
	if len(block) > 0 && p >= b && p < b+uintptr(len(block)) {
		return 0
	}
	return allocSize(len(s))
}

// keep sets *dst to s unless *dst already holds an equal string, so that
// a string in an entry's block stays there rather than pinning the
// memory of every later event that repeats it.
func keep(dst *string, s string) {
	if *dst != s {
		*dst = s
	}
}

// pack copies the object strings of a new entry into one allocation, its
// block. They come from the decoded event, each allocated among the
// event's garbage (environment, ancestry, ...): kept there, they would
// pin mostly empty heap spans once the garbage is collected. Packed, the
// entry costs one allocation and leaves no such holes. scratch is reused
// space for the string pointers; pack returns it emptied.
func (e *entry) pack(scratch []*string) []*string {
	if e.object == nil {
		return scratch[:0]
	}
	ptrs := e.object.strs(scratch[:0])
	e.block = packStrings(ptrs)
	clear(ptrs) // drop the pointers into e
	return ptrs[:0]
}
