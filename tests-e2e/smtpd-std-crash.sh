#!/usr/bin/env bash
# smtpd-std crash safety: while a load generator (Python threads) sends, the daemon is
# killed with SIGKILL several times and restarted. Afterwards every message that was
# answered 250 is delivered (counted by a unique header), and no message in a maildir's
# new/ is partial (tmp/ leftovers are allowed by the maildir convention).
set -euo pipefail
. "$(dirname "$0")/lib/server.bash"
. "$(dirname "$0")/lib/config.bash"

KILLS=${KILLS:-4}
build_server
make_test_dir
PORT=$(free_port)
write_config "$TEST_DIR/smtpd.conf"
start_server "$TEST_DIR/smtpd.conf"

python3 "$E2E_LIB/smtp_e2e.py" load "$PORT" "$TEST_DIR/acked" "$TEST_DIR/stop" &
LOAD_PID=$!
stop_load() {
    touch "$TEST_DIR/stop"
    wait "$LOAD_PID" 2>/dev/null || true
}
trap 'stop_load; cleanup' EXIT

for i in $(seq 1 "$KILLS"); do
    sleep "1.$((RANDOM % 10))"
    kill -KILL "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
    echo "killed the daemon ($i/$KILLS) with $(wc -l <"$TEST_DIR/acked") messages acknowledged"
    start_server "$TEST_DIR/smtpd.conf"
done
sleep 1
stop_load
[ "$(wc -l <"$TEST_DIR/acked")" -gt 0 ] || fail "the load generator got no 250 at all"
python3 "$E2E_LIB/smtp_e2e.py" check-crash "$TEST_DIR/mail" "$TEST_DIR/acked" || fail "crash check"
grep -q "discarded incomplete message\|envelopes reloaded" "$TEST_DIR/server.log" \
    || fail "no recovery logged"
echo "smtpd-std-crash: all passed"
