#!/usr/bin/env bash
# smtpd-std relaying end to end, everything on 127.0.0.x: aiosmtpd sinks (one per
# exchanger address, all on the same port, which `mta mx-port` names) and dnsmasq as the
# name server of `mta resolver` (which also allows exchangers on loopback).
#  1. `relay host smtp://127.0.0.1:PORT`: messages arrive byte-exact apart from the
#     Received: header, over one reused session;
#  2. two MXs of equal preference: 20 messages, both receive some;
#  3. one of two MXs down: all 20 through the other;
#  4. every MX down: the envelope is deferred (temporary failure, still queued);
#  5. a 550 to one of two recipients: the other is delivered, and a bounce for the
#     refused one only goes back to the sender (through the sender domain's MX);
#  6. TLS, with a self-signed sink certificate: opportunistic STARTTLS is used,
#     `relay tls no-verify` delivers, `relay tls` (verify) defers, and `relay host
#     smtps://` speaks TLS from the first byte;
#  7. AUTH to a smarthost that requires it: `relay host smtp+tls://LABEL@host auth
#     <table>` authenticates with the table's user:password for LABEL.
set -euo pipefail
. "$(dirname "$0")/lib/server.bash"

# The system python3 has aiosmtpd (python3-aiosmtpd).
SINK_PYTHON=${SINK_PYTHON:-/usr/bin/python3}
RELAY_PY="$E2E_LIB/relay_e2e.py"
HELPER_PIDS=()

relay_cleanup() {
    for pid in "${HELPER_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    cleanup
}

build_server
make_test_dir
trap relay_cleanup EXIT
PORT=$(free_port)
MXPORT=$(free_port)
DNSPORT=$(free_port)

SMTPSPORT=$(free_port)
AUTHPORT=$(free_port)
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=mx4.example.test \
    -keyout "$TEST_DIR/sink.key" -out "$TEST_DIR/sink.crt" 2>/dev/null

for ip in 127.0.0.1 127.0.0.2 127.0.0.3; do
    "$SINK_PYTHON" "$RELAY_PY" sink "$ip" "$MXPORT" "$TEST_DIR/sink-$ip" \
        >>"$TEST_DIR/sink-$ip.log" 2>&1 &
    HELPER_PIDS+=($!)
done
"$SINK_PYTHON" "$RELAY_PY" sink 127.0.0.4 "$MXPORT" "$TEST_DIR/sink-127.0.0.4" \
    "$TEST_DIR/sink.crt" "$TEST_DIR/sink.key" >>"$TEST_DIR/sink-127.0.0.4.log" 2>&1 &
HELPER_PIDS+=($!)
"$SINK_PYTHON" "$RELAY_PY" sink 127.0.0.4 "$SMTPSPORT" "$TEST_DIR/sink-smtps" \
    "$TEST_DIR/sink.crt" "$TEST_DIR/sink.key" smtps >>"$TEST_DIR/sink-smtps.log" 2>&1 &
HELPER_PIDS+=($!)
"$SINK_PYTHON" "$RELAY_PY" sink 127.0.0.4 "$AUTHPORT" "$TEST_DIR/sink-auth" \
    "$TEST_DIR/sink.crt" "$TEST_DIR/sink.key" auth >>"$TEST_DIR/sink-auth.log" 2>&1 &
HELPER_PIDS+=($!)

# 127.0.0.5 and 127.0.0.6 have no listener: connections there are refused.
dnsmasq --no-daemon --conf-file=/dev/null --no-resolv --no-hosts --bind-interfaces \
    --listen-address=127.0.0.1 --port="$DNSPORT" --pid-file="$TEST_DIR/dnsmasq.pid" \
    --local=/test/ \
    --mx-host=example.test,mx1.example.test,10 --mx-host=example.test,mx2.example.test,10 \
    --mx-host=half.test,mx1.example.test,10 --mx-host=half.test,dead1.example.test,10 \
    --mx-host=dead.test,dead1.example.test,10 --mx-host=dead.test,dead2.example.test,20 \
    --mx-host=origin.test,mx1.example.test,10 \
    --mx-host=tls.test,mx4.example.test,10 --mx-host=verify.test,mx4.example.test,10 \
    --mx-host=noverify.test,mx4.example.test,10 --host-record=mx4.example.test,127.0.0.4 \
    --host-record=mx1.example.test,127.0.0.2 --host-record=mx2.example.test,127.0.0.3 \
    --host-record=dead1.example.test,127.0.0.5 --host-record=dead2.example.test,127.0.0.6 \
    >>"$TEST_DIR/dnsmasq.log" 2>&1 &
