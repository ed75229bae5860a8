#!/usr/bin/env bash
# Monkey mode end to end (DESIGN.md, "Faults by design"): smtpd (the smol runtime) runs
# with -M SEED:0.2, so some of its effects (spool writes, lookups, deliveries, ... as far
# as their seams are wired) fail temporarily or are delayed. Eight concurrent smtplib
# clients send 200 messages to maildirs, retrying whatever is refused temporarily, like
# real MTAs. Checked:
# - the daemon says at start that monkey mode is on, with its seed and rate;
# - no 5xx to any command of these well-formed transactions;
# - every message answered 250 ends in the maildir of each accepted recipient, or is still
#   in the queue when the time is up (local retries wait 10 s, 40 s, 90 s, ...);
# - nothing in a maildir that was never answered 250, and no duplicates (at-least-once
#   allows one only when a client lost the connection after sending a body, counted).
# The test passes whichever seams are wired: it asserts no count of injected faults, it
# prints them.
#
# While deliveries are missing, `smtpctl schedule all` every few seconds retries what
# waits (the third automatic retry would come 140 s after the first failure).
#
# SMTPD, SMTPCTL: the binaries to test (default: built here, release profile, into
# ${CARGO_TARGET_DIR:-target}). MONKEY: the plan (default 7:0.2).
set -euo pipefail
. "$(dirname "$0")/lib/server.bash"
. "$(dirname "$0")/lib/config.bash"

build_smol_server
build_smtpctl
MONKEY=${MONKEY:-7:0.2}

make_test_dir
PORT=$(free_port)
write_config "$TEST_DIR/smtpd.conf"
SOCKET="$TEST_DIR/smtpd.sock"
"$SMTPD" -d -M "$MONKEY" -s "$SOCKET" -f "$TEST_DIR/smtpd.conf" >>"$TEST_DIR/server.log" 2>&1 &
SERVER_PID=$!
python3 "$E2E_LIB/smtp_e2e.py" wait-port "$PORT" || fail "server did not start"

