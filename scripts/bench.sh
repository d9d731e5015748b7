#!/usr/bin/env bash
# bench.sh — herald's performance figures beside the C peers', in one run
# (make bench). What each line measures, how the peers are run and the
# targets: docs/bench.md.
#
#   RUNS=3             rounds per figure: median [min..max] over the rounds;
#                      a ratio is taken within each round, then summarised
#   N=50               whole-process invocations per latency figure and round
#   INGEST_MSGS=10000  messages per smtp-source run
#   PEERS_DIR=/opt/peers   unpacked peers (postfix, dma, nullmailer); a peer
#                      that is not there is reported as not found
#   BENCH_TMP=/var/tmp a directory on the disk: state dirs, queues, spools
#   TMPFS_DIR=/dev/shm a tmpfs, for the tmpfs accept->webhook line
#   SKIP_GO=1 / SKIP_PEERS=1   leave out the Go benchmarks / the
#                      whole-process and smtp-source half
#
# Needs bin/herald and bin/herald-sendmail (make build), Go, and root for
# the peers (Postfix's master, dma's mount namespace). Everything listens
# on 127.0.0.1 on ports picked free; everything it starts is stopped, by
# PID, when it exits.
set -euo pipefail
export LC_ALL=C
SELF=$(readlink -f "${BASH_SOURCE[0]}")

# ------------------------------------------------------------------ inner mode
# The timed loop runs in a child bash (`bench.sh __mix`) under timeout(1),
# so that a hung client cannot hang the run, and inside a private mount
# namespace when dma or nullmailer takes part. It interleaves the clients
# invocation by invocation (the order rotating each time), so that load
# coming and going on the machine meets all of them alike, and after each
# invocation waits until that client's queue is empty again, so that no
# background delivery runs during the next client's turn.

# files_in DIR... : how many entries (not dot files) the directories hold.
files_in() {
	find "$@" -maxdepth 1 -type f ! -name '.*' 2>/dev/null | wc -l
}

# wait_empty SECONDS DIR... : wait until the directories hold no entry,
# looking every POLL seconds.
wait_empty() {
	local secs=$1 end
	shift
	end=$((SECONDS + secs))
	while [ "$(files_in "$@")" -gt 0 ]; do
		((SECONDS < end)) || return 1
		sleep "${POLL:-0.05}"
	done
}

# wait_tree_empty SECONDS DIR... : the same for queues hashed into
# subdirectories (Postfix's).
wait_tree_empty() {
	local secs=$1 end
	shift
	end=$((SECONDS + secs))
	while [ "$(find "$@" -type f 2>/dev/null | wc -l)" -gt 0 ]; do
		((SECONDS < end)) || return 1
		sleep "${POLL:-0.05}"
	done
}

# kill_namespace NS [PID]: stops every process in mount namespace NS (a
# peer's background delivery) but PID that carries this run's ERRLOG in
# its environment. Only namespaces this script made are passed (the inner
# mode records its own in $NS_LIST); the environment check keeps a number
# the kernel reused for someone else's namespace from mattering.
kill_namespace() {
	local pid p
	for p in /proc/[0-9]*; do
		pid=${p#/proc/}
		[ "$pid" != "${2:-}" ] || continue
		[ "$(readlink "$p/ns/mnt" 2>/dev/null)" = "$1" ] || continue
		tr '\0' '\n' <"$p/environ" 2>/dev/null | grep -qxF "ERRLOG=$ERRLOG" || continue
		kill "$pid" 2>/dev/null || true
	done
}

# client NAME: one submission of the message on stdin by client NAME.
client() {
	case $1 in
	true) /bin/true ;;
	hello) "$HELLO" ;;
	herald) "$SHIM" -t -i ;;
	postfix) "$PF/usr/sbin/sendmail" -t -i ;;
	dma) "$PEERS_DIR/dma/usr/sbin/sendmail" -t -i ;;
	nullmailer) /usr/sbin/sendmail -t -i ;;
	esac
}

# settle NAME: wait until NAME's queue is empty (its mail went on).
settle() {
	case $1 in
	herald) [ "${HERALD_DOWN:-0}" = 1 ] || wait_empty 30 "$HERALD_STATE_DIR/spool/maildrop" "$HERALD_STATE_DIR/spool/incoming" ;;
	postfix) wait_tree_empty 30 "$PF_SPOOL"/{maildrop,incoming,active,deferred} ;;
	dma) wait_empty 30 /var/spool/dma ;;
	nullmailer) wait_empty 30 /var/spool/nullmailer/queue ;;
	esac
}

