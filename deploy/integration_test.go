package deploy

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var unitFiles = []string{"xdr-agent.service", "xdr-aggregator.service"}

// installInto installs into a fresh prefix and returns it.
func installInto(t *testing.T, args ...string) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	sh := shell{name: "sh", argv: []string{"/bin/sh"}}
	sh.mustRun(t, append([]string{"--prefix", root, "-y", "--bin-dir", binDir}, args...)...)
	return root
}

// TestUnitsVerify has systemd-analyze check the installed units: their
// syntax, their settings and that ExecStart names an executable.
func TestUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (it comes with systemd)")
	}
	// The units' dependencies (multi-user.target, sysinit.target...)
	// come from the host's systemd.
	var system string
	for _, d := range []string{"/usr/lib/systemd/system", "/lib/systemd/system"} {
		if _, err := os.Stat(filepath.Join(d, "sysinit.target")); err == nil {
			system = d
			break
		}
	}
	if system == "" {
		t.Skip("no systemd unit directory with sysinit.target on this host")
	}
	root := installInto(t, "--offline")
	if err := os.MkdirAll(filepath.Join(root, "usr/lib/systemd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", system, filepath.Join(root, "usr/lib/systemd/system")).CombinedOutput(); err != nil {
		t.Fatalf("copy %s: %v\n%s", system, err, out)
	}
	args := []string{"--root=" + root, "verify"}
	for _, u := range unitFiles {
		args = append(args, filepath.Join(root, "etc/systemd/system", u))
	}
	out, err := exec.Command(analyze, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	// It warns without failing: any word about our units is a finding.
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "xdr") {
			t.Errorf("systemd-analyze verify: %s", line)
		}
	}
}

// TestIntegrationImageFirstBoot installs into a prefix as for a root file
// system image, then does what its first boot does before the services
// start: systemd-sysusers creates the user and group, systemd-tmpfiles
// hands the configuration to the group.
func TestIntegrationImageFirstBoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: systemd-tmpfiles changes file ownership")
	}
	sysusers, err1 := exec.LookPath("systemd-sysusers")
	tmpfiles, err2 := exec.LookPath("systemd-tmpfiles")
	if err1 != nil || err2 != nil {
		t.Skip("systemd-sysusers or systemd-tmpfiles is not installed (they come with systemd)")
	}
	key := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(key, []byte("k\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	root := installInto(t, "--offline", "--agent-key", key)
	for _, c := range [][]string{{sysusers, "--root=" + root}, {tmpfiles, "--root=" + root, "--create"}} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(c, " "), err, out)
		}
	}
	passwd, err := os.ReadFile(filepath.Join(root, "etc/passwd"))
	if err != nil {
		t.Fatal(err)
	}
	group, err := os.ReadFile(filepath.Join(root, "etc/group"))
	if err != nil {
		t.Fatal(err)
	}
	u := regexp.MustCompile(`(?m)^xdr:x:(\d+):(\d+):XDR sensor aggregator:/var/lib/xdr:[^:\n]*nologin$`).FindStringSubmatch(string(passwd))
	g := regexp.MustCompile(`(?m)^xdr:x:(\d+):$`).FindStringSubmatch(string(group))
	if u == nil || g == nil || u[2] != g[1] {
		t.Fatalf("sysusers.d entry made\n%s\n%s", passwd, group)
	}
	gid, _ := strconv.Atoi(g[1])
	for _, f := range []struct {
		path string
		mode os.FileMode
	}{
		{"etc/xdr", os.ModeDir | 0o750},
		{"etc/xdr/xdr.conf", 0o640},
		{"etc/xdr/agent.key", 0o640},
	} {
		fi, err := os.Lstat(filepath.Join(root, f.path))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 0 || int(st.Gid) != gid || fi.Mode() != f.mode {
			t.Errorf("%s: uid %d, gid %d, mode %v; want 0, %d (xdr), %v", f.path, st.Uid, st.Gid, fi.Mode(), gid, f.mode)
		}
	}
}

