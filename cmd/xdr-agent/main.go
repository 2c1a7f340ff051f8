// Command xdr-agent is the privileged half of the XDR sensor: it collects
// process activity from the kernel, enriches it and streams it to
// xdr-aggregator over a Unix socket.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/xdr-sensor/xdr/agent/counters"
	"github.com/xdr-sensor/xdr/agent/ebpf"
	"github.com/xdr-sensor/xdr/agent/sensor"
	"github.com/xdr-sensor/xdr/agent/transport"
	"github.com/xdr-sensor/xdr/cmd/internal/buildinfo"
	"github.com/xdr-sensor/xdr/proto/wire"
	xdrv1 "github.com/xdr-sensor/xdr/proto/xdr/v1"
)

const usage = `Usage: xdr-agent [flags]

Collects process activity (fork, exec, exit, uid/gid changes, setsid,
ptrace, renames, core dumps) from the kernel and streams it to
xdr-aggregator; with the eBPF collector, file, memory and network
activity too. --method auto uses eBPF when the kernel supports it and
the proc connector otherwise. Needs root (CAP_NET_ADMIN for the proc
connector, CAP_BPF and CAP_PERFMON for eBPF, CAP_SYS_PTRACE and
CAP_DAC_READ_SEARCH to read every process in /proc).
Runs in the foreground; SIGINT or SIGTERM flush and stop it.

Flags:
`

func main() {
	os.Exit(run())
}

func run() int {
	fl := flag.NewFlagSet("xdr-agent", flag.ContinueOnError)
	fl.Usage = func() {
		fmt.Fprint(fl.Output(), usage)
		fl.PrintDefaults()
	}
	var (
		socket     = fl.String("socket", "/run/xdr/agent.sock", "aggregator socket `path`")
		method     = fl.String("method", "auto", "collector: auto, proc or ebpf")
		agentID    = fl.String("agent-id", "", "agent id sent in the hello frame (default: /etc/machine-id)")
		queue      = fl.Int("queue", 16384, "events held while the aggregator is slow or away")
		flushIntv  = fl.Duration("flush-interval", 100*time.Millisecond, "longest time an event waits to be batched to the aggregator; longer batches cost less CPU per event")
		argvMax    = fl.Int("argv-max", 32<<10, "bytes of command line captured per process")
		captureEnv = fl.Bool("capture-env", false, "capture process environments (may hold secrets)")
		envMax     = fl.Int("env-max", 4<<10, "bytes of environment captured per process, with -capture-env")
		hashMax    = fl.Int64("hash-max-size", 64<<20, "largest executable hashed, in bytes")
		btfPath    = fl.String("btf", "", "BTF `file` of the running kernel for the eBPF collector's CO-RE relocations (default /sys/kernel/btf/vmlinux; its BTF-typed tracepoints still need the kernel's own)")
		logLevel   = fl.String("log-level", "info", "debug, info, warn or error")
		version    = fl.Bool("version", false, "print the version and exit")
		cpuProfile = fl.String("cpuprofile", "", "write a CPU profile to `file` (for performance work)")
	)
	if err := fl.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *version {
		fmt.Println("xdr-agent", buildinfo.String())
		return 0
	}
	log, err := buildinfo.Logger(*logLevel)
	if err != nil {
		fmt.Fprintln(os.Stderr, "xdr-agent:", err)
		return 2
	}
	chosen, err := chooseMethod(*method, func() ([]ebpf.Feature, error) {
		return ebpf.Probe(&ebpf.ProbeOptions{BTFPath: *btfPath})
	}, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "xdr-agent:", err)
		return 2
	}
	if *cpuProfile != "" {
		stopProfile, err := buildinfo.StartCPUProfile(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "xdr-agent:", err)
			return 2
		}
		defer stopProfile()
	}
	if *agentID == "" {
		*agentID = buildinfo.DeviceID()
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	var counts counters.Set
	host, _ := os.Hostname()
	start := time.Now()
	client, err := transport.New(&transport.Options{
		Socket:        *socket,
		QueueSize:     *queue,
		FlushInterval: *flushIntv,
		Counters:      &counts,
		Logger:        log,
		Hello: func() *xdrv1.Hello {
			return &xdrv1.Hello{
				AgentId: *agentID, SchemaVersion: wire.SchemaVersion, AgentVersion: buildinfo.String(),
				Hostname: host, Method: chosen.method, MethodReason: chosen.reason, KernelFeatures: chosen.features,
				Pid: uint32(os.Getpid()), StartTimeNs: start.UnixNano(),
			}
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "xdr-agent:", err)
		return 2
	}
	// The transport starts once the collector runs, so that the hello
	// names the method in use, and outlives it, so that what the
	// collector drains on shutdown is still written.
	tctx, tcancel := context.WithCancel(context.Background())
	tdone := make(chan error, 1)
	started := false
	opts := &sensor.Options{
		Sink: client, Counters: &counts, Method: chosen.method, ArgvMax: *argvMax, BTFPath: *btfPath,
		CaptureEnv: *captureEnv, EnvMax: *envMax, HashMaxSize: *hashMax, Logger: log,
		Ready: func() {
			started = true
			go func() { tdone <- client.Run(tctx) }()
		},
	}
	err = sensor.Run(ctx, opts)
	if err != nil && !started && *method == "auto" && errors.Is(err, ebpf.ErrNotSupported) {
		// The probe passed but loading the collector failed.
		chosen.fallBack(err, log)
		opts.Method = chosen.method
		err = sensor.Run(ctx, opts)
	}
	tcancel()
	if started {
		if terr := <-tdone; terr != nil {
			log.Error("transport", "err", terr)
		}
	}
	if err != nil {
		log.Error("collector failed", "err", err)
		return 1
	}
	st := client.Stats()
	log.Info("stopped", "sent", st.Sent, "dropped", st.Dropped)
	return 0
}