if [ "${1:-}" = __mix ]; then
	# __mix N MSG OUTDIR CLIENT... : 2 warm-up rounds, then N timed
	# invocations of each CLIENT; OUTDIR/CLIENT gets one wall time in
	# microseconds per line.
	shift
	POLL=0.005
	n=$1 msg=$2 out=$3
	shift 3
	clients=("$@")
	if [ "${PEER_NS:-0}" = 1 ]; then
		# dma's and nullmailer's paths are compiled in: /etc/dma,
		# /etc/nullmailer, /var/spool/{dma,nullmailer}, and nullmailer's
		# /usr/sbin/nullmailer-queue and /usr/lib/nullmailer/smtp. Here
		# they become the run's own; nothing outside changes.
		readlink /proc/$$/ns/mnt >>"$NS_LIST"
		lower=/etc
		if [[ " ${clients[*]} " == *" nullmailer "* ]]; then
			for d in usr/sbin usr/bin usr/lib; do
				mount -t overlay herald-bench -o "lowerdir=$PEERS_DIR/nullmailer/$d:/$d" "/$d"
			done
		fi
		lower=$PEER_ETC:$lower
		mount -t overlay herald-bench -o "lowerdir=$lower" /etc
		mount --bind "$PEER_SPOOL" /var/spool
		if [[ " ${clients[*]} " == *" nullmailer "* ]]; then
			(cd /var/spool/nullmailer && exec setpriv --reuid=mail --regid=mail --init-groups /usr/sbin/nullmailer-send) \
				>"$out/nullmailer-send.log" 2>&1 &
			sleep 0.3
		fi
	fi
	k=${#clients[@]}
	for ((i = -2; i < n; i++)); do
		for ((j = 0; j < k; j++)); do
			c=${clients[$(((i + 2 + j) % k))]}
			rc=0
			t0=$EPOCHREALTIME
			client "$c" <"$msg" >/dev/null 2>>"$ERRLOG" || rc=$?
			t1=$EPOCHREALTIME
			if ((rc != 0)); then
				echo "$c: exit $rc" >>"$ERRLOG"
			elif ((i >= 0)); then
				echo $((${t1/./} - ${t0/./})) >>"$out/$c"
			fi
			settle "$c" || echo "$c: its queue was not empty 30 s after a mail" >>"$ERRLOG"
		done
	done
	if [ "${PEER_NS:-0}" = 1 ]; then
		kill_namespace "$(readlink /proc/$$/ns/mnt)" $$
	fi
	exit 0
fi

# ------------------------------------------------------------------ settings
RUNS=${RUNS:-3}
N=${N:-50}
INGEST_MSGS=${INGEST_MSGS:-10000}
PEERS_DIR=${PEERS_DIR:-/opt/peers}
BENCH_TMP=${BENCH_TMP:-/var/tmp}
TMPFS_DIR=${TMPFS_DIR:-/dev/shm}
GO=${GO:-go}
ROOT=$(cd "$(dirname "$SELF")/.." && pwd)
HERALD=$ROOT/bin/herald
SHIM=$ROOT/bin/herald-sendmail
PF=$PEERS_DIR/postfix

cd "$ROOT"
for b in "$HERALD" "$SHIM"; do
	[ -x "$b" ] || {
		echo "bench: $b missing: run make build (make bench does)" >&2
		exit 1
	}
done
[[ $RUNS =~ ^[1-9][0-9]*$ && $N =~ ^[1-9][0-9]*$ && $INGEST_MSGS =~ ^[1-9][0-9]*$ ]] || {
	echo "bench: RUNS, N and INGEST_MSGS must be positive integers" >&2
	exit 2
}

T=$(mktemp -d "$BENCH_TMP/herald-bench.XXXXXX")
chmod 755 "$T" # Postfix's daemons (user postfix) walk into its queue here
R=$T/results
mkdir -p "$R"
ERRLOG=$T/errors.log
NS_LIST=$T/namespaces
: >"$ERRLOG"
: >"$NS_LIST"
export ERRLOG NS_LIST PEERS_DIR

say() { printf 'bench: %s\n' "$*" >&2; }

# ------------------------------------------------------------------ cleanup
# Every process this script starts is recorded here and stopped on exit.
HERALD_PID='' SINK_PID='' PF_CONF='' PF_MASTER=''
stop_pid() { # stop_pid PID NAME: SIGTERM, wait up to 15 s, then SIGKILL
	local pid=$1 i
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
	kill "$pid" 2>/dev/null || true
	for i in $(seq 150); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	say "$2 (pid $pid) did not stop within 15 s: killing it"
	kill -9 "$pid" 2>/dev/null || true
}
stop_herald() {
	stop_pid "$HERALD_PID" "herald serve"
	HERALD_PID=
}
cleanup() {
	set +e
	stop_herald
	if [ -n "$PF_CONF" ]; then
		timeout 30 "$PF/usr/sbin/postfix" -c "$PF_CONF" stop >/dev/null 2>&1
		stop_pid "$PF_MASTER" "postfix master"
	fi
	# A peer's delivery left behind by a latency round that timed out.
	sort -u "$NS_LIST" 2>/dev/null | while read -r ns; do kill_namespace "$ns"; done
	stop_pid "$SINK_PID" smtp-sink
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ helpers
USED_PORTS=" "
# free_port VAR: a loopback TCP port below the ephemeral range that no
# socket uses now (/proc/net/tcp*), never handed out twice in this run.
free_port() {
	local p i hex
	for i in $(seq 500); do
		p=$((20000 + RANDOM % 12000))
		[[ $USED_PORTS == *" $p "* ]] && continue
		hex=$(printf ':%04X' "$p")
		awk -v h="$hex" '$2 ~ h"$" { f = 1 } END { exit !f }' /proc/net/tcp /proc/net/tcp6 2>/dev/null && continue
		USED_PORTS+="$p "
		printf -v "$1" %s "$p"
		return 0
	done
	echo "bench: no free loopback port found" >&2
	exit 1
}

# wait_port PORT SECONDS: wait until 127.0.0.1:PORT accepts connections.
wait_port() {
	local end=$((SECONDS + $2))
	until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
		((SECONDS < end)) || return 1
		sleep 0.05
	done
}

# stats: numbers on stdin -> "median min max p10 p90 count"
stats() {
	sort -g | awk '{ a[NR] = $1 } END {
		if (NR == 0) exit 1
		m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
		i10 = int(NR * 0.1 + 0.5); if (i10 < 1) i10 = 1
		i90 = int(NR * 0.9 + 0.5); if (i90 > NR) i90 = NR
		print m, a[1], a[NR], a[i10], a[i90], NR }'
}

# median FILE: the median of the numbers in FILE.
median() { stats <"$1" | awk '{ print $1 }'; }

# summary FILE FMT: "median [min..max]" of FILE's numbers, or "-".
summary() {
	[ -s "$1" ] || {
		echo -
		return
	}
	stats <"$1" | awk -v f="$2" '{ printf f " [" f ".." f "]\n", $1, $2, $3 }'
}

# ratios A B OUT: line-by-line A/B (one per round) into OUT.
ratios() {
	[ -s "$1" ] && [ -s "$2" ] || return 0
	paste "$1" "$2" | awk 'NF == 2 && $2 > 0 { printf "%.4f\n", $1 / $2 }' >"$3"
}

# Rows of the result table: label, herald, peer, ratio, target, result.
ROWS=$R/rows
: >"$ROWS"
PASS=0 FAILS=0 NOPEER=0 UNMEASURED=0
# row LABEL FMT HERALD_FILE PEER_TEXT PEER_FILE RATIO_FILE KIND TARGET
#   KIND: ratio<= ratio>= >= < (judged on the median) or info.
#   PEER_FILE "" = PEER_TEXT says why there is no peer figure ("-": the
#   figure has no peer); a missing peer is reported, never a failure.
row() {
	local label=$1 fmt=$2 hf=$3 ptext=$4 pf=$5 rf=$6 kind=$7 target=${8:-}
	local h p r t v verdict
	h=$(summary "$hf" "$fmt")
	if [ -n "$pf" ]; then p="$ptext $(summary "$pf" "$fmt")"; else p=$ptext; fi
	r=-
	[ -n "$rf" ] && [ -s "$rf" ] && r=$(summary "$rf" %.2f)
	case $kind in
	info) t=- verdict=info ;;
	ratio*)
		t="${kind#ratio} ${target}x"
		if [ -n "$rf" ] && [ -s "$rf" ]; then v=$(median "$rf"); else v=; fi
		;;
	*)
		t="$kind $target"
		if [ -s "$hf" ]; then v=$(median "$hf"); else v=; fi
		;;
	esac
	if [ "$kind" != info ]; then
		if [ -z "$v" ] && { [ -s "$hf" ] || { [ -z "$pf" ] && [ "$ptext" != - ]; }; }; then
			verdict="n/a (no peer)"
			NOPEER=$((NOPEER + 1))
		elif [ -z "$v" ]; then
			verdict="not measured"
			UNMEASURED=$((UNMEASURED + 1))
		elif awk -v v="$v" -v t="$target" -v k="${kind#ratio}" 'BEGIN {
				exit !((k == "<=" && v <= t) || (k == ">=" && v >= t) || (k == "<" && v < t)) }'; then
			verdict=pass
			PASS=$((PASS + 1))
		else
			verdict=FAIL
			FAILS=$((FAILS + 1))
		fi
	fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$h" "$p" "$r" "$t" "$verdict" >>"$ROWS"
}

