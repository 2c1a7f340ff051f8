package ebpf

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Where tracefs and bpffs are mounted when they are not mounted yet.
const (
	tracefsDir = "/sys/kernel/tracing"
	bpffsDir   = "/sys/fs/bpf"
)

var mountMu sync.Mutex

// ensureTracefs mounts tracefs at /sys/kernel/tracing unless a tracefs is
// already mounted there or at /sys/kernel/debug/tracing (the places the
// loader looks) and says which. Tracepoint programs attach through its
// events directory. It must run before the first attach: the loader
// remembers where tracefs is on first use.
func ensureTracefs() (string, error) {
	mountMu.Lock()
	defer mountMu.Unlock()
	for _, m := range []struct {
		dir   string
		magic int64
	}{
		{tracefsDir, unix.TRACEFS_MAGIC},
		{"/sys/kernel/debug/tracing", unix.TRACEFS_MAGIC},
		{"/sys/kernel/debug/tracing", unix.DEBUGFS_MAGIC},
	} {
		if isMounted(m.dir, m.magic) {
			return "mounted at " + m.dir, nil
		}
	}
	if err := unix.Mount("tracefs", tracefsDir, "tracefs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return "", fmt.Errorf("tracefs is not mounted and mounting it at %s failed: %w (mount it, or run as root)", tracefsDir, err)
	}
	return "mounted by the agent at " + tracefsDir, nil
}

// ensureBPFFS mounts the BPF file system at /sys/fs/bpf unless it is
// there, and says which.
func ensureBPFFS() (string, error) {
	mountMu.Lock()
	defer mountMu.Unlock()
	if isMounted(bpffsDir, unix.BPF_FS_MAGIC) {
		return "mounted at " + bpffsDir, nil
	}
	if err := unix.Mount("bpf", bpffsDir, "bpf", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0700"); err != nil {
		return "", fmt.Errorf("bpffs is not mounted and mounting it at %s failed: %w", bpffsDir, err)
	}
	return "mounted by the agent at " + bpffsDir, nil
}

func isMounted(dir string, magic int64) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && int64(st.Type) == magic
}

// attach attaches every program of coll at the hook its section names:
// "tracepoint/GROUP/NAME" or "tp_btf/NAME". System call tracepoints the
// kernel does not have (architectures without legacy calls such as open
// or rename, kernels older than a call) are skipped and returned in
// absent; any other failure detaches everything and fails.
func attach(spec *ebpf.CollectionSpec, coll *ebpf.Collection) (links []link.Link, absent []string, err error) {
	names := make([]string, 0, len(spec.Programs))
	for name := range spec.Programs {
		names = append(names, name)
	}
	slices.Sort(names)
	defer func() {
		if err != nil {
			for _, l := range links {
				l.Close()
			}
			links = nil
		}
	}()
	for _, name := range names {
		sec := spec.Programs[name].SectionName
		prog := coll.Programs[name]
		var l link.Link
		switch {
		case strings.HasPrefix(sec, "tracepoint/"):
			group, tp, ok := strings.Cut(strings.TrimPrefix(sec, "tracepoint/"), "/")
			if !ok {
				return links, absent, fmt.Errorf("program %s: section %q names no tracepoint", name, sec)
			}
			l, err = link.Tracepoint(group, tp, prog, nil)
			if errors.Is(err, os.ErrNotExist) && group == "syscalls" {
				absent = append(absent, tp)
				err = nil
				continue
			}
		case strings.HasPrefix(sec, "tp_btf/"):
			l, err = link.AttachTracing(link.TracingOptions{Program: prog})
		default:
			return links, absent, fmt.Errorf("program %s: unknown section %q", name, sec)
		}
		if err != nil {
			return links, absent, notSupported("attach "+sec, err)
		}
		links = append(links, l)
	}
	return links, absent, nil
}
