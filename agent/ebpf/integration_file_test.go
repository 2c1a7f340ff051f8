package ebpf

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"
)

// tempDir returns a fresh directory with symbolic links resolved, so that
// it equals the paths the kernel reports.
func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// fileWatch collects this process's file events under dir.
func fileWatch(t *testing.T, h *hub, dir string) *watch {
	self := uint32(os.Getpid())
	return h.watch(t, func(ev *Event) bool {
		return ev.File != nil && ev.Header.TGID == self &&
			(strings.HasPrefix(ev.File.Path, dir) || strings.HasPrefix(ev.File.Path2, dir))
	})
}

func statInfo(t *testing.T, path string) FileInfo {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return FileInfo{
		Inode: uint64(st.Ino), Dev: uint64(st.Dev), Mode: uint32(st.Mode), UID: st.Uid, GID: st.Gid,
		Size: int64(st.Size), ModTime: int64(st.Mtim.Sec), ChangeTime: int64(st.Ctim.Sec),
		ModTimeNsec: uint32(st.Mtim.Nsec), ChangeTimeNsec: uint32(st.Ctim.Nsec), Links: uint32(st.Nlink),
	}
}

// statusFlags returns fd's file status flags as the kernel keeps them
// (f_flags): /proc/self/fdinfo adds O_CLOEXEC for close-on-exec fds.
func statusFlags(t *testing.T, fd int) uint32 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(fd))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "flags:"); ok {
			f, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			if err != nil {
				t.Fatal(err)
			}
			return uint32(f) &^ unix.O_CLOEXEC
		}
	}
	t.Fatalf("no flags in fdinfo of fd %d", fd)
	return 0
}

// nextFile returns the next event's kind and file payload.
func nextFile(t *testing.T, w *watch) (Kind, FileOp) {
	t.Helper()
	ev := w.next(t, waitTimeout)
	return ev.Kind, *ev.File
}

func wantFile(t *testing.T, w *watch, kind Kind, want FileOp, opts ...cmp.Option) {
	t.Helper()
	k, got := nextFile(t, w)
	if k != kind {
		t.Errorf("kind %v, want %v (%+v)", k, kind, got)
		return
	}
	if diff := cmp.Diff(want, got, opts...); diff != "" {
		t.Errorf("%v (-want +got):\n%s", kind, diff)
	}
}

// ignoreInfo leaves FileInfo out of a comparison, for checks of it apart.
var ignoreInfo = cmpopts.IgnoreFields(FileOp{}, "File")