# peer_version NAME: the Debian version of an unpacked peer.
peer_version() {
	zcat "$PEERS_DIR/$1/usr/share/doc/$1/changelog.Debian.gz" 2>/dev/null | head -1 | sed -n 's/^[^(]*(\([^)]*\)).*/\1/p'
}

IS_ROOT=0
[ "$(id -u)" = 0 ] && IS_ROOT=1

# ------------------------------------------------------------------ the 2 KB cron mail
MSG=$T/cron-mail.txt
{
	printf 'From: root (Cron Daemon)\nTo: root@example.org\nSubject: Cron <root@vm> /usr/local/bin/nightly-check\n'
	printf 'MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n'
	printf 'X-Cron-Env: <SHELL=/bin/sh>\nX-Cron-Env: <HOME=/root>\nX-Cron-Env: <PATH=/usr/bin:/bin>\nX-Cron-Env: <LOGNAME=root>\n\n'
	printf 'nightly-check: 3 warnings\n - /var is 91%% full\n - certificate for example.org expires in 12 days\n - 2 failed units\n\n'
	for i in $(seq 40); do
		printf 'rsync: /srv/data/part-%02d copied 1234 files, 56 MB, no errors\n' "$i"
	done
} >"$MSG.full"
head -c 2048 "$MSG.full" >"$MSG"
echo >>"$MSG"

