#!/usr/bin/env bash
# The smol daemon relays to Postfix's smtp-sink as its `relay host` (issue 6): N messages
# submitted by Postfix's smtp-source over several sessions all arrive, once each, as
# smtp-sink counts them (`-c`: "mesg=N" in its output). Postfix's package is unpacked,
# not installed (it conflicts with opensmtpd), on first use.
# N (default 500) and SESSIONS (default 4) size the load.
set -euo pipefail
. "$(dirname "$0")/lib/relay.bash"

N=${N:-500}
SESSIONS=${SESSIONS:-4}
postfix_tools
relay_setup
PORT=$(free_port)
SINKPORT=$(free_port)

user=()
[ "$(id -u)" = 0 ] && user=(-u nobody)   # smtp-sink drops root after binding
# Started directly (not through a shell function) so that $! is smtp-sink's own pid.
LD_LIBRARY_PATH="$POSTFIX_TOOLS/usr/lib/postfix" "$SMTP_SINK" "${user[@]}" -c "127.0.0.1:$SINKPORT" 100 \
    >"$TEST_DIR/sink.out" 2>"$TEST_DIR/sink.err" &
HELPER_PIDS+=($!)
wait_listen 127.0.0.1 "$SINKPORT"

cat >"$TEST_DIR/smtpd.conf" <<EOF
smtp limit max-mails 100000
queue path "$TEST_DIR/queue"
listen on 127.0.0.1 port $PORT
action "sink" relay host smtp://127.0.0.1:$SINKPORT
match from any for domain "sink.test" action "sink"
EOF
start_server_with "$TEST_DIR/smtpd.conf" -s "$TEST_DIR/smtpd.sock"

# The last "mesg=N" of smtp-sink's running counter (it rewrites its line with CR).
sink_mesg() {
    local n
    n=$(tr '\r' '\n' <"$TEST_DIR/sink.out" | grep -o 'mesg=[0-9]*' | tail -n1 | cut -d= -f2 || true)
    echo "${n:-0}"
}

postfix_run "$SMTP_SOURCE" -d -s "$SESSIONS" -m "$N" -l 1024 -M client.test \
    -f sender@origin.test -t rcpt@sink.test "127.0.0.1:$PORT" 2>"$TEST_DIR/source.err" ||
    fail "smtp-source: $(head -n3 "$TEST_DIR/source.err")"
[ -s "$TEST_DIR/source.err" ] && fail "smtp-source reported errors: $(head -n3 "$TEST_DIR/source.err")"

deadline=$((SECONDS + 40))
until [ "$(sink_mesg)" -ge "$N" ]; do
    [ $SECONDS -lt $deadline ] || fail "smtp-sink counted $(sink_mesg) of $N messages"
    sleep 0.1
done
sleep 1   # a duplicate would be counted by now
got=$(sink_mesg)
[ "$got" = "$N" ] || fail "smtp-sink counted $got messages, wanted $N (duplicates)"
grep -q 'PermFail\|TempFail' "$TEST_DIR/server.log" && fail "the log shows failed deliveries"
echo "ok: $N messages relayed to smtp-sink, each once"

echo "relay-smtp-sink: all passed"
