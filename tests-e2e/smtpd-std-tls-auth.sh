#!/usr/bin/env bash
# smtpd-std with TLS and AUTH, end to end, with a certificate made here by openssl and a
# credentials table made by our smtpctl encrypt:
# - `tls ... auth <creds>`: STARTTLS offered, AUTH not offered before it; after it AUTH
#   PLAIN and LOGIN accept the right password, a wrong password or an unknown user gets
#   535 after the failure delay, the third failure 421 and the end of the session; MAIL
#   before AUTH gets 530; `senders` keeps alice to her own address; the message arrives with the cipher in its Received: header;
# - `tls-require`: MAIL before STARTTLS gets 530;
# - `smtps`: TLS from the first byte (smtplib.SMTP_SSL), a plaintext client is logged
#   as a failed handshake with its address;
# - bytes pipelined behind STARTTLS are discarded, never run inside TLS (CVE-2011-0411);
# - swaks --tls with AUTH LOGIN; the log names the TLS version and cipher;
# - `auth` without a table is refused by `-n` where system accounts cannot be checked.
set -euo pipefail
. "$(dirname "$0")/lib/server.bash"

build_server
make_test_dir

# smtpctl of this project, next to the daemon.
SMTPCTL=${SMTPCTL:-$(dirname "$SMTPD_STD")/smtpctl}
if [ ! -x "$SMTPCTL" ]; then
    (cd "$E2E_ROOT" && cargo build -q --release -p runtime-std --bin smtpctl)
fi

openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 1 \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$TEST_DIR/key.pem" -out "$TEST_DIR/cert.pem" 2>/dev/null \
    || fail "openssl could not make a certificate"

HASH=$("$SMTPCTL" encrypt secret) || fail "smtpctl encrypt"
case "$HASH" in '$6$'* | '$2'*) ;; *) fail "smtpctl encrypt gave: $HASH" ;; esac
printf 'alice %s\n' "$HASH" >"$TEST_DIR/creds"

P1=$(free_port)
P2=$(free_port)
P3=$(free_port)
PORT=$P1
cat >"$TEST_DIR/smtpd.conf" <<EOF
queue path "$TEST_DIR/queue"
pki localhost cert "$TEST_DIR/cert.pem"
pki localhost key "$TEST_DIR/key.pem"
table creds file:$TEST_DIR/creds
table sendertab { "alice" = "alice@example.org" }
listen on 127.0.0.1 port $P1 tls pki localhost auth <creds> senders <sendertab> received-auth
listen on 127.0.0.1 port $P2 tls-require pki localhost
listen on 127.0.0.1 port $P3 smtps pki localhost
action "box" maildir "$TEST_DIR/mail/%{rcpt:lowercase}" virtual { "@" = "nobody" }
match from any for any action "box"
EOF
"$SMTPD_STD" -n -f "$TEST_DIR/smtpd.conf" >/dev/null || fail "-n refuses the configuration"
start_server "$TEST_DIR/smtpd.conf"

python3 - "$P1" "$P2" "$P3" "$TEST_DIR/cert.pem" "$TEST_DIR/mail" <<'PYTHON' || fail "python checks"
import base64, glob, os, smtplib, socket, ssl, sys, time

p1, p2, p3 = (int(a) for a in sys.argv[1:4])
ca, maildir = sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(cafile=ca)
DELAY = 0.9  # auth::FAILURE_DELAY is 1 s, measured from the AUTH command


def ok(text):
    print("ok:", text)


