package ebpf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf/btf"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"
)

// raw returns the bytes of a record part as the kernel lays it out.
func raw[T any](v *T) []byte {
	return bytes.Clone(unsafe.Slice((*byte)(unsafe.Pointer(v)), unsafe.Sizeof(*v)))
}

// record assembles a ring buffer record.
func record(h collectorXdrHeader, parts ...[]byte) []byte {
	b := raw(&h)
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func comm(s string) [16]int8 {
	var c [16]int8
	for i := 0; i < len(s) && i < 15; i++ {
		c[i] = int8(s[i])
	}
	return c
}

func header(kind Kind) collectorXdrHeader {
	return collectorXdrHeader{
		Kind: uint32(kind), KtimeNs: 1000, StartBoottimeNs: 2_500_000_000, Pid: 42, Tgid: 40, Ppid: 1,
		Uid: 1000, Gid: 100, Euid: 0, Egid: 0, Sid: 40, Comm: comm("proc"),
	}
}

var wantHeader = Header{
	Time: 1000, StartTime: 2_500_000_000, PID: 42, TGID: 40, PPID: 1, UID: 1000, GID: 100, SID: 40, Comm: "proc",
}

func TestRecordLayout(t *testing.T) {
	spec, err := loadCollector()
	if err != nil {
		t.Fatal(err)
	}
	// The Go mirrors must have the C structs' size on every architecture,
	// with every field at its C offset (load copies bytes into them).
	for name, v := range map[string]any{
		"xdr_header": collectorXdrHeader{}, "xdr_file": collectorXdrFile{}, "xdr_exec": collectorXdrExec{},
		"xdr_argv": collectorXdrArgv{}, "xdr_fork": collectorXdrFork{}, "xdr_exit": collectorXdrExit{},
		"xdr_creds": collectorXdrCreds{}, "xdr_setid": collectorXdrSetid{}, "xdr_ptrace": collectorXdrPtrace{},
		"xdr_proc_access": collectorXdrProcAccess{}, "xdr_comm": collectorXdrComm{}, "xdr_fileop": collectorXdrFileop{},
		"xdr_memop": collectorXdrMemop{}, "xdr_netop": collectorXdrNetop{},
	} {
		var s *btf.Struct
		if err := spec.Types.TypeByName(name, &s); err != nil {
			t.Fatal(err)
		}
		rt := reflect.TypeOf(v)
		if int(s.Size) != int(rt.Size()) || s.Size%8 != 0 {
			t.Errorf("%s: C size %d, Go size %d (want equal, multiple of 8)", name, s.Size, rt.Size())
		}
		for i, m := range s.Members {
			f := rt.Field(i + 1) // after structs.HostLayout
			if off := m.Offset.Bytes(); uintptr(off) != f.Offset {
				t.Errorf("%s.%s: C offset %d, Go %s offset %d", name, m.Name, off, f.Name, f.Offset)
			}
			// 64-bit fields must be naturally aligned in C, so that 32-bit
			// Go (which aligns them to 4) lays them out the same.
			if f.Type.Size() == 8 && f.Offset%8 != 0 {
				t.Errorf("%s.%s: 64-bit field at offset %d", name, m.Name, f.Offset)
			}
		}
	}
}

func TestConstantsMatchObject(t *testing.T) {
	kinds := map[Kind]collectorXdrKind{
		KindExec: collectorXdrKindXDR_KIND_EXEC, kindArgv: collectorXdrKindXDR_KIND_ARGV,
		KindFork: collectorXdrKindXDR_KIND_FORK, KindExit: collectorXdrKindXDR_KIND_EXIT,
		KindSetID: collectorXdrKindXDR_KIND_SETID, KindPtrace: collectorXdrKindXDR_KIND_PTRACE,
		KindProcAccess: collectorXdrKindXDR_KIND_PROC_ACCESS, KindComm: collectorXdrKindXDR_KIND_COMM,
		KindSetsid:   collectorXdrKindXDR_KIND_SETSID,
		KindFileOpen: collectorXdrKindXDR_KIND_FILE_OPEN, KindFileUnlink: collectorXdrKindXDR_KIND_FILE_UNLINK,
		KindFileRename: collectorXdrKindXDR_KIND_FILE_RENAME, KindFileChmod: collectorXdrKindXDR_KIND_FILE_CHMOD,
		KindFileChown: collectorXdrKindXDR_KIND_FILE_CHOWN, KindFileXattr: collectorXdrKindXDR_KIND_FILE_XATTR,
		KindFileUtimes: collectorXdrKindXDR_KIND_FILE_UTIMES, KindFileMknod: collectorXdrKindXDR_KIND_FILE_MKNOD,
		KindFileWrite: collectorXdrKindXDR_KIND_FILE_WRITE, KindFileClose: collectorXdrKindXDR_KIND_FILE_CLOSE,
		KindFileCopy: collectorXdrKindXDR_KIND_FILE_COPY, KindMemfd: collectorXdrKindXDR_KIND_MEMFD,
		KindLoadImage: collectorXdrKindXDR_KIND_LOAD_IMAGE, KindMprotect: collectorXdrKindXDR_KIND_MPROTECT,
		KindConnect: collectorXdrKindXDR_KIND_NET_CONNECT, KindBind: collectorXdrKindXDR_KIND_NET_BIND,
		KindListen: collectorXdrKindXDR_KIND_NET_LISTEN, KindAccept: collectorXdrKindXDR_KIND_NET_ACCEPT,
		KindSend: collectorXdrKindXDR_KIND_NET_SEND, KindDNS: collectorXdrKindXDR_KIND_DNS,
	}
	if len(kinds) != len(kindNames) {
		t.Errorf("%d kinds checked, %d named", len(kinds), len(kindNames))
	}
	for k, c := range kinds {
		if uint32(k) != uint32(c) {
			t.Errorf("%v = %d, C has %d", k, k, c)
		}
		if _, ok := decoders[k]; !ok && k != kindArgv {
			t.Errorf("%v has no decoder", k)
		}
	}
	// The C enum values named like the Go constants (XDR_OP_PWRITE64 is
	// OpPwrite64, ...) must be equal.
	spec, err := loadCollector()
	if err != nil {
		t.Fatal(err)
	}
	var ops *btf.Enum
	if err := spec.Types.TypeByName("xdr_op", &ops); err != nil {
		t.Fatal(err)
	}
	byName := map[string]Op{}
	for op, name := range opNames {
		byName[strings.ReplaceAll(name, "_", "")] = op
	}
	byName["ficlone"], byName["ficlonerange"] = OpFiclone, OpFiclonerange
	for _, v := range ops.Values {
		name := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(v.Name, "XDR_OP_"), "_", ""))
		if name == "none" {
			continue
		}
		op, ok := byName[name]
		if !ok {
			t.Errorf("C op %s has no Go name", v.Name)
			continue
		}
		if uint64(op) != v.Value {
			t.Errorf("%s = %d in C, %v = %d in Go", v.Name, v.Value, op, op)
		}
	}
	if len(ops.Values)-1 != len(opNames) {
		t.Errorf("%d C ops, %d Go ops", len(ops.Values)-1, len(opNames))
	}
}