// hostDriver runs install.sh into / in a private mount namespace where
// /etc, /usr/local and /var are overlays whose writes land in a tmpfs, so
// that the host stays as it was. After each step it writes the step's
// exit status, output and the resulting state to the output directory.
const hostDriver = `
set -u
layers=$1 out=$2 script=$3 bin=$4 key=$5
mount -t tmpfs tmpfs "$layers" || exit 3
for d in /etc /usr/local /var; do
	mkdir -p "$layers/u$d" "$layers/w$d"
	mount -t overlay overlay -o "lowerdir=$d,upperdir=$layers/u$d,workdir=$layers/w$d" "$d" || exit 3
done
# install.sh must not reach the host's service manager.
if [ -d /run/systemd ]; then mount -t tmpfs tmpfs /run/systemd || exit 3; fi
step() {
	name=$1
	shift
	sh "$script" "$@" >"$out/$name.log" 2>&1
	echo $? >"$out/$name.status"
	{
		grep -h '^xdr:' /etc/passwd /etc/group
		for p in /usr/local/bin/xdr-agent /usr/local/bin/xdr-aggregator /usr/local/bin/snr \
			/etc/systemd/system/xdr-agent.service /etc/systemd/system/xdr-aggregator.service \
			/etc/xdr /etc/xdr/xdr.conf /etc/xdr/agent.key /var/lib/xdr; do
			if [ -e "$p" ]; then stat -c '%n %U:%G %a' "$p"; else echo "$p absent"; fi
		done
	} >"$out/$name.state"
}
step install -y --offline --bin-dir "$bin" --agent-key "$key"
step again -y --offline --bin-dir "$bin" --agent-key "$key"
touch /var/lib/xdr/x.gpbz
step uninstall --uninstall -y
step purge --uninstall --purge -y
`

// TestIntegrationInstallHost installs into / for real: user and group
// creation, ownership, a second run, uninstalling; all of it inside a
// mount namespace with overlays, so that the machine is left untouched.
func TestIntegrationInstallHost(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: installs into / (inside a private mount namespace)")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("unshare (util-linux) is not installed")
	}
	if _, err := exec.LookPath("useradd"); err != nil {
		t.Skip("useradd is not installed")
	}
	if b, err := os.ReadFile("/etc/passwd"); err != nil || regexp.MustCompile(`(?m)^xdr:`).Match(b) {
		t.Skip("this host already has a user xdr (or no /etc/passwd)")
	}
	dir := t.TempDir()
	for _, hidden := range []string{"/etc/", "/usr/local/", "/var/"} {
		if strings.HasPrefix(dir, hidden) {
			t.Skipf("the temporary directory %s is below %s, which the test overlays", dir, hidden)
		}
	}
	layers, out := filepath.Join(dir, "layers"), filepath.Join(dir, "out")
	key := filepath.Join(dir, "key")
	for _, d := range []string{layers, out} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(key, []byte("k\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs("install.sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", "/bin/sh", "-c", hostDriver, "driver", layers, out, script, binDir, key)
	if b, err := cmd.CombinedOutput(); err != nil {
		if cmd.ProcessState != nil && cmd.ProcessState.ExitCode() == 3 {
			t.Skipf("cannot set up the overlays (overlayfs, tmpfs): %s", b)
		}
		t.Fatalf("driver: %v\n%s", err, b)
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	nologin := "/bin/false"
	for _, f := range []string{"/usr/sbin/nologin", "/sbin/nologin"} {
		if _, err := os.Stat(f); err == nil {
			nologin = f
			break
		}
	}
	ids := regexp.MustCompile(`:\d+:`)
	steps := []struct {
		name, want string
	}{
		{"install", `xdr:x:N:N:XDR sensor aggregator:/var/lib/xdr:` + nologin + `
xdr:x:N:
/usr/local/bin/xdr-agent root:root 755
/usr/local/bin/xdr-aggregator root:root 755
/usr/local/bin/snr root:root 755
/etc/systemd/system/xdr-agent.service root:root 644
/etc/systemd/system/xdr-aggregator.service root:root 644
/etc/xdr root:xdr 750
/etc/xdr/xdr.conf root:xdr 640
/etc/xdr/agent.key root:xdr 640
/var/lib/xdr xdr:xdr 750
`},
		{"uninstall", `/usr/local/bin/xdr-agent absent
/usr/local/bin/xdr-aggregator absent
/usr/local/bin/snr absent
/etc/systemd/system/xdr-agent.service absent
/etc/systemd/system/xdr-aggregator.service absent
/etc/xdr absent
/etc/xdr/xdr.conf absent
/etc/xdr/agent.key absent
/var/lib/xdr UNKNOWN:UNKNOWN 750
`},
		{"purge", `/usr/local/bin/xdr-agent absent
/usr/local/bin/xdr-aggregator absent
/usr/local/bin/snr absent
/etc/systemd/system/xdr-agent.service absent
/etc/systemd/system/xdr-aggregator.service absent
/etc/xdr absent
/etc/xdr/xdr.conf absent
/etc/xdr/agent.key absent
/var/lib/xdr absent
`},
	}
	for _, s := range steps {
		if st := read(s.name + ".status"); st != "0\n" {
			t.Errorf("%s: exit status %s%s", s.name, st, read(s.name+".log"))
		}
		got := ids.ReplaceAllString(ids.ReplaceAllString(read(s.name+".state"), ":N:"), ":N:")
		if diff := cmp.Diff(s.want, got); diff != "" {
			t.Errorf("state after %s (-want +got):\n%s\nlog:\n%s", s.name, diff, read(s.name+".log"))
		}
	}
	// A second run changes nothing and creates no second user.
	if st := read("again.status"); st != "0\n" {
		t.Errorf("again: exit status %s%s", st, read("again.log"))
	}
	if a, b := read("install.state"), read("again.state"); a != b {
		t.Errorf("a second run changed the installation:\n%s", cmp.Diff(a, b))
	}
	if log := read("again.log"); regexp.MustCompile(`(?m)^(created|installed) `).MatchString(log) {
		t.Errorf("a second run created or installed something:\n%s", log)
	}
	// The host is as it was.
	if b, err := os.ReadFile("/etc/passwd"); err != nil || regexp.MustCompile(`(?m)^xdr:`).Match(b) {
		t.Errorf("the host's /etc/passwd changed (%v)", err)
	}
	for _, p := range []string{"/usr/local/bin/xdr-agent", "/etc/xdr", "/var/lib/xdr"} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s appeared on the host", p)
		}
	}
}

