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
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/xdr-sensor/xdr/agent/counters"
	"github.com/xdr-sensor/xdr/agent/ebpf"
	"github.com/xdr-sensor/xdr/agent/sensor"
	"github.com/xdr-sensor/xdr/agent/transport"
	"github.com/xdr-sensor/xdr/cmd/internal/buildinfo"
	"github.com/xdr-sensor/xdr/cmd/internal/config"
	"github.com/xdr-sensor/xdr/cmd/internal/sdnotify"
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

// options are the settings of a run: the command line, then the
// configuration file it names for what the command line leaves unset.
type options struct {
	socket       string
	method       string
	agentID      string
	queue        int
	flushIntv    time.Duration
	argvMax      int
	captureEnv   bool
	envMax       int
	hashMax      int64
	excludeReads string
	ringSize     int
	memLimit     int64
	btfPath      string
	logLevel     string
	version      bool
	cpuProfile   string
	configPath   string
	cfg          *config.File
	fl           *flag.FlagSet
}

// parseFlags parses args and the configuration file they name; see
// config.ParseCommandLine for the errors.
func parseFlags(args []string) (*options, error) {
	fl := flag.NewFlagSet("xdr-agent", flag.ContinueOnError)
	o := &options{fl: fl}
	fl.Usage = func() {
		fmt.Fprint(fl.Output(), usage)
		fl.PrintDefaults()
	}
	fl.StringVar(&o.socket, "socket", "/run/xdr/agent.sock", "aggregator socket `path`")
	fl.StringVar(&o.method, "method", "auto", "collector: auto, proc or ebpf")
	fl.StringVar(&o.agentID, "agent-id", "", "agent id sent in the hello frame (default: /etc/machine-id)")
	fl.IntVar(&o.queue, "queue", 16384, "events held while the aggregator is slow or away")
	fl.DurationVar(&o.flushIntv, "flush-interval", 100*time.Millisecond, "longest time an event waits to be batched to the aggregator; longer batches cost less CPU per event")
	fl.IntVar(&o.argvMax, "argv-max", 32<<10, "bytes of command line captured per process")
	fl.BoolVar(&o.captureEnv, "capture-env", false, "capture process environments (may hold secrets)")
	fl.IntVar(&o.envMax, "env-max", 4<<10, "bytes of environment captured per process, with -capture-env")
	fl.IntVar(&o.ringSize, "ring-size", ebpf.DefaultRingSize, "eBPF ring buffer size in bytes, a power of two; it costs twice that in RSS, and a larger one rides out longer stalls of the agent without drops")
	fl.Int64Var(&o.hashMax, "hash-max-size", 64<<20, "largest executable hashed, in bytes")
	fl.Int64Var(&o.memLimit, "memory-limit", defaultMemoryLimit, "soft limit in bytes of the agent's Go memory: past it the garbage collector works harder (0: none; the GOMEMLIMIT environment variable takes precedence)")
	fl.StringVar(&o.excludeReads, "exclude-reads", strings.Join(sensor.DefaultExcludeReads, ","), "comma-separated path prefixes whose read-only opens are not reported, only counted as filtered (eBPF); writes, creates, deletes and image loads there still are; empty reports every open")
	fl.StringVar(&o.btfPath, "btf", "", "BTF `file` of the running kernel for the eBPF collector's CO-RE relocations (default /sys/kernel/btf/vmlinux; its BTF-typed tracepoints still need the kernel's own)")
	fl.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.BoolVar(&o.version, "version", false, "print the version and exit")
	fl.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile to `file` (for performance work)")
	fl.StringVar(&o.configPath, "config", "", "configuration `file` (the command line overrides it; reference: deploy/xdr.conf)")
	cfg, err := config.ParseCommandLine(fl, args, "agent")
	if err != nil {
		return nil, err
	}
	o.cfg = cfg
	return o, nil
}

// defaultMemoryLimit keeps the agent's Go memory near what it needs: the
// transport queue (8 MiB at most), the process table and caches, and
// room for the collector's start-up, when it decodes the kernel's BTF.
// Without it the garbage collector lets the heap grow to twice what is
// live, and a storm that fills the queue took the agent to 40 MB of RSS.
const defaultMemoryLimit = 20 << 20

func run() int {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		return config.ExitStatus("xdr-agent", err)
	}
	if o.version {
		fmt.Println("xdr-agent", buildinfo.String())
		return 0
	}
	log, err := buildinfo.Logger(o.logLevel)
	if err != nil {
		fmt.Fprintln(os.Stderr, "xdr-agent:", err)
		return 2
	}
	if o.memLimit < 0 {
		fmt.Fprintf(os.Stderr, "xdr-agent: %s: want 0 or more bytes\n", o.cfg.Setting("memory-limit"))
		return 2
	}
	if o.memLimit > 0 && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(o.memLimit)
	}
	chosen, err := chooseMethod(o.method, func() ([]ebpf.Feature, error) {
		return ebpf.Probe(&ebpf.ProbeOptions{BTFPath: o.btfPath})
	}, log)
	if err != nil {
		fmt.Fprintf(os.Stderr, "xdr-agent: %s: %v\n", o.cfg.Setting("method"), err)
		return 2
	}
	if o.cpuProfile != "" {
		stopProfile, err := buildinfo.StartCPUProfile(o.cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "xdr-agent:", err)
			return 2
		}
		defer stopProfile()
	}
	if o.agentID == "" {
		o.agentID = buildinfo.DeviceID()
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// Under systemd (Type=notify): ready once serving, stopping at the
	// signal. Outside it these do nothing.
	defer sdnotify.StoppingWhenDone(ctx)()

	var counts counters.Set
	host, _ := os.Hostname()
	start := time.Now()
	client, err := transport.New(&transport.Options{
		Socket:        o.socket,
		QueueSize:     o.queue,
		FlushInterval: o.flushIntv,
		Counters:      &counts,
		Logger:        log,
		Hello: func() *xdrv1.Hello {
			return &xdrv1.Hello{
				AgentId: o.agentID, SchemaVersion: wire.SchemaVersion, AgentVersion: buildinfo.String(),
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
		Sink: client, Counters: &counts, Method: chosen.method, ArgvMax: o.argvMax, BTFPath: o.btfPath, RingSize: o.ringSize,
		CaptureEnv: o.captureEnv, EnvMax: o.envMax, HashMaxSize: o.hashMax, Logger: log,
		ExcludeReads: config.List(o.excludeReads),
		Ready: func() {
			started = true
			go func() { tdone <- client.Run(tctx) }()
			if err := sdnotify.Ready(); err != nil {
				log.Warn("systemd readiness notification", "err", err)
			}
			sdnotify.Status("collecting with " + methodName(chosen.method))
		},
	}
	err = sensor.Run(ctx, opts)
	if err != nil && !started && o.method == "auto" && errors.Is(err, ebpf.ErrNotSupported) {
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
