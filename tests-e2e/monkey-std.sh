#!/usr/bin/env bash
# Monkey mode end to end on smtpd-std (the thread-per-connection runtime): the checks of
# monkey-smol.sh, which takes its daemon from SMTPD.
#
# SMTPD_STD: the binary to test (default: built here, release profile, into
# ${CARGO_TARGET_DIR:-target}).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${SMTPD_STD:-}" ]; then
    (cd "$ROOT" && cargo build -q --release -p runtime-std --bin smtpd-std)
    target=${CARGO_TARGET_DIR:-target}
    case "$target" in /*) ;; *) target="$ROOT/$target" ;; esac
    SMTPD_STD="$target/release/smtpd-std"
fi
[ -x "$SMTPD_STD" ] || { echo "no binary at $SMTPD_STD" >&2; exit 1; }
SMTPD="$SMTPD_STD" bash "$ROOT/tests-e2e/monkey-smol.sh"
echo "monkey-std: all passed"