HELPER_PIDS+=($!)
python3 "$RELAY_PY" wait-dns "$DNSPORT" || fail "dnsmasq did not start: $(cat "$TEST_DIR/dnsmasq.log")"

cat >"$TEST_DIR/smtpd.conf" <<EOF
queue path "$TEST_DIR/queue"
listen on 127.0.0.1 port $PORT
mta resolver "127.0.0.1:$DNSPORT"
mta mx-port $MXPORT
action "smarthost" relay host smtp://127.0.0.1:$MXPORT
action "mx" relay
action "mx-verify" relay tls
action "mx-noverify" relay tls no-verify
action "smtps" relay host smtps://127.0.0.4:$SMTPSPORT tls no-verify
table secrets { "sink" = "relayuser:relaysecret" }
action "auth" relay host smtp+tls://sink@127.0.0.4:$AUTHPORT auth <secrets> tls no-verify
match from any for domain auth.test action "auth"
match from any for domain smarthost.test action "smarthost"
match from any for domain verify.test action "mx-verify"
match from any for domain noverify.test action "mx-noverify"
match from any for domain smtps.test action "smtps"
match from any for any action "mx"
EOF
start_server "$TEST_DIR/smtpd.conf"
for ip in 127.0.0.1 127.0.0.2 127.0.0.3; do
    python3 -c "import socket,sys; socket.create_connection(('$ip', $MXPORT), timeout=5).close()" \
        2>/dev/null || sleep 1
done

count() { ls "$TEST_DIR/sink-$1" 2>/dev/null | grep -c '\.eml$' || true; }

# 1. Explicit relay host.
python3 "$RELAY_PY" send "$PORT" a@origin.test b@smarthost.test 5 || fail "submission (1)"
python3 "$RELAY_PY" wait-count "$TEST_DIR/sink-127.0.0.1" 5 20 || fail "relay host: not delivered"
python3 "$RELAY_PY" check-exact "$TEST_DIR/sink-127.0.0.1" a@origin.test b@smarthost.test \
    || fail "relay host: message differs"
echo "ok: relay host: 5 messages arrive byte-exact apart from Received:"

# 2. Two MXs of equal preference, four senders at once.
senders=()
for n in 1 2 3 4; do
    python3 "$RELAY_PY" send "$PORT" a@origin.test "user$n@example.test" 5 &
    senders+=($!)
done
for pid in "${senders[@]}"; do wait "$pid" || fail "submission (2)"; done
deadline=$((SECONDS + 30))
while [ $(($(count 127.0.0.2) + $(count 127.0.0.3))) -lt 20 ] && [ $SECONDS -lt $deadline ]; do
    sleep 0.2
done
two=$(count 127.0.0.2)
three=$(count 127.0.0.3)
[ $((two + three)) = 20 ] || fail "equal MXs: $two + $three messages, wanted 20"
[ "$two" -gt 0 ] && [ "$three" -gt 0 ] || fail "equal MXs: one got none ($two, $three)"
echo "ok: two equal MXs: 20 messages spread $two / $three"

# 3. One MX of two down.
python3 "$RELAY_PY" send "$PORT" a@origin.test c@half.test 20 || fail "submission (3)"
python3 "$RELAY_PY" wait-count "$TEST_DIR/sink-127.0.0.2" $((two + 20)) 30 \
    || fail "one MX down: not all delivered through the other"
[ "$(count 127.0.0.3)" = "$three" ] || fail "one MX down: mail went to the wrong sink"
echo "ok: one MX down: 20 messages through the other"

# 4. Every MX down: deferred, still queued.
python3 "$RELAY_PY" send "$PORT" a@origin.test d@dead.test 1 || fail "submission (4)"
deadline=$((SECONDS + 30))
until grep -q 'TempFail.*to=<d@dead.test>' "$TEST_DIR/server.log"; do
    [ $SECONDS -lt $deadline ] || fail "all MXs down: no temporary failure logged"
    sleep 0.2
