// Command xdr-aggregator is the unprivileged half of the XDR sensor: it
// receives ActEvents from xdr-agent over a Unix socket and writes them
// into compressed .gpbz bundles.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/xdr-sensor/xdr/aggregator/daemon"
	"github.com/xdr-sensor/xdr/aggregator/rules"
	"github.com/xdr-sensor/xdr/aggregator/upload"
	"github.com/xdr-sensor/xdr/cmd/internal/buildinfo"
	"github.com/xdr-sensor/xdr/cmd/internal/config"
	"github.com/xdr-sensor/xdr/cmd/internal/sdnotify"
)

const usage = `Usage: xdr-aggregator --offline [flags]
       xdr-aggregator --upload-url URL [--agent-key FILE] [flags]
       xdr-aggregator status [--json]

Receives activity from xdr-agent on a Unix socket, folds it into
deduplicated footprints, keeps statistics, runs the critical-event rules
and writes all of it into compressed .gpbz bundles in the data directory
(read them with "snr x FILE"). With --offline they stay there; otherwise
sealed bundles are uploaded to --upload-url over HTTPS and deleted once
the server acknowledges them. Runs in the foreground; SIGINT or SIGTERM
seal the open bundle and stop it. "xdr-aggregator status" asks a running
daemon for its state. Does not need root when it can create the sockets
and the data directory. Settings may come from a file (--config).

Flags:
`

func main() {
	os.Exit(run())
}

// defaultControlSocket is where the daemon answers status queries.
const defaultControlSocket = "/run/xdr/control.sock"

// options are the settings of a run: the command line, then the
// configuration file it names for what the command line leaves unset.
type options struct {
	offline       bool
	socket        string
	dataDir       string
	ctlSocket     string
	mode          string
	group         int
	allow         string
	maxBytes      int64
	maxAge        time.Duration
	quota         int64
	flushIntv     time.Duration
	raw           string
	customer      string
	vehicle       string
	model         string
	window        time.Duration
	fpFlush       time.Duration
	fpMax         int
	fpBytes       int64
	disabled      string
	logLevel      string
	version       bool
	cpuProf       string
	ruleExecDirs  string
	ruleWellKnown string
	ruleSetuid    string
	ruleTracers   string
	ruleAcctFiles string
	ruleAcctTools string
	uploadURL     string
	agentKey      string
	uploadCA      string
	uploadCert    string
	uploadKey     string
	uploadTimeout time.Duration
	uploadBackoff time.Duration
	configPath    string
	cfg           *config.File
	fl            *flag.FlagSet
}

