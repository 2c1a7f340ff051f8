package ebpf

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
)

// Feature is one kernel facility Probe looked at.
type Feature struct {
	Name      string // "btf", "tracefs", "bpffs", "ringbuf", "verifier", "tracepoints"
	Available bool
	// Detail says what was found (a path, "mounted by the agent at ...")
	// or why the feature is missing.
	Detail string
}

// ProbeOptions configure Probe; nil means defaults.
type ProbeOptions struct {
	// BTFPath is a BTF file describing the running kernel, for kernels
	// that do not publish /sys/kernel/btf/vmlinux (BTFHub-style files).
	// Default: the kernel's own.
	BTFPath string
}

// Probe reports whether this kernel and process can run the collector: it
// looks for BTF, mounts tracefs and bpffs where they are missing, and
// loads and attaches two tiny programs that use the same kernel features
// as the collector (CO-RE, a BPF ring buffer, a system call tracepoint
// and a BTF-typed tracepoint), then removes them. It returns what it
// found, in the order it looked, up to the first missing feature. The
// error wraps ErrNotSupported and says why the collector cannot run: no
// BTF, no ring buffer, a verifier rejection, missing privileges. Open can
// still fail for reasons a probe cannot see; its errors wrap
// ErrNotSupported in the same cases.
func Probe(opts *ProbeOptions) ([]Feature, error) {
	var o ProbeOptions
	if opts != nil {
		o = *opts
	}
	var found []Feature
	report := func(name string, err error, detail string) error {
		if err != nil {
			found = append(found, Feature{Name: name, Detail: err.Error()})
			return err
		}
		found = append(found, Feature{Name: name, Available: true, Detail: detail})
		return nil
	}

	kernelTypes, btfDetail, err := loadBTF(o.BTFPath)
	if report("btf", err, btfDetail) != nil {
		return found, err
	}
	if err := removeMemlock(); err != nil {
		return found, err
	}
	detail, err := ensureTracefs()
	if err != nil {
		err = notSupported("tracefs", err)
	}
	if report("tracefs", err, detail) != nil {
		return found, err
	}
	// Nothing is pinned yet, so a missing bpffs is not fatal; it is
	// mounted for the operator's tools (bpftool) and reported.
	detail, err = ensureBPFFS()
	report("bpffs", err, detail)

	if err := features.HaveMapType(ebpf.RingBuf); err != nil {
		if errors.Is(err, ebpf.ErrNotSupported) {
			err = fmt.Errorf("%w: BPF ring buffer (Linux 5.8 or later): %w", ErrNotSupported, err)
		} else {
			err = notSupported("probe BPF ring buffer", err)
		}
		report("ringbuf", err, "")
		return found, err
	}
	report("ringbuf", nil, "BPF_MAP_TYPE_RINGBUF")

	spec, err := loadProbe()
	if err != nil {
		return found, fmt.Errorf("load embedded probe object: %w", err)
	}
	spec.Maps["probe_events"].MaxEntries = uint32(os.Getpagesize())
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{
		Programs: ebpf.ProgramOptions{KernelTypes: kernelTypes},
	})
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			err = fmt.Errorf("%w: the verifier rejected the probe program: %w", ErrNotSupported, err)
		} else {
			err = notSupported("load probe programs", err)
		}
		report("verifier", err, "")
		return found, err
	}
	defer coll.Close()
	report("verifier", nil, "probe programs accepted")
	links, _, err := attach(spec, coll)
	if err == nil && len(links) != len(spec.Programs) {
		err = fmt.Errorf("%w: system call tracepoints are not available (CONFIG_FTRACE_SYSCALLS)", ErrNotSupported)
	}
	for _, l := range links {
		l.Close()
	}
	if report("tracepoints", err, "syscall and BTF-typed tracepoints attach") != nil {
		return found, err
	}
	return found, nil
}

// loadBTF returns the kernel types CO-RE relocates against: nil for the
// kernel's own (cilium/ebpf finds them), or those of the file at path.
func loadBTF(path string) (*btf.Spec, string, error) {
	if path == "" {
		if _, err := btf.LoadKernelSpec(); err != nil {
			return nil, "", fmt.Errorf("%w: kernel BTF (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF): %w (or give a BTF file of this kernel)", ErrNotSupported, err)
		}
		return nil, "/sys/kernel/btf/vmlinux", nil
	}
	spec, err := btf.LoadSpec(path)
	if err != nil {
		return nil, "", fmt.Errorf("%w: BTF file %s: %w", ErrNotSupported, path, err)
	}
	return spec, path, nil
}