# ------------------------------------------------------------------ header
disk_fs=$(stat -f -c %T "$T")
tmpfs_fs=$(stat -f -c %T "$TMPFS_DIR" 2>/dev/null || echo missing)
echo "# herald bench $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -sr), $(nproc) cores ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
echo "# herald $(git describe --tags --always --dirty 2>/dev/null || echo unknown), $("$GO" version | awk '{ print $3 }'); state on $BENCH_TMP ($disk_fs), tmpfs line on $TMPFS_DIR ($tmpfs_fs)"
echo "# load average at the start: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine shows in every figure)"
echo "# RUNS=$RUNS rounds (median [min..max]; ratios herald/peer per round), N=$N runs per latency figure and round, message $(wc -c <"$MSG") bytes"

# ------------------------------------------------------------------ peers
PF_OK=0 DMA_OK=0 NM_OK=0
PF_WHY="postfix: not found in $PEERS_DIR" DMA_WHY="dma: not found in $PEERS_DIR" NM_WHY="nullmailer: not found in $PEERS_DIR"
SMTP_SOURCE='' SMTP_SINK='' PF_LIBS=''
# smtp-source and smtp-sink come with the postfix package: the peer's, or
# the copy scripts/install-test-deps.sh unpacks.
for d in "$PF" "${HERALD_PEERS_DIR:-/opt/herald-test}/postfix"; do
	if [ -x "$d/usr/sbin/smtp-source" ] && [ -x "$d/usr/sbin/smtp-sink" ]; then
		SMTP_SOURCE=$d/usr/sbin/smtp-source SMTP_SINK=$d/usr/sbin/smtp-sink PF_LIBS=$d/usr/lib/postfix
		break
	fi
done
if [ "${SKIP_PEERS:-0}" != 1 ]; then
	if [ -x "$PF/usr/sbin/postfix" ]; then
		if ((IS_ROOT == 0)); then
			PF_WHY="postfix: found, but running it needs root"
		elif ! getent passwd postfix >/dev/null || ! getent group postdrop >/dev/null; then
			PF_WHY="postfix: found, but user postfix or group postdrop is missing (docs/bench.md)"
		else
			PF_OK=1
		fi
	fi
	if [ -x "$PEERS_DIR/dma/usr/sbin/dma" ]; then
		if ((IS_ROOT == 0)); then DMA_WHY="dma: found, but its mount namespace needs root"; else DMA_OK=1; fi
	fi
	if [ -x "$PEERS_DIR/nullmailer/usr/sbin/nullmailer-send" ]; then
		if ((IS_ROOT == 0)); then NM_WHY="nullmailer: found, but its mount namespace needs root"; else NM_OK=1; fi
	fi
fi

if [ "${SKIP_PEERS:-0}" != 1 ]; then
	v=()
	((PF_OK)) && v+=("postfix $(peer_version postfix)")
	((DMA_OK)) && v+=("dma $(peer_version dma)")
	((NM_OK)) && v+=("nullmailer $(peer_version nullmailer)")
	echo "# peers in $PEERS_DIR: ${v[*]:-none usable}; smtp-source: ${SMTP_SOURCE:-not found}"
fi

# start_sink: Postfix's smtp-sink on a free port, the smarthost of dma and
# nullmailer (it accepts and drops every mail).
start_sink() {
	free_port SINK_PORT
	LD_LIBRARY_PATH=$PF_LIBS "$SMTP_SINK" -u nobody "127.0.0.1:$SINK_PORT" 256 >"$T/sink.log" 2>&1 &
	SINK_PID=$!
	wait_port "$SINK_PORT" 10 || {
		say "smtp-sink did not listen: $(head -c 500 "$T/sink.log")"
		return 1
	}
}

