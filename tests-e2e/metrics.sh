#!/usr/bin/env bash
# The Prometheus endpoint of `metrics listen on` (our extension), end to end, against
# both daemons one after the other: `smtpd` (smol) and `smtpd-std`. Each is started with
# `metrics listen on 127.0.0.1 port P`, logs that it listens there, takes one message
# from swaks and delivers it; then /metrics (fetched with urllib) has smtpd_smtp_session
# and smtpd_uptime_seconds with the exposition content type, counts the message as
# accepted and delivered, / points to /metrics, /nope is 404 and POST is 405 with
# `Allow: GET`. A second daemon whose metrics port is taken fails to start, naming the
# address. `-n` says `configuration OK` for a file with the line and gives
# FILE:LINE:COL for `metrics listen on nothere`.
#
# SMTPD: the smol daemon, SMTPD_STD: the std daemon (default: both built here, release
# profile, into ${CARGO_TARGET_DIR:-target}).
set -euo pipefail
. "$(dirname "$0")/lib/server.bash"
. "$(dirname "$0")/lib/config.bash"

build_server
STD_BIN=$SMTPD_STD
build_smol_server
SMOL_BIN=$SMTPD
make_test_dir

# The checks of one running daemon's endpoint on port $1, after one message delivered.
check_endpoint() {
    /usr/bin/python3 - "$1" <<'PY'
import sys
import time
import urllib.error
import urllib.request

base = f"http://127.0.0.1:{sys.argv[1]}"


def fetch(path, data=None):
    """(status, headers, body) of one request; error statuses too."""
    request = urllib.request.Request(base + path, data=data)
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def samples(text):
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.split(" ")
            values[name] = int(value)
    return values


# The delivery is counted once the maildir agent reported it: poll for a while.
deadline = time.time() + 20
while True:
    status, headers, body = fetch("/metrics")
    assert status == 200, (status, body)
    values = samples(body)
    if values.get("smtpd_scheduler_delivery_ok", 0) >= 1 or time.time() > deadline:
        break
    time.sleep(0.2)
content_type = headers.get("Content-Type", "")
assert content_type.startswith("text/plain; version=0.0.4"), content_type
assert headers.get("Connection") == "close", headers
for name in ("smtpd_smtp_session", "smtpd_uptime_seconds"):
    assert name in values, f"{name} missing from:\n{body}"
    assert f"# TYPE {name} gauge" in body, body
assert values["smtpd_smtp_message"] == 1, body
assert values["smtpd_scheduler_delivery_ok"] == 1, body
assert "# TYPE smtpd_scheduler_delivery_ok counter" in body, body
assert values["smtpd_smtp_session_new"] >= 1, body

status, _, body = fetch("/")
assert status == 200 and "/metrics" in body, (status, body)
status, _, body = fetch("/nope")
assert status == 404, (status, body)
status, headers, body = fetch("/metrics", data=b"x=1")
assert status == 405, (status, body)
assert headers.get("Allow") == "GET", headers
print(f"endpoint on {base}: ok ({len(values)} metrics)")
PY
}

# run_daemon NAME BINARY: one daemon with the endpoint, one message, the checks.
run_daemon() {
    local name=$1
    SMTPD_STD=$2
    PORT=$(free_port)
    local mport
    mport=$(free_port)
    write_config "$TEST_DIR/$name.conf" "metrics listen on 127.0.0.1 port $mport"
    : >"$TEST_DIR/server.log"
    start_server "$TEST_DIR/$name.conf"
    grep -q "metrics: listening on 127.0.0.1:$mport" "$TEST_DIR/server.log" ||
        fail "$name: no start line for the endpoint"
    swaks --silent 2 --server "127.0.0.1:$PORT" --from sender@example.org \
        --to "$name@example.org" --header "Subject: metrics" --body "counted" ||
        fail "$name: swaks"
    python3 "$E2E_LIB/smtp_e2e.py" wait-files "$TEST_DIR/mail" "$name@example.org" 1 20 ||
        fail "$name: the message was not delivered"
    check_endpoint "$mport" || fail "$name: endpoint checks"

    # A second daemon cannot take the same metrics address: it does not start.
    local other_port
    other_port=$(free_port)
    {
        echo "queue path \"$TEST_DIR/$name-second-queue\""
        echo "listen on 127.0.0.1 port $other_port"
        echo "metrics listen on 127.0.0.1 port $mport"
        echo "action \"box\" maildir \"$TEST_DIR/mail/%{rcpt:lowercase}\" virtual { \"@\" = \"nobody\" }"
        echo "match from any for any action \"box\""
    } >"$TEST_DIR/$name-second.conf"
    local said
    if said=$(timeout 30 "$2" -d -s "$TEST_DIR/$name-second.sock" \
        -f "$TEST_DIR/$name-second.conf" 2>&1); then
        fail "$name: a second daemon started on a taken metrics port"
    fi
    [[ "$said" == *"metrics: cannot listen on 127.0.0.1:$mport"* ]] ||
        fail "$name: the bind failure does not name the address: $said"
    stop_server
    echo "$name: endpoint served and checked"
}

# `-n` with the line, and a bad address with its position.
check_syntax() {
    local bin=$1
    PORT=$(free_port)
    write_config "$TEST_DIR/good.conf" "metrics listen on ::1 port 9464"
    local out
    out=$("$bin" -n -f "$TEST_DIR/good.conf" 2>&1) || fail "-n refused the line: $out"
    [[ "$out" == *"configuration OK"* ]] || fail "-n said: $out"
    printf 'metrics listen on nothere\nlisten on 127.0.0.1\naction "a" maildir\nmatch for local action "a"\n' \
        >"$TEST_DIR/bad.conf"
    if out=$("$bin" -n -f "$TEST_DIR/bad.conf" 2>&1); then
        fail "-n accepted metrics listen on nothere"
    fi
    [[ "$out" == *"$TEST_DIR/bad.conf:1:19: expected an IPv4 or IPv6 address"* ]] ||
        fail "-n gave no position for the bad address: $out"
}

check_syntax "$SMOL_BIN"
check_syntax "$STD_BIN"
run_daemon smol "$SMOL_BIN"
run_daemon std "$STD_BIN"
echo "metrics: all passed"