done
grep -q 'PermFail.*to=<d@dead.test>' "$TEST_DIR/server.log" && fail "all MXs down: bounced"
grep -rqs 'd@dead.test' "$TEST_DIR/queue" || fail "all MXs down: envelope not in the queue"
echo "ok: every MX down: deferred"

# 5. A 550 to one recipient.
before=$(count 127.0.0.2)
python3 "$RELAY_PY" send "$PORT" a@origin.test refuse1@half.test,ok1@half.test 1 \
    || fail "submission (5)"
python3 "$RELAY_PY" wait-count "$TEST_DIR/sink-127.0.0.2" $((before + 2)) 30 \
    || fail "550: the message or the bounce did not arrive"
grep -l '^to ok1@half.test$' "$TEST_DIR"/sink-127.0.0.2/*.env >/dev/null \
    || fail "550: ok1 not delivered"
grep -l '^to refuse1@half.test$' "$TEST_DIR"/sink-127.0.0.2/*.env >/dev/null \
    && fail "550: refuse1 delivered"
bounce=$(grep -l '^from <>$' "$TEST_DIR"/sink-127.0.0.2/*.env | head -1 || true)
[ -n "$bounce" ] || fail "550: no bounce with a null sender"
grep -q '^to a@origin.test$' "$bounce" || fail "550: bounce not to the sender"
grep -q 'refuse1@half.test' "${bounce%.env}.eml" || fail "550: bounce does not name refuse1"
grep -q 'ok1@half.test' "${bounce%.env}.eml" && fail "550: bounce names ok1 too"
echo "ok: a 550 to one recipient bounces that recipient only"

# 6. TLS.
python3 "$RELAY_PY" send "$PORT" a@origin.test t@tls.test 1 || fail "submission (6)"
python3 "$RELAY_PY" send "$PORT" a@origin.test n@noverify.test 1 || fail "submission (6)"
python3 "$RELAY_PY" wait-count "$TEST_DIR/sink-127.0.0.4" 2 30 || fail "TLS: not delivered"
for rcpt in t@tls.test n@noverify.test; do
    env=$(grep -l "^to $rcpt\$" "$TEST_DIR"/sink-127.0.0.4/*.env || true)
    [ -n "$env" ] || fail "TLS: $rcpt not delivered"
    grep -q '^tls yes$' "$env" || fail "TLS: $rcpt delivered in plaintext"
done
grep -q 'smtp-out: Started TLS on session' "$TEST_DIR/server.log" || fail "TLS: not logged"
echo "ok: STARTTLS opportunistic and with tls no-verify"
python3 "$RELAY_PY" send "$PORT" a@origin.test s@smtps.test 1 || fail "submission (6)"
python3 "$RELAY_PY" wait-count "$TEST_DIR/sink-smtps" 1 30 || fail "smtps: not delivered"
grep -q '^tls yes$' "$TEST_DIR"/sink-smtps/*.env || fail "smtps: delivered in plaintext"
echo "ok: smtps relay host"
python3 "$RELAY_PY" send "$PORT" a@origin.test v@verify.test 1 || fail "submission (6)"
deadline=$((SECONDS + 30))
until grep -q 'TempFail.*to=<v@verify.test>' "$TEST_DIR/server.log"; do
    [ $SECONDS -lt $deadline ] || fail "tls verify: no temporary failure for a self-signed MX"
    sleep 0.2
done
grep -l '^to v@verify.test$' "$TEST_DIR"/sink-127.0.0.4/*.env >/dev/null \
    && fail "tls verify: delivered to a self-signed MX"
echo "ok: relay tls (verify) defers mail to a self-signed MX"

# 7. AUTH.
python3 "$RELAY_PY" send "$PORT" a@origin.test u@auth.test 1 || fail "submission (7)"
python3 "$RELAY_PY" wait-count "$TEST_DIR/sink-auth" 1 30 || fail "auth: not delivered"
grep -q '^auth relayuser$' "$TEST_DIR"/sink-auth/*.env || fail "auth: not authenticated"
echo "ok: AUTH with the credentials table to a smarthost"

echo "smtpd-std-relay: all passed"
