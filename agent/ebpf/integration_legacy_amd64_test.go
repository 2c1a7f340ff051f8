//go:build amd64

package ebpf

import (
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The legacy path system calls (open, creat, rename, ...) that arm64 and
// riscv64 do not have; x/sys/unix uses their *at forms, so they are called
// directly.

func cstr(t *testing.T, s string) uintptr {
	t.Helper()
	p, err := unix.BytePtrFromString(s)
	if err != nil {
		t.Fatal(err)
	}
	return uintptr(unsafe.Pointer(p))
}

func sys(t *testing.T, nr uintptr, args ...uintptr) uintptr {
	t.Helper()
	var a [3]uintptr
	copy(a[:], args)
	r, _, errno := unix.Syscall(nr, a[0], a[1], a[2])
	if errno != 0 {
		t.Fatalf("system call %d: %v", nr, errno)
	}
	return r
}

func TestIntegrationLegacySyscalls(t *testing.T) {
	h := sharedHub(t)
	dir := tempDir(t)
	w := fileWatch(t, h, dir)
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	raw := func(op Op, path string) FileOp { return FileOp{Op: op, Path: path, PathRaw: true, FD: -1} }

	fd := sys(t, unix.SYS_CREAT, cstr(t, a), 0o600)
	unix.Close(int(fd))
	wantFile(t, w, KindFileOpen, FileOp{
		Op: OpCreat, Ret: int64(fd), Path: a, Created: true, Flags: unix.O_CREAT | unix.O_WRONLY | unix.O_TRUNC,
		Mode: 0o600, FD: int32(fd),
	}, ignoreInfo)
	fd = sys(t, unix.SYS_OPEN, cstr(t, a), unix.O_RDONLY)
	unix.Close(int(fd))
	wantFile(t, w, KindFileOpen, FileOp{Op: OpOpen, Ret: int64(fd), Path: a, FD: int32(fd)}, ignoreInfo)

	sys(t, unix.SYS_CHMOD, cstr(t, a), 0o644)
	want := raw(OpChmod, a)
	want.Mode = 0o644
	wantFile(t, w, KindFileChmod, want)
	sys(t, unix.SYS_CHOWN, cstr(t, a), 1, 2)
	want = raw(OpChown, a)
	want.UID, want.GID = 1, 2
	wantFile(t, w, KindFileChown, want)
	sys(t, unix.SYS_LCHOWN, cstr(t, a), 0, 0)
	wantFile(t, w, KindFileChown, raw(OpLchown, a))
	sys(t, unix.SYS_UTIMES, cstr(t, a), 0)
	wantFile(t, w, KindFileUtimes, raw(OpUtimes, a))
	sys(t, unix.SYS_UTIME, cstr(t, a), 0)
	wantFile(t, w, KindFileUtimes, raw(OpUtime, a))
	atFDCWD := unix.AT_FDCWD
	sys(t, unix.SYS_FUTIMESAT, uintptr(atFDCWD), cstr(t, a), 0)
	wantFile(t, w, KindFileUtimes, raw(OpFutimesat, a))

	sys(t, unix.SYS_RENAME, cstr(t, a), cstr(t, b))
	wantFile(t, w, KindFileRename, FileOp{Op: OpRename, Path: a, PathRaw: true, Path2: b, Path2Raw: true, FD: -1})
	sys(t, unix.SYS_UNLINK, cstr(t, b))
	wantFile(t, w, KindFileUnlink, raw(OpUnlink, b))

	fifo := filepath.Join(dir, "fifo")
	sys(t, unix.SYS_MKNOD, cstr(t, fifo), unix.S_IFIFO|0o600, 0)
	want = raw(OpMknod, fifo)
	want.Mode = unix.S_IFIFO | 0o600
	wantFile(t, w, KindFileMknod, want)

	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	sys(t, unix.SYS_RMDIR, cstr(t, sub))
	want = raw(OpRmdir, sub)
	want.Flags = unix.AT_REMOVEDIR
	wantFile(t, w, KindFileUnlink, want)
}
