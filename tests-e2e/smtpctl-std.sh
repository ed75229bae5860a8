#!/usr/bin/env bash
# smtpctl against smtpd-std (the blocking runtime): show queue/envelope/message,
# schedule, remove, pause|resume mda|smtp, sendmail -t and with recipients, update
# table, log verbose|brief, the privilege check, show stats and monitor; the checks are
# in lib/smtpctl.bash, shared with smtpctl-smol.sh.
#
# SMTPD_STD: the daemon to test; SMTPCTL: the client (default: both built here, release
# profile, into ${CARGO_TARGET_DIR:-target}).
set -euo pipefail
. "$(dirname "$0")/lib/server.bash"
. "$(dirname "$0")/lib/smtpctl.bash"

build_server
run_smtpctl_suite
echo "smtpctl-std: all passed"
