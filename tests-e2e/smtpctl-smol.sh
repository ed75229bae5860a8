#!/usr/bin/env bash
# smtpctl against smtpd (the smol runtime): the checks of lib/smtpctl.bash, as
# smtpctl-std.sh runs them against smtpd-std.
#
# SMTPD: the daemon to test; SMTPCTL: the client (default: both built here, release
# profile, into ${CARGO_TARGET_DIR:-target}).
set -euo pipefail
. "$(dirname "$0")/lib/server.bash"
. "$(dirname "$0")/lib/smtpctl.bash"

build_smol_server
SMTPD_STD="$SMTPD"
run_smtpctl_suite
echo "smtpctl-smol: all passed"
