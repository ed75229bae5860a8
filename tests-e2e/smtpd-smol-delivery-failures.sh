#!/usr/bin/env bash
# smtpd (the smol runtime) delivery failures: an mda's temporary failure is retried, a
# permanent one bounces as an RFC 3464 report: the checks of smtpd-std-delivery-
# failures.sh run against the `smtpd` binary (that script takes its binary from
# SMTPD_STD).
#
# SMTPD: the binary to test (default: built here, release profile, into
# ${CARGO_TARGET_DIR:-target}).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/tests-e2e/lib/server.bash"
build_smol_server
SMTPD_STD="$SMTPD" bash "$ROOT/tests-e2e/smtpd-std-delivery-failures.sh"
echo "smtpd-smol-delivery-failures: all passed"
