#!/usr/bin/env bash
# The smol daemon relays to a real OpenSMTPD 6.8 (Debian's /usr/sbin/smtpd) as its `relay
# host` (issue 6): small messages and ~220 KiB ones with dot-started lines arrive in
# OpenSMTPD's maildir byte-exact apart from what the two hops add: one Received: header
# each, and the Return-Path:/Delivered-To: of OpenSMTPD's local delivery (line ends
# compared as LF, as OpenSMTPD stores them).
#
# OpenSMTPD needs root. It runs in the foreground (-d) in a private mount namespace
# where /var/spool, /run (its compiled-in spool and control socket) and /etc/resolv.conf
# ("lookup file": no DNS query leaves) are the test directory's, so it never touches
# another instance's spool; it is stopped by pid. It delivers as the user nobody.
set -euo pipefail
. "$(dirname "$0")/lib/relay.bash"

N=${N:-10}
OPENSMTPD=${OPENSMTPD:-/usr/sbin/smtpd}
[ "$(id -u)" = 0 ] || { echo "FAIL: relay-opensmtpd needs root (OpenSMTPD does)" >&2; exit 1; }
[ -x "$OPENSMTPD" ] || { echo "FAIL: no OpenSMTPD at $OPENSMTPD (apt-get install opensmtpd)" >&2; exit 1; }
relay_setup
PORT=$(free_port)
OSPORT=$(free_port)

# OpenSMTPD's side.
OS="$TEST_DIR/opensmtpd"
mkdir -p "$OS/spool" "$OS/run" "$OS/Maildir/new" "$OS/Maildir/cur" "$OS/Maildir/tmp"
chmod 755 "$OS" "$OS/spool" "$OS/run"
chown -R nobody "$OS/Maildir"
chmod 700 "$OS/Maildir"
printf 'lookup file\n' >"$OS/resolv.conf"
cat >"$OS/smtpd.conf" <<EOF
listen on 127.0.0.1 port $OSPORT
action "local" maildir "$OS/Maildir" virtual { "@" = "nobody" }
match from any for domain "os.test" action "local"
EOF
"$OPENSMTPD" -n -f "$OS/smtpd.conf" >/dev/null 2>&1 || fail "OpenSMTPD rejects its configuration"
# unshare and bash exec in turn: the pid started here is OpenSMTPD's parent process.
unshare --mount --propagation private bash -c '
    mount --bind "$1/spool" /var/spool && mount --bind "$1/run" /run &&
        mount --bind "$1/resolv.conf" /etc/resolv.conf && exec "$2" -d -f "$1/smtpd.conf"' \
    opensmtpd "$OS" "$OPENSMTPD" >>"$TEST_DIR/opensmtpd.log" 2>&1 &
HELPER_PIDS+=($!)
wait_listen 127.0.0.1 "$OSPORT" 15

cat >"$TEST_DIR/smtpd.conf" <<EOF
queue path "$TEST_DIR/queue"
listen on 127.0.0.1 port $PORT
action "opensmtpd" relay host smtp://127.0.0.1:$OSPORT
match from any for domain "os.test" action "opensmtpd"
EOF
start_server_with "$TEST_DIR/smtpd.conf" -s "$TEST_DIR/smtpd.sock"

os_fail() {
    echo "--- OpenSMTPD log (tail)" >&2
    tail -n 20 "$TEST_DIR/opensmtpd.log" >&2
    fail "$@"
}

python3 "$RELAY_PY" send "$PORT" a@origin.test user@os.test "$N" || fail "submission (small)"
python3 "$RELAY_PY" send "$PORT" a@origin.test user@os.test 2 big || fail "submission (big)"
want=$((N + 2))
deadline=$((SECONDS + 40))
until [ "$(ls "$OS/Maildir/new" | wc -l)" -ge "$want" ]; do
    [ $SECONDS -lt $deadline ] || os_fail "OpenSMTPD's maildir holds $(ls "$OS/Maildir/new" | wc -l) of $want messages"
    sleep 0.2
done
sleep 0.5   # a duplicate would land by now
got=$(ls "$OS/Maildir/new" | wc -l)
[ "$got" = "$want" ] || os_fail "OpenSMTPD's maildir holds $got messages, wanted $want"
python3 "$RELAY_PY" check-maildir "$OS/Maildir" a@origin.test user@os.test 2 ||
    os_fail "a message differs after the two hops"
echo "ok: $N small and 2 large messages relayed to OpenSMTPD 6.8, byte-exact apart from the headers each hop adds"

echo "relay-opensmtpd: all passed"
