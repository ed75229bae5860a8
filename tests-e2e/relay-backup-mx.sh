#!/usr/bin/env bash
# The smol daemon falls back to a backup MX only when the primaries are down (issue 6,
# RFC 5321 §5.1: try exchangers in preference order). dnsmasq serves the MX records on
# 127.0.0.1, aiosmtpd sinks listen on 127.0.0.x at the port `mta mx-port` names.
#  1. down.test: two primaries (pref 10) with nothing listening, a backup (pref 20) up:
#     every message reaches the backup, none is deferred or bounced;
#  2. up.test: two primaries up, the same kind of backup: the backup gets nothing.
set -euo pipefail
. "$(dirname "$0")/lib/relay.bash"

N=10
relay_setup
PORT=$(free_port)
MXPORT=$(free_port)

# 127.0.0.5 and 127.0.0.6 have no listener: connections there are refused.
start_sink 127.0.0.2 "$MXPORT"
start_sink 127.0.0.3 "$MXPORT"
start_sink 127.0.0.4 "$MXPORT"
start_sink 127.0.0.7 "$MXPORT"
start_dns \
    --mx-host=down.test,dead1.mx.test,10 --mx-host=down.test,dead2.mx.test,10 \
    --mx-host=down.test,backup1.mx.test,20 \
    --mx-host=up.test,p1.mx.test,10 --mx-host=up.test,p2.mx.test,10 \
    --mx-host=up.test,backup2.mx.test,20 \
    --host-record=dead1.mx.test,127.0.0.5 --host-record=dead2.mx.test,127.0.0.6 \
    --host-record=backup1.mx.test,127.0.0.7 \
    --host-record=p1.mx.test,127.0.0.2 --host-record=p2.mx.test,127.0.0.3 \
    --host-record=backup2.mx.test,127.0.0.4

cat >"$TEST_DIR/smtpd.conf" <<EOF
queue path "$TEST_DIR/queue"
listen on 127.0.0.1 port $PORT
mta resolver "127.0.0.1:$DNSPORT"
mta mx-port $MXPORT
action "mx" relay
match from any for any action "mx"
EOF
start_server_with "$TEST_DIR/smtpd.conf" -s "$TEST_DIR/smtpd.sock"

sink() { echo "$TEST_DIR/sink-$1-$MXPORT"; }

# 1. Both primaries down.
python3 "$RELAY_PY" send "$PORT" a@origin.test b@down.test "$N" || fail "submission (down.test)"
python3 "$RELAY_PY" wait-count "$(sink 127.0.0.7)" "$N" 40 ||
    fail "primaries down: the backup did not get all $N messages"
python3 "$RELAY_PY" check-exact "$(sink 127.0.0.7)" a@origin.test b@down.test ||
    fail "primaries down: what the backup got differs"
grep -q 'PermFail.*to=<b@down.test>' "$TEST_DIR/server.log" && fail "primaries down: bounced"
echo "ok: primaries (pref 10) down: $N messages through the backup (pref 20)"

# 2. Primaries up.
python3 "$RELAY_PY" send "$PORT" a@origin.test c@up.test "$N" || fail "submission (up.test)"
deadline=$((SECONDS + 40))
while [ $(($(sink_count "$(sink 127.0.0.2)") + $(sink_count "$(sink 127.0.0.3)"))) -lt "$N" ]; do
    [ $SECONDS -lt $deadline ] || fail "primaries up: only $(sink_count "$(sink 127.0.0.2)") + $(sink_count "$(sink 127.0.0.3)") of $N reached them"
    sleep 0.1
done
p1=$(sink_count "$(sink 127.0.0.2)")
p2=$(sink_count "$(sink 127.0.0.3)")
[ $((p1 + p2)) = "$N" ] || fail "primaries up: $p1 + $p2 messages, wanted $N"
sleep 1   # a stray copy to the backup would land by now
b=$(sink_count "$(sink 127.0.0.4)")
[ "$b" = 0 ] || fail "primaries up: the backup got $b messages"
[ "$(sink_count "$(sink 127.0.0.7)")" = "$N" ] || fail "down.test's backup got more mail"
echo "ok: primaries up: $p1 / $p2 through the primaries, nothing to the backup"

echo "relay-backup-mx: all passed"
