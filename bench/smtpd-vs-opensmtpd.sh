#!/usr/bin/env bash
# smtpd-vs-opensmtpd.sh — by hand, not in CI: measures smtpd-std and OpenSMTPD 6.8 with the
# same harness (../shared/bench/anchor-opensmtpd.sh, Postfix smtp-source) in one run on
# the same machine, local delivery into a maildir, and prints both sets of figures.
#
# Usage (as root): bench/smtpd-vs-opensmtpd.sh
# Environment: ANCHOR (path of anchor-opensmtpd.sh, default /work/shared/bench/...),
# SMTPD_STD (our binary, default: built here with --release), REPS, SIZES, MATRIX as the
# anchor script takes them; SIDES="opensmtpd ours" (default both) picks the servers.
# Relaying is not built into smtpd-std yet, so only the
# `local` target is measured (TARGETS=local).
#
# Note beside the figures: our spool fsyncs message and envelopes (and shares the fsync of
# the queue directory between concurrent commits) before it answers 250; OpenSMTPD 6.8
# does not fsync its queue before 250.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
ANCHOR=${ANCHOR:-/work/shared/bench/anchor-opensmtpd.sh}
if [ -z "${SMTPD_STD:-}" ]; then
    (cd "$HERE" && cargo build -q --release -p runtime-std --bin smtpd-std)
    target=${CARGO_TARGET_DIR:-target}
    case "$target" in /*) ;; *) target="$HERE/$target" ;; esac
    SMTPD_STD="$target/release/smtpd-std"
fi
export TARGETS=${TARGETS:-local}

# Our server for the anchor's harness: WORK, MAILDIR, SMTPD_PORT are set by it;
# benchuser@local.test goes into $MAILDIR as the user benchuser.
SERVER_CMD=$(cat <<CMD
cat > "\$WORK/ours.conf" <<CONF
smtp limit max-mails 100000
queue path "\$WORK/ours-queue"
listen on 127.0.0.1 port \$SMTPD_PORT
action "bench" maildir "\$MAILDIR" virtual { "@" = "benchuser" }
match from any for domain "local.test" action "bench"
CONF
exec "$SMTPD_STD" -d -f "\$WORK/ours.conf"
CMD
)

SIDES=${SIDES:-opensmtpd ours}
case " $SIDES " in *" opensmtpd "*)
    echo "== OpenSMTPD 6.8 (no fsync before 250)"
    "$ANCHOR" bench
    echo ;;
esac
case " $SIDES " in *" ours "*)
    echo "== smtpd-std (fsync before 250, group commit)"
    SERVER_CMD="$SERVER_CMD" TAG=smtpd-std "$ANCHOR" bench ;;
esac