# start_postfix: a Postfix of our own (main.cf/master.cf in $T, queue in
# $T, smtpd on a free port, every transport discard:).
start_postfix() {
	local L=$T/postfix
	free_port PF_PORT
	mkdir -p "$L/etc" "$L/spool"
	install -d -o postfix -m 700 "$L/data"
	cat >"$L/etc/main.cf" <<-EOF
		# herald bench: loopback only, every mail to discard: (scripts/bench.sh)
		compatibility_level = 3.6
		command_directory = $PF/usr/sbin
		daemon_directory = $PF/usr/lib/postfix/sbin
		meta_directory = $PF/etc/postfix
		shlib_directory = $PF/usr/lib/postfix
		sendmail_path = $PF/usr/sbin/sendmail
		newaliases_path = $PF/usr/bin/newaliases
		mailq_path = $PF/usr/bin/mailq
		queue_directory = $L/spool
		data_directory = $L/data
		mail_owner = postfix
		setgid_group = postdrop
		myhostname = bench.localdomain
		mydomain = localdomain
		myorigin = \$myhostname
		mydestination = \$myhostname, localhost.\$mydomain, localhost
		inet_interfaces = loopback-only
		inet_protocols = ipv4
		mynetworks = 127.0.0.0/8
		smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
		local_transport = discard:
		default_transport = discard:
		relay_transport = discard:
		alias_maps =
		alias_database =
		biff = no
		maillog_file = $L/maillog
	EOF
	cat >"$L/etc/master.cf" <<-EOF
		# service type  private unpriv  chroot  wakeup  maxproc command
		127.0.0.1:$PF_PORT inet n - n - - smtpd
		pickup    unix  n       -       n       60      1       pickup
		cleanup   unix  n       -       n       -       0       cleanup
		qmgr      unix  n       -       n       300     1       qmgr
		rewrite   unix  -       -       n       -       -       trivial-rewrite
		bounce    unix  -       -       n       -       0       bounce
		defer     unix  -       -       n       -       0       bounce
		trace     unix  -       -       n       -       0       bounce
		verify    unix  -       -       n       -       1       verify
		flush     unix  n       -       n       1000?   0       flush
		proxymap  unix  -       -       n       -       -       proxymap
		showq     unix  n       -       n       -       -       showq
		error     unix  -       -       n       -       -       error
		retry     unix  -       -       n       -       -       error
		discard   unix  -       -       n       -       -       discard
		anvil     unix  -       -       n       -       1       anvil
		scache    unix  -       -       n       -       1       scache
		postlog   unix-dgram n  -       n       -       1       postlogd
	EOF
	if ! timeout 60 "$PF/usr/sbin/postfix" -c "$L/etc" check >"$T/postfix-start.log" 2>&1 ||
		! timeout 60 "$PF/usr/sbin/postfix" -c "$L/etc" start >>"$T/postfix-start.log" 2>&1; then
		PF_WHY="postfix: did not start: $(tail -1 "$T/postfix-start.log")"
		return 1
	fi
	PF_CONF=$L/etc
	PF_MASTER=$(tr -d ' ' <"$L/spool/pid/master.pid" 2>/dev/null || true)
	wait_port "$PF_PORT" 20 || {
		PF_WHY="postfix: smtpd did not listen on 127.0.0.1:$PF_PORT"
		return 1
	}
	PF_QUEUE=("$L/spool/maildrop" "$L/spool/incoming" "$L/spool/active" "$L/spool/deferred")
}
# start_herald: the daemon with a herald.cfg of free ports and a
# notifications.cfg that routes every event to no target (Postfix's
# counterpart delivers to discard:).
HS=$T/herald
start_herald() {
	free_port H_PORT
	free_port H_HTTP
	mkdir -p "$HS/etc"
	printf 'hostname bench.localdomain\nsmtp-listen 127.0.0.1:%s\nhttp-listen 127.0.0.1:%s\nmail-dir %s\n' \
		"$H_PORT" "$H_HTTP" "$HS/mail" >"$HS/etc/herald.cfg"
	printf 'matcher: default-matcher\n\tcomment every event is routed to no target\n' >"$HS/etc/notifications.cfg"
	HERALD_CONFIG_DIR=$HS/etc HERALD_STATE_DIR=$HS/state "$HERALD" serve >"$HS/log" 2>&1 &
	HERALD_PID=$!
	wait_port "$H_PORT" 20 || {
		say "herald serve did not listen on 127.0.0.1:$H_PORT: $(tail -5 "$HS/log")"
		exit 1
	}
}
herald_spool=("$HS/state/spool/maildrop" "$HS/state/spool/incoming")

# mix SUFFIX [ENV=V...] -- CLIENT...: one latency round (bench.sh __mix,
# under timeout, in a mount namespace when PEER_NS=1 is among the ENV);
# each client's times in ms are appended to $R/lat.CLIENT$SUFFIX and the
# round's median to $R/lat.CLIENT$SUFFIX.rounds.
mix() {
	local suffix=$1 out=$T/round c envs=()
	shift
	while [ "$1" != -- ]; do
		envs+=("$1")
		shift
	done
	shift
	rm -rf "$out"
	mkdir -p "$out"
	local ns=()
	[[ " ${envs[*]} " == *" PEER_NS=1 "* ]] && ns=(unshare --mount --propagation private --)
	timeout 600 env "${envs[@]}" "${ns[@]}" bash "$SELF" __mix "$N" "$MSG" "$out" "$@" ||
		echo "latency round ($*) failed or timed out: $?" >>"$ERRLOG"
	for c in "$@"; do
		[ -s "$out/$c" ] || continue
		awk '{ printf "%.3f\n", $1 / 1000 }' "$out/$c" >"$out/$c.ms"
		cat "$out/$c.ms" >>"$R/lat.$c$suffix"
		median "$out/$c.ms" >>"$R/lat.$c$suffix.rounds"
	done
}