// systemdDriver boots a container of the host's own system (an overlay
// on /, writes going to a tmpfs) with systemd-nspawn, up to basic.target,
// which is all the units need; runs install.sh in it so that systemd
// starts both services; and records what happened.
// Exit status 3: no container could be booted here.
const systemdDriver = `
set -u
layers=$1 out=$2 deploy=$3 bin=$4
mount -t tmpfs tmpfs "$layers" || exit 3
mkdir -p "$layers/u" "$layers/w" "$layers/root"
root=$layers/root
mount -t overlay overlay -o "lowerdir=/,upperdir=$layers/u,workdir=$layers/w" "$root" || exit 3
# An id of its own, but no first boot (which would enable every service).
echo 7b1d32f0a3c94d5e8f6a2b1c0d9e8f70 >"$root/etc/machine-id"
mkdir -p "$root/opt/xdr-test"
cp -r "$deploy" "$root/opt/xdr-test/deploy" && cp -r "$bin" "$root/opt/xdr-test/bin" || exit 1
# nspawn's own system call filter would keep bpf(2) from the services.
SYSTEMD_SECCOMP=0 systemd-nspawn -q -D "$root" -b --register=no --keep-unit --capability=all \
	--console=passive --uuid=7b1d32f0a3c94d5e8f6a2b1c0d9e8f70 systemd.unit=basic.target >"$out/nspawn.log" 2>&1 &
nspawn=$!
inside() { nsenter -t "$init" -a "$@"; }
# Until the container's systemd answers and has booted.
init=
state=
i=0
while [ $i -lt 600 ]; do
	init=$(ps -o pid= -o comm= --ppid "$nspawn" | awk '$2 == "systemd" { print $1 }')
	if [ -n "$init" ]; then
		state=$(inside systemctl is-system-running 2>&1)
		case $state in running | degraded) break ;; esac
	fi
	i=$((i + 1))
	sleep 0.2
done
echo "$state" >"$out/boot"
echo "$init" >"$out/init"
# stop: ends the container, by force when it does not halt in a minute
# (killing its init ends every process in it).
stop() {
	if [ -z "$init" ] || ! inside systemctl poweroff >/dev/null 2>&1; then kill "$nspawn"; fi
	i=0
	while kill -0 "$nspawn" 2>/dev/null && [ $i -lt 300 ]; do
		i=$((i + 1))
		sleep 0.2
	done
	[ -z "$init" ] || kill -KILL "$init" 2>/dev/null
	wait "$nspawn"
}
case $state in running | degraded) ;; *) stop; exit 3 ;; esac

inside sh /opt/xdr-test/deploy/install.sh -y --offline --model test-model --bin-dir /opt/xdr-test/bin >"$out/install.log" 2>&1
echo $? >"$out/install.status"
# The agent connects within seconds once both run.
i=0
while [ $i -lt 60 ] && ! inside journalctl -q -o cat -u xdr-aggregator.service | grep -q "agent connected"; do
	i=$((i + 1))
	sleep 0.5
done
inside systemctl is-active xdr-aggregator.service xdr-agent.service >"$out/active" 2>&1
for u in xdr-aggregator xdr-agent; do
	pid=$(inside systemctl show -p MainPID --value "$u.service")
	inside grep -E '^(Uid|Groups|CapEff|CapBnd|NoNewPrivs):' "/proc/$pid/status" >"$out/$u.status" 2>&1
done
inside ls -ln /run/xdr >"$out/run" 2>&1
inside systemctl stop xdr-agent.service xdr-aggregator.service
inside sh -c 'snr stat /var/lib/xdr/*.gpbz' >"$out/bundles" 2>&1
inside journalctl -q --no-pager -o short -u xdr-aggregator.service -u xdr-agent.service >"$out/journal" 2>&1
inside sh /opt/xdr-test/deploy/install.sh --uninstall --purge -y >"$out/uninstall.log" 2>&1
echo $? >"$out/uninstall.status"
inside sh -c 'grep -c "^xdr:" /etc/passwd /etc/group
	for p in /usr/local/bin/xdr-agent /etc/systemd/system/xdr-agent.service /etc/xdr /var/lib/xdr /run/xdr; do
		if [ -e "$p" ]; then echo "$p is left"; fi
	done' >"$out/after" 2>&1
stop
exit 0
`