// parseFlags parses args and the configuration file they name; see
// config.ParseCommandLine for the errors.
func parseFlags(args []string) (*options, error) {
	fl := flag.NewFlagSet("xdr-aggregator", flag.ContinueOnError)
	o := &options{fl: fl}
	fl.Usage = func() {
		fmt.Fprint(fl.Output(), usage)
		fl.PrintDefaults()
	}
	fl.BoolVar(&o.offline, "offline", false, "keep bundles in the data directory, never upload")
	fl.StringVar(&o.socket, "socket", "/run/xdr/agent.sock", "agent socket `path`")
	fl.StringVar(&o.dataDir, "data-dir", "/var/lib/xdr", "`directory` for bundles and state")
	fl.StringVar(&o.ctlSocket, "control-socket", defaultControlSocket, "`path` of the socket \"xdr-aggregator status\" asks (empty: none)")
	fl.StringVar(&o.mode, "socket-mode", "0600", "socket file mode: 0600, or 0660 with -socket-group")
	fl.IntVar(&o.group, "socket-group", -1, "group id owning the socket (-1: keep)")
	fl.StringVar(&o.allow, "allow-uid", "", "comma-separated uids allowed to connect (default: root and this process's uid)")
	fl.Int64Var(&o.maxBytes, "bundle-max-bytes", 4<<20, "rotate bundles past this compressed size")
	fl.DurationVar(&o.maxAge, "bundle-max-age", 5*time.Minute, "rotate bundles older than this")
	fl.Int64Var(&o.quota, "data-max-bytes", 256<<20, "disk quota of the sealed bundles (0: none); the oldest go first, critical ones last")
	fl.DurationVar(&o.flushIntv, "flush-interval", time.Second, "longest time a record waits in memory before reaching the bundle file")
	fl.StringVar(&o.raw, "raw-events", "critical", "raw events kept besides footprints: none, critical (those that hit a rule) or all")
	fl.StringVar(&o.customer, "customer-guid", "", "customer guid written into statistics")
	fl.StringVar(&o.vehicle, "vehicle-id", "", "vehicle id written into statistics")
	fl.StringVar(&o.model, "model-id", "", "device model id written into statistics")
	fl.DurationVar(&o.window, "stats-window", 10*time.Second, "statistics window")
	fl.DurationVar(&o.fpFlush, "footprint-flush", time.Minute, "how often changed footprints are written")
	fl.IntVar(&o.fpMax, "footprint-max-entries", 100000, "footprints held in memory at most")
	fl.Int64Var(&o.fpBytes, "footprint-max-bytes", 32<<20, "memory budget of the footprints held")
	fl.StringVar(&o.disabled, "disable-rules", "", "comma-separated ids of critical-event rules to turn off")
	fl.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.BoolVar(&o.version, "version", false, "print the version and exit")
	fl.StringVar(&o.cpuProf, "cpuprofile", "", "write a CPU profile to `file` (for performance work)")
	fl.StringVar(&o.ruleExecDirs, "rule-exec-dirs", "", "comma-separated directories added to exec-tmp's")
	fl.StringVar(&o.ruleWellKnown, "rule-well-known-names", "", "comma-separated process names added to masquerade-comm's")
	fl.StringVar(&o.ruleSetuid, "rule-setuid-tools", "", "comma-separated programs added to those uid-root allows")
	fl.StringVar(&o.ruleTracers, "rule-tracers", "", "comma-separated programs process-tamper allows (none by default)")
	fl.StringVar(&o.ruleAcctFiles, "rule-account-files", "", "comma-separated files added to account-file-write's (a trailing / covers a directory)")
	fl.StringVar(&o.ruleAcctTools, "rule-account-tools", "", "comma-separated programs added to those account-file-write allows")
	fl.StringVar(&o.uploadURL, "upload-url", "", "HTTPS `URL` sealed bundles are uploaded to (online mode, without --offline)")
	fl.StringVar(&o.agentKey, "agent-key", "/etc/xdr/agent.key", "`file` holding the agent key, sent to the upload server as a bearer token")
	fl.StringVar(&o.uploadCA, "upload-ca", "", "CA bundle `file` (PEM) verifying the upload server (default: the system's roots)")
	fl.StringVar(&o.uploadCert, "upload-cert", "", "client certificate `file` (PEM) for mutual TLS with the upload server")
	fl.StringVar(&o.uploadKey, "upload-key", "", "client key `file` (PEM) for mutual TLS with the upload server")
	fl.DurationVar(&o.uploadTimeout, "upload-timeout", 2*time.Minute, "longest time the upload of one bundle may take")
	fl.DurationVar(&o.uploadBackoff, "upload-backoff-max", 10*time.Minute, "longest wait between upload attempts after failures")

	fl.StringVar(&o.configPath, "config", "", "configuration `file` (the command line overrides it; reference: deploy/xdr.conf)")
	cfg, err := config.ParseCommandLine(fl, args, "aggregator")
	if err != nil {
		return nil, err
	}
	o.cfg = cfg
	return o, nil
}

