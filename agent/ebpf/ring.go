package ebpf

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ring reads a BPF ring buffer map through its memory mapping: taking
// records costs no system call, so a burst of thousands of records is
// read without entering the kernel once.
//
// The map's mapping is, in pages: the consumer position (writable by
// user space), the producer position, then the data area mapped twice in
// a row, so that a record that wraps around the end is still contiguous.
// Each record starts with an 8-byte header: its length, with a busy bit
// while the producer is still writing it and a discard bit for a
// reservation given up, then the page offset the kernel uses. Records are
// 8-byte aligned. The positions are unsigned longs, so 32 bits wide on
// 32-bit machines.
type ring struct {
	consMem, prodMem []byte
	cons, prod       *uintptr
	data             []byte // the data area, mapped twice
	mask             uintptr

	next uintptr // consumer position past the records handed out
}

const (
	ringBusy    = 1 << 31
	ringDiscard = 1 << 30
	ringHdrSize = 8
)

var errRingCorrupt = errors.New("ring buffer corrupt")

// openRing maps the ring buffer map fd of size bytes (a power of two).
func openRing(fd, size int) (*ring, error) {
	page := os.Getpagesize()
	cons, err := unix.Mmap(fd, 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map the ring buffer's consumer page: %w", err)
	}
	prod, err := unix.Mmap(fd, int64(page), page+2*size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		unix.Munmap(cons)
		return nil, fmt.Errorf("map the ring buffer's data: %w", err)
	}
	return newRing(cons, prod, prod[page:], size), nil
}

// newRing reads the ring whose positions start cons and prod and whose
// data (size bytes, mapped twice) is data.
func newRing(cons, prod, data []byte, size int) *ring {
	r := &ring{
		consMem: cons,
		prodMem: prod,
		cons:    (*uintptr)(unsafe.Pointer(&cons[0])),
		prod:    (*uintptr)(unsafe.Pointer(&prod[0])),
		data:    data,
		mask:    uintptr(size - 1),
	}
	r.next = atomic.LoadUintptr(r.cons)
	return r
}

// available is how many bytes the producer has committed or reserved
// beyond what was handed out.
func (r *ring) available() uintptr {
	return atomic.LoadUintptr(r.prod) - r.next
}

// peek returns the next record's data, valid until release, and false
// when there is none yet: the ring is empty or the producer is still
// writing the next record (records are consumed in order). Discarded
// reservations are skipped.
func (r *ring) peek() ([]byte, bool, error) {
	prod := atomic.LoadUintptr(r.prod)
	for prod != r.next {
		if prod-r.next < ringHdrSize {
			return nil, false, fmt.Errorf("%w: %d bytes left, a header needs %d", errRingCorrupt, prod-r.next, ringHdrSize)
		}
		start := r.next & r.mask
		// The atomic load orders the read of the data after the
		// producer's commit, which clears the busy bit.
		hdr := atomic.LoadUint32((*uint32)(unsafe.Pointer(&r.data[start])))
		if hdr&ringBusy != 0 {
			return nil, false, nil
		}
		n := uintptr(hdr &^ (ringBusy | ringDiscard))
		total := (ringHdrSize + n + 7) &^ 7
		if total > prod-r.next || n > r.mask+1 {
			return nil, false, fmt.Errorf("%w: record of %d bytes, %d left", errRingCorrupt, n, prod-r.next)
		}
		r.next += total
		if hdr&ringDiscard != 0 {
			continue
		}
		start += ringHdrSize
		return r.data[start : start+n : start+n], true, nil
	}
	return nil, false, nil
}

// skipAll hands out, unread, everything the producer has written.
func (r *ring) skipAll() {
	r.next = atomic.LoadUintptr(r.prod)
}

// release gives the space of the records handed out back to the producer.
func (r *ring) release() {
	atomic.StoreUintptr(r.cons, r.next)
}

func (r *ring) close() error {
	return errors.Join(unix.Munmap(r.prodMem), unix.Munmap(r.consMem))
}
