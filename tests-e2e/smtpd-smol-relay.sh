#!/usr/bin/env bash
# smtpd (the smol runtime) relaying (the engine host's relay deliveries: relay host, MX
# choice and failover, deferral, partial 550 bounce, TLS and AUTH to the next hop): the
# checks of smtpd-std-relay.sh run against the `smtpd` binary (that script takes its
# binary from SMTPD_STD).
#
# SMTPD: the binary to test (default: built here, release profile, into
# ${CARGO_TARGET_DIR:-target}).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/tests-e2e/lib/server.bash"
build_smol_server
SMTPD_STD="$SMTPD" bash "$ROOT/tests-e2e/smtpd-std-relay.sh"
echo "smtpd-smol-relay: all passed"
