#!/usr/bin/env bash
# smtpd-vs-opensmtpd.sh — by hand, not in CI: measures our two daemons, `smtpd` (smol) and
# `smtpd-std` (a thread per connection), and OpenSMTPD 6.8 with the same harness
# (../shared/bench/anchor-opensmtpd.sh, Postfix smtp-source) in one run on the same
# machine, local delivery into a maildir, and prints every figure with its ratio to
# OpenSMTPD's.
#
# Usage (as root): bench/smtpd-vs-opensmtpd.sh
# Environment:
#   ANCHOR   path of anchor-opensmtpd.sh (default /work/shared/bench/anchor-opensmtpd.sh)
#   SMTPD, SMTPD_STD   our binaries (default: built here with --release)
#   SIDES    which servers, in order (default "opensmtpd smtpd-std smtpd")
#   MATRIX   msgs:sessions:conn entries, conn = new (a connection per message) or reuse
#            (default "1000:1:new 1000:1:reuse 2000:20:new 4000:20:reuse")
#   SIZES    body sizes in bytes (default "1024 102400")
#   REPS     repetitions, medians reported (default 3)
#   OUT      where the comparison table goes (default bench/results/compare-<stamp>.md)
# Relaying is measured by bench/relay-vs-opensmtpd.sh; here only the `local` target.
#
# Note beside the figures: our spool fsyncs message and envelopes and the queue directory
# (shared between concurrent commits) before it answers 250, and a maildir delivery is
# fsynced before it counts as delivered; OpenSMTPD 6.8 does not fsync its queue before 250.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
ANCHOR=${ANCHOR:-/work/shared/bench/anchor-opensmtpd.sh}
if [ -z "${SMTPD_STD:-}" ] || [ -z "${SMTPD:-}" ]; then
    (cd "$HERE" && cargo build -q --release -p runtime-std --bin smtpd-std -p runtime-smol --bin smtpd)
    target=${CARGO_TARGET_DIR:-target}
    case "$target" in /*) ;; *) target="$HERE/$target" ;; esac
    SMTPD_STD=${SMTPD_STD:-$target/release/smtpd-std}
    SMTPD=${SMTPD:-$target/release/smtpd}
fi
export TARGETS=local
export MATRIX=${MATRIX:-"1000:1:new 1000:1:reuse 2000:20:new 4000:20:reuse"}
export SIZES=${SIZES:-"1024 102400"}
export REPS=${REPS:-3}
SIDES=${SIDES:-opensmtpd smtpd-std smtpd}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
# Not under /tmp, which each measurement replaces (see measure below).
RESULTS=$(mktemp -d /var/tmp/smtpd-vs-opensmtpd.XXXXXX)
mkdir -p "$HERE/bench/results"
OUT=${OUT:-$HERE/bench/results/compare-$STAMP.md}

# Our server for the anchor's harness: WORK, MAILDIR, SMTPD_PORT are set by it;
# benchuser@local.test goes into $MAILDIR as the user benchuser.
server_cmd() {
    cat <<CMD
cat > "\$WORK/ours.conf" <<CONF
smtp limit max-mails 100000
queue path "\$WORK/ours-queue"
listen on 127.0.0.1 port \$SMTPD_PORT
action "bench" maildir "\$MAILDIR" virtual { "@" = "benchuser" }
match from any for domain "local.test" action "bench"
CONF
exec "$1" -d -f "\$WORK/ours.conf"
CMD
}

# Every measurement gets a fresh work area: the anchor works under /tmp, which is here
# bind-mounted (in a private mount namespace) from a new top-level directory, kept
# (KEEP_WORK=1) until every measurement is done. ext4 without a journal will not reuse an
# inode freed in the last minute or so, and every file creation scans past those: in
# /tmp, where test suites create and delete thousands of files, or in a block group where
# the previous measurement just deleted its maildir, each new file costs up to a
# millisecond, whoever the server is. So nothing is deleted while measuring. Each server
# gets the same treatment, and the repetitions of the servers alternate.
FRESH_DIRS=()
cleanup_fresh() { [ ${#FRESH_DIRS[@]} -eq 0 ] || rm -rf "${FRESH_DIRS[@]}"; rm -rf "$RESULTS"; }
trap cleanup_fresh EXIT
measure() { # SIDE MSGS:SESS:CONN SIZE -> one raw row appended to $RESULTS/SIDE.tsv
    local side=$1 ms=$2 z=$3 fresh out
    fresh=$(mktemp -d /smtpd-bench.XXXXXX)
    FRESH_DIRS+=("$fresh")
    chmod 1777 "$fresh"
    out="$RESULTS/run.$side"
    rm -rf "$out"; mkdir -p "$out"
    local cmd=()
    case $side in
        opensmtpd) ;;
        smtpd-std) cmd=(env "SERVER_CMD=$(server_cmd "$SMTPD_STD")") ;;
        smtpd) cmd=(env "SERVER_CMD=$(server_cmd "$SMTPD")") ;;
        *) echo "unknown side $side" >&2; rm -rf "$fresh"; exit 2 ;;
    esac
    KEEP_WORK=1 MATRIX=$ms SIZES=$z REPS=1 RESULTS_DIR="$out" TAG=$side \
        unshare --mount --propagation private \
        "${cmd[@]:-env}" sh -c 'mount --bind "$0" /tmp && exec "$1" bench' "$fresh" "$ANCHOR" \
        2>&1 | grep -E '^\[anchor .*(local m=|ERROR)' || true
    local raw; raw=$(ls "$out"/"$side"-bench-*.tsv 2>/dev/null | head -n1)
    if [ -n "$raw" ]; then
        [ -s "$RESULTS/$side.tsv" ] || head -n1 "$raw" > "$RESULTS/$side.tsv"
        tail -n +2 "$raw" >> "$RESULTS/$side.tsv"
    fi
}

for ms in $MATRIX; do
    for z in $SIZES; do
        for rep in $(seq "$REPS"); do
            for side in $SIDES; do
                echo "== $side $ms size=$z rep=$rep"
                measure "$side" "$ms" "$z"
            done
        done
    done
done

# The median end-to-end and accepted msg/s of SIDE for one workload: "e2e accept".
figure() { # figure SIDE MSGS SESS CONN SIZE
    local raw="$RESULTS/$1.tsv"
    [ -s "$raw" ] || { echo "- -"; return; }
    awk -F'\t' -v m="$2" -v s="$3" -v c="$4" -v z="$5" '
        NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
        $col["target"] == "local" && $col["msgs"] == m && $col["sessions"] == s &&
        $col["conn"] == c && $col["size"] == z {
            e[++n] = $col["e2e_mps"]; a[n] = $col["send_mps"]
        }
        function median(v, k,   i, j, t) {
            for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++)
                if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }
            return k % 2 ? v[(k + 1) / 2] : sprintf("%.1f", (v[k / 2] + v[k / 2 + 1]) / 2)
        }
        END { if (!n) print "- -"; else print median(e, n), median(a, n) }' "$raw"
}
{
    echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) cores, medians of $REPS, local delivery"
    echo "into a maildir, Postfix smtp-source; end-to-end msg/s (accepted msg/s), ratio to OpenSMTPD."
    echo "Our spool fsyncs before 250 (and a maildir delivery before it counts); OpenSMTPD's does not."
    echo
    header="| sessions | connections | body | "
    rule="|---|---|---|"
    for side in $SIDES; do header+="$side | "; rule+="---|"; done
    echo "$header"; echo "$rule"
    for ms in $MATRIX; do
        IFS=: read -r m s c <<<"$ms"
        for z in $SIZES; do
            line="| $s | $c | $((z / 1024)) KiB |"
            read -r base _ <<<"$(figure opensmtpd "$m" "$s" "$c" "$z")"
            for side in $SIDES; do
                read -r e2e accept <<<"$(figure "$side" "$m" "$s" "$c" "$z")"
                ratio=""
                if [ "$side" != opensmtpd ] && [ "$base" != - ] && [ "$e2e" != - ]; then
                    ratio=$(awk -v a="$e2e" -v b="$base" 'BEGIN{ if (b > 0) printf " = %.1fx", a / b }')
                fi
                line+=" $e2e ($accept)$ratio |"
            done
            echo "$line"
        done
    done
} > "$OUT"
echo "== comparison ($OUT)"
cat "$OUT"
