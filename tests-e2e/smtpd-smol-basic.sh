#!/usr/bin/env bash
# smtpd (the smol runtime) end to end: the checks of smtpd-std-basic.sh (a message
# byte-exact in the maildir, 60 recipients, dot-stuffing and 8-bit, pipelining, 20
# concurrent sessions, a mail loop refused, a 30 MB message, swaks, SIGTERM gives 421 and
# exit 0), run against the `smtpd` binary: that script takes its binary from SMTPD_STD.
#
# SMTPD: the binary to test (default: built here, release profile, into
# ${CARGO_TARGET_DIR:-target}).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/tests-e2e/lib/server.bash"
build_smol_server
SMTPD_STD="$SMTPD" bash "$ROOT/tests-e2e/smtpd-std-basic.sh"
echo "smtpd-smol-basic: all passed"
