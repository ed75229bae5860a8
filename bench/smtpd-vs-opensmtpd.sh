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
RESULTS=$(mktemp -d /tmp/smtpd-vs-opensmtpd.XXXXXX)
trap 'rm -rf "$RESULTS"' EXIT
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

for side in $SIDES; do
    case $side in
        opensmtpd)
            echo "== OpenSMTPD 6.8 (no fsync before 250)"
            RESULTS_DIR="$RESULTS" TAG=opensmtpd "$ANCHOR" bench ;;
        smtpd-std)
            echo "== smtpd-std (fsync before 250, group commit)"
            SERVER_CMD=$(server_cmd "$SMTPD_STD") RESULTS_DIR="$RESULTS" TAG=smtpd-std "$ANCHOR" bench ;;
        smtpd)
            echo "== smtpd, smol (fsync before 250, group commit)"
            SERVER_CMD=$(server_cmd "$SMTPD") RESULTS_DIR="$RESULTS" TAG=smtpd "$ANCHOR" bench ;;
        *) echo "unknown side $side" >&2; exit 2 ;;
    esac
    echo
done

# One table: for every workload, each server's end-to-end figure and its ratio to
# OpenSMTPD's (accepted msg/s in parentheses).
summary() { ls "$RESULTS/$1"-bench-*.md 2>/dev/null | head -n1; }
figure() { # figure SIDE MSGS SESS CONN SIZE -> "e2e accept"
    local file; file=$(summary "$1")
    [ -n "$file" ] || { echo "- -"; return; }
    awk -F'|' -v m="$2" -v s="$3" -v c="$4" -v z="$5" '
        { for (i = 1; i <= NF; i++) gsub(/^ +| +$/, "", $i) }
        $3 == m && $4 == s && $5 == c && $6 == z { print $8, $7; found = 1 }
        END { if (!found) print "- -" }' "$file"
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
