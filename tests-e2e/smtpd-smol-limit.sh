#!/usr/bin/env bash
# smtpd (the smol runtime) under a low descriptor limit: the daemon serves as many
# connections as its descriptors allow (two each, 256 kept aside: 72 with `ulimit -n
# 400`) and answers the next client `421 4.3.2` at once instead of leaving it unaccepted;
# once connections close, new clients are served again.
#
# SMTPD: the binary to test (default: built here, release profile, into
# ${CARGO_TARGET_DIR:-target}).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/tests-e2e/lib/server.bash"
build_smol_server
SMTPD_STD="$SMTPD"
. "$ROOT/tests-e2e/lib/config.bash"

build_server
make_test_dir
PORT=$(free_port)
write_config "$TEST_DIR/smtpd.conf"
ulimit -n 400
start_server "$TEST_DIR/smtpd.conf"

python3 - "$PORT" <<'PY' || fail "connection limit"
import socket, sys, time
port = int(sys.argv[1])

def greeting(s):
    data = b""
    while b"\r\n" not in data:
        chunk = s.recv(512)
        if not chunk:
            break
        data += chunk
    return data

socks, codes = [], []
for _ in range(100):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    codes.append(greeting(s)[:9])
    socks.append(s)
served = sum(1 for c in codes if c.startswith(b"220"))
refused = sum(1 for c in codes if c == b"421 4.3.2")
if (served, refused) != (72, 28):
    raise SystemExit(f"{served} served and {refused} refused, expected 72 and 28: {codes}")
print("ok: 72 connections served, the next 28 refused with 421 4.3.2")
for s in socks:
    s.close()
deadline = time.monotonic() + 10
while True:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    if greeting(s).startswith(b"220"):
        break
    s.close()
    if time.monotonic() > deadline:
        raise SystemExit("no connection served after the others closed")
    time.sleep(0.1)
print("ok: served again once the connections closed")
PY
grep -q "at most 72 connections at once" "$TEST_DIR/server.log" || fail "limit not logged"
echo "ok: the limit is logged"
echo "smtpd-smol-limit: all passed"