// TestIntegrationSystemd runs both units under a real systemd, in a
// throwaway container of this host's system: Type=notify readiness, the
// capability set, the sandbox, the socket between the users, sealing on
// stop, and uninstalling.
func TestIntegrationSystemd(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: boots a container")
	}
	for _, tool := range []string{"systemd-nspawn", "unshare", "nsenter", "ps"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (systemd-nspawn comes with systemd-container)", tool)
		}
	}
	if _, err := os.Stat("/lib/systemd/systemd"); err != nil {
		t.Skip("this host's system has no systemd to boot in a container")
	}
	dir := t.TempDir()
	layers, out := filepath.Join(dir, "layers"), filepath.Join(dir, "out")
	for _, d := range []string{layers, out} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	deploy, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", systemdDriver, "driver", layers, out, deploy, binDir)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	// Its own process group, so that a timeout stops the container too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	read := func(name string) string {
		b, _ := os.ReadFile(filepath.Join(out, name))
		return string(b)
	}
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(10 * time.Minute):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if pid, err := strconv.Atoi(strings.TrimSpace(read("init"))); err == nil && pid > 1 {
			syscall.Kill(pid, syscall.SIGKILL) // the container's init, and with it the container
		}
		<-done
		t.Fatalf("the container did not finish in 10 minutes\n%s", log.String())
	}
	if err != nil {
		if cmd.ProcessState.ExitCode() == 3 {
			t.Skipf("cannot boot a container here: %s%s%s", log.String(), read("nspawn.log"), read("boot"))
		}
		t.Fatalf("driver: %v\n%s", err, log.String())
	}
	diag := fmt.Sprintf("install.log:\n%s\njournal:\n%s", read("install.log"), read("journal"))
	if st := read("install.status"); st != "0\n" {
		t.Fatalf("install.sh: exit status %s%s", st, diag)
	}
	if got := read("active"); got != "active\nactive\n" {
		t.Errorf("services: %q, want both active\n%s", got, diag)
	}
	if !strings.Contains(read("journal"), "agent connected") {
		t.Errorf("the agent did not connect to the aggregator\n%s", diag)
	}
	for _, line := range strings.Split(read("journal"), "\n") {
		if strings.Contains(line, "collector method chosen") || strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			t.Log(line)
		}
	}
	// Capabilities: DAC_READ_SEARCH (2), NET_ADMIN (12), SYS_PTRACE (19),
	// PERFMON (38), BPF (39).
	agent := read("xdr-agent.status")
	for _, want := range []string{"CapEff:\t000000c000081004", "CapBnd:\t000000c000081004", "NoNewPrivs:\t1", "Uid:\t0\t0\t0\t0"} {
		if !strings.Contains(agent, want) {
			t.Errorf("agent /proc status lacks %q:\n%s", want, agent)
		}
	}
	agg := read("xdr-aggregator.status")
	for _, want := range []string{"CapEff:\t0000000000000000", "CapBnd:\t0000000000000000", "NoNewPrivs:\t1"} {
		if !strings.Contains(agg, want) {
			t.Errorf("aggregator /proc status lacks %q:\n%s", want, agg)
		}
	}
	if strings.Contains(agg, "Uid:\t0\t") {
		t.Errorf("the aggregator runs as root:\n%s", agg)
	}
	if run := read("run"); !regexp.MustCompile(`(?m)^srw-rw---- .* agent\.sock$`).MatchString(run) {
		t.Errorf("/run/xdr: want agent.sock of mode 0660:\n%s", run)
	}
	if b := read("bundles"); !strings.Contains(b, "sealed, verified") {
		t.Errorf("no sealed bundle after stopping the services:\n%s\n%s", b, diag)
	}
	if st := read("uninstall.status"); st != "0\n" {
		t.Errorf("--uninstall --purge: exit status %s%s", st, read("uninstall.log"))
	}
	if diff := cmp.Diff("/etc/passwd:0\n/etc/group:0\n", read("after")); diff != "" {
		t.Errorf("after --uninstall --purge (-want +got):\n%s", diff)
	}
}
