#!/usr/bin/env bash
# A daemon started as root runs as _smtpd after binding (OpenSMTPD runs its network-facing
# processes as _smtpd), and what still needs root goes through its root fork server:
# - the daemon's uids and gids (/proc/PID/status) are _smtpd's, and it says so in its log;
# - the queue (made by root before the start) belongs to _smtpd, mode 0700;
# - a message to a system user arrives in that user's ~/Maildir, owned by the user;
# - AUTH PLAIN over STARTTLS against a system account (a throwaway user with a known
#   password, made here with useradd + chpasswd and removed at exit) works, and a wrong
#   password gets 535;
# - a .forward in a 0700 home (which _smtpd cannot read) is honoured;
# - `-u` names a missing account: the daemon refuses to start and says how to make one.
# Not root, the daemon must not try to drop anything: that is checked and said instead.
set -euo pipefail
. "$(dirname "$0")/lib/server.bash"
. "$(dirname "$0")/lib/config.bash"

build_server
make_test_dir
PORT=$(free_port)

uids_of() { awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$1/status"; }

if [ "$(id -u)" != 0 ]; then
    write_config "$TEST_DIR/smtpd.conf"
    start_server "$TEST_DIR/smtpd.conf"
    me=$(id -u)
    [ "$(uids_of "$SERVER_PID")" = "$me $me $me $me" ] || fail "the daemon's uids changed"
    grep -q "not started as root: no privileges to drop" "$TEST_DIR/server.log" \
        || fail "the daemon does not say it has no privileges to drop"
    if grep -q "running as _smtpd" "$TEST_DIR/server.log"; then
        fail "a daemon not started as root tried to drop privileges"
    fi
    python3 "$E2E_LIB/smtp_e2e.py" send "$PORT" a@example.org b@example.org unprivileged \
        || fail "mail not accepted"
    python3 "$E2E_LIB/smtp_e2e.py" wait-files "$TEST_DIR/mail" b@example.org 1 20 \
        || fail "mail not delivered"
    echo "ok: not root (uid $me): the daemon stays uid $me and does not try to drop privileges"
    echo "smtpd-privdrop: all passed (not root: the privilege drop itself is checked only as root)"
    exit 0
fi

getent passwd _smtpd >/dev/null || fail "no account _smtpd: useradd --system --home-dir \
/var/empty --shell /usr/sbin/nologin _smtpd (scripts/test-all does it)"
SMTPD_UID=$(id -u _smtpd)
SMTPD_GID=$(id -g _smtpd)

# Two throwaway system users: RCPT gets mail and logs in; FWD forwards to RCPT.
RCPT="pdrop$$"
FWD="pdfwd$$"
PASSWORD="pw-$$-$RANDOM"
remove_users() {
    userdel "$RCPT" 2>/dev/null || true
    userdel "$FWD" 2>/dev/null || true
}
trap 'cleanup; remove_users' EXIT
mkdir -m 755 "$TEST_DIR/home"
for u in "$RCPT" "$FWD"; do
    useradd --create-home --home-dir "$TEST_DIR/home/$u" --shell /usr/sbin/nologin "$u" \
        || fail "useradd $u"
    chmod 700 "$TEST_DIR/home/$u"
done
echo "$RCPT:$PASSWORD" | chpasswd || fail "chpasswd"
printf '%s@example.org\n' "$RCPT" >"$TEST_DIR/home/$FWD/.forward"
chown "$FWD:" "$TEST_DIR/home/$FWD/.forward"
chmod 600 "$TEST_DIR/home/$FWD/.forward"
if setpriv --reuid=_smtpd --regid=_smtpd --clear-groups cat "$TEST_DIR/home/$FWD/.forward" \
    >/dev/null 2>&1; then
    fail "_smtpd can read the .forward: the test would prove nothing"
fi

openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 1 \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$TEST_DIR/key.pem" -out "$TEST_DIR/cert.pem" 2>/dev/null \
    || fail "openssl could not make a certificate"
chmod 600 "$TEST_DIR/key.pem"

# A queue left by root (an older version, or a run before the drop existed).
mkdir -m 755 "$TEST_DIR/queue"

cat >"$TEST_DIR/smtpd.conf" <<EOF
queue path "$TEST_DIR/queue"
pki localhost cert "$TEST_DIR/cert.pem"
pki localhost key "$TEST_DIR/key.pem"
listen on 127.0.0.1 port $PORT tls pki localhost auth
action "local" maildir
match from any for domain "example.org" action "local"
EOF

# -u names an account that does not exist: refused, with how to create it.
if out=$(timeout 20 "$SMTPD_STD" -d -u "nosuch$$" -s "$TEST_DIR/x.sock" \
    -f "$TEST_DIR/smtpd.conf" 2>&1); then
    fail "the daemon started as root with a missing -u account: $out"
fi
case "$out" in
*"useradd --system"*"-u USER"*) ;;
*) fail "the refusal does not say how to create the account: $out" ;;
esac
echo "ok: -u with a missing account: refused, with how to create it"
# -n checks it too, since the daemon could not start.
if out=$("$SMTPD_STD" -n -u "nosuch$$" -f "$TEST_DIR/smtpd.conf" 2>&1); then
    fail "-n accepted a missing -u account: $out"