func TestStrings(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   fmt.Stringer
		want string
	}{
		{"kind", KindFileOpen, "file_open"},
		{"unknown kind", Kind(99), "Kind(99)"},
		{"op", OpCopyFileRange, "copy_file_range"},
		{"unknown op", Op(999), "Op(999)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.in.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
		})
	}
}

func mustParse(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func TestDecode(t *testing.T) {
	fileInfo := collectorXdrFile{Ino: 7, Size: 12, MtimeSec: 100, CtimeSec: 200, Dev: 8<<20 | 1, Mode: 0o100644, Uid: 1, Gid: 2, MtimeNsec: 5, CtimeNsec: 6, Nlink: 1}
	wantInfo := FileInfo{Inode: 7, Dev: unix.Mkdev(8, 1), Mode: 0o100644, UID: 1, GID: 2, Size: 12, ModTime: 100, ChangeTime: 200, ModTimeNsec: 5, ChangeTimeNsec: 6, Links: 1}
	withFlags := func(h collectorXdrHeader, f collectorXdrFlag) collectorXdrHeader {
		h.Flags = uint32(f)
		return h
	}
	ev := func(k Kind) Event { return Event{Kind: k, Count: 1, Header: wantHeader} }
	set := func(e Event, f func(*Event)) Event {
		f(&e)
		return e
	}
	v4 := [16]uint8{127, 0, 0, 1}
	v6 := [16]uint8{15: 1}
	for _, tc := range []struct {
		name string
		in   []byte
		want Event
	}{
		{
			name: "exec",
			in: record(withFlags(header(KindExec), collectorXdrFlagXDR_FLAG_PATH2TRUNCATED), raw(&collectorXdrExec{
				Exe: fileInfo, OldPid: 43, ArgvSize: 6, ArgvCaptured: 6, FilenameLen: 4, ExeLen: 11, CwdLen: 4, ArgvLen: 6,
			}), []byte("./ls/usr/bin/ls/tmpls\x00-l\x00")),
			want: set(ev(KindExec), func(e *Event) {
				e.Exec = &Exec{
					Filename: "./ls", Exe: "/usr/bin/ls", Cwd: "/tmp", ExeFile: wantInfo, Argv: []string{"ls", "-l"},
					ArgvSize: 6, CwdTruncated: true, OldPID: 43,
				}
			}),
		},
		{
			name: "fork",
			in:   record(header(KindFork), raw(&collectorXdrFork{ChildStartBoottimeNs: 5, ChildPid: 50, ChildTgid: 50})),
			want: set(ev(KindFork), func(e *Event) { e.Fork = &Fork{ChildPID: 50, ChildTGID: 50, ChildStartTime: 5} }),
		},
		{
			name: "exit",
			in:   record(header(KindExit), raw(&collectorXdrExit{ExitCode: 0x100})),
			want: set(ev(KindExit), func(e *Event) { e.Exit = &Exit{Code: 0x100} }),
		},
		{
			name: "setid",
			in: record(header(KindSetID), raw(&collectorXdrSetid{
				Op: uint32(OpSetuid), Old: collectorXdrCreds{Uid: 1000}, New: collectorXdrCreds{Euid: 5},
			})),
			want: set(ev(KindSetID), func(e *Event) { e.SetID = &SetID{Op: OpSetuid, Old: Creds{UID: 1000}, New: Creds{EUID: 5}} }),
		},
		{
			name: "ptrace",
			in:   record(header(KindPtrace), raw(&collectorXdrPtrace{Request: 16, Ret: -1, Addr: 2, Data: 3, TargetPid: 9})),
			want: set(ev(KindPtrace), func(e *Event) { e.Ptrace = &Ptrace{Request: 16, Target: 9, Addr: 2, Data: 3, Ret: -1} }),
		},
		{
			name: "proc access",
			in:   record(header(KindProcAccess), raw(&collectorXdrProcAccess{Ret: 3, Op: uint32(OpPidfdOpen), TargetPid: 9})),
			want: set(ev(KindProcAccess), func(e *Event) { e.ProcAccess = &ProcAccess{Op: OpPidfdOpen, Target: 9, Ret: 3} }),
		},
		{
			name: "setsid",
			in:   record(header(KindSetsid)),
			want: ev(KindSetsid),
		},
		{
			name: "comm",
			in:   record(header(KindComm), raw(&collectorXdrComm{OldComm: comm("old")})),
			want: set(ev(KindComm), func(e *Event) { e.Comm = &Comm{Old: "old"} }),
		},
		{
			name: "rename",
			in: record(withFlags(header(KindFileRename), collectorXdrFlagXDR_FLAG_PATH_RAW|collectorXdrFlagXDR_FLAG_PATH2TRUNCATED),
				raw(&collectorXdrFileop{Op: uint32(OpRenameat2), Flags: 1, Fd: -1, PathLen: 2, Path2Len: 3}), []byte("/a/bc")),
			want: set(ev(KindFileRename), func(e *Event) {
				e.File = &FileOp{Op: OpRenameat2, Path: "/a", PathRaw: true, Path2: "/bc", Path2Truncated: true, Flags: 1, FD: -1}
			}),
		},
		{
			name: "open",
			in: record(withFlags(header(KindFileOpen), collectorXdrFlagXDR_FLAG_CREATED),
				raw(&collectorXdrFileop{File: fileInfo, Ret: 3, Op: uint32(OpOpenat), Flags: 0o100, Mode: 0o644, Fd: 3, PathLen: 2}), []byte("/f")),
			want: set(ev(KindFileOpen), func(e *Event) {
				e.File = &FileOp{Op: OpOpenat, Ret: 3, Path: "/f", File: wantInfo, Created: true, Flags: 0o100, Mode: 0o644, FD: 3}
			}),
		},
		{
			name: "xattr",
			in: record(withFlags(header(KindFileXattr), collectorXdrFlagXDR_FLAG_NAME_TRUNCATED),
				raw(&collectorXdrFileop{Op: uint32(OpSetxattr), Aux: 5, Fd: -1, PathLen: 2, NameLen: 6}), []byte("/fuser.x")),
			want: set(ev(KindFileXattr), func(e *Event) {
				e.File = &FileOp{Op: OpSetxattr, Path: "/f", Name: "user.x", NameTruncated: true, Aux: 5, FD: -1}
			}),
		},
		{
			name: "mprotect",
			in: record(header(KindMprotect), raw(&collectorXdrMemop{
				Addr: 4096, Len: 8192, Op: uint32(OpMprotect), Prot: 5, OldProt: 3,
			})),
			want: set(ev(KindMprotect), func(e *Event) {
				e.Memory = &MemoryOp{Op: OpMprotect, Addr: 4096, Len: 8192, Prot: 5, OldProt: 3}
			}),
		},
		{
			name: "load image",
			in: record(withFlags(header(KindLoadImage), collectorXdrFlagXDR_FLAG_PATH_TRUNCATED), raw(&collectorXdrMemop{
				File: fileInfo, Addr: 4096, Len: 10, Op: uint32(OpMmap), Prot: 5, Flags: 2, PathLen: 4,
			}), []byte("/lib")),
			want: set(ev(KindLoadImage), func(e *Event) {
				e.Memory = &MemoryOp{Op: OpMmap, Addr: 4096, Len: 10, Prot: 5, Flags: 2, Path: "/lib", PathTruncated: true, File: wantInfo}
			}),
		},
		{
			name: "connect v4",
			in: record(header(KindConnect), raw(&collectorXdrNetop{
				Ret: -115, Op: uint32(OpConnect), Fd: 3, Family: unix.AF_INET, Type: 1, Protocol: 6, Lport: 1234, Rport: 80,
				Laddr: v4, Raddr: [16]uint8{10, 0, 0, 1},
			})),
			want: set(ev(KindConnect), func(e *Event) {
				e.Net = &NetOp{
					Op: OpConnect, Ret: -115, FD: 3, Family: unix.AF_INET, Type: 1, Protocol: 6,
					Local: mustParse("127.0.0.1:1234"), Remote: mustParse("10.0.0.1:80"),
				}
			}),
		},
		{
			name: "listen v6 has no remote",
			in: record(header(KindListen), raw(&collectorXdrNetop{
				Op: uint32(OpListen), Fd: 3, Family: unix.AF_INET6, Type: 1, Protocol: 6, Lport: 443, Laddr: v6, Raddr: v6,
			})),
			want: set(ev(KindListen), func(e *Event) {
				e.Net = &NetOp{Op: OpListen, FD: 3, Family: unix.AF_INET6, Type: 1, Protocol: 6, Local: mustParse("[::1]:443")}
			}),
		},
		{
			name: "unix bind with a NUL-terminated path",
			in: record(header(KindBind), raw(&collectorXdrNetop{
				Op: uint32(OpBind), Fd: 3, Family: unix.AF_UNIX, Type: 1, UnixPathLen: 7,
			}), []byte("/run/s\x00")),
			want: set(ev(KindBind), func(e *Event) {
				e.Net = &NetOp{Op: OpBind, FD: 3, Family: unix.AF_UNIX, Type: 1, UnixPath: "/run/s"}
			}),
		},
		{
			name: "unix connect to an abstract name",
			in: record(header(KindConnect), raw(&collectorXdrNetop{
				Op: uint32(OpConnect), Fd: 3, Family: unix.AF_UNIX, Type: 1, UnixPathLen: 4,
			}), []byte("\x00abc")),
			want: set(ev(KindConnect), func(e *Event) {
				e.Net = &NetOp{Op: OpConnect, FD: 3, Family: unix.AF_UNIX, Type: 1, UnixPath: "\x00abc"}
			}),
		},
		{
			name: "dns",
			in: record(header(KindDNS), raw(&collectorXdrNetop{
				Ret: 30, Op: uint32(OpSendto), Fd: 4, Family: unix.AF_INET, Type: 2, Protocol: 17, Lport: 5000, Rport: 53,
				Raddr: [16]uint8{8, 8, 8, 8}, PayloadLen: 3, PayloadSize: 30,
			}), []byte{1, 2, 3}),
			want: set(ev(KindDNS), func(e *Event) {
				e.Net = &NetOp{
					Op: OpSendto, Ret: 30, FD: 4, Family: unix.AF_INET, Type: 2, Protocol: 17,
					Local: mustParse("0.0.0.0:5000"), Remote: mustParse("8.8.8.8:53"), Payload: []byte{1, 2, 3}, PayloadSize: 30,
				}
			}),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, err := newDecoder(DefaultArgvMax).decode(tc.in)
			if err != nil || !ok {
				t.Fatalf("decode: %v, %v", ok, err)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateComparable(netip.AddrPort{})); diff != "" {
				t.Errorf("decode (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, errShort},
		{"header only", record(header(KindFork)), errShort},
		{"unknown kind", record(header(Kind(99)), make([]byte, 64)), errUnknownKind},
		{"path beyond the record", record(header(KindFileOpen), raw(&collectorXdrFileop{PathLen: 10}), []byte("/short")), errShort},
		{"argv beyond the record", record(header(KindExec), raw(&collectorXdrExec{ArgvLen: 100})), errShort},
		{"payload beyond the record", record(header(KindDNS), raw(&collectorXdrNetop{PayloadLen: 1})), errShort},
		{"continuation without exec", record(header(kindArgv), raw(&collectorXdrArgv{Index: 1, Offset: 2 * argvChunk})), errArgvOrphan},
		{"continuation data short", record(header(kindArgv), raw(&collectorXdrArgv{Len: 9}), []byte("ab")), errShort},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ok, err := newDecoder(DefaultArgvMax).decode(tc.in)
			if !errors.Is(err, tc.want) || ok {
				t.Errorf("decode: %v, %v; want %v", ok, err, tc.want)
			}
		})
	}
}

// argvRecords returns the records the kernel sends for an exec whose argv
// is data (at most argvMax bytes captured): continuations, then the exec
// record.
func argvRecords(pid uint32, time uint64, data []byte, size uint32) [][]byte {
	h := header(kindArgv)
	h.Pid, h.KtimeNs = pid, time
	var recs [][]byte
	for i, off := 0, argvChunk; off < len(data); i, off = i+1, off+argvChunk {
		chunk := data[off:min(off+argvChunk, len(data))]
		recs = append(recs, record(h, raw(&collectorXdrArgv{Index: uint32(i), Offset: uint32(off), Len: uint32(len(chunk))}), chunk))
	}
	h.Kind = uint32(KindExec)
	first := data[:min(argvChunk, len(data))]
	e := collectorXdrExec{ArgvSize: size, ArgvCaptured: uint32(len(data)), Continuations: uint16(len(recs)), ArgvLen: uint16(len(first))}
	return append(recs, record(h, raw(&e), first))
}

func argvOf(n int) ([]byte, []string) {
	var b []byte
	var args []string
	for i := 0; len(b) < n; i++ {
		a := strings.Repeat(string(rune('a'+i%26)), 1000)
		args = append(args, a)
		b = append(append(b, a...), 0)
	}
	return b, args
}

func TestArgvReassembly(t *testing.T) {
	data, args := argvOf(10 * 1024) // three records
	recs := argvRecords(42, 1000, data, uint32(len(data)))

	t.Run("complete", func(t *testing.T) {
		d := newDecoder(DefaultArgvMax)
		var got []Event
		for _, r := range recs {
			ev, ok, err := d.decode(r)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				got = append(got, ev)
			}
		}
		if len(got) != 1 || got[0].Exec.ArgvIncomplete || !slices.Equal(got[0].Exec.Argv, args) || len(d.pending) != 0 {
			t.Errorf("events %d, pending %d, argv incomplete %v equal %v", len(got), len(d.pending), got[0].Exec.ArgvIncomplete,
				slices.Equal(got[0].Exec.Argv, args))
		}
	})

	t.Run("continuation lost", func(t *testing.T) {
		d := newDecoder(DefaultArgvMax)
		ev, _, err := d.decode(recs[0])
		if err != nil {
			t.Fatal(err)
		}
		ev, ok, err := d.decode(recs[2]) // recs[1] lost in the kernel
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		if !ev.Exec.ArgvIncomplete {
			t.Error("ArgvIncomplete not set")
		}
	})

	t.Run("exec record lost", func(t *testing.T) {
		d := newDecoder(DefaultArgvMax)
		for _, r := range recs[:2] {
			if _, _, err := d.decode(r); err != nil {
				t.Fatal(err)
			}
		}
		// The same task's next exec starts over.
		next := argvRecords(42, 5000, data, uint32(len(data)))
		var last Event
		for _, r := range next {
			ev, ok, err := d.decode(r)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				last = ev
			}
		}
		if d.orphans != 1 || last.Exec.ArgvIncomplete || !slices.Equal(last.Exec.Argv, args) {
			t.Errorf("orphans %d, incomplete %v", d.orphans, last.Exec.ArgvIncomplete)
		}
	})

	t.Run("stale continuations expire", func(t *testing.T) {
		d := newDecoder(DefaultArgvMax)
		for pid := range uint32(argvPendingMax) {
			if _, _, err := d.decode(argvRecords(pid, 1000, data, uint32(len(data)))[0]); err != nil {
				t.Fatal(err)
			}
		}
		later := argvRecords(argvPendingMax+1, 1000+argvStale+1, data, uint32(len(data)))
		if _, _, err := d.decode(later[0]); err != nil {
			t.Fatal(err)
		}
		if len(d.pending) != 1 || d.orphans != argvPendingMax {
			t.Errorf("pending %d, orphans %d", len(d.pending), d.orphans)
		}
	})

	t.Run("beyond ArgvMax", func(t *testing.T) {
		d := newDecoder(argvChunk)
		if _, _, err := d.decode(recs[0]); !errors.Is(err, errArgvOrphan) {
			t.Errorf("continuation beyond ArgvMax: %v", err)
		}
	})
}

