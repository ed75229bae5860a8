#!/usr/bin/env bash
# relay-vs-opensmtpd.sh — by hand, never in CI: relaying measured side by side. N messages
# of 1 KiB are submitted for relay.test and relayed to Postfix's smtp-sink (`relay host`),
# through OpenSMTPD 6.8 and through our smol daemon `smtpd`, configured the same way, with
# the same harness (/work/shared/bench/anchor-opensmtpd.sh: private namespaces, Postfix
# smtp-source as the client, end to end = until smtp-sink has counted every message).
# Then the latency of one relayed message: LAT_N single messages, each timed from the
# start of its SMTP transaction, and from its 250/QUIT, to the moment smtp-sink counts it
# (the anchor's `latency`), and from its 250 by a probe that polls without forking. Then
# the relay alone: N messages queued with `smtpctl pause mta`, timed from `resume mta`
# until smtp-sink has counted them all (end to end is bound by acceptance when the
# relay keeps up).
#
# Usage (as root): bench/relay-vs-opensmtpd.sh [N]
# Prints msg/s end to end for both, the ratio ours / OpenSMTPD, the latency medians and
# the drain rates (issue 6 targets: >= 1,500 msg/s, a relayed message at the sink <= 20 ms
# after its acceptance; OpenSMTPD here: about 15 msg/s and 985 ms). About 14 minutes,
# nearly all of it OpenSMTPD's drain.
#
# Environment:
#   N=5000            messages per throughput run (the first argument wins)
#   OPENSMTPD_N=$N    messages for OpenSMTPD's run (it drains ~15 msg/s: 5,000 take ~6 min)
#   SESSIONS=20 CONN=reuse   inbound load: smtp-source sessions; reuse = all of a session's
#                     messages over one connection (smtp-source -d), new = one per message
#   REPS=1            repetitions of each throughput run (the anchor prints medians)
#   LAT_N=20          latency samples per side
#   SIDES="opensmtpd ours"   which servers to measure
#   SMTPD             our binary (default: built here, release, into ${CARGO_TARGET_DIR:-target})
#   SMTPCTL           its control client (default: smtpctl beside SMTPD, built if missing)
#   DRAIN_N=$N  OPENSMTPD_DRAIN_N=1000   messages of the drain run (0: skip it)
#   ANCHOR            default /work/shared/bench/anchor-opensmtpd.sh
#   RESULTS_DIR       where the anchor's raw and summary files go (default: a new /tmp dir,
#                     kept and named at the end)
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
ANCHOR=${ANCHOR:-/work/shared/bench/anchor-opensmtpd.sh}
N=${1:-${N:-5000}}
OPENSMTPD_N=${OPENSMTPD_N:-$N}
SESSIONS=${SESSIONS:-20}
CONN=${CONN:-reuse}
SIDES=${SIDES:-opensmtpd ours}
export REPS=${REPS:-1} LAT_N=${LAT_N:-20}
export RESULTS_DIR=${RESULTS_DIR:-$(mktemp -d /tmp/relay-bench.XXXXXX)}
mkdir -p "$RESULTS_DIR"