fi
case "$out" in
*"no such account"*) ;;
*) fail "-n does not name the missing account: $out" ;;
esac
"$SMTPD_STD" -n -f "$TEST_DIR/smtpd.conf" >/dev/null || fail "-n refused the _smtpd account"
echo "ok: -n checks the account the daemon drops to"

start_server "$TEST_DIR/smtpd.conf"
[ "$(uids_of "$SERVER_PID")" = "$SMTPD_UID $SMTPD_UID $SMTPD_UID $SMTPD_UID" ] \
    || fail "the daemon's uids are $(uids_of "$SERVER_PID"), not _smtpd's ($SMTPD_UID)"
gids=$(awk '/^Gid:/ {print $2, $3, $4, $5}' "/proc/$SERVER_PID/status")
[ "$gids" = "$SMTPD_GID $SMTPD_GID $SMTPD_GID $SMTPD_GID" ] || fail "the daemon's gids are $gids"
groups=$(awk '/^Groups:/ {$1=""; print $0}' "/proc/$SERVER_PID/status" | xargs)
[ "$groups" = "$SMTPD_GID" ] || fail "the daemon's groups are '$groups'"
grep -q "smtpd: running as _smtpd (uid $SMTPD_UID)" "$TEST_DIR/server.log" \
    || fail "no 'running as _smtpd' line in the log"
echo "ok: the daemon runs as _smtpd (uid $SMTPD_UID, gid $SMTPD_GID, no other group)"

python3 - "$PORT" "$TEST_DIR/cert.pem" "$RCPT" "$PASSWORD" "$FWD" <<'PYTHON' || fail "python checks"
import smtplib, ssl, sys

port, ca, rcpt, password, fwd = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(cafile=ca)


def session():
    s = smtplib.SMTP("127.0.0.1", port, local_hostname="client.example.org", timeout=30)
    s.starttls(context=ctx)
    s.ehlo()
    return s


s = session()
s.user, s.password = rcpt, "wrong"
try:
    s.auth("PLAIN", s.auth_plain)
    raise AssertionError("a wrong system password was accepted")
except smtplib.SMTPAuthenticationError as e:
    assert e.smtp_code == 535, e
s.quit()
print("ok: AUTH PLAIN with a wrong system password: 535")
s = session()
s.user, s.password = rcpt, password
code, _ = s.auth("PLAIN", s.auth_plain)
assert code == 235, code
s.sendmail(f"{rcpt}@example.org", [f"{rcpt}@example.org"], b"Subject: direct\r\n\r\nhello\r\n")
s.sendmail(f"{rcpt}@example.org", [f"{fwd}@example.org"], b"Subject: via forward\r\n\r\nhi\r\n")
s.quit()
print("ok: AUTH PLAIN over STARTTLS against a system account: 235")
PYTHON

maildir="$TEST_DIR/home/$RCPT/Maildir"
for _ in $(seq 1 300); do
    [ "$(find "$maildir/new" -type f 2>/dev/null | wc -l)" -ge 2 ] && break
    sleep 0.1
done
grep -lq "^Subject: direct" "$maildir"/new/* 2>/dev/null || fail "no message in $maildir/new"
echo "ok: a message to a system user arrives in their maildir"
strangers=$(find "$maildir" ! -user "$RCPT")
[ -z "$strangers" ] || fail "not owned by $RCPT in the maildir: $strangers"
echo "ok: the maildir and its message belong to the user"
grep -lq "^Subject: via forward" "$maildir"/new/* 2>/dev/null \
    || fail "the message to $FWD did not follow the .forward in a 0700 home"
[ ! -e "$TEST_DIR/home/$FWD/Maildir" ] || fail "$FWD got the message despite the .forward"
echo "ok: a .forward in a 0700 home is honoured"

[ "$(stat -c '%U %a' "$TEST_DIR/queue")" = "_smtpd 700" ] \
    || fail "the queue is $(stat -c '%U %a' "$TEST_DIR/queue"), not _smtpd 700"
strangers=$(find "$TEST_DIR/queue" ! -user _smtpd)
[ -z "$strangers" ] || fail "not owned by _smtpd in the queue: $strangers"
echo "ok: the queue (made by root before the start) belongs to _smtpd, mode 0700"

stop_server
echo "smtpd-privdrop: all passed"
