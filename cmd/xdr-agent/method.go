package main

import (
	"fmt"
	"log/slog"

	"github.com/xdr-sensor/xdr/agent/ebpf"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

// choice is the collector method the agent runs, why, and what the kernel
// probe found; the hello frame carries all three to the aggregator, whose
// status command shows them.
type choice struct {
	method   xdrv1.CollectorMethod
	reason   string
	features []*xdrv1.KernelFeature
}

// probeFunc probes the kernel for the eBPF collector (ebpf.Probe).
type probeFunc func() ([]ebpf.Feature, error)

// chooseMethod turns --method into a collector: "proc" never probes,
// "ebpf" fails unless the probe passes, and "auto" takes eBPF when the
// probe passes and the proc connector otherwise, logging the choice once.
func chooseMethod(requested string, probe probeFunc, log *slog.Logger) (choice, error) {
	var c choice
	switch requested {
	case "proc":
		c.method = xdrv1.CollectorMethod_COLLECTOR_METHOD_PROC_CONNECTOR
		c.reason = "--method proc"
		log.Info("collector method chosen", "method", "proc", "reason", c.reason)
		return c, nil
	case "auto", "ebpf":
	default:
		return c, fmt.Errorf("method %q: want auto, proc or ebpf", requested)
	}
	found, err := probe()
	c.features = kernelFeatures(found)
	switch {
	case err == nil:
		c.method = xdrv1.CollectorMethod_COLLECTOR_METHOD_EBPF
		c.reason = "the kernel supports the eBPF collector"
		log.Info("collector method chosen", "method", "ebpf", "reason", c.reason)
	case requested == "ebpf":
		return c, fmt.Errorf("method ebpf: %w (use method proc or auto)", err)
	default:
		c.fallBack(err, log)
	}
	return c, nil
}

// fallBack switches c to the proc connector because the eBPF collector
// cannot run, and says so in one log line.
func (c *choice) fallBack(err error, log *slog.Logger) {
	c.method = xdrv1.CollectorMethod_COLLECTOR_METHOD_PROC_CONNECTOR
	c.reason = "eBPF collector unavailable: " + err.Error()
	log.Warn("collector method chosen", "method", "proc", "reason", c.reason)
}

func kernelFeatures(found []ebpf.Feature) []*xdrv1.KernelFeature {
	out := make([]*xdrv1.KernelFeature, 0, len(found))
	for _, f := range found {
		out = append(out, &xdrv1.KernelFeature{Name: f.Name, Available: f.Available, Detail: f.Detail})
	}
	return out
}

// methodName is the --method value of a collector.
func methodName(m xdrv1.CollectorMethod) string {
	if m == xdrv1.CollectorMethod_COLLECTOR_METHOD_EBPF {
		return "ebpf"
	}
	return "proc"
}
