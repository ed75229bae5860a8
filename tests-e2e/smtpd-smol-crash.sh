#!/usr/bin/env bash
# smtpd (the smol runtime) crash safety: SIGKILL under load and restarts, every message
# answered 250 is delivered, none partial: the checks of smtpd-std-crash.sh run against
# the `smtpd` binary (that script takes its binary from SMTPD_STD).
#
# SMTPD: the binary to test (default: built here, release profile, into
# ${CARGO_TARGET_DIR:-target}).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/tests-e2e/lib/server.bash"
build_smol_server
SMTPD_STD="$SMTPD" bash "$ROOT/tests-e2e/smtpd-std-crash.sh"
echo "smtpd-smol-crash: all passed"
