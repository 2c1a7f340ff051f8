// Command xdr-aggregator is the unprivileged half of the XDR sensor: it
// receives ActEvents from xdr-agent over a Unix socket and writes them
// into compressed .gpbz bundles.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/xdr-sensor/xdr/aggregator/daemon"
	"github.com/xdr-sensor/xdr/aggregator/rules"
	"github.com/xdr-sensor/xdr/cmd/internal/buildinfo"
)

const usage = `Usage: xdr-aggregator --offline [flags]
       xdr-aggregator status [--json]

Receives activity from xdr-agent on a Unix socket, folds it into
deduplicated footprints, keeps statistics, runs the critical-event rules
and writes all of it into compressed .gpbz bundles in the data directory
(read them with "snr x FILE"). Runs in the foreground; SIGINT or SIGTERM seal the open
bundle and stop it. Does not need root when it can create the socket and
the data directory.

Flags:
`

func main() {
	os.Exit(run())
}

// defaultControlSocket is where the daemon answers status queries.
const defaultControlSocket = "/run/xdr/control.sock"

func run() int {
	if len(os.Args) > 1 && os.Args[1] == "status" {
		return runStatus(os.Args[2:])
	}
	fl := flag.NewFlagSet("xdr-aggregator", flag.ContinueOnError)
	fl.Usage = func() {
		fmt.Fprint(fl.Output(), usage)
		fl.PrintDefaults()
	}
	var (
		offline   = fl.Bool("offline", false, "keep bundles in the data directory, never upload")
		socket    = fl.String("socket", "/run/xdr/agent.sock", "agent socket `path`")
		dataDir   = fl.String("data-dir", "/var/lib/xdr", "`directory` for bundles and state")
		ctlSocket = fl.String("control-socket", defaultControlSocket, "`path` of the socket \"xdr-aggregator status\" asks (empty: none)")
		mode      = fl.String("socket-mode", "0600", "socket file mode: 0600, or 0660 with -socket-group")
		group     = fl.Int("socket-group", -1, "group id owning the socket (-1: keep)")
		allow     = fl.String("allow-uid", "", "comma-separated uids allowed to connect (default: root and this process's uid)")
		maxBytes  = fl.Int64("bundle-max-bytes", 4<<20, "rotate bundles past this compressed size")
		maxAge    = fl.Duration("bundle-max-age", 5*time.Minute, "rotate bundles older than this")
		quota     = fl.Int64("data-max-bytes", 256<<20, "disk quota of the sealed bundles (0: none); the oldest go first, critical ones last")
		flushIntv = fl.Duration("flush-interval", time.Second, "longest time a record waits in memory before reaching the bundle file")
		raw       = fl.String("raw-events", "critical", "raw events kept besides footprints: none, critical (those that hit a rule) or all")
		customer  = fl.String("customer-guid", "", "customer guid written into statistics")
		vehicle   = fl.String("vehicle-id", "", "vehicle id written into statistics")
		model     = fl.String("model-id", "", "device model id written into statistics")
		window    = fl.Duration("stats-window", 10*time.Second, "statistics window")
		fpFlush   = fl.Duration("footprint-flush", time.Minute, "how often changed footprints are written")
		fpMax     = fl.Int("footprint-max-entries", 100000, "footprints held in memory at most")
		fpBytes   = fl.Int64("footprint-max-bytes", 32<<20, "memory budget of the footprints held")
		disabled  = fl.String("disable-rules", "", "comma-separated ids of critical-event rules to turn off")
		ruleLists = map[string]*string{
			"exec-dirs":        fl.String("rule-exec-dirs", "", "comma-separated directories added to exec-tmp's"),
			"well-known-names": fl.String("rule-well-known-names", "", "comma-separated process names added to masquerade-comm's"),
			"setuid-tools":     fl.String("rule-setuid-tools", "", "comma-separated programs added to those uid-root allows"),
			"tracers":          fl.String("rule-tracers", "", "comma-separated programs process-tamper allows (none by default)"),
			"account-files":    fl.String("rule-account-files", "", "comma-separated files added to account-file-write's (a trailing / covers a directory)"),
			"account-tools":    fl.String("rule-account-tools", "", "comma-separated programs added to those account-file-write allows"),
		}
		logLevel = fl.String("log-level", "info", "debug, info, warn or error")
		version  = fl.Bool("version", false, "print the version and exit")
		cpuProf  = fl.String("cpuprofile", "", "write a CPU profile to `file` (for performance work)")
	)
	if err := fl.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *version {
		fmt.Println("xdr-aggregator", buildinfo.String())
		return 0
	}
	log, err := buildinfo.Logger(*logLevel)
	if err != nil {
		fmt.Fprintln(os.Stderr, "xdr-aggregator:", err)
		return 2
	}
	if *cpuProf != "" {
		stopProfile, err := buildinfo.StartCPUProfile(*cpuProf)
		if err != nil {
			fmt.Fprintln(os.Stderr, "xdr-aggregator:", err)
			return 2
		}
		defer stopProfile()
	}
	m, err := strconv.ParseUint(*mode, 8, 32)
	if err != nil || (m != 0o600 && m != 0o660) {
		fmt.Fprintf(os.Stderr, "xdr-aggregator: --socket-mode %q: want 0600 or 0660\n", *mode)
		return 2
	}
	var uids []uint32
	for _, f := range list(*allow) {
		u, err := strconv.ParseUint(f, 10, 32)
		if err != nil {
			fmt.Fprintf(os.Stderr, "xdr-aggregator: --allow-uid: %q is not a uid\n", f)
			return 2
		}
		uids = append(uids, uint32(u))
	}

	rawEvents, err := daemon.ParseRawEvents(*raw)
	if err != nil {
		fmt.Fprintln(os.Stderr, "xdr-aggregator: --raw-events:", err)
		return 2
	}
	ruleCfg := rules.Config{
		Disabled:       list(*disabled),
		ExecDirs:       list(*ruleLists["exec-dirs"]),
		WellKnownNames: list(*ruleLists["well-known-names"]),
		SetuidTools:    list(*ruleLists["setuid-tools"]),
		Tracers:        list(*ruleLists["tracers"]),
		AccountFiles:   list(*ruleLists["account-files"]),
		AccountTools:   list(*ruleLists["account-tools"]),
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err = daemon.Run(ctx, &daemon.Options{
		Socket: *socket, SocketMode: os.FileMode(m), SocketGroup: *group, AllowedUIDs: uids,
		DataDir: *dataDir, ControlSocket: *ctlSocket, Offline: *offline,
		BundleMaxBytes: *maxBytes, BundleMaxAge: *maxAge, DataMaxBytes: *quota, FlushInterval: *flushIntv,
		RawEvents: rawEvents, Rules: &ruleCfg, StatsWindow: *window,
		FootprintFlush: *fpFlush, FootprintMaxEntries: *fpMax, FootprintMaxBytes: *fpBytes,
		CustomerGUID: *customer, VehicleID: *vehicle, ModelID: *model,
		DeviceID: buildinfo.DeviceID(), Version: buildinfo.String(), Logger: log,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "xdr-aggregator:", err)
		return 1
	}
	return 0
}

// list splits a comma-separated flag value, dropping empty items.
func list(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