func TestSplitArgv(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"ls\x00", []string{"ls"}},
		{"ls\x00-l\x00\x00", []string{"ls", "-l", ""}},
		{"ls\x00trunc", []string{"ls", "trunc"}},
	} {
		if diff := cmp.Diff(tc.want, splitArgv([]byte(tc.in))); diff != "" {
			t.Errorf("splitArgv(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}

// readerOnly is a Collector without kernel objects, for feeding records
// to add.
func readerOnly(argvMax int) *Collector {
	return &Collector{
		dec: newDecoder(argvMax), opens: map[uint32]openRef{}, recent: map[uint32][]recentEvent{},
		hold: DefaultRepeatHold,
		log:  slog.New(slog.DiscardHandler),
	}
}

func TestMerge(t *testing.T) {
	openThread := func(tgid, pid uint32, path string, ret int64) []byte {
		h := header(KindFileOpen)
		h.Tgid, h.Pid = tgid, pid
		h.KtimeNs = uint64(time.Now().UnixNano()) // times differ: still identical
		fd := int32(-1)
		if ret >= 0 {
			fd = int32(ret) // as the kernel sets it
		}
		return record(h, raw(&collectorXdrFileop{Op: uint32(OpOpenat), Ret: ret, Fd: fd, PathLen: uint16(len(path))}), []byte(path))
	}
	openRet := func(tgid uint32, path string, ret int64) []byte { return openThread(tgid, tgid, path, ret) }
	open := func(tgid uint32, path string) []byte { return openRet(tgid, path, 3) }
	c := readerOnly(DefaultArgvMax)
	var evs []Event
	for _, r := range [][]byte{
		open(1, "/a"), openRet(1, "/a", 4), open(2, "/a"), open(1, "/a"), // another fd, process 2 in between: still merged
		openThread(1, 7, "/a", 5),    // another thread of process 1: still merged
		open(1, "/b"), open(1, "/a"), // another file in between: merged all the same
	} {
		evs = c.add(evs, r)
	}
	var got []string
	for _, ev := range evs {
		got = append(got, fmt.Sprintf("%d %s x%d", ev.Header.TGID, ev.File.Path, ev.Count))
	}
	want := []string{"1 /a x5", "2 /a x1", "1 /b x1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("merged events (-want +got):\n%s", diff)
	}
	if c.merged.Load() != 4 || c.events.Load() != 3 || c.records.Load() != 7 {
		t.Errorf("merged %d events %d records %d", c.merged.Load(), c.events.Load(), c.records.Load())
	}

	// A failed open is not the same as a successful one.
	if evs = c.add(evs, openRet(1, "/a", -2)); len(evs) != 4 {
		t.Errorf("a failed open was merged into a successful one: %d events", len(evs))
	}

	// A count at its maximum takes no more: the next is held.
	evs[0].Count = math.MaxUint32
	evs = c.add(evs, open(1, "/a"))
	if len(evs) != 4 || c.held != 1 {
		t.Errorf("%d events, %d held after a saturated count, want 4 and 1", len(evs), c.held)
	}
}

func TestOptions(t *testing.T) {
	page := os.Getpagesize()
	for _, tc := range []struct {
		name    string
		in      *Options
		want    Options
		wantErr bool
	}{
		{"nil", nil, Options{RingSize: DefaultRingSize, WakeupBytes: DefaultRingSize / 4, PollInterval: DefaultPollInterval,
			RepeatHold: DefaultRepeatHold, ArgvMax: DefaultArgvMax}, false},
		{"set", &Options{RingSize: 1 << 20, WakeupBytes: 1, PollInterval: time.Second, RepeatHold: time.Minute, ArgvMax: MaxArgvMax},
			Options{RingSize: 1 << 20, WakeupBytes: 1, PollInterval: time.Second, RepeatHold: time.Minute, ArgvMax: MaxArgvMax}, false},
		{"ring not a power of two", &Options{RingSize: 3 * page}, Options{}, true},
		{"ring below a page", &Options{RingSize: page / 2}, Options{}, true},
		{"wakeup beyond the ring", &Options{RingSize: page, WakeupBytes: 2 * page}, Options{}, true},
		{"negative poll", &Options{PollInterval: -1}, Options{}, true},
		{"negative hold", &Options{RepeatHold: -1}, Options{}, true},
		{"argv too long", &Options{ArgvMax: MaxArgvMax + 1}, Options{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.in.withDefaults()
			if (err != nil) != tc.wantErr {
				t.Fatalf("withDefaults: %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if got.Logger == nil {
				t.Error("no default logger")
			}
			got.Logger = nil
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("options (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzDecode feeds record sequences to the decoder and the merging reader:
// the input is records, each preceded by its 16-bit little-endian length.
func FuzzDecode(f *testing.F) {
	data, _ := argvOf(9000)
	var seeds [][][]byte
	seeds = append(seeds, argvRecords(7, 99, data, uint32(len(data))))
	for _, r := range [][]byte{
		record(header(KindFork), raw(&collectorXdrFork{ChildPid: 3})),
		record(header(KindExit), raw(&collectorXdrExit{})),
		record(header(KindSetID), raw(&collectorXdrSetid{})),
		record(header(KindPtrace), raw(&collectorXdrPtrace{})),
		record(header(KindProcAccess), raw(&collectorXdrProcAccess{})),
		record(header(KindComm), raw(&collectorXdrComm{})),
		record(header(KindFileRename), raw(&collectorXdrFileop{PathLen: 2, Path2Len: 2, NameLen: 1}), []byte("/a/bn")),
		record(header(KindLoadImage), raw(&collectorXdrMemop{PathLen: 2}), []byte("/l")),
		record(header(KindDNS), raw(&collectorXdrNetop{Family: unix.AF_INET6, UnixPathLen: 1, PayloadLen: 2}), []byte("abc")),
		record(header(KindBind), raw(&collectorXdrNetop{Family: unix.AF_UNIX, UnixPathLen: 3}), []byte("a\x00b")),
	} {
		seeds = append(seeds, [][]byte{r, r})
	}
	for _, recs := range seeds {
		var in []byte
		for _, r := range recs {
			in = binary.LittleEndian.AppendUint16(in, uint16(len(r)))
			in = append(in, r...)
		}
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		c := readerOnly(2 * argvChunk)
		var evs []Event
		for len(in) >= 2 {
			n := int(binary.LittleEndian.Uint16(in))
			in = in[2:]
			if n > len(in) {
				n = len(in)
			}
			if n%2 == 1 {
				c.batch++ // a new read: earlier events are no longer in reach
			}
			evs = c.add(evs, in[:n])
			in = in[n:]
		}
		evs = c.releaseAll(evs)
		if c.held != 0 {
			t.Fatalf("%d counts still held after releasing all", c.held)
		}
		n := 0
		for _, rs := range c.recent {
			n += len(rs)
			if len(rs) > recentPerProcess {
				t.Fatalf("%d recent events for one process", len(rs))
			}
		}
		if n != c.nrecent || n > maxRecent {
			t.Fatalf("recent %d, counted %d", n, c.nrecent)
		}
		total := 0
		for _, ev := range evs {
			if ev.Count == 0 {
				t.Fatalf("event with count 0: %+v", ev)
			}
			total += int(ev.Count)
			if ev.Exec != nil && len(strings.Join(ev.Exec.Argv, "\x00")) > 3*argvChunk {
				t.Fatalf("argv of %d bytes beyond the limit", len(strings.Join(ev.Exec.Argv, "\x00")))
			}
		}
		if uint64(total) != c.events.Load()+c.merged.Load() || len(c.dec.pending) > argvPendingMax {
			t.Fatalf("total %d, events %d merged %d, pending %d", total, c.events.Load(), c.merged.Load(), len(c.dec.pending))
		}
	})
}

// TestKernelRepeats checks how Read folds the kernel's repeat records into
// the open they repeat: into its event when the same read returns it, as a
// copy of it when it was returned before, and counted as lost when the
// open is unknown.
func TestKernelRepeats(t *testing.T) {
	open := func(pid uint32, path string, gen uint32) []byte {
		h := header(KindFileOpen)
		h.Pid = pid
		return record(h, raw(&collectorXdrFileop{Op: uint32(OpOpenat), Ret: 3, Fd: 3, Gen: gen, PathLen: uint16(len(path))}), []byte(path))
	}
	repeat := func(pid, gen, count uint32, at uint64) []byte {
		h := header(kindRepeat)
		h.Pid, h.KtimeNs = pid, at
		return record(h, raw(&collectorXdrRepeat{Gen: gen, Count: count}))
	}
	c := readerOnly(DefaultArgvMax)
	c.hold = time.Hour
	show := func(evs []Event) []string {
		var got []string
		for _, ev := range evs {
			got = append(got, fmt.Sprintf("%d %s x%d @%d", ev.Header.PID, ev.File.Path, ev.Count, ev.Header.Time))
		}
		return got
	}
	read := func(recs ...[]byte) []string {
		c.batch++ // as readLocked
		var evs []Event
		for _, r := range recs {
			evs = c.add(evs, r)
		}
		return show(evs)
	}
	// Same read: the count joins the open's event.
	if diff := cmp.Diff([]string{"42 /a x4 @1000", "43 /b x1 @1000"},
		read(open(42, "/a", 1), open(43, "/b", 1), repeat(42, 1, 3, 5000))); diff != "" {
		t.Errorf("same read (-want +got):\n%s", diff)
	}
	// A later read: the counts are held, then reported as a copy of the
	// open timed by the last repeat record.
	if got := read(repeat(42, 1, 2, 6000), repeat(42, 1, 5, 7000)); len(got) != 0 {
		t.Errorf("later read returned %q, want the counts held", got)
	}
	if diff := cmp.Diff([]string{"42 /a x7 @7000"}, show(c.releaseAll(nil))); diff != "" {
		t.Errorf("held counts (-want +got):\n%s", diff)
	}
	// Repeats of an open Read does not know are lost, and counted.
	if got := read(repeat(42, 2, 4, 8000), repeat(44, 1, 6, 8000)); len(got) != 0 {
		t.Errorf("orphan repeats returned %q", got)
	}
	orphans, events, merged := c.repeatOrphans.Load(), c.events.Load(), c.merged.Load()
	if orphans != 10 || events+merged != 1+1+3+7 {
		t.Errorf("repeat orphans %d (want 10), events %d + merged %d (want 12)", orphans, events, merged)
	}
	// A malformed repeat record is a decode error, not a count.
	c.add(nil, record(header(kindRepeat), raw(&collectorXdrRepeat{Gen: 1, Count: 0})))
	if n := c.decodeErrors.Load(); n != 1 {
		t.Errorf("decode errors %d, want 1 for a repeat of 0", n)
	}
}