if [ "${SKIP_PEERS:-0}" != 1 ]; then
	say "starting herald serve$( ((PF_OK)) && echo ', postfix')$( ((DMA_OK || NM_OK)) && echo ', smtp-sink')"
	start_herald
	if ((PF_OK)); then start_postfix || PF_OK=0; fi
	if ((DMA_OK || NM_OK)); then
		if [ -z "$SMTP_SINK" ]; then
			DMA_OK=0 NM_OK=0
			DMA_WHY="dma: needs Postfix's smtp-sink as its smarthost, not found"
			NM_WHY="nullmailer: needs Postfix's smtp-sink as its smarthost, not found"
		elif ! start_sink; then
			DMA_OK=0 NM_OK=0 DMA_WHY="dma: smtp-sink did not start" NM_WHY="nullmailer: smtp-sink did not start"
		fi
	fi
	# One /etc and one /var/spool for the peers' namespace: dma's
	# dma.conf (NULLCLIENT to the sink) and nullmailer's remotes.
	PEER_ETC=$T/peer-etc PEER_SPOOL=$T/peer-spool
	mkdir -p "$PEER_ETC" "$PEER_SPOOL"
	if ((DMA_OK)); then
		mkdir -p "$PEER_ETC/dma" "$PEER_SPOOL/dma"
		printf 'SMARTHOST 127.0.0.1\nPORT %s\nMAILNAME bench.localdomain\nNULLCLIENT\n' "$SINK_PORT" >"$PEER_ETC/dma/dma.conf"
		: >"$PEER_ETC/aliases"
		chgrp mail "$PEER_ETC/dma/dma.conf" "$PEER_SPOOL/dma" && chmod 640 "$PEER_ETC/dma/dma.conf" && chmod 2770 "$PEER_SPOOL/dma"
	fi
	if ((NM_OK)); then
		mkdir -p "$PEER_ETC/nullmailer"
		echo bench.localdomain >"$PEER_ETC/nullmailer/defaulthost"
		echo localdomain >"$PEER_ETC/nullmailer/defaultdomain"
		echo "127.0.0.1 smtp --port=$SINK_PORT" >"$PEER_ETC/nullmailer/remotes"
		chown mail:mail "$PEER_ETC/nullmailer/remotes" && chmod 600 "$PEER_ETC/nullmailer/remotes"
		cp -a "$PEERS_DIR/nullmailer/var/spool/nullmailer" "$PEER_SPOOL/"
		mkfifo "$PEER_SPOOL/nullmailer/trigger"
		chown mail:root "$PEER_SPOOL/nullmailer/trigger" && chmod 622 "$PEER_SPOOL/nullmailer/trigger"
	fi

	# A Go hello-world, built like herald's release binaries: the floor of
	# any Go program's start-up.
	HELLO=$T/hello/hello
	mkdir -p "$T/hello"
	printf 'module hello\n\ngo 1.22\n' >"$T/hello/go.mod"
	printf 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hello, world") }\n' >"$T/hello/main.go"
	(cd "$T/hello" && CGO_ENABLED=0 timeout 300 "$GO" build -trimpath -ldflags '-s -w' -o hello .) || HELLO=

	# ---------------------------------------------------------- shim latency
	clients=(true)
	[ -z "$HELLO" ] || clients+=(hello)
	clients+=(herald)
	((PF_OK)) && clients+=(postfix)
	((DMA_OK)) && clients+=(dma)
	((NM_OK)) && clients+=(nullmailer)
	peer_ns=0
	((DMA_OK || NM_OK)) && peer_ns=1
	say "whole-process latency: $RUNS rounds of $N runs of each of ${clients[*]}, interleaved"
	for ((r = 1; r <= RUNS; r++)); do
		mix "" PEER_NS=$peer_ns PEER_ETC="$PEER_ETC" PEER_SPOOL="$PEER_SPOOL" HELLO="$HELLO" SHIM="$SHIM" \
			HERALD_CONFIG_DIR="$HS/etc" HERALD_STATE_DIR="$HS/state" PF="$PF" MAIL_CONFIG="${PF_CONF:-}" \
			PF_SPOOL="$T/postfix/spool" -- "${clients[@]}"
	done

	# ---------------------------------------------------------- SMTP ingest
	if [ -n "$SMTP_SOURCE" ]; then
		say "SMTP ingest: $RUNS rounds of smtp-source -s 20 -l 1024 -m $INGEST_MSGS against herald$( ((PF_OK)) && echo ' and postfix')"
		# ingest NAME PORT WAITCMD...: one smtp-source run; msg/s while
		# smtp-source ran to $R/ingest.NAME, msg/s until the queue was
		# empty again to $R/e2e.NAME.
		ingest() {
			local name=$1 port=$2 t0 t1 t2
			shift 2
			t0=$EPOCHREALTIME
			if ! LD_LIBRARY_PATH=$PF_LIBS timeout 600 "$SMTP_SOURCE" -s 20 -l 1024 -m "$INGEST_MSGS" \
				-f root@vm -t root@example.org "127.0.0.1:$port" >>"$T/smtp-source.log" 2>&1; then
				echo "smtp-source against $name failed: $(tail -1 "$T/smtp-source.log")" >>"$ERRLOG"
				return
			fi
			t1=$EPOCHREALTIME
			awk -v a="$t0" -v b="$t1" -v m="$INGEST_MSGS" 'BEGIN { printf "%.1f\n", m / (b - a) }' >>"$R/ingest.$name"
			if "$@"; then
				t2=$EPOCHREALTIME
				awk -v a="$t0" -v b="$t2" -v m="$INGEST_MSGS" 'BEGIN { printf "%.1f\n", m / (b - a) }' >>"$R/e2e.$name"
			else
				echo "$name: queue not empty 300 s after smtp-source" >>"$ERRLOG"
			fi
		}
		for ((r = 1; r <= RUNS; r++)); do
			ingest herald "$H_PORT" wait_empty 300 "${herald_spool[@]}"
			if ((PF_OK)); then ingest postfix "$PF_PORT" wait_tree_empty 300 "${PF_QUEUE[@]}"; fi
		done
	fi
	say "stopping herald serve and the peers"
	stop_herald

	# The shim while the daemon is down: the mail waits in the maildrop.
	clients=(herald)
	[ -z "$HELLO" ] || clients+=(hello)
	say "whole-process latency with the daemon stopped: $RUNS rounds of $N runs of each of ${clients[*]}"
	for ((r = 1; r <= RUNS; r++)); do
		mix -down HERALD_DOWN=1 HELLO="$HELLO" SHIM="$SHIM" HERALD_CONFIG_DIR="$HS/etc" HERALD_STATE_DIR="$HS/state" \
			-- "${clients[@]}"
	done