def wait_file(rcpt, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        files = glob.glob(os.path.join(maildir, rcpt, "new", "*"))
        if files:
            return open(files[0], "rb").read()
        time.sleep(0.1)
    raise AssertionError(f"no message for {rcpt}")


def tls_session(port):
    s = smtplib.SMTP("127.0.0.1", port, local_hostname="client.example.org", timeout=20)
    s.ehlo()
    assert s.has_extn("starttls"), s.esmtp_features
    s.starttls(context=ctx)
    s.ehlo()
    return s


def auth_fails(s, user, password, expected):
    start = time.time()
    try:
        s.user, s.password = user, password
        s.auth("PLAIN", s.auth_plain)
    except smtplib.SMTPAuthenticationError as e:
        took = time.time() - start
        assert e.smtp_code == expected, (e.smtp_code, e.smtp_error)
        assert took >= DELAY, f"{user}: refused after {took:.3f} s"
        return took
    raise AssertionError(f"{user}/{password} was accepted")


# STARTTLS and AUTH on the `tls ... auth` listener.
s = smtplib.SMTP("127.0.0.1", p1, local_hostname="client.example.org", timeout=20)
s.ehlo()
assert s.has_extn("starttls") and not s.has_extn("auth"), s.esmtp_features
ok("STARTTLS offered, AUTH not offered before it")
s.starttls(context=ctx)
s.ehlo()
assert not s.has_extn("starttls"), s.esmtp_features
mechs = s.esmtp_features.get("auth", "").upper().split()
assert "PLAIN" in mechs and "LOGIN" in mechs, s.esmtp_features
ok("AUTH PLAIN LOGIN offered over TLS")
code, _ = s.mail("alice@example.org")
assert code == 530, code
ok("MAIL before AUTH gets 530")
auth_fails(s, "alice", "wrong", 535)
ok("a wrong password gets 535 after the delay")
auth_fails(s, "mallory", "secret", 535)
ok("an unknown user gets 535 after the same delay")
s.user, s.password = "alice", "secret"
code, _ = s.auth("PLAIN", s.auth_plain)
assert code == 235, code
ok("AUTH PLAIN with the right password: 235")
code, _ = s.mail("mallory@example.org")
assert code == 550, code
s.rset()
ok("senders: alice may not send as mallory (550)")
s.sendmail("alice@example.org", ["tls@example.org"], b"Subject: over tls\r\n\r\nhello\r\n")
s.quit()
received = wait_file("tls@example.org").split(b"\n\n")[0]
assert b"ESMTPSA" in received or b"ESMTPS" in received, received
assert b"TLSv1.3:TLS_" in received or b"TLSv1.2:ECDHE" in received, received
clause = [l for l in received.split(b"\n") if b"TLSv1" in l][0]
ok("the message arrived with the cipher in Received: " + clause.decode().strip())
assert b"authenticated as alice" in received, received
ok("received-auth: the Received: header names the user")

s = tls_session(p1)
s.user, s.password = "alice", "secret"
code, _ = s.auth("LOGIN", s.auth_login)
assert code == 235, code
s.quit()
ok("AUTH LOGIN with the right password: 235")

s = tls_session(p1)
auth_fails(s, "alice", "one", 535)
auth_fails(s, "alice", "two", 535)
auth_fails(s, "alice", "three", 421)
try:
    s.noop()
    raise AssertionError("the session stayed open after the third failure")
except smtplib.SMTPServerDisconnected:
    pass
ok("the third failed AUTH gets 421 and the session ends")

# tls-require.
s = smtplib.SMTP("127.0.0.1", p2, local_hostname="client.example.org", timeout=20)
s.ehlo()
code, _ = s.mail("bob@example.org")
assert code == 530, code
ok("tls-require: MAIL before STARTTLS gets 530")
s.starttls(context=ctx)
s.ehlo()
s.sendmail("bob@example.org", ["required@example.org"], b"Subject: required\r\n\r\nhi\r\n")
s.quit()
wait_file("required@example.org")
ok("tls-require: mail accepted after STARTTLS")

# smtps.
s = smtplib.SMTP_SSL("127.0.0.1", p3, local_hostname="client.example.org", context=ctx, timeout=20)
s.ehlo()
assert not s.has_extn("starttls"), s.esmtp_features
s.sendmail("carol@example.org", ["smtps@example.org"], b"Subject: smtps\r\n\r\nhi\r\n")
s.quit()
assert b"TLSv1" in wait_file("smtps@example.org").split(b"\n\n")[0]
ok("smtps: implicit TLS on its own port, cipher in Received:")

# A plaintext client on the smtps port: the handshake fails (logged, checked below).
with socket.create_connection(("127.0.0.1", p3), timeout=10) as raw:
    raw.sendall(b"EHLO plaintext.example.org\r\n")
    try:
        raw.recv(100)
    except OSError:
        pass

# Bytes pipelined behind STARTTLS are discarded.
raw = socket.create_connection(("127.0.0.1", p2), timeout=10)
f = raw.makefile("rb")


def reply(stream):
    lines = []
    while True:
        line = stream.readline()
        assert line, "connection closed"
        lines.append(line)
        if line[3:4] == b" ":
            return lines


assert reply(f)[0].startswith(b"220")
raw.sendall(b"EHLO client.example.org\r\n")
reply(f)
raw.sendall(b"STARTTLS\r\nMAIL FROM:<a@b>\r\n")
first = reply(f)
assert first[0].startswith(b"220"), first
# Nothing else in plaintext: the MAIL was not answered before TLS.
raw.settimeout(0.5)
try:
    extra = raw.recv(100, socket.MSG_PEEK)
    assert not extra, f"plaintext after 220: {extra!r}"
except socket.timeout:
    pass
raw.settimeout(10)
tls = ctx.wrap_socket(raw, server_hostname="localhost")
tls.settimeout(1)
try:
    unsolicited = tls.recv(200)
    raise AssertionError(f"the server answered something inside TLS: {unsolicited!r}")
except socket.timeout:
    pass
tls.settimeout(10)
tf = tls.makefile("rb")
tls.sendall(b"EHLO client.example.org\r\n")
assert reply(tf)[-1].startswith(b"250"), "EHLO inside TLS"
tls.sendall(b"MAIL FROM:<a@b>\r\n")
answer = reply(tf)[0]
assert answer.startswith(b"250"), f"MAIL inside TLS: {answer!r} (a transaction was open?)"
tls.sendall(b"QUIT\r\n")
reply(tf)
tls.close()
ok("a MAIL pipelined behind STARTTLS is discarded, never answered")
PYTHON

swaks --silent 2 --tls --server "127.0.0.1:$P1" --auth LOGIN --auth-user alice \
    --auth-password secret --from alice@example.org --to swaks@example.org \
    --header "Subject: swaks tls" --body "sent by swaks" || fail "swaks --tls with AUTH"
if swaks --silent 2 --tls --server "127.0.0.1:$P1" --auth PLAIN --auth-user alice \
    --auth-password nope --from alice@example.org --to swaks@example.org >/dev/null 2>&1; then
    fail "swaks: a wrong password was accepted"
fi
python3 "$E2E_LIB/smtp_e2e.py" wait-files "$TEST_DIR/mail" swaks@example.org 1 20 \
    || fail "swaks message not delivered"
echo "ok: swaks --tls with AUTH LOGIN; a wrong password refused"

grep -q "tls ciphers=TLSv1\.[23]:" "$TEST_DIR/server.log" || fail "no TLS version and cipher in the log"
grep -q "STARTTLS protocol=TLSv1" "$TEST_DIR/server.log" || fail "no STARTTLS line in the log"
grep -q "smtps from 127.0.0.1:[0-9]*: tls handshake failed" "$TEST_DIR/server.log" \
    || fail "the failed smtps handshake is not logged with the peer"
echo "ok: the log shows the TLS version and cipher, and a failed handshake with its peer"

stop_server

# `auth` without a table needs the system's accounts: refused where they cannot be read.
cat >"$TEST_DIR/system-auth.conf" <<EOF
queue path "$TEST_DIR/queue"
pki localhost cert "$TEST_DIR/cert.pem"
pki localhost key "$TEST_DIR/key.pem"
listen on 127.0.0.1 port $P1 tls pki localhost auth
action "box" maildir "$TEST_DIR/mail/%{rcpt:lowercase}"
match from any for any action "box"
EOF
chmod 644 "$TEST_DIR/system-auth.conf" "$TEST_DIR/cert.pem" "$TEST_DIR/key.pem"
if [ "$(id -u)" = 0 ]; then
    check_as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
else
    check_as_nobody() { "$@"; }
fi
if out=$(check_as_nobody "$SMTPD_STD" -n -f "$TEST_DIR/system-auth.conf" 2>&1); then
    fail "-n accepted auth without a table where system accounts cannot be checked: $out"
fi
case "$out" in
*"listen on 127.0.0.1 port $P1: auth without a credentials table"*) ;;
*) fail "-n message does not name the listener: $out" ;;
esac
echo "ok: -n refuses auth without a table where system accounts cannot be checked"
echo "smtpd-std-tls-auth: all passed"
