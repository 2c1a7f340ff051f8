#!/bin/sh
# Installs the XDR sensor (xdr-agent, xdr-aggregator, snr), its
# configuration, its systemd units and its system user, or removes them
# again. POSIX sh, so that it runs under busybox on small devices.
# deploy/README.md describes what goes where and why.

set -eu
# Files are born private; each gets its mode once complete.
umask 077
# Sorting and matching do not depend on the caller's locale.
LC_ALL=C
export LC_ALL

usage() {
	cat <<'EOF'
Usage: install.sh [options]
       install.sh --uninstall [--purge] [-y] [--prefix DIR]

Installs the XDR sensor:
  /usr/local/bin/xdr-agent, xdr-aggregator, snr     the binaries
  /etc/xdr/xdr.conf                                  the configuration
                                                     (an existing one is kept)
  /etc/xdr/agent.key                                 the agent key (--agent-key)
  /etc/systemd/system/xdr-agent.service,
  /etc/systemd/system/xdr-aggregator.service         the systemd units
  /usr/local/lib/sysusers.d/xdr.conf,
  /usr/local/lib/tmpfiles.d/xdr.conf                 user and permissions at boot
  /var/lib/xdr                                       the data directory
and creates the system user and group xdr, which xdr-aggregator runs as.
When systemd runs, it reloads it and, with -y or once confirmed, enables
and starts both services (restarting them when a file changed). Running
it again updates the installation and changes nothing else.

Options:
  -y, --yes          do not ask before making changes (needed when the
                     standard input is not a terminal)
  --agent-key FILE   install FILE as /etc/xdr/agent.key (mode 0640,
                     group xdr), the key uploads are authorized with
  --model NAME       set model-id = "NAME" in the configuration
  --offline          set offline = true: keep bundles on the device
  --upload-url URL   set upload-url = "URL" and offline = false
  --bin-dir DIR      take the binaries from DIR (default: the bin
                     directory next to this script's directory, else
                     this script's directory)
  --prefix DIR       install below DIR instead of /, as for building a
                     root file system image: files only, no user is
                     created and systemctl is not run (the image creates
                     the user at boot, through sysusers.d)
  --uninstall        remove what an earlier run installed, the user and
                     group included; collected data in /var/lib/xdr stays
  --purge            with --uninstall: remove /var/lib/xdr as well
  -h, --help         print this help and exit

Exit status: 0 on success, 1 on failure, 2 on a usage error.
EOF
}

prog=install.sh

die() {
	printf '%s: %s\n' "$prog" "$*" >&2
	exit 1
}

usage_error() {
	printf '%s: %s (see --help)\n' "$prog" "$*" >&2
	exit 2
}

say() {
	printf '%s\n' "$*"
}

# --- Options ---

yes=0
uninstall=0
purge=0
prefix=/
bin_dir=
agent_key=
key_set=0
model=
model_set=0
offline=0
upload_url=
upload_set=0

# needs_arg OPTION COUNT: fails unless OPTION has its argument.
needs_arg() {
	[ "$2" -ge 2 ] || usage_error "$1 needs an argument"
}

while [ $# -gt 0 ]; do
	case $1 in
	-y | --yes) yes=1 ;;
	--agent-key) needs_arg "$1" $#; agent_key=$2; key_set=1; shift ;;
	--agent-key=*) agent_key=${1#*=}; key_set=1 ;;
	--model) needs_arg "$1" $#; model=$2; model_set=1; shift ;;
	--model=*) model=${1#*=}; model_set=1 ;;
	--offline) offline=1 ;;
	--upload-url) needs_arg "$1" $#; upload_url=$2; upload_set=1; shift ;;
	--upload-url=*) upload_url=${1#*=}; upload_set=1 ;;
	--bin-dir) needs_arg "$1" $#; bin_dir=$2; shift ;;
	--bin-dir=*) bin_dir=${1#*=} ;;
	--prefix) needs_arg "$1" $#; prefix=$2; shift ;;
	--prefix=*) prefix=${1#*=} ;;
	--uninstall) uninstall=1 ;;
	--purge) purge=1 ;;
	-h | --help) usage; exit 0 ;;
	-*) usage_error "unknown option $1" ;;
	*) usage_error "unexpected argument $1" ;;
	esac
	shift
done

if [ "$uninstall" = 1 ]; then
	if [ "$key_set" = 1 ] || [ "$model_set" = 1 ] || [ "$offline" = 1 ] || [ "$upload_set" = 1 ] || [ -n "$bin_dir" ]; then
		usage_error "--uninstall takes only -y, --prefix and --purge"
	fi