fi

# ------------------------------------------------------------------ Go benchmarks
# gobench OUT DIR PKG REGEX BENCHTIME: one go test run, RUNS counts, with
# TMPDIR (and so every state directory) under DIR.
gobench() {
	local out=$1 dir=$2 pkg=$3 re=$4 bt=$5
	mkdir -p "$dir"
	if ! TMPDIR=$dir timeout 2400 "$GO" test -run '^$' -bench "$re" -benchtime "$bt" -count "$RUNS" -timeout 30m "$pkg" >"$out" 2>&1; then
		echo "go test -bench '$re' $pkg failed:" >>"$ERRLOG"
		grep -v -e '^Benchmark' -e '^goos:' -e '^goarch:' -e '^pkg:' -e '^cpu:' "$out" | tail -20 | cut -c1-300 >>"$ERRLOG"
	fi
}
# metric OUT BENCH UNIT: the values of UNIT on BENCH's result lines.
metric() {
	awk -v n="$2" -v u="$3" '$1 ~ "^" n "(-[0-9]+)?$" { for (i = 3; i < NF; i++) if ($(i + 1) == u) print $i }' "$1"
}
if [ "${SKIP_GO:-0}" != 1 ]; then
	say "Go benchmarks: router (100 matchers), $RUNS rounds"
	gobench "$T/go-router.txt" "$T/go-tmp" ./internal/router '^BenchmarkRouteTargets100Matchers$' 1s
	metric "$T/go-router.txt" BenchmarkRouteTargets100Matchers cpu-ns/op | awk '$1 > 0 { printf "%.0f\n", 1e9 / $1 }' >"$R/router"
	say "Go benchmarks: the real daemon on $BENCH_TMP (webhooks, accept->webhook, backlog drain, RSS), $RUNS rounds"
	gobench "$T/go-e2e.txt" "$T/go-tmp" ./internal/e2e \
		'^(BenchmarkWebhookDeliveries8Targets|BenchmarkAcceptToWebhook|BenchmarkBacklogDrain|BenchmarkRSS)$' 1x
	metric "$T/go-e2e.txt" BenchmarkWebhookDeliveries8Targets deliveries/s >"$R/webhook8"
	metric "$T/go-e2e.txt" BenchmarkAcceptToWebhook p50-ms >"$R/a2w.p50"
	metric "$T/go-e2e.txt" BenchmarkAcceptToWebhook p99-ms >"$R/a2w.p99"
	metric "$T/go-e2e.txt" BenchmarkBacklogDrain events/s >"$R/drain"
	metric "$T/go-e2e.txt" BenchmarkRSS idle-MiB >"$R/rss.idle"
	metric "$T/go-e2e.txt" BenchmarkRSS after-processing-hwm-MiB >"$R/rss.hwm"
	if [ "$tmpfs_fs" = tmpfs ]; then
		say "Go benchmarks: accept->webhook on $TMPFS_DIR (tmpfs), $RUNS rounds"
		TMPFS_WORK=$(mktemp -d "$TMPFS_DIR/herald-bench.XXXXXX")
		gobench "$T/go-e2e-tmpfs.txt" "$TMPFS_WORK" ./internal/e2e '^BenchmarkAcceptToWebhook$' 1x
		rm -rf "$TMPFS_WORK"
		metric "$T/go-e2e-tmpfs.txt" BenchmarkAcceptToWebhook p50-ms >"$R/a2w.tmpfs.p50"
		metric "$T/go-e2e-tmpfs.txt" BenchmarkAcceptToWebhook p99-ms >"$R/a2w.tmpfs.p99"
	else
		echo "TMPFS_DIR=$TMPFS_DIR is not a tmpfs ($tmpfs_fs): no tmpfs accept->webhook line" >>"$ERRLOG"
	fi
fi

# ------------------------------------------------------------------ the table
touch "$R"/lat.{herald,dma,postfix,nullmailer,hello,true,herald-down,hello-down}.rounds "$R"/ingest.{herald,postfix} "$R"/e2e.{herald,postfix}
ratios "$R/lat.herald.rounds" "$R/lat.dma.rounds" "$R/ratio.dma"
ratios "$R/lat.herald.rounds" "$R/lat.postfix.rounds" "$R/ratio.postfix"
ratios "$R/lat.herald.rounds" "$R/lat.nullmailer.rounds" "$R/ratio.nullmailer"
ratios "$R/lat.hello.rounds" "$R/lat.true.rounds" "$R/ratio.hello"
ratios "$R/lat.herald.rounds" "$R/lat.hello.rounds" "$R/ratio.herald-hello"
paste "$R/lat.herald.rounds" "$R/lat.hello.rounds" | awk 'NF == 2 { printf "%.3f\n", $1 - $2 }' >"$R/lat.herald-minus-hello"
ratios "$R/lat.herald-down.rounds" "$R/lat.hello-down.rounds" "$R/ratio.herald-down"
ratios "$R/ingest.herald" "$R/ingest.postfix" "$R/ratio.ingest"
ratios "$R/e2e.herald" "$R/e2e.postfix" "$R/ratio.e2e"