[ "$(id -u)" = 0 ] || { echo "relay-vs-opensmtpd: run as root (the anchor needs it)" >&2; exit 2; }
[ -x "$ANCHOR" ] || { echo "relay-vs-opensmtpd: no anchor script at $ANCHOR" >&2; exit 2; }
target=${CARGO_TARGET_DIR:-target}
case "$target" in /*) ;; *) target="$HERE/$target" ;; esac
if [ -z "${SMTPD:-}" ]; then
    (cd "$HERE" && cargo build -q --release -p runtime-smol --bin smtpd)
    SMTPD="$target/release/smtpd"
fi
[ -x "$SMTPD" ] || { echo "relay-vs-opensmtpd: no binary at $SMTPD" >&2; exit 2; }
SMTPCTL=${SMTPCTL:-$(dirname "$SMTPD")/smtpctl}
if [ ! -x "$SMTPCTL" ]; then
    (cd "$HERE" && cargo build -q --release -p runtime-std --bin smtpctl)
    SMTPCTL="$target/release/smtpctl"
fi

# Our server for the anchor's harness (WORK, MAILDIR, SMTPD_PORT, SINK_PORT set by it):
# the anchor's OpenSMTPD configuration, in our words. benchuser@local.test (the latency
# run's local samples) goes to $MAILDIR as the user benchuser.
SERVER_CMD=$(cat <<CMD
cat > "\$WORK/ours.conf" <<CONF
smtp limit max-mails 100000
queue path "\$WORK/ours-queue"
listen on 127.0.0.1 port \$SMTPD_PORT
action "local" maildir "\$MAILDIR" virtual { "@" = "benchuser" }
action "r" relay host smtp://127.0.0.1:\$SINK_PORT
match from any for domain "relay.test" action "r"
match from any for domain "local.test" action "local"
CONF
exec "$SMTPD" -d -s "\$WORK/ours.sock" -f "\$WORK/ours.conf"
CMD
)

export TARGETS=relay SIZES=1024

# A finer probe of acceptance -> sink than the anchor's (whose polling forks a pipeline
# per look at the counter): one message at a time over SMTP, timed from the 250 that
# accepts it to the moment smtp-sink's counter (the anchor's $SINKLOG) passes it,
# polled every 0.5 ms without forking. Prints one line: n= median_ms= p90_ms= max_ms=.
PROBE="$RESULTS_DIR/latency-probe.py"
cat >"$PROBE" <<'PY'
import os, re, smtplib, sys, time
sinklog, port, n = os.environ["SINKLOG"], int(os.environ["SMTPD_PORT"]), int(sys.argv[1])
def count():
    try:
        with open(sinklog, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 256))
            found = re.findall(rb"mesg=(\d+)", f.read())
    except OSError:
        return 0
    return int(found[-1]) if found else 0
body = ("From: bench@local.test\r\nTo: benchuser@relay.test\r\nSubject: latency\r\n\r\n"
        + ("x" * 70 + "\r\n") * 14)
lags = []
for i in range(n):
    base = count()
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.ehlo("probe.test")
        smtp.sendmail("bench@local.test", ["benchuser@relay.test"], body)
        accepted = time.monotonic()
        while count() <= base and time.monotonic() < accepted + 20:
            time.sleep(0.0005)
        lags.append(1000 * (time.monotonic() - accepted))
    time.sleep(0.05)
lags.sort()
pick = lambda q: lags[min(len(lags) - 1, int(q * len(lags)))]
print("n=%d median_ms=%.1f p90_ms=%.1f max_ms=%.1f" % (n, pick(0.5), pick(0.9), lags[-1]))
PY

# The relay alone: with the MTA paused (`smtpctl pause mta`), N messages are queued
# (smtp-load.sh, reused connections), then `resume mta` and the time until smtp-sink has
# counted all of them. Args: N SMTPCTL [SOCKET-NAME in $WORK]; prints one line:
# drain_n= landed= drain_s= drain_mps=.
DRAIN="$RESULTS_DIR/drain.sh"
cat >"$DRAIN" <<'SH'
set -euo pipefail
n=$1 ctl=("$2")
[ -z "${3:-}" ] || ctl+=(-s "$WORK/$3")
count() { local c; c=$(tail -c 256 "$SINKLOG" 2>/dev/null | tr '\r' '\n' | grep -o 'mesg=[0-9]*' | tail -n1 | cut -d= -f2 || true); echo "${c:-0}"; }
"${ctl[@]}" pause mta >/dev/null
REUSE_CONN=1 "$LOAD" 127.0.0.1 "$SMTPD_PORT" "$n" "$SESSIONS" 1024 relay.test >/dev/null
sleep 1
base=$(count)
t0=$(date +%s.%N)
"${ctl[@]}" resume mta >/dev/null
deadline=$((SECONDS + 1800))
while [ "$(count)" -lt $((base + n)) ] && [ $SECONDS -lt $deadline ]; do sleep 0.02; done
t1=$(date +%s.%N)
awk -v n="$n" -v got=$(($(count) - base)) -v a="$t0" -v b="$t1" \
    'BEGIN{printf "drain_n=%d landed=%d drain_s=%.3f drain_mps=%.1f\n", n, got, b-a, got/(b-a)}'
SH
export LOAD=${LOAD:-$(dirname "$ANCHOR")/smtp-load.sh} SESSIONS
DRAIN_N=${DRAIN_N:-$N}
OPENSMTPD_DRAIN_N=${OPENSMTPD_DRAIN_N:-1000}

# side TAG N DRAIN_N SMTPCTL [SOCKET-NAME]: throughput, latency and drain of one server, through the
# anchor (SERVER_CMD in the environment, empty for OpenSMTPD).
side() {
    local tag=$1 n=$2 dn=$3
    shift 3
    echo "== $tag: relay $n x 1 KiB to smtp-sink ($SESSIONS sessions, conn=$CONN, reps=$REPS)"
    TAG=$tag RELAY_MATRIX="$n:$SESSIONS:$CONN" "$ANCHOR" bench
    echo "== $tag: latency of a single message ($LAT_N samples)"
    TAG=$tag "$ANCHOR" latency
    echo "== $tag: acceptance (250) -> sink, probe ($LAT_N samples)"
    TAG=$tag "$ANCHOR" run /usr/bin/python3 "$PROBE" "$LAT_N" | tee "$RESULTS_DIR/$tag-probe.txt"
    if [ "$dn" -gt 0 ]; then
        echo "== $tag: drain of $dn queued messages (mta paused, then resumed)"
        TAG=$tag "$ANCHOR" run bash "$DRAIN" "$dn" "$@" | tee "$RESULTS_DIR/$tag-drain.txt"
    fi
}

case " $SIDES " in *" opensmtpd "*)
    SERVER_CMD= side opensmtpd "$OPENSMTPD_N" "$OPENSMTPD_DRAIN_N" /usr/sbin/smtpctl ;;
esac
case " $SIDES " in *" ours "*)
    SERVER_CMD=$SERVER_CMD side ours-smtpd "$N" "$DRAIN_N" "$SMTPCTL" ours.sock ;;
esac

# ---- summary from the anchor's files (newest of each kind)
newest() { ls -t "$RESULTS_DIR"/$1 2>/dev/null | head -n1; }
# e2e msg/s: column 7 of the relay row of a bench summary (| target | msgs | ... | e2e msg/s |)
mps() {
    local f; f=$(newest "$1-bench-*.md")
    [ -n "$f" ] && awk -F'|' '$2 ~ /relay/ {gsub(/ /, "", $8); print $8; exit}' "$f"
}
# latency medians in ms of the relay samples: column 4 (transaction start -> at the sink),
# column 5 (after QUIT -> at the sink)
lat() {
    local f; f=$(newest "$1-latency-*.tsv")
    [ -n "$f" ] || return 0
    awk -F'\t' -v c="$2" 'NR>1 && $1=="relay" {print $c}' "$f" | sort -g |
        awk '{a[NR]=$1} END{if (NR) printf "%.1f", 1000*(NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'
}
theirs=$(mps opensmtpd || true)
ours=$(mps ours-smtpd || true)
echo
echo "== relay to smtp-sink, end to end (1 KiB, $SESSIONS sessions, conn=$CONN)"
printf '%-12s %10s msg/s   (%s msgs)\n' OpenSMTPD "${theirs:--}" "$OPENSMTPD_N" ours "${ours:--}" "$N"
if [ -n "$theirs" ] && [ -n "$ours" ]; then
    awk -v a="$ours" -v b="$theirs" 'BEGIN{ if (b > 0) printf "ratio ours/OpenSMTPD: %.1f\n", a/b }'
fi
echo "== one relayed message, medians in ms: SMTP transaction start -> counted by the sink /"
echo "   250 and QUIT -> counted by the sink (the latter is acceptance -> sink; both include"
echo "   the harness's polling of smtp-sink's counter, a few ms)"
printf '%-12s %8s ms / %8s ms\n' OpenSMTPD "$(lat opensmtpd 4)" "$(lat opensmtpd 5)" \
    ours "$(lat ours-smtpd 4)" "$(lat ours-smtpd 5)"
last() { [ -f "$RESULTS_DIR/$1" ] && tail -n1 "$RESULTS_DIR/$1" || echo -; }
echo "== one relayed message, the probe: 250 -> counted by the sink"
printf '%-12s %s\n' OpenSMTPD "$(last opensmtpd-probe.txt)" ours "$(last ours-smtpd-probe.txt)"
echo "== the relay alone: queued with the MTA paused, then drained to smtp-sink"
printf '%-12s %s\n' OpenSMTPD "$(last opensmtpd-drain.txt)" ours "$(last ours-smtpd-drain.txt)"
echo "(target: ours >= 1500 msg/s, <= 20 ms; raw files in $RESULTS_DIR)"