elif [ "$purge" = 1 ]; then
	usage_error "--purge goes with --uninstall"
fi
if [ "$offline" = 1 ] && [ "$upload_set" = 1 ]; then
	usage_error "--offline and --upload-url contradict each other"
fi
# The values go into TOML strings, which hold no raw control character.
case $model in *[[:cntrl:]]*) usage_error "--model: the name holds a control character" ;; esac
case $upload_url in *[[:cntrl:]]*) usage_error "--upload-url: the URL holds a control character" ;; esac
if [ "$upload_set" = 1 ] && [ -z "$upload_url" ]; then
	usage_error "--upload-url: empty URL"
fi
if [ "$key_set" = 1 ] && [ -z "$agent_key" ]; then
	usage_error "--agent-key: empty file name"
fi

case $prefix in
/*) ;;
'') usage_error "--prefix: empty directory" ;;
*) prefix=$(pwd)/$prefix ;;
esac
# root is the prefix without trailing slashes: "" for /. Every path
# below is written as on the target system and used as "$root$path".
root=$prefix
while [ "$root" != "${root%/}" ]; do root=${root%/}; done
on_host=0
[ -z "$root" ] && on_host=1

uid=$(id -u)
if [ "$on_host" = 1 ] && [ "$uid" != 0 ]; then
	die "installing into / needs root (run it with sudo, or use --prefix DIR)"
fi

script_dir=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)

# --- Paths on the target system ---

bin_target=/usr/local/bin
conf_dir=/etc/xdr
conf=$conf_dir/xdr.conf
key=$conf_dir/agent.key
manifest=$conf_dir/.install-manifest
unit_dir=/etc/systemd/system
sysusers=/usr/local/lib/sysusers.d/xdr.conf
tmpfiles=/usr/local/lib/tmpfiles.d/xdr.conf
data_dir=/var/lib/xdr
binaries="xdr-agent xdr-aggregator snr"
units="xdr-aggregator.service xdr-agent.service"
user=xdr

# --- Helpers ---

# Temporary files, removed on exit.
entries=
tmp=
cleanup() {
	[ -z "$tmp" ] || rm -f "$tmp"
	[ -z "$entries" ] || rm -f "$entries"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

# confirm QUESTION: true if the operator agrees, or with -y.
confirm() {
	[ "$yes" = 1 ] && return 0
	if [ ! -t 0 ]; then
		die "the standard input is not a terminal, so nothing can be confirmed: pass -y to go ahead without asking"
	fi
	printf '%s [y/N] ' "$1"
	answer=
	read -r answer || answer=
	case $answer in
	[yY] | [yY][eE][sS]) return 0 ;;
	esac
	return 1
}

# systemd_running: true when installing into / on a host booted with
# systemd, which is when systemctl may be used.
systemd_running() {
	[ "$on_host" = 1 ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1
}

# record KIND PATH: notes in the manifest what this run installed (f: a
# file, d: a directory, u: the user, g: the group).
record() {
	printf '%s %s\n' "$1" "$2" >>"$entries"
}

# owner OWNER: the owner to give a file. Only installs into / use the
# xdr user and group; files of an image belong to root until the image
# boots (sysusers.d, tmpfiles.d and StateDirectory= then fix them), and
# an unprivileged run cannot give files away at all.
owner() {
	if [ "$on_host" = 1 ]; then
		printf '%s\n' "$1"
	elif [ "$uid" = 0 ]; then
		printf '0:0\n'
	fi
}

# set_owner OWNER PATH
set_owner() {
	own=$(owner "$1")
	[ -z "$own" ] || chown "$own" "$root$2"
}

# make_dir PATH: creates PATH and its missing parents, recording the
# directories it created.
make_dir() {
	[ -d "$root$1" ] && return 0
	parent=${1%/*}
	[ -z "$parent" ] || make_dir "$parent"
	mkdir "$root$1"
	chmod 0755 "$root$1"
	record d "$1"
}

# install_file SRC PATH MODE OWNER: puts a copy of SRC at PATH. A file
# whose content changes is replaced with a rename, so that a running
# binary or a reader never sees it half written.
install_file() {
	dst=$root$2
	if [ -f "$dst" ] && [ ! -L "$dst" ] && cmp -s "$1" "$dst"; then
		chmod "$3" "$dst"
		set_owner "$4" "$2"
	else
		tmp=$dst.install-tmp
		rm -f "$tmp"
		cp "$1" "$tmp"
		chmod "$3" "$tmp"
		own=$(owner "$4")
		[ -z "$own" ] || chown "$own" "$tmp"
		mv -f "$tmp" "$dst"
		tmp=
		changed=1
		say "installed $2"
	fi
}

# toml_string VALUE: VALUE as the body of a TOML basic string.
toml_string() {
	printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g'
}

# set_keys FILE OUT KEY=VALUE...: writes FILE to OUT with each key of
# the [aggregator] section set to its value. The line setting the key is
# replaced, else the commented-out line showing its default, else the key
# is added at the end of the section (and the section at the end of the
# file).
set_keys() {
	file=$1
	out=$2
	shift 2
	assignments=
	for a in "$@"; do
		assignments="$assignments$a
"
	done
	XDR_SET=$assignments awk '
		BEGIN {
			n = split(ENVIRON["XDR_SET"], items, "\n")
			for (i = 1; i <= n; i++) {
				if (items[i] == "") continue
				p = index(items[i], "=")
				k = substr(items[i], 1, p - 1)
				keys[++nk] = k
				val[k] = substr(items[i], p + 1)
			}
		}
		{ line[NR] = $0 }
		END {
			section = ""
			for (i = 1; i <= NR; i++) {
				l = line[i]
				if (l ~ /^[ \t]*\[/) {
					s = l
					sub(/#.*/, "", s)
					gsub(/[ \t\r]/, "", s)
					section = s
					if (section == "[aggregator]") {
						found = 1
						last = i
					}
					continue
				}
				if (section != "[aggregator]") continue
				if (l !~ /^[ \t\r]*$/) last = i
				for (j = 1; j <= nk; j++) {
					k = keys[j]
					if (!(k in set) && l ~ ("^[ \t]*" k "[ \t]*=")) set[k] = i
					if (!(k in commented) && l ~ ("^[ \t]*#[ \t]*" k "[ \t]*=")) commented[k] = i
				}
			}
			for (j = 1; j <= nk; j++) {
				k = keys[j]
				if (k in set) at[set[k]] = k
				else if (k in commented) at[commented[k]] = k
				else if (found) add[last] = add[last] k " = " val[k] "\n"
				else tail = tail k " = " val[k] "\n"
			}
			for (i = 1; i <= NR; i++) {
				if (i in at) print at[i] " = " val[at[i]]
				else print line[i]
				if (i in add) printf "%s", add[i]
			}
			if (tail != "") printf "\n[aggregator]\n%s", tail
		}
	' "$file" >"$out"
}