func TestIntegrationFileOpen(t *testing.T) {
	h := sharedHub(t)
	dir := tempDir(t)
	w := fileWatch(t, h, dir)
	path := filepath.Join(dir, "new")

	fd, err := unix.Openat(unix.AT_FDCWD, path, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	flags := uint32(unix.O_CREAT | unix.O_EXCL | unix.O_WRONLY | unix.O_CLOEXEC)
	wantFile(t, w, KindFileOpen, FileOp{
		Op: OpOpenat, Ret: int64(fd), Path: path, Created: true, Flags: flags, Mode: 0o640, FD: int32(fd),
		File: statInfo(t, path),
	}, cmpopts.IgnoreFields(FileInfo{}, "ModTime", "ChangeTime", "ModTimeNsec", "ChangeTimeNsec"))

	t.Run("O_CREAT on an existing file", func(t *testing.T) {
		fd, err := unix.Openat(unix.AT_FDCWD, path, unix.O_CREAT|unix.O_RDWR, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
		wantFile(t, w, KindFileOpen, FileOp{
			Op: OpOpenat, Ret: int64(fd), Path: path, Flags: unix.O_CREAT | unix.O_RDWR, Mode: 0o600, FD: int32(fd),
			File: statInfo(t, path),
		})
	})

	t.Run("relative to a directory fd", func(t *testing.T) {
		dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(dfd)
		w.drain(settle) // the directory's own open
		fd, err := unix.Openat(dfd, "new", unix.O_RDONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
		wantFile(t, w, KindFileOpen, FileOp{Op: OpOpenat, Ret: int64(fd), Path: path, FD: int32(fd)}, ignoreInfo)
	})

	t.Run("openat2", func(t *testing.T) {
		fd, err := unix.Openat2(unix.AT_FDCWD, path, &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_NOFOLLOW, Resolve: unix.RESOLVE_NO_SYMLINKS})
		if errors.Is(err, unix.ENOSYS) {
			t.Skip("openat2 needs Linux 5.6")
		}
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
		wantFile(t, w, KindFileOpen, FileOp{Op: OpOpenat2, Ret: int64(fd), Path: path, Flags: unix.O_NOFOLLOW, FD: int32(fd)}, ignoreInfo)
	})

	t.Run("denied", func(t *testing.T) {
		setpriv, err := exec.LookPath("setpriv")
		if err != nil {
			t.Skip("needs setpriv(1) (util-linux)")
		}
		secret := filepath.Join(dir, "secret")
		if err := os.WriteFile(secret, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(setpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups", "/bin/cat", "secret")
		cmd.Dir = dir
		child := childWatch(t, h, func(ev *Event) bool { return ev.Kind == KindFileOpen && ev.File.Ret < 0 })
		if err := child.start(cmd); err != nil {
			t.Fatal(err)
		}
		dw := child.w
		if err := cmd.Wait(); err == nil {
			t.Fatal("cat of a 0600 file as nobody succeeded")
		}
		ev := dw.next(t, waitTimeout)
		want := FileOp{Op: OpOpenat, Ret: -int64(unix.EACCES), Path: secret, PathRaw: true, FD: -1}
		if diff := cmp.Diff(want, *ev.File, cmpopts.IgnoreFields(FileOp{}, "Flags")); diff != "" {
			t.Errorf("denied open (-want +got):\n%s", diff)
		}
	})
}

func TestIntegrationFileUnlinkRename(t *testing.T) {
	h := sharedHub(t)
	dir := tempDir(t)
	for _, name := range []string{"a", "c"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dfd)
	w := fileWatch(t, h, dir)

	if err := unix.Renameat2(dfd, "a", unix.AT_FDCWD, filepath.Join(dir, "b"), unix.RENAME_NOREPLACE); err != nil {
		t.Fatal(err)
	}
	wantFile(t, w, KindFileRename, FileOp{
		Op: OpRenameat2, Path: filepath.Join(dir, "a"), PathRaw: true, Path2: filepath.Join(dir, "b"), Path2Raw: true,
		Flags: unix.RENAME_NOREPLACE, FD: -1,
	})
	if err := unix.Unlinkat(dfd, "b", 0); err != nil {
		t.Fatal(err)
	}
	wantFile(t, w, KindFileUnlink, FileOp{Op: OpUnlinkat, Path: filepath.Join(dir, "b"), PathRaw: true, FD: -1})
	if err := unix.Unlinkat(unix.AT_FDCWD, filepath.Join(dir, "d"), unix.AT_REMOVEDIR); err != nil {
		t.Fatal(err)
	}
	wantFile(t, w, KindFileUnlink, FileOp{Op: OpUnlinkat, Path: filepath.Join(dir, "d"), PathRaw: true, Flags: unix.AT_REMOVEDIR, FD: -1})
	if err := unix.Unlinkat(dfd, "missing", 0); err == nil {
		t.Fatal("unlink of a missing file succeeded")
	}

	t.Run("relative to the cwd", func(t *testing.T) {
		cmd := exec.Command("/bin/rm", "c")
		cmd.Dir = dir
		child := childWatch(t, h, func(ev *Event) bool { return ev.Kind == KindFileUnlink })
		if err := child.start(cmd); err != nil {
			t.Fatal(err)
		}
		cw := child.w
		if err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
		ev := cw.next(t, waitTimeout)
		if diff := cmp.Diff(FileOp{Op: OpUnlinkat, Path: filepath.Join(dir, "c"), PathRaw: true, FD: -1}, *ev.File); diff != "" {
			t.Errorf("unlink (-want +got):\n%s", diff)
		}
	})
	// The failed unlink was not reported.
	for _, ev := range w.drain(settle) {
		t.Errorf("unexpected %v %+v", ev.Kind, *ev.File)
	}
}

func TestIntegrationFileAttributes(t *testing.T) {
	h := sharedHub(t)
	dir := tempDir(t)
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	w := fileWatch(t, h, dir)
	raw := FileOp{Path: path, PathRaw: true, FD: -1}
	viaFD := FileOp{Path: path, FD: int32(fd)}
	with := func(f FileOp, set func(*FileOp)) FileOp {
		set(&f)
		return f
	}

	if err := unix.Fchmodat(unix.AT_FDCWD, path, 0o600, 0); err != nil {
		t.Fatal(err)
	}
	wantFile(t, w, KindFileChmod, with(raw, func(f *FileOp) { f.Op, f.Mode = OpFchmodat, 0o600 }))
	if err := unix.Fchmod(fd, 0o640); err != nil {
		t.Fatal(err)
	}
	wantFile(t, w, KindFileChmod, with(viaFD, func(f *FileOp) { f.Op, f.Mode, f.File = OpFchmod, 0o640, statInfo(t, path) }))

	if err := unix.Fchownat(unix.AT_FDCWD, path, 1000, 1000, 0); err != nil {
		t.Fatal(err)
	}
	wantFile(t, w, KindFileChown, with(raw, func(f *FileOp) { f.Op, f.UID, f.GID = OpFchownat, 1000, 1000 }))
	if err := unix.Fchown(fd, 0, -1); err != nil {
		t.Fatal(err)
	}
	wantFile(t, w, KindFileChown, with(viaFD, func(f *FileOp) {
		f.Op, f.UID, f.GID, f.File = OpFchown, 0, 0xffffffff, statInfo(t, path)
	}))

	ts := []unix.Timespec{{Sec: 1_000_000_000}, {Sec: 1_000_000_000}}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, 0); err != nil {
		t.Fatal(err)
	}
	wantFile(t, w, KindFileUtimes, with(raw, func(f *FileOp) { f.Op = OpUtimensat }))
	// futimens(fd) is utimensat(fd, NULL, ...).
	if _, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0); errno != 0 {
		t.Fatal(errno)
	}
	wantFile(t, w, KindFileUtimes, with(viaFD, func(f *FileOp) { f.Op = OpUtimensat }), ignoreInfo)

	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mknodat(unix.AT_FDCWD, fifo, unix.S_IFIFO|0o600, 0); err != nil {
		t.Fatal(err)
	}
	wantFile(t, w, KindFileMknod, FileOp{Op: OpMknodat, Path: fifo, PathRaw: true, Mode: unix.S_IFIFO | 0o600, FD: -1})

	t.Run("xattr", func(t *testing.T) {
		err := unix.Setxattr(path, "user.xdr", []byte("value"), 0)
		if errors.Is(err, unix.ENOTSUP) {
			t.Skip("the file system of the temporary directory has no user extended attributes")
		}
		if err != nil {
			t.Fatal(err)
		}
		wantFile(t, w, KindFileXattr, with(raw, func(f *FileOp) { f.Op, f.Name, f.Aux = OpSetxattr, "user.xdr", 5 }))
		if err := unix.Fsetxattr(fd, "user.xdr2", []byte("v"), unix.XATTR_CREATE); err != nil {
			t.Fatal(err)
		}
		wantFile(t, w, KindFileXattr, with(viaFD, func(f *FileOp) {
			f.Op, f.Name, f.Aux, f.Flags = OpFsetxattr, "user.xdr2", 1, unix.XATTR_CREATE
		}), ignoreInfo)
		if err := unix.Removexattr(path, "user.xdr"); err != nil {
			t.Fatal(err)
		}
		wantFile(t, w, KindFileXattr, with(raw, func(f *FileOp) { f.Op, f.Name = OpRemovexattr, "user.xdr" }))
	})
}

func TestIntegrationFileWriteClose(t *testing.T) {
	h := sharedHub(t)
	dir := tempDir(t)
	path := filepath.Join(dir, "f")
	w := fileWatch(t, h, dir)

	fd, err := unix.Open(path, unix.O_CREAT|unix.O_RDWR|unix.O_CLOEXEC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	wantFile(t, w, KindFileOpen, FileOp{
		Op: OpOpenat, Ret: int64(fd), Path: path, Created: true, Flags: unix.O_CREAT | unix.O_RDWR | unix.O_CLOEXEC,
		Mode: 0o644, FD: int32(fd),
	}, ignoreInfo)
	flags := statusFlags(t, fd)
	for range 3 {
		if _, err := unix.Write(fd, []byte("data")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := unix.Pwrite(fd, []byte("x"), 100); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Writev(fd, [][]byte{[]byte("a"), []byte("b")}); err != nil {
		t.Fatal(err)
	}
	// Only the first write through the fd is reported.
	wantFile(t, w, KindFileWrite, FileOp{Op: OpWrite, Path: path, Flags: flags, FD: int32(fd)}, ignoreInfo)
	if err := unix.Close(fd); err != nil {
		t.Fatal(err)
	}
	wantFile(t, w, KindFileClose, FileOp{Op: OpClose, Path: path, Flags: flags, FD: int32(fd), File: statInfo(t, path)})

	// The fd number comes back for another open: a new first write.
	fd2, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd2)
	w.next(t, waitTimeout) // the open
	if _, err := unix.Pwrite(fd2, []byte("y"), 0); err != nil {
		t.Fatal(err)
	}
	wantFile(t, w, KindFileWrite, FileOp{Op: OpPwrite64, Path: path, Flags: statusFlags(t, fd2), FD: int32(fd2)}, ignoreInfo)

	// Closing a file that was only read reports nothing.
	rfd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.next(t, waitTimeout) // the open
	unix.Close(rfd)
	for _, ev := range w.drain(settle) {
		t.Errorf("unexpected %v %+v", ev.Kind, *ev.File)
	}
}

// copyFiles makes dir/src with 10,000 bytes and opens it for reading, and
// dir/dst for writing; the fds are closed when the test ends.
func copyFiles(t *testing.T, dir, dst string) (srcPath, dstPath string, srcFD, dstFD int) {
	t.Helper()
	srcPath, dstPath = filepath.Join(dir, "src"), filepath.Join(dir, dst)
	if err := os.WriteFile(srcPath, []byte(strings.Repeat("x", 10000)), 0o644); err != nil {
		t.Fatal(err)
	}
	open := func(path string, flags int) int {
		fd, err := unix.Open(path, flags|unix.O_CLOEXEC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		return fd
	}
	return srcPath, dstPath, open(srcPath, unix.O_RDONLY), open(dstPath, unix.O_CREAT|unix.O_WRONLY)
}

func TestIntegrationFileCopy(t *testing.T) {
	h := sharedHub(t)
	dir := tempDir(t)
	src, dst, sfd, dfd := copyFiles(t, dir, "dst")
	w := h.watch(t, func(ev *Event) bool { return ev.Kind == KindFileCopy && ev.File.Path == dst })

	// Two calls into the same fd: one event.
	for range 2 {
		if _, err := unix.CopyFileRange(sfd, nil, dfd, nil, 4000, 0); err != nil {
			t.Fatal(err)
		}
	}
	wantFile(t, w, KindFileCopy, FileOp{
		Op: OpCopyFileRange, Ret: 4000, Path: dst, Path2: src, Flags: statusFlags(t, dfd),
		FD: int32(dfd), FD2: int32(sfd), Aux: 4000,
	}, ignoreInfo)

	t.Run("sendfile", func(t *testing.T) {
		dfd2, err := unix.Open(dst, unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(dfd2)
		off := int64(0)
		if _, err := unix.Sendfile(dfd2, sfd, &off, 100); err != nil {
			t.Fatal(err)
		}
		wantFile(t, w, KindFileCopy, FileOp{
			Op: OpSendfile, Ret: 100, Path: dst, Path2: src, Flags: statusFlags(t, dfd2),
			FD: int32(dfd2), FD2: int32(sfd), Aux: 100,
		}, ignoreInfo)
	})

	t.Run("FICLONE", func(t *testing.T) {
		// Cloning needs a file system with shared extents; the
		// temporary directory's usually is not, so a small XFS with
		// reflink is made on a loop device.
		csrc, clone, csfd, cfd := copyFiles(t, reflinkDir(t), "clone")
		cw := h.watch(t, func(ev *Event) bool { return ev.Kind == KindFileCopy && ev.File.Path == clone })
		if err := unix.IoctlFileClone(cfd, csfd); err != nil {
			t.Fatalf("FICLONE on XFS with reflink: %v", err)
		}
		wantFile(t, cw, KindFileCopy, FileOp{
			Op: OpFiclone, Path: clone, Path2: csrc, Flags: statusFlags(t, cfd), FD: int32(cfd), FD2: int32(csfd),
		}, ignoreInfo)
	})
}

// reflinkDir returns the root of an XFS file system with reflink, made in
// a file and mounted on a loop device until the test ends. It skips the
// test when mkfs.xfs is missing (.ci/run installs xfsprogs).
func reflinkDir(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("mkfs.xfs"); err != nil {
		t.Skip("mkfs.xfs not installed (xfsprogs): no file system to clone files on")
	}
	dir := t.TempDir()
	img, mnt := filepath.Join(dir, "xfs.img"), filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	// 300 MiB is mkfs.xfs's minimum; the file is sparse.
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(300 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, cmd := range [][]string{
		{"mkfs.xfs", "-q", "-m", "reflink=1", img},
		{"mount", "-o", "loop", img, mnt},
	} {
		if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", cmd, err, out)
		}
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	return mnt
}

func TestIntegrationMemfd(t *testing.T) {
	h := sharedHub(t)
	self := uint32(os.Getpid())
	w := h.watch(t, func(ev *Event) bool { return ev.Kind == KindMemfd && ev.Header.TGID == self })
	fd, err := unix.MemfdCreate("xdr-test", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	wantFile(t, w, KindMemfd, FileOp{
		Op: OpMemfdCreate, Ret: int64(fd), Path: "/memfd:xdr-test", Name: "xdr-test", Flags: unix.MFD_CLOEXEC, FD: int32(fd),
	}, ignoreInfo)
}

func TestIntegrationMemory(t *testing.T) {
	h := sharedHub(t)
	self := uint32(os.Getpid())
	dir := tempDir(t)
	path := filepath.Join(dir, "image")
	if err := os.WriteFile(path, make([]byte, 8192), 0o755); err != nil {
		t.Fatal(err)
	}
	w := h.watch(t, func(ev *Event) bool {
		return ev.Memory != nil && ev.Header.TGID == self && (ev.Memory.Path == path || ev.Memory.Path == "")
	})

	t.Run("executable file mapping", func(t *testing.T) {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		var addrs []uintptr
		for range 2 { // mapped twice, reported once
			b, err := unix.Mmap(fd, 0, 4096, unix.PROT_READ|unix.PROT_EXEC, unix.MAP_PRIVATE)
			if err != nil {
				t.Skipf("executable mapping in the temporary directory: %v", err)
			}
			addrs = append(addrs, uintptr(unsafe.Pointer(&b[0])))
			defer unix.Munmap(b)
		}
		ev := w.next(t, waitTimeout)
		want := MemoryOp{
			Op: OpMmap, Addr: uint64(addrs[0]), Len: 4096, Prot: unix.PROT_READ | unix.PROT_EXEC, Flags: unix.MAP_PRIVATE,
			Path: path, File: statInfo(t, path),
		}
		if ev.Kind != KindLoadImage {
			t.Fatalf("kind %v", ev.Kind)
		}
		if diff := cmp.Diff(want, *ev.Memory); diff != "" {
			t.Errorf("load image (-want +got):\n%s", diff)
		}
	})

	t.Run("PROT_EXEC added to anonymous memory", func(t *testing.T) {
		b, err := unix.Mmap(-1, 0, 8192, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Munmap(b)
		if err := unix.Mprotect(b, unix.PROT_READ|unix.PROT_EXEC); err != nil {
			t.Fatal(err)
		}
		// Already executable: not reported.
		if err := unix.Mprotect(b, unix.PROT_READ|unix.PROT_EXEC); err != nil {
			t.Fatal(err)
		}
		ev := w.next(t, waitTimeout)
		want := MemoryOp{
			Op: OpMprotect, Addr: uint64(uintptr(unsafe.Pointer(&b[0]))), Len: 8192,
			Prot: unix.PROT_READ | unix.PROT_EXEC, OldProt: unix.PROT_READ | unix.PROT_WRITE,
		}
		if ev.Kind != KindMprotect {
			t.Fatalf("kind %v", ev.Kind)
		}
		if diff := cmp.Diff(want, *ev.Memory); diff != "" {
			t.Errorf("mprotect (-want +got):\n%s", diff)
		}
	})

	for _, ev := range w.drain(settle) {
		t.Errorf("unexpected %v %+v", ev.Kind, *ev.Memory)
	}
}

func TestIntegrationPathTruncated(t *testing.T) {
	h := sharedHub(t)
	dir := tempDir(t)
	// Deeper than the walk goes: the path is delivered without its top.
	deep := dir
	for range 100 {
		deep = filepath.Join(deep, "d")
	}
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(deep, "f")
	w := h.watch(t, func(ev *Event) bool {
		return ev.Kind == KindFileOpen && ev.Header.TGID == uint32(os.Getpid()) && strings.HasSuffix(ev.File.Path, "/d/d/f")
	})
	fd, err := unix.Open(path, unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	ev := w.next(t, waitTimeout)
	if !ev.File.PathTruncated || !strings.HasSuffix(path, ev.File.Path) || len(ev.File.Path) >= len(path) {
		t.Errorf("path %q truncated %v; want a truncated tail of %q", ev.File.Path, ev.File.PathTruncated, path)
	}
	if h.c.Stats().PathTruncated == 0 {
		t.Error("PathTruncated counter is zero")
	}
}

func TestIntegrationRepeatCount(t *testing.T) {
	h := sharedHub(t)
	dir := tempDir(t)
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	w := fileWatch(t, h, dir)
	const n = 10000
	for range n {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
	}
	total, events := 0, 0
	for total < n {
		ev := w.next(t, waitTimeout)
		if ev.Kind != KindFileOpen {
			t.Fatalf("unexpected %v", ev.Kind)
		}
		total += int(ev.Count)
		events++
	}
	if total != n || events >= n {
		t.Errorf("%d opens in %d events, want %d in fewer", total, events, n)
	}
	t.Logf("%d opens in %d events", total, events)
}

// TestIntegrationKernelRepeats checks the kernel's counting of repeated
// opens: a different open in between is reported and the opens around it
// are counted together (in the kernel, then by Read), the count still
// pending when a thread goes quiet arrives, and opens of one file from
// several threads at once are counted exactly, never twice.
func TestIntegrationKernelRepeats(t *testing.T) {
	h := sharedHub(t)
	dir := tempDir(t)
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, p := range []string{a, b} {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	open := func(p string) {
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Error(err)
			return
		}
		unix.Close(fd)
	}
	onThread := func(f func()) {
		var wg sync.WaitGroup
		wg.Go(func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			f()
		})
		wg.Wait()
	}
	collect := func(w *watch, want int) (map[string]int, []string) {
		counts, total := map[string]int{}, 0
		var order []string
		for total < want {
			ev := w.next(t, waitTimeout)
			counts[filepath.Base(ev.File.Path)] += int(ev.Count)
			total += int(ev.Count)
			order = append(order, filepath.Base(ev.File.Path))
		}
		// Nothing more: a count reported twice would show here.
		for _, ev := range w.drain(settle) {
			t.Errorf("extra event after %d opens: %s x%d", want, ev.File.Path, ev.Count)
		}
		return counts, order
	}

	w := fileWatch(t, h, dir)
	onThread(func() {
		for range 5 {
			open(a)
		}
		open(b)
		for range 3 {
			open(a)
		}
	})
	counts, order := collect(w, 9)
	if counts["a"] != 8 || counts["b"] != 1 || order[0] != "a" || !slices.Contains(order, "b") {
		t.Errorf("one thread: counts %v in order %v, want a 8 and b 1, a first", counts, order)
	}

	w = fileWatch(t, h, dir)
	var wg sync.WaitGroup
	const threads, each = 4, 2500
	for range threads {
		wg.Go(func() {
			onThread(func() {
				for range each {
					open(a)
				}
			})
		})
	}
	wg.Wait()
	if counts, _ := collect(w, threads*each); counts["a"] != threads*each {
		t.Errorf("%d threads: %v, want a %d", threads, counts, threads*each)
	}
}