if [ "${SKIP_PEERS:-0}" != 1 ]; then
	if ((DMA_OK)); then row "shim sendmail -t -i vs dma, ms" %.2f "$R/lat.herald.rounds" "dma" "$R/lat.dma.rounds" "$R/ratio.dma" 'ratio<=' 0.5
	else row "shim sendmail -t -i vs dma, ms" %.2f "$R/lat.herald.rounds" "$DMA_WHY" "" "" 'ratio<=' 0.5; fi
	if ((PF_OK)); then row "shim sendmail -t -i vs Postfix, ms" %.2f "$R/lat.herald.rounds" "postfix" "$R/lat.postfix.rounds" "$R/ratio.postfix" 'ratio<=' 0.3
	else row "shim sendmail -t -i vs Postfix, ms" %.2f "$R/lat.herald.rounds" "$PF_WHY" "" "" 'ratio<=' 0.3; fi
	if ((NM_OK)); then row "shim sendmail -t -i vs nullmailer, ms" %.2f "$R/lat.herald.rounds" "nullmailer" "$R/lat.nullmailer.rounds" "$R/ratio.nullmailer" info
	else row "shim sendmail -t -i vs nullmailer, ms" %.2f "$R/lat.herald.rounds" "$NM_WHY" "" "" info; fi
	row "floor: Go hello-world, ms" %.2f "$R/lat.hello.rounds" "/bin/true" "$R/lat.true.rounds" "$R/ratio.hello" info
	row "shim minus Go hello-world, ms" %.2f "$R/lat.herald-minus-hello" "-" "" "" info
	row "shim, daemon stopped, ms" %.2f "$R/lat.herald-down.rounds" "hello-world" "$R/lat.hello-down.rounds" "$R/ratio.herald-down" info
	if [ -z "$SMTP_SOURCE" ]; then
		row "SMTP ingest smtp-source -s 20, msg/s" %.0f "" "smtp-source not found (scripts/install-test-deps.sh)" "" "" 'ratio>=' 3
	elif ((PF_OK)); then
		row "SMTP ingest smtp-source -s 20, msg/s" %.0f "$R/ingest.herald" "postfix" "$R/ingest.postfix" "$R/ratio.ingest" 'ratio>=' 3
		row "SMTP ingest until queue empty, msg/s" %.0f "$R/e2e.herald" "postfix" "$R/e2e.postfix" "$R/ratio.e2e" info
	else
		row "SMTP ingest smtp-source -s 20, msg/s" %.0f "$R/ingest.herald" "$PF_WHY" "" "" 'ratio>=' 3
		row "SMTP ingest until queue empty, msg/s" %.0f "$R/e2e.herald" "$PF_WHY" "" "" info
	fi
fi
if [ "${SKIP_GO:-0}" != 1 ]; then
	row "webhook deliveries/s, 8 targets" %.0f "$R/webhook8" "-" "" "" '>=' 1000
	row "accept->webhook p50 ms, 100 msg/s, disk" %.1f "$R/a2w.p50" "-" "" "" info
	row "accept->webhook p99 ms, 100 msg/s, disk" %.1f "$R/a2w.p99" "-" "" "" '<' 20
	row "accept->webhook p50 ms, 100 msg/s, tmpfs" %.1f "$R/a2w.tmpfs.p50" "-" "" "" info
	row "accept->webhook p99 ms, 100 msg/s, tmpfs" %.1f "$R/a2w.tmpfs.p99" "-" "" "" '<' 20
	row "backlog drain 5000 mails, 2 targets, ev/s" %.0f "$R/drain" "-" "" "" '>=' 1000
	row "router 100 matchers, events/s per core" %.0f "$R/router" "-" "" "" '>=' 200000
	row "RSS idle, MiB" %.1f "$R/rss.idle" "-" "" "" '<' 15
	row "RSS high-water, 50 MB mail, MiB" %.1f "$R/rss.hwm" "-" "" "" '<' 64
fi

echo
printf '%-42s  %-24s  %-34s  %-20s  %-10s  %s\n' figure herald peer "ratio herald/peer" target result
while IFS=$'\t' read -r label h p r t v; do
	printf '%-42s  %-24s  %-34s  %-20s  %-10s  %s\n' "$label" "$h" "$p" "$r" "$t" "$v"
done <"$ROWS"

if [ -s "$R/lat.herald" ]; then
	echo
	echo "# whole-process latency over all $RUNS x $N runs, ms: median (p10..p90)"
	for t in herald dma postfix nullmailer hello true herald-down; do
		[ -s "$R/lat.$t" ] || continue
		stats <"$R/lat.$t" | awk -v t="$t" '{ printf "#   %-11s %7.2f (%.2f..%.2f)  n=%d\n", t, $1, $4, $5, $6 }'
	done
fi
echo
echo "# load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# targets: $PASS pass, $FAILS FAIL, $NOPEER without their peer, $UNMEASURED not measured"
if [ -s "$ERRLOG" ]; then
	echo "# problems during the run:"
	cut -c1-300 "$ERRLOG" | uniq -c | head -40 | sed 's/^/#   /'
fi
# A missed target is a finding, not a broken run; a figure that could not
# be measured is.
((UNMEASURED == 0))