# aggregator_value FILE KEY: the raw value of KEY in the [aggregator]
# section of FILE, empty when it is not set.
aggregator_value() {
	awk -v key="$2" '
		/^[ \t]*\[/ { s = $0; sub(/#.*/, "", s); gsub(/[ \t\r]/, "", s); section = s; next }
		section == "[aggregator]" && $0 ~ ("^[ \t]*" key "[ \t]*=") {
			v = $0
			sub(/^[^=]*=[ \t]*/, "", v)
			sub(/[ \t\r]*(#[^"]*)?$/, "", v)
			print v
			exit
		}
	' "$1"
}

# user_exists, group_exists: whether the local account files have xdr.
user_exists() {
	grep -q "^$user:" /etc/passwd
}
group_exists() {
	grep -q "^$user:" /etc/group
}

# create_account: creates the system group and user xdr where missing,
# with shadow-utils or else busybox.
create_account() {
	nologin=/bin/false
	for f in /usr/sbin/nologin /sbin/nologin; do
		if [ -x "$f" ]; then nologin=$f; break; fi
	done
	if ! group_exists; then
		if command -v groupadd >/dev/null 2>&1; then
			groupadd --system "$user"
		elif command -v addgroup >/dev/null 2>&1; then
			addgroup -S "$user"
		else
			die "cannot create group $user: neither groupadd nor addgroup is installed"
		fi
		record g "$user"
		say "created group $user"
	fi
	if ! user_exists; then
		if command -v useradd >/dev/null 2>&1; then
			useradd --system --gid "$user" --no-create-home --home-dir "$data_dir" \
				--shell "$nologin" --comment "XDR sensor aggregator" "$user"
		elif command -v adduser >/dev/null 2>&1; then
			adduser -S -D -H -h "$data_dir" -s "$nologin" -G "$user" -g "XDR sensor aggregator" "$user"
		else
			die "cannot create user $user: neither useradd nor adduser is installed"
		fi
		record u "$user"
		say "created user $user"
	fi
}

# remove_account KIND: removes the user (u) or the group (g) if it exists.
remove_account() {
	case $1 in
	u)
		user_exists || return 0
		if command -v userdel >/dev/null 2>&1; then userdel "$user"; else deluser "$user"; fi
		say "removed user $user"
		;;
	g)
		group_exists || return 0
		if command -v groupdel >/dev/null 2>&1; then groupdel "$user"; else delgroup "$user"; fi
		say "removed group $user"
		;;
	esac
}

# remove_data: removes the data directory, and its parents that this
# leaves empty (those an install into a prefix created).
remove_data() {
	rm -rf "$root$data_dir"
	say "removed $data_dir"
	dir=${data_dir%/*}
	while [ -n "$dir" ] && rmdir "$root$dir" 2>/dev/null; do
		dir=${dir%/*}
	done
}

# --- Uninstall ---

if [ "$uninstall" = 1 ]; then
	if [ ! -f "$root$manifest" ]; then
		if [ "$purge" = 1 ] && [ -d "$root$data_dir" ]; then
			confirm "Nothing installed under $prefix; remove the data in $root$data_dir?" || die "cancelled"
			remove_data
			exit 0
		fi
		say "Nothing to uninstall under $prefix (no $root$manifest)."
		exit 0
	fi
	what="the XDR sensor from $prefix"
	[ "$purge" = 1 ] && what="$what, with its data in $root$data_dir"
	confirm "Remove $what?" || die "cancelled"

	if systemd_running; then
		# shellcheck disable=SC2086 # $units is a list
		systemctl disable --now $units || true
	fi
	listing=$(cat "$root$manifest")
	if [ "$on_host" = 1 ]; then
		# The user before its group, which userdel may remove with it.
		for kind in u g; do
			if printf '%s\n' "$listing" | grep -q "^$kind $user\$"; then
				remove_account "$kind"
			fi
		done
	fi
	printf '%s\n' "$listing" | sed -n 's/^f //p' | while read -r path; do
		rm -f "$root$path"
		say "removed $path"
	done
	rm -f "$root$manifest"
	if [ "$purge" = 1 ]; then
		remove_data
	elif [ -d "$root$data_dir" ]; then
		say "kept $data_dir (--purge removes it)"
	fi
	# Deepest first; a directory that is not empty stays.
	printf '%s\n' "$listing" | sed -n 's/^d //p' | sort -r | while read -r path; do
		rmdir "$root$path" 2>/dev/null || true
	done
	if systemd_running; then
		systemctl daemon-reload
	fi
	exit 0
fi

# --- Install ---

if [ -n "$bin_dir" ]; then
	looked=$bin_dir
elif [ -d "$script_dir/../bin" ]; then
	bin_dir=$(CDPATH='' cd -- "$script_dir/.." && pwd)/bin
	looked=$bin_dir
	# A release archive ships the binaries next to this script.
	[ -f "$bin_dir/xdr-agent" ] || { bin_dir=$script_dir; looked="$looked or $script_dir"; }
else
	bin_dir=$script_dir
	looked=$bin_dir
fi
missing=
for b in $binaries; do
	if [ ! -f "$bin_dir/$b" ] || [ ! -x "$bin_dir/$b" ]; then missing="$missing $b"; fi
done
[ -z "$missing" ] || die "no executable$missing in $looked (build them with \"make build\", or pass --bin-dir DIR)"
for f in xdr.conf xdr-agent.service xdr-aggregator.service xdr-sysusers.conf xdr-tmpfiles.conf; do
	[ -f "$script_dir/$f" ] || die "$script_dir/$f is missing: install.sh needs the files it ships with"
done
if [ -n "$agent_key" ]; then
	if [ ! -f "$agent_key" ] || [ ! -r "$agent_key" ]; then
		die "--agent-key $agent_key: not a readable file"
	fi
	[ -s "$agent_key" ] || die "--agent-key $agent_key: the file is empty"
fi

say "Installing the XDR sensor into $prefix:"
say "  binaries         $bin_target/{$(echo "$binaries" | sed 's/ /,/g')}, from $bin_dir"
if [ -f "$root$conf" ]; then
	say "  configuration    $conf (kept as it is, apart from the options given)"
else
	say "  configuration    $conf"
fi
[ -z "$agent_key" ] || say "  agent key        $key, from $agent_key"
say "  systemd units    $unit_dir/{$(echo "$units" | sed 's/ /,/g')}"
if [ "$on_host" = 1 ]; then
	say "  user and group   $user (created if missing)"
else
	say "  user and group   $user, created at boot by $sysusers"
fi
say "  data             $data_dir"
confirm "Proceed?" || die "cancelled"

entries=$(mktemp)
changed=0
[ "$on_host" = 1 ] || (umask 022 && mkdir -p "$root")

[ "$on_host" = 0 ] || create_account

make_dir "$bin_target"
for b in $binaries; do
	install_file "$bin_dir/$b" "$bin_target/$b" 0755 0:0
	record f "$bin_target/$b"
done
make_dir "$unit_dir"
for u in $units; do
	install_file "$script_dir/$u" "$unit_dir/$u" 0644 0:0
	record f "$unit_dir/$u"
done
make_dir "${sysusers%/*}"
install_file "$script_dir/xdr-sysusers.conf" "$sysusers" 0644 0:0
record f "$sysusers"
make_dir "${tmpfiles%/*}"
install_file "$script_dir/xdr-tmpfiles.conf" "$tmpfiles" 0644 0:0
record f "$tmpfiles"

make_dir "$conf_dir"
chmod 0750 "$root$conf_dir"
set_owner "0:$user" "$conf_dir"
if [ -f "$root$conf" ]; then
	say "kept $conf"
else
	install_file "$script_dir/xdr.conf" "$conf" 0640 "0:$user"
	record f "$conf"
fi
set -- # the assignments to make in the configuration
[ "$model_set" = 0 ] || set -- "$@" "model-id=\"$(toml_string "$model")\""
[ "$offline" = 0 ] || set -- "$@" "offline=true"
[ "$upload_set" = 0 ] || set -- "$@" "upload-url=\"$(toml_string "$upload_url")\"" "offline=false"
if [ $# -gt 0 ]; then
	tmp=$root$conf.install-tmp
	set_keys "$root$conf" "$tmp" "$@"
	if cmp -s "$tmp" "$root$conf"; then
		rm -f "$tmp"
	else
		mv -f "$tmp" "$root$conf"
		changed=1
		say "set $* in $conf"
	fi
	tmp=
fi
chmod 0640 "$root$conf"
set_owner "0:$user" "$conf"
if [ -n "$agent_key" ]; then
	install_file "$agent_key" "$key" 0640 "0:$user"
	record f "$key"
fi

# The data directory is not recorded: it stays when uninstalling.
make_dir "${data_dir%/*}"
[ -d "$root$data_dir" ] || mkdir "$root$data_dir"
chmod 0750 "$root$data_dir"
set_owner "$user:$user" "$data_dir"

[ ! -f "$root$manifest" ] || cat "$root$manifest" >>"$entries"
tmp=$root$manifest.install-tmp
sort -u "$entries" >"$tmp"
chmod 0644 "$tmp"
mv -f "$tmp" "$root$manifest"
tmp=

# Whether the aggregator can start: it needs to be offline or to have
# somewhere to upload to.
runnable=1
if [ "$(aggregator_value "$root$conf" offline)" != true ]; then
	case $(aggregator_value "$root$conf" upload-url) in
	'' | '""') runnable=0 ;;
	esac
fi
not_runnable="$conf sets neither offline = true nor an upload-url, and xdr-aggregator needs one of them (run install.sh again with --offline or --upload-url URL, or edit the file)"
if [ "$runnable" = 1 ] && [ "$(aggregator_value "$root$conf" offline)" != true ]; then
	key_path=$(aggregator_value "$root$conf" agent-key)
	key_path=${key_path#\"}
	key_path=${key_path%\"}
	if [ -n "$key_path" ] && [ ! -f "$root$key_path" ]; then
		say "Note: bundles are to be uploaded, but the agent key $key_path is missing (run install.sh again with --agent-key FILE)."
	fi
fi

if systemd_running; then
	systemctl daemon-reload
	if [ "$runnable" = 0 ]; then
		say "Not starting the services: $not_runnable; then run: systemctl enable --now $units"
	elif ! confirm "Enable and start $units now?"; then
		say "Not started; later: systemctl enable --now $units"
	else
		# shellcheck disable=SC2086 # $units is a list
		systemctl enable $units
		if [ "$changed" = 1 ]; then
			# shellcheck disable=SC2086
			systemctl restart $units
			say "(re)started $units"
		else
			# shellcheck disable=SC2086
			systemctl start $units
			say "started $units (unchanged, so left running if they were)"
		fi
	fi
else
	[ "$runnable" = 1 ] || say "Note: $not_runnable."
	if [ "$on_host" = 1 ]; then
		say "systemd is not running here: start xdr-aggregator, then xdr-agent, with --config $conf (both run in the foreground)."
	else
		say "Installed into $prefix. To start the services at boot: systemctl --root=$prefix enable $units"
	fi
fi
