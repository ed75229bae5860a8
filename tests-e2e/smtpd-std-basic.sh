#!/usr/bin/env bash
# smtpd-std end to end, with Python's smtplib, raw pipelined commands and swaks: one
# message arrives byte-exact (apart from the Received: header the server adds) in the
# maildir; one message to 60 recipients; dot-stuffed lines and an 8-bit body; pipelined
# commands; 20 concurrent sessions; a mail loop refused; a 30 MB message; then SIGTERM: an
# idle session gets 421 and the daemon exits 0.
set -euo pipefail
. "$(dirname "$0")/lib/server.bash"
. "$(dirname "$0")/lib/config.bash"

build_server
make_test_dir
PORT=$(free_port)
write_config "$TEST_DIR/smtpd.conf"
start_server "$TEST_DIR/smtpd.conf"

python3 "$E2E_LIB/smtp_e2e.py" basic "$PORT" "$TEST_DIR/mail" || fail "smtplib checks"

swaks --silent 2 --pipeline --server "127.0.0.1:$PORT" --from sender@example.org \
    --to swaks@example.org --header "Subject: swaks" --body "sent by swaks" \
    || fail "swaks"
python3 "$E2E_LIB/smtp_e2e.py" wait-files "$TEST_DIR/mail" swaks@example.org 1 20 \
    || fail "swaks message not delivered"
echo "ok: swaks with --pipeline"

# An idle session, then SIGTERM: it must read 421 and the daemon must exit 0.
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
read -r -t 5 greeting <&3
case "$greeting" in 220*) ;; *) fail "greeting: $greeting" ;; esac
kill -TERM "$SERVER_PID"
read -r -t 10 goodbye <&3 || true
case "$goodbye" in 421*) ;; *) fail "expected 421 at shutdown, got: $goodbye" ;; esac
exec 3<&-
status=0
wait "$SERVER_PID" || status=$?
SERVER_PID=
[ "$status" = 0 ] || fail "daemon exited with status $status after SIGTERM"
echo "ok: SIGTERM gives 421 to an idle session and exit status 0"
echo "smtpd-std-basic: all passed"
