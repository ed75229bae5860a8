#!/usr/bin/env bash
# smtpctl against smtpd (the smol runtime): the checks of lib/smtpctl.bash, as
# smtpctl-std.sh runs them against smtpd-std.
#
# SMTPD: the daemon to test; SMTPCTL: the client (default: both built here, release
# profile, into ${CARGO_TARGET_DIR:-target}).
set -euo pipefail
. "$(dirname "$0")/lib/server.bash"
. "$(dirname "$0")/lib/smtpctl.bash"

if [ -z "${SMTPD:-}" ]; then
    (cd "$E2E_ROOT" && cargo build -q --release -p runtime-smol --bin smtpd)
    target=${CARGO_TARGET_DIR:-target}
    case "$target" in /*) ;; *) target="$E2E_ROOT/$target" ;; esac
    SMTPD="$target/release/smtpd"
fi
[ -x "$SMTPD" ] || { echo "no binary at $SMTPD" >&2; exit 1; }
SMTPD_STD="$SMTPD"
run_smtpctl_suite
echo "smtpctl-smol: all passed"