func run() int {
	if len(os.Args) > 1 && os.Args[1] == "status" {
		return runStatus(os.Args[2:])
	}
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		return config.ExitStatus("xdr-aggregator", err)
	}
	if o.version {
		fmt.Println("xdr-aggregator", buildinfo.String())
		return 0
	}
	log, err := buildinfo.Logger(o.logLevel)
	if err != nil {
		fmt.Fprintln(os.Stderr, "xdr-aggregator:", err)
		return 2
	}
	if o.cpuProf != "" {
		stopProfile, err := buildinfo.StartCPUProfile(o.cpuProf)
		if err != nil {
			fmt.Fprintln(os.Stderr, "xdr-aggregator:", err)
			return 2
		}
		defer stopProfile()
	}
	m, err := strconv.ParseUint(o.mode, 8, 32)
	if err != nil || (m != 0o600 && m != 0o660) {
		fmt.Fprintf(os.Stderr, "xdr-aggregator: %s %q: want 0600 or 0660\n", o.cfg.Setting("socket-mode"), o.mode)
		return 2
	}
	var uids []uint32
	for _, f := range config.List(o.allow) {
		u, err := strconv.ParseUint(f, 10, 32)
		if err != nil {
			fmt.Fprintf(os.Stderr, "xdr-aggregator: %s: %q is not a uid\n", o.cfg.Setting("allow-uid"), f)
			return 2
		}
		uids = append(uids, uint32(u))
	}

	rawEvents, err := daemon.ParseRawEvents(o.raw)
	if err != nil {
		fmt.Fprintf(os.Stderr, "xdr-aggregator: %s: %v\n", o.cfg.Setting("raw-events"), err)
		return 2
	}
	ruleCfg := rules.Config{
		Disabled:       config.List(o.disabled),
		ExecDirs:       config.List(o.ruleExecDirs),
		WellKnownNames: config.List(o.ruleWellKnown),
		SetuidTools:    config.List(o.ruleSetuid),
		Tracers:        config.List(o.ruleTracers),
		AccountFiles:   config.List(o.ruleAcctFiles),
		AccountTools:   config.List(o.ruleAcctTools),
	}

	var up *upload.Options
	if !o.offline {
		if up, err = o.uploadOptions(); err != nil {
			fmt.Fprintln(os.Stderr, "xdr-aggregator:", err)
			return 2
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// Under systemd (Type=notify): ready once serving, stopping at the
	// signal. Outside it these do nothing.
	defer sdnotify.StoppingWhenDone(ctx)()
	err = daemon.Run(ctx, &daemon.Options{
		Socket: o.socket, SocketMode: os.FileMode(m), SocketGroup: o.group, AllowedUIDs: uids,
		DataDir: o.dataDir, ControlSocket: o.ctlSocket, Offline: o.offline, Upload: up,
		BundleMaxBytes: o.maxBytes, BundleMaxAge: o.maxAge, DataMaxBytes: o.quota, FlushInterval: o.flushIntv,
		RawEvents: rawEvents, Rules: &ruleCfg, StatsWindow: o.window,
		FootprintFlush: o.fpFlush, FootprintMaxEntries: o.fpMax, FootprintMaxBytes: o.fpBytes,
		CustomerGUID: o.customer, VehicleID: o.vehicle, ModelID: o.model,
		DeviceID: buildinfo.DeviceID(), Version: buildinfo.String(), Logger: log,
		Ready: func() {
			if err := sdnotify.Ready(); err != nil {
				log.Warn("systemd readiness notification", "err", err)
			}
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "xdr-aggregator:", err)
		return 1
	}
	return 0
}

// uploadOptions checks and loads online mode's settings.
func (o *options) uploadOptions() (*upload.Options, error) {
	if o.uploadURL == "" {
		return nil, fmt.Errorf("online mode needs %s (or set offline to keep bundles on this device)", o.cfg.Setting("upload-url"))
	}
	key, err := upload.LoadKey(o.agentKey)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.cfg.Setting("agent-key"), err)
	}
	tlsConf, err := upload.TLSConfig(o.uploadCA, o.uploadCert, o.uploadKey)
	if err != nil {
		return nil, fmt.Errorf("upload TLS settings: %w", err)
	}
	return &upload.Options{URL: o.uploadURL, Key: key, TLS: tlsConf, Timeout: o.uploadTimeout, BackoffMax: o.uploadBackoff}, nil
}

// list splits a comma-separated flag value, dropping empty items.
