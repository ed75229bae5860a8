#!/usr/bin/env bash
# Every MX down, then back (issue 6): the smol daemon defers the mail (a temporary
# failure, never a bounce), `smtpctl show queue` lists it, and once the sinks listen
# again `smtpctl schedule all` gets it delivered, byte-exact, once.
# dnsmasq serves away.test: mx1 (pref 10, 127.0.0.2) and mx2 (pref 20, 127.0.0.3), where
# nothing listens until step 3. The daemon's control socket is in the test directory.
set -euo pipefail
. "$(dirname "$0")/lib/relay.bash"

N=5
build_smtpctl
relay_setup
PORT=$(free_port)
MXPORT=$(free_port)
SOCK="$TEST_DIR/smtpd.sock"

start_dns \
    --mx-host=away.test,mx1.away.test,10 --mx-host=away.test,mx2.away.test,20 \
    --host-record=mx1.away.test,127.0.0.2 --host-record=mx2.away.test,127.0.0.3

cat >"$TEST_DIR/smtpd.conf" <<EOF
queue path "$TEST_DIR/queue"
listen on 127.0.0.1 port $PORT
mta resolver "127.0.0.1:$DNSPORT"
mta mx-port $MXPORT
action "mx" relay
match from any for any action "mx"
EOF
start_server_with "$TEST_DIR/smtpd.conf" -s "$SOCK"

ctl() { "$SMTPCTL" -s "$SOCK" "$@" 2>&1; }

# 1. Every MX down: each recipient fails temporarily, none is bounced.
rcpts=()
for i in $(seq "$N"); do rcpts+=("r$i@away.test"); done
python3 "$RELAY_PY" send "$PORT" a@origin.test "$(IFS=,; echo "${rcpts[*]}")" 1 ||
    fail "submission"
deadline=$((SECONDS + 30))
for r in "${rcpts[@]}"; do
    until grep -q "TempFail.*to=<$r>" "$TEST_DIR/server.log"; do
        [ $SECONDS -lt $deadline ] || fail "every MX down: no temporary failure logged for $r"
        sleep 0.1
    done
done
grep -q 'PermFail' "$TEST_DIR/server.log" && fail "every MX down: something bounced"
echo "ok: every MX down: $N recipients deferred"

# 2. The queue shows them (OpenSMTPD's format: id|...|sender|recipient|...).
queue=$(ctl show queue) || fail "smtpctl show queue: $queue"
for r in "${rcpts[@]}"; do
    grep -q "|$r|" <<<"$queue" || fail "show queue does not list $r:"$'\n'"$queue"
done
[ "$(grep -c '|a@origin.test|' <<<"$queue")" = "$N" ] ||
    fail "show queue lists other than $N envelopes:"$'\n'"$queue"
echo "ok: smtpctl show queue lists the $N deferred envelopes"

# 3. The sinks come back; schedule all delivers.
start_sink 127.0.0.2 "$MXPORT"
start_sink 127.0.0.3 "$MXPORT"
mark=$(wc -l <"$TEST_DIR/server.log")
out=$(ctl schedule all) || fail "smtpctl schedule all: $out"
sink1="$TEST_DIR/sink-127.0.0.2-$MXPORT"
sink2="$TEST_DIR/sink-127.0.0.3-$MXPORT"
deadline=$((SECONDS + 30))
# The "to" lines of every envelope the sinks wrote.
rcpt_lines() {
    local f
    for f in "$sink1"/*.env "$sink2"/*.env; do [ -e "$f" ] && grep '^to ' "$f"; done
    return 0
}
delivered() { rcpt_lines | wc -l; }
until [ "$(delivered)" -ge "$N" ]; do
    [ $SECONDS -lt $deadline ] ||
        fail "after schedule all ($out): $(delivered) of $N recipients delivered in 30 s; smtp-out since:"$'\n'"$(tail -n +"$((mark + 1))" "$TEST_DIR/server.log" | grep 'smtp-out' | head -n 6)"
    sleep 0.1
done
sleep 0.5   # a duplicate would land by now
[ "$(delivered)" = "$N" ] || fail "after schedule all: $(delivered) recipients delivered, wanted $N"
for r in "${rcpts[@]}"; do
    rcpt_lines | grep -qx "to $r" || fail "$r not delivered"
done
for d in "$sink1" "$sink2"; do
    [ "$(sink_count "$d")" = 0 ] || python3 "$RELAY_PY" check-exact "$d" a@origin.test "" ||
        fail "a message in $d differs"
done
echo "ok: sinks back, smtpctl schedule all ($out): $N recipients delivered"

queue=$(ctl show queue) || fail "smtpctl show queue: $queue"
[ -z "$(grep '|a@origin.test|' <<<"$queue" || true)" ] ||
    fail "delivered envelopes still queued:"$'\n'"$queue"
echo "ok: the queue is empty again"

echo "relay-deferred: all passed"
