#!/usr/bin/env bash
# smtpd (the smol runtime) TLS and AUTH: STARTTLS, tls-require, smtps, AUTH PLAIN and
# LOGIN over TLS only with the failure delay and 421 at the third failure, STARTTLS
# injection discarded, swaks --tls: the checks of smtpd-std-tls-auth.sh run against the
# `smtpd` binary (that script takes its binary from SMTPD_STD).
#
# SMTPD: the binary to test (default: built here, release profile, into
# ${CARGO_TARGET_DIR:-target}).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/tests-e2e/lib/server.bash"
build_smol_server
SMTPD_STD="$SMTPD" bash "$ROOT/tests-e2e/smtpd-std-tls-auth.sh"
echo "smtpd-smol-tls-auth: all passed"
