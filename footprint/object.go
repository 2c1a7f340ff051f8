package footprint

import (
	"path"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"github.com/xdr-sensor/xdr/proto/objid"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// procCore is the part of a process kept for both a subject and a target
// process: what identifies and describes the program instance.
type procCore struct {
	instanceID    uint64
	tgid          uint32
	argvTruncated bool
	exe, comm     string
	argv          []string
}

func (c *procCore) load(p *xdrv1.Process) {
	c.instanceID = p.GetInstanceId()
	c.tgid = p.GetTgid()
	c.argvTruncated = p.GetArgvTruncated()
	keep(&c.exe, p.GetExe())
	keep(&c.comm, p.GetComm())
	argv := p.GetArgv()
	if len(argv) == len(c.argv) {
		for i, a := range argv {
			keep(&c.argv[i], a)
		}
		return
	}
	clear(c.argv) // release the old strings beyond the new length
	if cap(c.argv) > 2*len(argv)+8 {
		c.argv = nil // don't keep a large array for a short argv
	}
	c.argv = append(c.argv[:0], argv...)
}

func (c *procCore) put(p *xdrv1.Process) {
	p.InstanceId = c.instanceID
	p.Tgid = c.tgid
	p.ArgvTruncated = c.argvTruncated
	p.Exe = c.exe
	p.Comm = c.comm
	p.Argv = slices.Clone(c.argv)
}

func (c *procCore) size(block string) int64 {
	n := strSize(block, c.exe) + strSize(block, c.comm) + objSize(uintptr(cap(c.argv))*unsafe.Sizeof(""))
	for _, a := range c.argv {
		n += strSize(block, a)
	}
	return n
}

func (c *procCore) strs(dst []*string) []*string {
	dst = append(dst, &c.exe, &c.comm)
	for i := range c.argv {
		dst = append(dst, &c.argv[i])
	}
	return dst
}

type hashes struct {
	set               bool
	tooLarge          bool
	entropy           float64
	md5, sha1, sha256 string
}

func (h *hashes) load(p *xdrv1.Hashes) {
	if p == nil {
		*h = hashes{}
		return
	}
	h.set, h.tooLarge, h.entropy = true, p.TooLarge, p.Entropy
	keep(&h.md5, p.Md5)
	keep(&h.sha1, p.Sha1)
	keep(&h.sha256, p.Sha256)
}

func (h *hashes) proto() *xdrv1.Hashes {
	if !h.set {
		return nil
	}
	return &xdrv1.Hashes{Md5: h.md5, Sha1: h.sha1, Sha256: h.sha256, Entropy: h.entropy, TooLarge: h.tooLarge}
}

func (h *hashes) size(block string) int64 {
	return strSize(block, h.md5) + strSize(block, h.sha1) + strSize(block, h.sha256)
}

func (h *hashes) strs(dst []*string) []*string { return append(dst, &h.md5, &h.sha1, &h.sha256) }

// object is the metadata of an activity's target, one implementation per
// kind of target.
type object interface {
	// load refreshes the object from ev's target and reports whether the
	// target was of the object's kind (if not, nothing was changed).
	load(ev *xdrv1.ActEvent) bool
	// put sets fp's object to a fresh message.
	put(fp *xdrv1.Footprint)
	// size estimates the heap bytes of the object, itself included,
	// counting nothing for strings inside the entry's block.
	size(block string) int64
	// strs appends pointers to the object's string fields.
	strs(dst []*string) []*string
}

// newObject returns the object for ev's target, nil if it has none.
func newObject(ev *xdrv1.ActEvent) object {
	var o object
	switch t := ev.GetTarget().(type) {
	case *xdrv1.ActEvent_File:
		o = &fileObject{path: objid.CleanPath(t.File.GetPath())}
	case *xdrv1.ActEvent_Process:
		o = new(processObject)
	case *xdrv1.ActEvent_Connection:
		o = new(connectionObject)
	case *xdrv1.ActEvent_Dns:
		o = new(dnsObject)
	case *xdrv1.ActEvent_Account:
		o = new(accountObject)
	case *xdrv1.ActEvent_Memory:
		o = new(memoryObject)
	case *xdrv1.ActEvent_Rule:
		o = new(ruleObject)
	default:
		return nil
	}
	o.load(ev)
	return o
}

// fileObject keeps what a FileFootprint reports. The path is part of the
// activity's identity, so it is set once, normalised like the identity.
type fileObject struct {
	path         string
	fileSize     uint64
	changeTime   int64
	modifyTime   int64
	uid, gid     uint32
	owner, group string
	tags         tagSet
	hashes       hashes
}

func (o *fileObject) load(ev *xdrv1.ActEvent) bool {
	t, ok := ev.GetTarget().(*xdrv1.ActEvent_File)
	if !ok {
		return false
	}
	f := t.File
	o.fileSize = f.GetSize()
	o.changeTime = f.GetChangeTime()
	o.modifyTime = f.GetModifyTime()
	o.uid, o.gid = f.GetUid(), f.GetGid()
	keep(&o.owner, f.GetOwnerName())
	keep(&o.group, f.GetGroupName())
	o.tags = fileTags(o.path, f)
	o.hashes.load(f.GetHashes())
	return true
}

// put builds the FileFootprint. Linux stat has no birth time (statx may
// have one, but File does not carry it), so create_time is the status
// change time (ctime), the closest the kernel keeps. Owner and group
// "sids" are the numeric uid and gid in decimal. Signers stay empty: Linux
// executables carry no signature the agent verifies yet.
func (o *fileObject) put(fp *xdrv1.Footprint) {
	fp.Object = &xdrv1.Footprint_File{File: &xdrv1.FileFootprint{
		Size:          o.fileSize,
		CreateTime:    o.changeTime,
		ModifyTime:    o.modifyTime,
		Filename:      o.path,
		OwnerSid:      strconv.FormatUint(uint64(o.uid), 10),
		OwnerName:     o.owner,
		GroupSid:      strconv.FormatUint(uint64(o.gid), 10),
		GroupName:     o.group,
		TelemetryTags: o.tags.names(),
		Hashes:        o.hashes.proto(),
	}}
}

func (o *fileObject) size(block string) int64 {
	return objSize(unsafe.Sizeof(*o)) + strSize(block, o.path) + strSize(block, o.owner) + strSize(block, o.group) + o.hashes.size(block)
}

func (o *fileObject) strs(dst []*string) []*string {
	return o.hashes.strs(append(dst, &o.path, &o.owner, &o.group))
}

// tagSet is a set of telemetry tags, one bit each, in tagNames order.
type tagSet uint8

const (
	tagDeleted tagSet = 1 << iota
	tagMemfd
	tagSetuid
	tagSetgid
	tagWorldWritable
	tagHidden
	tagTmp
)

var tagNames = [...]string{"deleted", "memfd", "setuid", "setgid", "world_writable", "hidden", "tmp"}

// Mode bits (stat st_mode).
const (
	modeTypeMask   = 0o170000
	modeSymlink    = 0o120000
	modeSetuid     = 0o4000
	modeSetgid     = 0o2000
	modeOtherWrite = 0o0002
)

// tmpDirs are the world-writable scratch directories where droppers like
// to stage files.
var tmpDirs = [...]string{"/tmp", "/var/tmp", "/dev/shm"}

// fileTags derives the telemetry tags of a file with normalised path p.
func fileTags(p string, f *xdrv1.File) tagSet {
	var t tagSet
	if f.GetDeleted() {
		t |= tagDeleted
	}
	if f.GetMemfd() {
		t |= tagMemfd
	}
	mode := f.GetMode()
	if mode&modeSetuid != 0 {
		t |= tagSetuid
	}
	if mode&modeSetgid != 0 {
		t |= tagSetgid
	}
	// A symlink's permission bits are always 0777 and mean nothing.
	if mode&modeOtherWrite != 0 && mode&modeTypeMask != modeSymlink {
		t |= tagWorldWritable
	}
	if base := path.Base(p); len(base) > 1 && base[0] == '.' && base != ".." {
		t |= tagHidden
	}
	for _, d := range tmpDirs {
		if p == d || strings.HasPrefix(p, d) && p[len(d)] == '/' {
			t |= tagTmp
			break
		}
	}
	return t
}

func (t tagSet) names() []string {
	if t == 0 {
		return nil
	}
	out := make([]string, 0, len(tagNames))
	for i, name := range tagNames {
		if t&(1<<i) != 0 {
			out = append(out, name)
		}
	}
	return out
}

// processObject is a target process, trimmed like a subject but without
// credentials or hashes: its executable file has its own footprints.
type processObject struct{ procCore }

func (o *processObject) load(ev *xdrv1.ActEvent) bool {
	t, ok := ev.GetTarget().(*xdrv1.ActEvent_Process)
	if ok {
		o.procCore.load(t.Process)
	}
	return ok
}

func (o *processObject) put(fp *xdrv1.Footprint) {
	p := new(xdrv1.Process)
	o.procCore.put(p)
	fp.Object = &xdrv1.Footprint_Process{Process: p}
}

func (o *processObject) size(block string) int64 {
	return objSize(unsafe.Sizeof(*o)) + o.procCore.size(block)
}

// The other kinds are small and are kept as they came, each in a message
// owned by the object and refreshed field by field (TestObjectsCopyEveryField
// catches a field added to the proto but not here).

type connectionObject struct{ m xdrv1.Connection }

func (o *connectionObject) load(ev *xdrv1.ActEvent) bool {
	t, ok := ev.GetTarget().(*xdrv1.ActEvent_Connection)
	if ok {
		copyConnection(&o.m, t.Connection)
	}
	return ok
}

func (o *connectionObject) put(fp *xdrv1.Footprint) {
	c := new(xdrv1.Connection)
	copyConnection(c, &o.m)
	fp.Object = &xdrv1.Footprint_Connection{Connection: c}
}

func (o *connectionObject) size(block string) int64 {
	return objSize(unsafe.Sizeof(*o)) + strSize(block, o.m.LocalAddress) + strSize(block, o.m.RemoteAddress)
}

func (o *connectionObject) strs(dst []*string) []*string {
	return append(dst, &o.m.LocalAddress, &o.m.RemoteAddress)
}

func copyConnection(dst, src *xdrv1.Connection) {
	dst.Protocol = src.GetProtocol()
	dst.Family = src.GetFamily()
	keep(&dst.LocalAddress, src.GetLocalAddress())
	dst.LocalPort = src.GetLocalPort()
	keep(&dst.RemoteAddress, src.GetRemoteAddress())
	dst.RemotePort = src.GetRemotePort()
	dst.Direction = src.GetDirection()
	dst.Result = src.GetResult()
	dst.Outcome = src.GetOutcome()
}

type dnsObject struct{ m xdrv1.Dns }

func (o *dnsObject) load(ev *xdrv1.ActEvent) bool {
	t, ok := ev.GetTarget().(*xdrv1.ActEvent_Dns)
	if ok {
		copyDNS(&o.m, t.Dns)
	}
	return ok
}

func (o *dnsObject) put(fp *xdrv1.Footprint) {
	d := new(xdrv1.Dns)
	copyDNS(d, &o.m)
	fp.Object = &xdrv1.Footprint_Dns{Dns: d}
}

func (o *dnsObject) size(block string) int64 {
	return objSize(unsafe.Sizeof(*o)) + strSize(block, o.m.Name) + strSize(block, o.m.ServerAddress)
}

func (o *dnsObject) strs(dst []*string) []*string { return append(dst, &o.m.Name, &o.m.ServerAddress) }

func copyDNS(dst, src *xdrv1.Dns) {
	keep(&dst.Name, src.GetName())
	dst.QueryType = src.GetQueryType()
	keep(&dst.ServerAddress, src.GetServerAddress())
	dst.ServerPort = src.GetServerPort()
	dst.Protocol = src.GetProtocol()
}

type accountObject struct{ m xdrv1.Account }

func (o *accountObject) load(ev *xdrv1.ActEvent) bool {
	t, ok := ev.GetTarget().(*xdrv1.ActEvent_Account)
	if ok {
		copyAccount(&o.m, t.Account)
	}
	return ok
}

func (o *accountObject) put(fp *xdrv1.Footprint) {
	a := new(xdrv1.Account)
	copyAccount(a, &o.m)
	fp.Object = &xdrv1.Footprint_Account{Account: a}
}

func (o *accountObject) size(block string) int64 {
	return objSize(unsafe.Sizeof(*o)) + strSize(block, o.m.Name) + strSize(block, o.m.Home) + strSize(block, o.m.Shell) +
		strSize(block, o.m.File) + strSize(block, o.m.Gecos)
}

func (o *accountObject) strs(dst []*string) []*string {
	return append(dst, &o.m.Name, &o.m.Home, &o.m.Shell, &o.m.File, &o.m.Gecos)
}

// copyAccount copies the account as it is now. What one change did
// (changed fields, old values, members added or removed) belongs to the
// raw event, not to the footprint of the activity.
func copyAccount(dst, src *xdrv1.Account) {
	dst.Uid = src.GetUid()
	dst.Gid = src.GetGid()
	keep(&dst.Name, src.GetName())
	keep(&dst.Home, src.GetHome())
	keep(&dst.Shell, src.GetShell())
	dst.Group = src.GetGroup()
	keep(&dst.File, src.GetFile())
	keep(&dst.Gecos, src.GetGecos())
	dst.IdsUnknown = src.GetIdsUnknown()
}

type memoryObject struct{ m xdrv1.Memory }

func (o *memoryObject) load(ev *xdrv1.ActEvent) bool {
	t, ok := ev.GetTarget().(*xdrv1.ActEvent_Memory)
	if ok {
		copyMemory(&o.m, t.Memory)
	}
	return ok
}

func (o *memoryObject) put(fp *xdrv1.Footprint) {
	m := new(xdrv1.Memory)
	copyMemory(m, &o.m)
	fp.Object = &xdrv1.Footprint_Memory{Memory: m}
}

func (o *memoryObject) size(block string) int64 {
	return objSize(unsafe.Sizeof(*o)) + strSize(block, o.m.Path)
}

func (o *memoryObject) strs(dst []*string) []*string { return append(dst, &o.m.Path) }

func copyMemory(dst, src *xdrv1.Memory) {
	dst.Address = src.GetAddress()
	dst.Length = src.GetLength()
	dst.Prot = src.GetProt()
	dst.OldProt = src.GetOldProt()
	dst.Flags = src.GetFlags()
	keep(&dst.Path, src.GetPath())
}

type ruleObject struct{ m xdrv1.Rule }

func (o *ruleObject) load(ev *xdrv1.ActEvent) bool {
	t, ok := ev.GetTarget().(*xdrv1.ActEvent_Rule)
	if ok {
		copyRule(&o.m, t.Rule)
	}
	return ok
}

func (o *ruleObject) put(fp *xdrv1.Footprint) {
	r := new(xdrv1.Rule)
	copyRule(r, &o.m)
	fp.Object = &xdrv1.Footprint_Rule{Rule: r}
}

func (o *ruleObject) size(block string) int64 {
	return objSize(unsafe.Sizeof(*o)) + strSize(block, o.m.Id) + strSize(block, o.m.Name) + strSize(block, o.m.Description)
}

func (o *ruleObject) strs(dst []*string) []*string {
	return append(dst, &o.m.Id, &o.m.Name, &o.m.Description)
}

func copyRule(dst, src *xdrv1.Rule) {
	keep(&dst.Id, src.GetId())
	keep(&dst.Name, src.GetName())
	dst.Severity = src.GetSeverity()
	keep(&dst.Description, src.GetDescription())
}
