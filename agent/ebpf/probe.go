package ebpf

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
)

// Probe reports whether this kernel and process can run the collector: it
// loads and attaches two tiny programs that use the same kernel features
// (BTF and CO-RE, a BPF ring buffer, a system call tracepoint and a
// BTF-typed tracepoint), then removes them. The error wraps
// ErrNotSupported and says why: no BTF, no ring buffer, a verifier
// rejection, missing privileges. Open can still fail for reasons a probe
// cannot see; its errors wrap ErrNotSupported in the same cases.
func Probe() error {
	if _, err := btf.LoadKernelSpec(); err != nil {
		return fmt.Errorf("%w: kernel BTF (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF): %w", ErrNotSupported, err)
	}
	if err := prepareKernel(); err != nil {
		return err
	}
	if err := features.HaveMapType(ebpf.RingBuf); err != nil {
		if errors.Is(err, ebpf.ErrNotSupported) {
			return fmt.Errorf("%w: BPF ring buffer (Linux 5.8 or later): %w", ErrNotSupported, err)
		}
		return notSupported("probe BPF ring buffer", err)
	}
	spec, err := loadProbe()
	if err != nil {
		return fmt.Errorf("load embedded probe object: %w", err)
	}
	spec.Maps["probe_events"].MaxEntries = uint32(os.Getpagesize())
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return fmt.Errorf("%w: the verifier rejected the probe program: %w", ErrNotSupported, err)
		}
		return notSupported("load probe programs", err)
	}
	defer coll.Close()
	links, _, err := attach(spec, coll)
	if err != nil {
		return err
	}
	for _, l := range links {
		l.Close()
	}
	if len(links) != len(spec.Programs) {
		return fmt.Errorf("%w: system call tracepoints are not available (CONFIG_FTRACE_SYSCALLS)", ErrNotSupported)
	}
	return nil
}