seed=${MONKEY%%:*}
rate=${MONKEY#*:}
rate=${rate%%:*}
grep -q "monkey mode on: seed $seed rate $rate" "$TEST_DIR/server.log" \
    || fail "no 'monkey mode on: seed $seed rate $rate' line at start"
echo "ok: the daemon says monkey mode is on (seed $seed, rate $rate)"

python3 - "$PORT" "$TEST_DIR/mail" "$TEST_DIR/queue" "$SMTPCTL" "$SOCKET" <<'PY' \
    || fail "monkey load checks"
import collections, glob, os, random, smtplib, subprocess, sys, threading, time

port, mail_root, queue_root = int(sys.argv[1]), sys.argv[2], sys.argv[3]
smtpctl, socket_path = sys.argv[4], sys.argv[5]
CLIENTS, PER_CLIENT, ATTEMPTS = 8, 25, 60
DELIVERY_WAIT = 55.0
lock = threading.Lock()
permanent = []                  # (token, command, code, text)
temporary = collections.Counter()
accepted = {}                   # (token, rcpt) -> msgid of the 250
uncertain = set()               # tokens whose body went out with no final reply seen
gave_up = []

def note(token, command, code, text=b""):
    with lock:
        if code >= 500:
            permanent.append((token, command, code, text))
        elif code >= 400:
            temporary[f"{command} {code}"] += 1

def message(token, rcpts):
    lines = [
        f"From: load{token}@example.org",
        f"To: {', '.join(rcpts)}",
        f"Subject: monkey {token}",
        f"Message-ID: <{token}@monkey.example.org>",
        f"X-Monkey-Token: {token}",
        "",
    ] + [f"line {i} of {token}" for i in range(20)]
    return ("\r\n".join(lines) + "\r\n").encode()

def client(n):
    rng = random.Random(n)
    conn = None
    for i in range(PER_CLIENT):
        token = f"m{n:02d}x{i:03d}"
        rcpts = [f"c{n}@example.org"] + ([f"shared{i % 3}@example.org"] if i % 4 == 0 else [])
        remaining = list(rcpts)
        for _ in range(ATTEMPTS):
            if not remaining:
                break
            phase = "connect"
            try:
                if conn is None:
                    conn = smtplib.SMTP("127.0.0.1", port, timeout=30)
                    code, text = conn.ehlo("client.example.net")
                    note(token, "EHLO", code, text)
                    if code != 250:
                        raise smtplib.SMTPServerDisconnected("ehlo")
                else:
                    phase = "rset"
                    code, text = conn.rset()
                    note(token, "RSET", code, text)
                phase = "mail"
                code, text = conn.mail(f"load{n}@example.org")
                note(token, "MAIL", code, text)
                if code == 421:
                    raise smtplib.SMTPServerDisconnected("421")
                if code == 250:
                    ok = []
                    for r in remaining:
                        code, text = conn.rcpt(r)
                        note(token, "RCPT", code, text)
                        if code == 250:
                            ok.append(r)
                        elif code == 421:
                            raise smtplib.SMTPServerDisconnected("421")
                    if ok:
                        phase = "data"
                        try:
                            phase = "body"
                            code, text = conn.data(message(token, ok))
                            note(token, "end of data", code, text)
                        except smtplib.SMTPDataError as e:
                            note(token, "DATA", e.smtp_code, e.smtp_error)
                            code = e.smtp_code
                            text = b""
                        if code == 250:
                            # "250 2.0.0 MSGID Message accepted for delivery"
                            words = text.decode(errors="replace").split()
                            msgid = next((w for w in words if not w[:1].isdigit()
                                          or "." not in w), words[0] if words else "")
                            with lock:
                                for r in ok:
                                    accepted[(token, r)] = msgid
                            remaining = [r for r in remaining if r not in ok]
                            continue
                        if code == 421:
                            raise smtplib.SMTPServerDisconnected("421")
            except (smtplib.SMTPException, OSError):
                if phase == "body":
                    with lock:
                        uncertain.add(token)
                try:
                    if conn is not None:
                        conn.close()
                except OSError:
                    pass
                conn = None
            time.sleep(0.05 + rng.random() * 0.25)
        if remaining:
            with lock:
                gave_up.append((token, remaining))
    if conn is not None:
        try:
            conn.quit()
        except (smtplib.SMTPException, OSError):
            pass

started = time.time()
threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
sent = time.time() - started
total = len({token for token, _ in accepted})
print(f"sent: {total} messages ({len(accepted)} deliveries) answered 250 in {sent:.1f} s; "
      f"temporary refusals seen: {dict(temporary) or 'none'}")

failures = []
if permanent:
    failures.append(f"{len(permanent)} permanent refusals, first: {permanent[:3]}")
if gave_up:
    failures.append(f"{len(gave_up)} messages never accepted after {ATTEMPTS} attempts: {gave_up[:3]}")
if total != CLIENTS * PER_CLIENT:
    failures.append(f"{total} of {CLIENTS * PER_CLIENT} messages answered 250")

def delivered():
    found = collections.Counter()
    for path in glob.glob(os.path.join(mail_root, "*", "new", "*")):
        rcpt = path.split(os.sep)[-3]
        try:
            with open(path, "rb") as f:
                head = f.read(4096)
        except OSError:
            continue
        for line in head.split(b"\n"):
            if line.startswith(b"X-Monkey-Token: "):
                found[(line.split(b": ", 1)[1].strip().decode(), rcpt)] += 1
                break
    return found

deadline = time.time() + DELIVERY_WAIT
next_schedule = time.time() + 5
schedules = 0
while True:
    found = delivered()
    missing = [key for key in accepted if found[key] == 0]
    if not missing or time.time() > deadline:
        break
    if time.time() >= next_schedule:
        next_schedule = time.time() + 5
        run = subprocess.run([smtpctl, "-s", socket_path, "schedule", "all"],
                             capture_output=True, text=True, timeout=10)
        if run.returncode == 0:
            schedules += 1
        else:
            print(f"smtpctl schedule all failed: {run.stderr.strip() or run.stdout.strip()}")
    time.sleep(0.5)

def still_queued(msgid):
    # Whatever the spool's layout, a path naming the message outside the areas for
    # incoming, removed and corrupt messages.
    for path in glob.glob(os.path.join(queue_root, "**", "*" + msgid + "*"), recursive=True):
        parts = path[len(queue_root):].split(os.sep)
        if not any(p in ("incoming", "purge", "corrupt") for p in parts):
            return True
    return False

lost = [(key, accepted[key]) for key in missing if not still_queued(accepted[key])]
queued = len(missing) - len(lost)
ghosts = [key for key in found if key not in accepted and key[0] not in uncertain]
duplicates = {key: n for key, n in found.items() if n > 1}
allowed = {key: n for key, n in duplicates.items() if key[0] in uncertain}
print(f"delivered: {sum(1 for k in accepted if found[k])} of {len(accepted)}; still queued: {queued}; "
      f"duplicates: {len(duplicates)} ({len(allowed)} after a lost final reply); "
      f"bodies with no final reply: {len(uncertain)}; smtpctl schedule all: {schedules} times")
if lost:
    failures.append(f"{len(lost)} accepted deliveries neither in a maildir nor queued: {lost[:3]}")
if ghosts:
    failures.append(f"{len(ghosts)} deliveries never answered 250: {ghosts[:3]}")
if len(duplicates) != len(allowed):
    failures.append(f"duplicates: {sorted(set(duplicates) - set(allowed))[:5]}")
for f in failures:
    print("FAIL:", f, file=sys.stderr)
sys.exit(1 if failures else 0)
PY
echo "ok: no 5xx, nothing lost, no unexplained duplicate"
injected=$(grep -c "monkey: injected" "$TEST_DIR/server.log" || true)
echo "faults injected (log lines naming them): $injected"

stop_server
echo "monkey-smol: all passed"
