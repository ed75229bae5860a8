#!/usr/bin/env bash
# smtpd-std delivery failures: an mda that exits 75 (EX_TEMPFAIL) the first time is
# retried and the message then delivered; an mda that exits 1 makes a bounce that
# arrives in the sender's maildir as an RFC 3464 report naming the original recipient.
set -euo pipefail
. "$(dirname "$0")/lib/server.bash"
. "$(dirname "$0")/lib/config.bash"

build_server
make_test_dir
PORT=$(free_port)
mkdir -m 1777 "$TEST_DIR/state"

# Exits 75 on its first run, then stores the message.
cat >"$TEST_DIR/tempfail-once.sh" <<SCRIPT
#!/bin/sh
if [ ! -e "$TEST_DIR/state/tried" ]; then
    touch "$TEST_DIR/state/tried"
    echo "try again later" >&2
    exit 75
fi
cat > "$TEST_DIR/state/delivered"
SCRIPT
printf '#!/bin/sh\necho "no such mailbox here" >&2\nexit 1\n' >"$TEST_DIR/fail.sh"
chmod 755 "$TEST_DIR/tempfail-once.sh" "$TEST_DIR/fail.sh"

write_config "$TEST_DIR/smtpd.conf" "$(cat <<CONF
action "tempfail" mda "$TEST_DIR/tempfail-once.sh" virtual { "@" = "nobody" }
action "permfail" mda "$TEST_DIR/fail.sh" virtual { "@" = "nobody" }
match from any for rcpt-to "later@example.org" action "tempfail"
match from any for rcpt-to "broken@example.org" action "permfail"
CONF
)"
start_server "$TEST_DIR/smtpd.conf"

python3 "$E2E_LIB/smtp_e2e.py" send "$PORT" sender@example.org later@example.org "retry me" \
    || fail "sending to later@"
for _ in $(seq 1 600); do
    [ -e "$TEST_DIR/state/delivered" ] && break
    sleep 0.1
done
[ -e "$TEST_DIR/state/tried" ] || fail "the mda never ran"
[ -e "$TEST_DIR/state/delivered" ] || fail "the message deferred by exit 75 was never retried"
grep -q "^Subject: retry me" "$TEST_DIR/state/delivered" || fail "retried message content"
grep -q "TempFail" "$TEST_DIR/server.log" || fail "no TempFail logged"
echo "ok: an mda exiting 75 is retried, then delivered"

python3 "$E2E_LIB/smtp_e2e.py" send "$PORT" bouncer@example.org broken@example.org "bounce me" \
    || fail "sending to broken@"
python3 "$E2E_LIB/smtp_e2e.py" check-bounce "$TEST_DIR/mail" bouncer@example.org broken@example.org \
    || fail "bounce check"
echo "smtpd-std-delivery-failures: all passed"
