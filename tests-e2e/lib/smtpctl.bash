# smtpctl end to end, shared by smtpctl-std.sh and smtpctl-smol.sh (sourced after
# server.bash, which gives build_server, build_smtpctl, make_test_dir, free_port,
# stop_server and fail; SMTPD_STD names the daemon binary under test).
#
# One daemon per run, with its control socket in the test directory; smtpctl and its
# other names (sendmail, mailq, newaliases) are copied into $TEST_DIR/bin so that the
# unprivileged account can run them. The checks: a message deferred by an MDA that
# exits 75 while $TEST_DIR/hold exists is listed by `show queue`, `show envelope`,
# `show message` and `mailq`; `schedule ID` retries it at once and `schedule all`
# delivers it once the hold is gone; `remove ID` drops another (never delivered);
# `pause envelope` keeps one from delivery until `resume envelope`; `pause mda` holds a
# message that `resume mda` releases; `pause smtp` turns new clients away with 421 and
# `resume smtp` lets them in; `sendmail -t` and `sendmail RCPT` deliver byte-exact
# apart from the headers they add, and a body with a 3000-byte line arrives
# quoted-printable; `update table` makes a changed file table refuse the next RCPT;
# `log verbose|brief` switch the session debug lines; `trace`, `show routes|hosts` and
# `encrypt` answer; `trace expand|rules|scheduler|lookup|stat` log a message's way and
# `untrace` stops them; an unprivileged user is refused the privileged verbs but may read
# the counters and submit mail; `show stats` and `monitor` count what was done; the
# socket goes away with the daemon; with the daemon stopped `sendmail` leaves its
# message in offline/, which the daemon enqueues (as the file's owner) when it starts.
#
# SMTPCTL: the smtpctl binary (default: built here by server.bash's build_smtpctl).

# The test directory, smtpctl under its names, the socket path, the MDA and the config.
setup_smtpctl_test() {
    make_test_dir
    PORT=$(free_port)
    SOCKET="$TEST_DIR/smtpd.sock"
    mkdir -m 1777 "$TEST_DIR/state"
    mkdir -m 755 "$TEST_DIR/bin"
    install -m 755 "$SMTPCTL" "$TEST_DIR/bin/smtpctl"
    local name
    for name in sendmail mailq newaliases; do
        ln -s smtpctl "$TEST_DIR/bin/$name"
    done
    CTL="$TEST_DIR/bin/smtpctl"
    # Where sendmail, mailq and newaliases (which take no -s) find the daemon, and
    # where sendmail finds the queue (its offline/ is beside it) when there is none.
    export SMTPD_SOCKET="$SOCKET"
    export SMTPD_QUEUE="$TEST_DIR/queue"

    # Exits 75 while the hold file exists, else keeps the message.
    cat >"$TEST_DIR/flaky.sh" <<SCRIPT
#!/bin/sh
if [ -e "$TEST_DIR/hold" ]; then
    echo "held by the test" >&2
    exit 75
fi
cat > "$TEST_DIR/state/delivered.\$\$"
SCRIPT
    chmod 755 "$TEST_DIR/flaky.sh"
    echo "placeholder@example.org" >"$TEST_DIR/blocked"
    chmod 644 "$TEST_DIR/blocked"
    RELAY_PORT=$(free_port)
    # relay-*@ goes out through a relay session to this daemon's own second listener,
    # whose tag delivers it to the maildir: a relay with real replies for `trace mta`.
    cat >"$TEST_DIR/smtpd.conf" <<CONF
queue path "$TEST_DIR/queue"
table blocked file:$TEST_DIR/blocked
listen on 127.0.0.1 port $PORT
listen on 127.0.0.1 port $RELAY_PORT tag relayed
action "box" maildir "$TEST_DIR/mail/%{rcpt:lowercase}" virtual { "@" = "nobody" }
action "flaky" mda "$TEST_DIR/flaky.sh" virtual { "@" = "nobody" }
action "out" relay host smtp://127.0.0.1:$RELAY_PORT
match from any for rcpt-to <blocked> reject
match from any for rcpt-to regex "^flaky" action "flaky"
match from any tag relayed for any action "box"
match from any for rcpt-to regex "^relay-" action "out"
match from local for any action "box"
match from any for any action "box"
CONF
}

# The daemon on the test's configuration, its control socket at $SOCKET.
start_ctl_server() {
    "$SMTPD_STD" -d -s "$SOCKET" -f "$TEST_DIR/smtpd.conf" >>"$TEST_DIR/server.log" 2>&1 &
    SERVER_PID=$!
    python3 "$E2E_LIB/smtp_e2e.py" wait-port "$PORT" || fail "the daemon did not start"
    wait_until 10 test -S "$SOCKET" || fail "no control socket at $SOCKET"
}

ctl() {
    "$CTL" -s "$SOCKET" "$@"
}

# wait_until SECONDS COMMAND...: run COMMAND every 0.1 s until it succeeds.
wait_until() {
    local deadline
    deadline=$(($(date +%s) + $1))
    shift
    while ! "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.1
    done
}

send() { # send RCPT SUBJECT
    python3 "$E2E_LIB/smtp_e2e.py" send "$PORT" sender@example.org "$1" "$2"
}

# The `show queue` line of the envelope for RCPT (field 6 is the original recipient;
# the destination, field 7, is nobody@ after the virtual mapping).
queue_line() {
    ctl show queue | awk -F'|' -v r="$1" '$6 == r'
}

in_queue() { [ -n "$(queue_line "$1")" ]; }

not_in_queue() { [ -z "$(queue_line "$1")" ]; }

# queued_after_tries RCPT N: queued, pending, with N attempts made.
queued_after_tries() {
    queue_line "$1" | awk -F'|' -v n="$2" '$11 == n && $12 == "pending" { ok = 1 } END { exit !ok }'
}

# delivered_by_mda SUBJECT: a message with this subject went through flaky.sh.
delivered_by_mda() {
    grep -qs "^Subject: $1\$" "$TEST_DIR"/state/delivered.*
}

maildir_count() {
    find "$TEST_DIR/mail/$1/new" -type f 2>/dev/null | wc -l
}

# maildir_has RCPT N: N messages arrived for RCPT.
maildir_has() { [ "$(maildir_count "$1")" -eq "$2" ]; }

# expect_output WANT COMMAND...: exits 0 and prints exactly WANT.
# has_line [-x|-E] PATTERN COMMAND...: COMMAND succeeds and prints a matching line (its
# whole output read first, so grep stopping early cannot break the pipe).
has_line() {
    local opt=-q
    case "$1" in -x | -E) opt=-q${1#-}; shift ;; esac
    local pattern=$1 out
    shift
    out=$("$@") || return 1
    grep "$opt" -e "$pattern" <<<"$out"
}

expect_output() {
    local want=$1 got
    shift
    got=$("$@") || fail "$* failed"
    [ "$got" = "$want" ] || fail "$*: got \"$got\", want \"$want\""
}

# expect_failure PATTERN COMMAND...: exits non-zero, stderr matches PATTERN.
expect_failure() {
    local pattern=$1
    shift
    if "$@" >"$TEST_DIR/out" 2>"$TEST_DIR/err"; then
        fail "$* succeeded: $(cat "$TEST_DIR/out")"
    fi
    grep -q -- "$pattern" "$TEST_DIR/err" || fail "$*: stderr \"$(cat "$TEST_DIR/err")\" lacks \"$pattern\""
}

check_queue_verbs() {
    touch "$TEST_DIR/hold"
    send flaky-a@example.org "deferred A" || fail "sending A"
    send flaky-b@example.org "removed B" || fail "sending B"
    wait_until 20 queued_after_tries flaky-a@example.org 1 || fail "A not deferred: $(ctl show queue)"
    wait_until 20 queued_after_tries flaky-b@example.org 1 || fail "B not deferred: $(ctl show queue)"
    local line id_a id_b
    line=$(queue_line flaky-a@example.org)
    id_a=${line%%|*}
    id_b=$(queue_line flaky-b@example.org | cut -d'|' -f1)
    IFS='|' read -r -a f <<<"$line"
    [ "${#f[@]}" -eq 14 ] || fail "show queue line has ${#f[@]} fields: $line"
    [[ "${f[0]}" =~ ^[0-9a-f]{16}$ ]] || fail "envelope id: $line"
    [ "${f[1]}|${f[2]}|${f[3]}|${f[4]}|${f[5]}" = "inet4|mda||sender@example.org|flaky-a@example.org" ] \
        || fail "show queue fields: $line"
    [ "${f[8]}" -ge "${f[7]}" ] && [ "${f[9]}" -ge "${f[7]}" ] || fail "times: $line"
    [ -n "${f[13]}" ] || fail "no error in: $line"
    echo "ok: a deferred message in show queue: $line"

    has_line "flaky-a@example.org" ctl show envelope "$id_a" || fail "show envelope $id_a"
    has_line -x "Subject: deferred A" ctl show message "$id_a" || fail "show message $id_a"
    has_line -x "Subject: deferred A" ctl show message "${id_a:0:8}" || fail "show message by message id"
    [ "$(ctl show queue "${id_a:0:8}" | cut -d'|' -f1)" = "$id_a" ] || fail "show queue MSGID"
    [ "$("$TEST_DIR/bin/mailq" | wc -l)" -eq 2 ] || fail "mailq: $("$TEST_DIR/bin/mailq")"
    echo "ok: show envelope, show message (by envelope and message id), show queue MSGID, mailq"

    # The next automatic retry is 10 s after the first failure: `schedule` comes first.
    local start
    start=$(date +%s)
    expect_output "1 envelope scheduled" ctl schedule "$id_a"
    wait_until 6 queued_after_tries flaky-a@example.org 2 || fail "schedule did not retry at once: $(queue_line flaky-a@example.org)"
    [ $(($(date +%s) - start)) -lt 8 ] || fail "the retry came late"
    echo "ok: schedule ID retries at once"

    expect_output "1 envelope removed" ctl remove "$id_b"
    not_in_queue flaky-b@example.org || fail "B still queued after remove"
    expect_failure "command failed: no such envelope" ctl schedule "$id_b"
    expect_failure "command failed" ctl remove "${id_b:0:8}"

    rm "$TEST_DIR/hold"
    expect_output "1 envelope scheduled" ctl schedule all
    wait_until 6 delivered_by_mda "deferred A" || fail "A not delivered after schedule all"
    wait_until 5 not_in_queue flaky-a@example.org || fail "A still queued after delivery"
    sleep 1
    ! delivered_by_mda "removed B" || fail "the removed message was delivered"
    echo "ok: remove drops an envelope for good; schedule all delivers once the MDA works"
}

# queue_flags RCPT: the flags field of RCPT's envelope.
queue_flags() { queue_line "$1" | cut -d'|' -f4; }

check_pause_envelope() {
    touch "$TEST_DIR/hold"
    send flaky-p@example.org "paused P" || fail "sending P"
    wait_until 20 queued_after_tries flaky-p@example.org 1 || fail "P not deferred: $(ctl show queue)"
    local id
    id=$(queue_line flaky-p@example.org | cut -d'|' -f1)
    expect_output "1 envelope paused" ctl pause envelope "$id"
    [ "$(queue_flags flaky-p@example.org)" = suspend ] || fail "no suspend flag: $(queue_line flaky-p@example.org)"
    rm "$TEST_DIR/hold"
    ctl schedule all >/dev/null || fail "schedule all with a paused envelope"
    sleep 2
    ! delivered_by_mda "paused P" || fail "a paused envelope was delivered"
    in_queue flaky-p@example.org || fail "the paused envelope left the queue"
    expect_output "1 envelope resumed" ctl resume envelope "${id:0:8}"
    [ -z "$(queue_flags flaky-p@example.org)" ] || fail "still flagged after resume: $(queue_line flaky-p@example.org)"
    # Its retry may already be due (the `schedule all` above): then it is gone at once.
    ctl schedule "$id" >/dev/null 2>&1 || true
    wait_until 8 delivered_by_mda "paused P" || fail "P not delivered after resume envelope"
    wait_until 5 not_in_queue flaky-p@example.org || fail "P still queued after delivery"
    echo "ok: pause envelope holds an envelope (flag suspend, not delivered), resume envelope releases it"
}

check_pause_mda() {
    expect_output "command succeeded" ctl pause mda
    expect_output $'MDA paused\nMTA running\nSMTP running' ctl show status
    expect_failure "command failed" ctl pause mda
    send paused@example.org "held by pause mda" || fail "sending while paused"
    wait_until 10 in_queue paused@example.org || fail "the message sent while paused is not queued"
    sleep 2
    [ "$(maildir_count paused@example.org)" -eq 0 ] || fail "delivered while mda paused"
    in_queue paused@example.org || fail "the held message left the queue"
    expect_output "command succeeded" ctl resume mda
    expect_output $'MDA running\nMTA running\nSMTP running' ctl show status
    wait_until 10 maildir_has paused@example.org 1 || fail "not delivered after resume mda"
    wait_until 5 not_in_queue paused@example.org || fail "still queued after delivery"
    echo "ok: pause mda holds deliveries, resume mda releases them"
}

greeting() { # the first reply line a new client gets
    python3 - "$PORT" <<'PY'
import socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5) as s:
    s.settimeout(5)
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(512)
        if not chunk:
            break
        data += chunk
    print(data.decode("ascii", "replace").strip())
PY
}

check_pause_smtp() {
    expect_output "command succeeded" ctl pause smtp
    has_line -x "SMTP paused" ctl show status || fail "show status after pause smtp"
    local g
    g=$(greeting) || true
    [[ "$g" == 421* ]] || fail "a new client while smtp is paused got \"$g\""
    expect_output "command succeeded" ctl resume smtp
    g=$(greeting) || true
    [[ "$g" == 220* ]] || fail "a new client after resume smtp got \"$g\""
    echo "ok: pause smtp turns new clients away with 421, resume smtp lets them in"
}

# check_delivered RCPT ORIGINAL [ADDED]: the maildir's one message is the Received:
# header, then (with ADDED=yes) the From:, Date: and Message-ID: sendmail added, then
# ORIGINAL byte for byte.
check_delivered() {
    python3 - "$TEST_DIR/mail/$1/new" "$2" "${3:-no}" <<'PY' || fail "delivered message for $1"
import glob, re, sys
files = glob.glob(sys.argv[1] + "/*")
assert len(files) == 1, files
data = open(files[0], "rb").read()
want = open(sys.argv[2], "rb").read()
lines = data.split(b"\n")
assert lines[0].startswith(b"Received: "), lines[0]
i = 1
while lines[i][:1] in (b" ", b"\t"):
    i += 1
if sys.argv[3] != "no":
    added = lines[i:i + 3]
    assert re.fullmatch(rb"From: (.+ )?<[^<>]+@[^<>]+>", added[0]), added
    assert re.fullmatch(rb"Date: \w{3}, \d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}.*", added[1]), added
    assert re.fullmatch(rb"Message-ID: <[^<> ]+@[^<> ]+>", added[2]), added
    if sys.argv[3] != "yes":
        assert added[0] == sys.argv[3].encode(), (added[0], sys.argv[3])
    i += 3
rest = b"\n".join(lines[i:])
assert rest == want, (rest, want)
PY
}

check_sendmail() {
    # -t: recipients from To, Cc and Bcc; Bcc removed; nothing added to a full header.
    printf '%s\n' \
        "From: Sender Name <sender@example.org>" \
        "To: Tee One <tee-one@example.org>, tee-two@example.org" \
        "Cc: tee-cc@example.org" \
        "Bcc: tee-bcc@example.org" \
        "Subject: sendmail -t" \
        "Date: Sat, 28 Nov 2026 21:00:00 +0000" \
        "Message-ID: <t-test@e2e.example.org>" \
        "" \
        "body line" \
        "..two dots" \
        ".one dot" \
        " indented, trailing space " \
        "8-bit: café" >"$TEST_DIR/t.msg"
    grep -v '^Bcc:' "$TEST_DIR/t.msg" >"$TEST_DIR/t.want"
    "$TEST_DIR/bin/sendmail" -t <"$TEST_DIR/t.msg" || fail "sendmail -t"
    local r
    for r in tee-one tee-two tee-cc tee-bcc; do
        wait_until 10 maildir_has "$r@example.org" 1 || fail "sendmail -t: nothing for $r"
        check_delivered "$r@example.org" "$TEST_DIR/t.want"
    done
    echo "ok: sendmail -t delivers to To, Cc and Bcc, byte-exact, Bcc removed"

    # Recipients as arguments (a comma separates two), -f and -F, -i: a lone dot is
    # kept; From:, Date: and Message-ID: added.
    printf 'Subject: plain sendmail\n\nhello\n.\nafter the dot\n' >"$TEST_DIR/plain.msg"
    "$TEST_DIR/bin/sendmail" -i -f envfrom@example.org -F "Env From" \
        plain-one@example.org,plain-two@example.org <"$TEST_DIR/plain.msg" || fail "sendmail RCPT"
    for r in plain-one plain-two; do
        wait_until 10 maildir_has "$r@example.org" 1 || fail "sendmail: nothing for $r"
        check_delivered "$r@example.org" "$TEST_DIR/plain.msg" "From: Env From <envfrom@example.org>"
    done
    grep -q "envfrom@example.org" "$TEST_DIR/server.log" || fail "the envelope sender is not in the log"
    echo "ok: sendmail RCPT,RCPT -f -F -i: byte-exact after the added From:, Date:, Message-ID:"

    # smtpctl sendmail, no header at all, a lone dot ends the input without -i.
    printf 'line one\n.\nnot sent\n' | ctl sendmail bare@example.org || fail "smtpctl sendmail"
    printf '\nline one\n' >"$TEST_DIR/bare.want"
    wait_until 10 maildir_has bare@example.org 1 || fail "smtpctl sendmail: nothing delivered"
    check_delivered bare@example.org "$TEST_DIR/bare.want" yes
    echo "ok: smtpctl sendmail: a headerless message gets its header and blank line; a lone dot ends it"

    # A line too long for SMTP: the body goes quoted-printable instead of refused.
    python3 -c 'import sys; sys.stdout.write("Subject: long\n\nshort\n" + "x" * 3000 + "\n")' \
        >"$TEST_DIR/long.msg"
    "$TEST_DIR/bin/sendmail" long@example.org <"$TEST_DIR/long.msg" || fail "sendmail with a long line"
    wait_until 10 maildir_has long@example.org 1 || fail "the long-line message was not delivered"
    python3 - "$TEST_DIR"/mail/long@example.org/new/* <<'PY' || fail "long-line message"
import email, email.policy, sys
raw = open(sys.argv[1], "rb").read()
assert all(len(l) <= 998 for l in raw.split(b"\n")), "a line over 998 bytes"
msg = email.message_from_bytes(raw, policy=email.policy.compat32)
assert msg["Content-Transfer-Encoding"] == "quoted-printable", msg.items()
assert msg.get_payload(decode=True) == b"short\n" + b"x" * 3000 + b"\n"
PY
    echo "ok: sendmail sends a body with a 3000-byte line quoted-printable"

    expect_failure "no recipients" "$TEST_DIR/bin/sendmail" </dev/null
    # No daemon and no offline directory either: the message cannot be kept.
    SMTPD_SOCKET="$TEST_DIR/nowhere.sock" SMTPD_QUEUE="$TEST_DIR/nowhere/queue" \
        expect_failure "doesn't seem to be running.*cannot leave the message" \
        "$TEST_DIR/bin/sendmail" x@example.org <"$TEST_DIR/plain.msg"
    expect_failure "not supported" "$TEST_DIR/bin/sendmail" -bs
    "$TEST_DIR/bin/newaliases" 2>"$TEST_DIR/err" || fail "newaliases failed"
    grep -q "aliases" "$TEST_DIR/err" || fail "newaliases said: $(cat "$TEST_DIR/err")"
    "$TEST_DIR/bin/sendmail" -bi 2>"$TEST_DIR/err" </dev/null || fail "sendmail -bi failed"
    grep -q "aliases" "$TEST_DIR/err" || fail "sendmail -bi said: $(cat "$TEST_DIR/err")"
    echo "ok: sendmail errors (no recipients, no daemon, -bs) exit non-zero; newaliases and -bi explain"
}

check_update_table() {
    python3 - "$PORT" victim@example.org <<'PY' || fail "victim@ refused before the table changed"
import smtplib, sys
with smtplib.SMTP("127.0.0.1", int(sys.argv[1])) as s:
    s.sendmail("sender@example.org", [sys.argv[2]], b"Subject: before\r\n\r\nx\r\n")
PY
    echo "victim@example.org" >>"$TEST_DIR/blocked"
    expect_output "command succeeded" ctl update table blocked
    python3 - "$PORT" victim@example.org <<'PY' || fail "victim@ accepted after update table"
import smtplib, sys
with smtplib.SMTP("127.0.0.1", int(sys.argv[1])) as s:
    s.ehlo()
    s.mail("sender@example.org")
    code, text = s.rcpt(sys.argv[2])
    assert 500 <= code < 600, (code, text)
PY
    expect_failure "command failed" ctl update table nosuchtable
    echo "ok: update table: the changed file table refuses the next RCPT"
}

quit_session() {
    python3 - "$PORT" <<'PY'
import smtplib, sys
with smtplib.SMTP("127.0.0.1", int(sys.argv[1])) as s:
    s.noop()
PY
}

debug_lines() { grep -c "smtp-in: session [0-9a-f]* closing" "$TEST_DIR/server.log" || true; }

debug_lines_above() { [ "$(debug_lines)" -gt "$1" ]; }

check_log() {
    local before
    before=$(debug_lines)
    quit_session
    sleep 0.5
    [ "$(debug_lines)" -eq "$before" ] || fail "debug lines without log verbose"
    expect_output "command succeeded" ctl log verbose
    quit_session
    wait_until 5 debug_lines_above "$before" || fail "no debug lines after log verbose"
    expect_output "command succeeded" ctl log brief
    sleep 0.5
    before=$(debug_lines)
    quit_session
    sleep 0.5
    [ "$(debug_lines)" -eq "$before" ] || fail "debug lines after log brief"
    echo "ok: log verbose adds the session debug lines, log brief removes them"
}

check_other_verbs() {
    # trace smtp logs each command and reply of new sessions; untrace stops it.
    expect_output "command succeeded" ctl trace smtp
    quit_session
    wait_until 5 grep -q "smtp: session [0-9a-f]* <<< QUIT" "$TEST_DIR/server.log" \
        || fail "trace smtp: no traced QUIT in the log"
    grep -q "smtp: session [0-9a-f]* >>> 221" "$TEST_DIR/server.log" \
        || fail "trace smtp: no traced 221 reply in the log"
    expect_output "command succeeded" ctl untrace smtp
    traced=$(grep -c "smtp: session [0-9a-f]* <<< QUIT" "$TEST_DIR/server.log")
    quit_session
    sleep 0.5
    [ "$(grep -c "smtp: session [0-9a-f]* <<< QUIT" "$TEST_DIR/server.log")" -eq "$traced" ] \
        || fail "untrace smtp: sessions still traced"
    expect_failure "command failed" ctl trace nosuchsubsystem
    ctl show routes >/dev/null || fail "show routes"
    ctl show hosts >/dev/null || fail "show hosts"
    has_line -E '^\$(2[aby]|5|6)\$' ctl encrypt "a secret" || fail "encrypt: $(ctl encrypt "a secret")"
    [ "$(printf 'one\ntwo\n' | ctl encrypt | grep -Ec '^\$(2[aby]|5|6)\$')" = 2 ] \
        || fail "encrypt from standard input"
    expect_failure "usage: smtpctl" ctl frobnicate
    expect_failure "ambiguous" ctl show stat
    echo "ok: trace/untrace, show routes/hosts, encrypt (argument and standard input), usage errors"
}

# trace_count PATTERN: lines of the daemon's log matching PATTERN (extended regex).
trace_count() { grep -Ec "$1" "$TEST_DIR/server.log" || true; }

trace_count_above() { [ "$(trace_count "$1")" -gt "$2" ]; }

# The lines `trace expand|rules|scheduler|lookup|stat` give for one message, and none
# once untraced; OpenSMTPD's old name `transfer` and `all` are accepted, the
# subsystems without output here are refused by name.
check_traces() {
    local expand='^expand: session [0-9a-f]+: envelope [0-9a-f]{16} <trace-one@example.org> expanded to <nobody@example.org>: local delivery as nobody'
    # From 127.0.0.1: `from local` (rule 5) before `from any` (rule 6), both "box".
    local rules='^rules: session [0-9a-f]+: msgid=[0-9a-f]{8} from=<sender@example.org> rcpt=<trace-one@example.org>: matched rule 5 \(match from local for any action "box"\)$'
    local sched='^scheduler: envelope [0-9a-f]{16} (scheduled: local delivery as nobody .* to <nobody@example.org>|removed from the queue)'
    local lookup='^lookup: user "nobody": found uid=65534'
    local stat='^stat: (increment|decrement) [a-z.]+ by [0-9]+: -?[0-9]+$'
    local verb
    for verb in expand rules scheduler lookup stat; do
        expect_output "command succeeded" ctl trace "$verb"
    done
    send trace-one@example.org "traced" || fail "sending the traced message"
    wait_until 10 maildir_has trace-one@example.org 1 || fail "the traced message was not delivered"
    local pattern
    for pattern in "$expand" "$rules" "$sched" "$stat"; do
        wait_until 5 trace_count_above "$pattern" 0 || fail "no trace line matching: $pattern"
    done
    # The engine looks accounts up once in a while (the runtime keeps them a few
    # seconds): a lookup line appears for this message or an earlier traced one.
    wait_until 5 trace_count_above "$lookup" 0 || fail "no trace line matching: $lookup"
    echo "ok: trace expand, rules, scheduler, lookup and stat log what happened to a message"

    for verb in expand rules scheduler lookup stat; do
        expect_output "command succeeded" ctl untrace "$verb"
    done
    local before=()
    for pattern in '^expand: ' '^rules: ' '^scheduler: ' '^lookup: ' '^stat: '; do
        before+=("$(trace_count "$pattern")")
    done
    send trace-two@example.org "untraced" || fail "sending the untraced message"
    wait_until 10 maildir_has trace-two@example.org 1 || fail "the untraced message was not delivered"
    sleep 0.5
    local i=0
    for pattern in '^expand: ' '^rules: ' '^scheduler: ' '^lookup: ' '^stat: '; do
        [ "$(trace_count "$pattern")" -eq "${before[$i]}" ] || fail "untrace: still tracing $pattern"
        i=$((i + 1))
    done
    echo "ok: untrace stops each of them"

    expect_output "command succeeded" ctl trace transfer
    expect_output "command succeeded" ctl untrace transfer
    expect_output "command succeeded" ctl trace all
    grep -q "smtpd: tracing: smtp, expand, lookup, rules, scheduler, bounce, mta, stat" \
        "$TEST_DIR/server.log" || fail "trace all does not trace every subsystem"
    expect_output "command succeeded" ctl untrace all
    expect_failure "no trace output for imsg" ctl trace imsg
    ctl untrace imsg >/dev/null 2>&1 || true
    echo "ok: trace transfer and all accepted, trace imsg refused by name"
}

# offline_files: the files sendmail left in the offline directory (not those set aside).
offline_files() {
    find "$TEST_DIR/offline" -maxdepth 1 -type f ! -name 'corrupt-*' ! -name 'refused-*' | sort
}

offline_empty() { [ -z "$(offline_files)" ]; }

# With the daemon stopped, sendmail leaves its message in offline/ (beside the queue),
# quietly and successfully; the daemon enqueues it at start, as the file's owner, and
# sets aside a file it cannot read.
check_offline() {
    [ -d "$TEST_DIR/offline" ] || fail "the daemon made no offline directory"
    [ "$(stat -c %a "$TEST_DIR/offline")" = 3777 ] || fail "offline/ mode $(stat -c %a "$TEST_DIR/offline")"
    printf 'Subject: written offline

kept while the daemon was down
' >"$TEST_DIR/offline.msg"
    "$TEST_DIR/bin/sendmail" offline-one@example.org <"$TEST_DIR/offline.msg" \
        >"$TEST_DIR/out" 2>"$TEST_DIR/err" || fail "sendmail without a daemon: $(cat "$TEST_DIR/err")"
    [ ! -s "$TEST_DIR/out" ] && [ ! -s "$TEST_DIR/err" ] || fail "sendmail without a daemon said: $(cat "$TEST_DIR/out" "$TEST_DIR/err")"
    [ "$(offline_files | wc -l)" -eq 1 ] || fail "offline/ holds: $(ls -la "$TEST_DIR/offline")"
    [ "$(stat -c %a "$(offline_files)")" = 640 ] || fail "offline file mode $(stat -c %a "$(offline_files)")"
    head -1 "$(offline_files)" | grep -qx "smtpd-offline 1" || fail "offline file: $(head -3 "$(offline_files)")"
    local users=1
    if [ "$(id -u)" -eq 0 ]; then
        printf 'Subject: nobody offline

hi
' | as_nobody env SMTPD_SOCKET="$SOCKET" \
            SMTPD_QUEUE="$TEST_DIR/queue" "$TEST_DIR/bin/sendmail" offline-two@example.org \
            || fail "nobody: sendmail without a daemon"
        users=2
        [ "$(offline_files | xargs stat -c %U | sort -u | tr '\n' ' ')" = "nobody root " ] \
            || fail "offline files' owners: $(ls -la "$TEST_DIR/offline")"
    fi
    [ "$(offline_files | wc -l)" -eq "$users" ] || fail "offline/ holds: $(ls -la "$TEST_DIR/offline")"
    printf 'not an offline file
' >"$TEST_DIR/offline/garbage"
    echo "ok: sendmail without a daemon exits 0 quietly and leaves a 0640 file in offline/ per user"

    start_ctl_server
    wait_until 10 maildir_has offline-one@example.org 1 || fail "the offline message was not delivered"
    check_delivered offline-one@example.org "$TEST_DIR/offline.msg" yes
    if [ "$users" -eq 2 ]; then
        wait_until 10 maildir_has offline-two@example.org 1 || fail "nobody's offline message was not delivered"
        grep -q "^From: .*<nobody@" "$TEST_DIR/mail/offline-two@example.org/new/"* \
            || fail "nobody's offline message is not from nobody"
    fi
    wait_until 5 offline_empty || fail "offline/ not emptied: $(ls -la "$TEST_DIR/offline")"
    [ -f "$TEST_DIR/offline/corrupt-garbage" ] || fail "the garbage file was not set aside: $(ls -la "$TEST_DIR/offline")"
    grep -q "offline: garbage set aside as corrupt-garbage" "$TEST_DIR/server.log" \
        || fail "no log line for the garbage file"
    echo "ok: at start the daemon enqueues the offline files as their owners, empties offline/ and sets garbage aside"
    check_trace_mta
    stop_server
}

# `trace mta`: a message relayed to the daemon's own tagged listener shows the
# connection, the remote reply and the session's end; `untrace mta` stops them. (Run
# last: the relayed message counts two deliveries, which check_stats would not expect.)
check_trace_mta() {
    expect_output "command succeeded" ctl trace mta
    send relay-one@example.org "relayed" || fail "sending the relayed message"
    wait_until 15 maildir_has relay-one@example.org 1 || fail "the relayed message did not arrive"
    local pattern
    for pattern in '^mta: session [0-9a-f]{16}: connecting to 127\.0\.0\.1 \[127\.0\.0\.1:[0-9]+\]' \
        '^mta: session [0-9a-f]{16}: connected$' \
        '^mta: session [0-9a-f]{16}: recipient 1 accepted: 250 ' \
        '^mta: delivered: [0-9a-f]{16}$'; do
        wait_until 5 trace_count_above "$pattern" 0 || fail "no trace line matching: $pattern"
    done
    expect_output "command succeeded" ctl untrace mta
    local before
    before=$(trace_count '^mta: ')
    send relay-two@example.org "relayed untraced" || fail "sending the second relayed message"
    wait_until 15 maildir_has relay-two@example.org 1 || fail "the second relayed message did not arrive"
    sleep 0.5
    [ "$(trace_count '^mta: ')" -eq "$before" ] || fail "untrace mta: still tracing"
    echo "ok: trace mta logs the relay session's connection and the remote reply; untrace mta stops it"
}

as_nobody() {
    setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
}

check_permissions() {
    if [ "$(id -u)" -ne 0 ]; then
        [ "$(stat -c %a "$SOCKET")" = 600 ] || fail "socket mode $(stat -c %a "$SOCKET"), want 600"
        echo "ok: not root: the control socket is 0600 (other users cannot reach it; the as-nobody checks need root)"
        return
    fi
    [ "$(stat -c %a "$SOCKET")" = 666 ] || fail "socket mode $(stat -c %a "$SOCKET"), want 666"
    local verb
    for verb in "show queue" "pause mda" "resume smtp" "remove all" "schedule all" \
        "log verbose" "update table blocked" "show envelope 1234567800000001"; do
        # shellcheck disable=SC2086
        expect_failure "permission denied" as_nobody "$CTL" -s "$SOCKET" $verb
    done
    has_line "^uptime=" as_nobody "$CTL" -s "$SOCKET" show stats || fail "nobody: show stats"
    has_line -x "MDA running" as_nobody "$CTL" -s "$SOCKET" show status || fail "nobody: show status"
    printf 'Subject: from nobody\n\nhi\n' | as_nobody env SMTPD_SOCKET="$SOCKET" \
        "$TEST_DIR/bin/sendmail" nobody-sent@example.org || fail "nobody: sendmail"
    wait_until 10 maildir_has nobody-sent@example.org 1 || fail "nobody's message not delivered"
    grep -q "^From: .*<nobody@" "$TEST_DIR/mail/nobody-sent@example.org/new/"* || fail "nobody's From:"
    echo "ok: nobody is refused the privileged verbs, may read stats and status and submit mail"
}

stat_value() { ctl show stats | awk -F= -v k="$1" '$1 == k { print $2 }'; }

stat_is() { [ "$(stat_value "$1")" = "$2" ]; }

check_stats() {
    local stats keys delivered
    stats=$(ctl show stats) || fail "show stats"
    keys=$(printf '%s\n' "$stats" | cut -d= -f1 | grep -v '^uptime.human$')
    [ "$keys" = "$(printf '%s\n' "$keys" | LC_ALL=C sort)" ] || fail "show stats not sorted: $stats"
    grep -Eq '^uptime=[0-9]+$' <<<"$stats" || fail "no uptime: $stats"
    grep -Eq '^uptime.human=([0-9]+[dhms])+$' <<<"$stats" || fail "no uptime.human: $stats"
    grep -Eqv '^[a-z0-9.]+=-?[0-9]+$|^uptime.human=' <<<"$stats" \
        && fail "a line that is not key=value: $stats"
    delivered=$(($(find "$TEST_DIR/mail" -path '*/new/*' -type f | wc -l) +
        $(find "$TEST_DIR/state" -name 'delivered.*' | wc -l)))
    [ "$(stat_value scheduler.delivery.ok)" = "$delivered" ] \
        || fail "scheduler.delivery.ok=$(stat_value scheduler.delivery.ok), $delivered delivered"
    [ "$(stat_value scheduler.delivery.tempfail)" -ge 3 ] || fail "tempfail count: $stats"
    local accepted sessions
    accepted=$(grep -c "message accepted" "$TEST_DIR/server.log")
    sessions=$(grep -c "smtp-in: session [0-9a-f]*: connected from" "$TEST_DIR/server.log")
    [ "$(stat_value smtp.message)" = "$accepted" ] \
        || fail "smtp.message=$(stat_value smtp.message), $accepted accepted in the log"
    [ "$(stat_value smtp.session.new)" = "$sessions" ] \
        || fail "smtp.session.new=$(stat_value smtp.session.new), $sessions sessions in the log"
    [ "$(stat_value scheduler.envelope)" = 0 ] || fail "scheduler.envelope: $stats"
    [ "$(stat_value smtp.session)" = 0 ] || fail "smtp.session with no client: $stats"
    # An idle client counts while it is connected.
    python3 - "$PORT" "$CTL" "$SOCKET" <<'PY' || fail "smtp.session with one client"
import socket, subprocess, sys, time
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5) as s:
    s.recv(512)
    deadline = time.time() + 5
    while True:
        out = subprocess.run([sys.argv[2], "-s", sys.argv[3], "show", "stats"],
                             capture_output=True, text=True, check=True).stdout
        if "smtp.session=1\n" in out:
            break
        assert time.time() < deadline, out
        time.sleep(0.1)
PY
    echo "ok: show stats: sorted key=value lines, uptime, $delivered deliveries, $accepted messages and $sessions sessions counted"

    wait_until 5 stat_is smtp.session 0 || fail "the client's session still counted"
    timeout 3.5 "$CTL" -s "$SOCKET" monitor >"$TEST_DIR/monitor" 2>&1 || true
    python3 - "$TEST_DIR/monitor" <<'PY' || fail "monitor: $(cat "$TEST_DIR/monitor")"
import sys
lines = open(sys.argv[1]).read().splitlines()
assert lines[0].startswith("--- client ---"), lines
assert lines[1].split() == ["curr", "conn", "disc", "curr", "enq", "deq", "ok", "tmpfail",
                            "prmfail", "loop", "expire", "remove", "bounce"], lines[1]
rows = [l.split() for l in lines[2:]]
assert len(rows) >= 2, lines
assert all(len(r) == 13 and all(v.lstrip("-").isdigit() for v in r) for r in rows), rows
# Nothing happens while it runs: after the first line, no increments.
assert all(v == "0" for r in rows[1:] for v in r[1:3] + r[4:]), rows
PY
    echo "ok: monitor prints OpenSMTPD's header and a line of counters a second"
}

check_socket_removed() {
    stop_server
    [ ! -e "$SOCKET" ] || fail "the control socket is left after the daemon stopped"
    expect_failure "doesn't seem to be running" ctl show status
    echo "ok: the socket goes with the daemon; smtpctl then says so"
}

run_smtpctl_suite() {
    build_smtpctl
    setup_smtpctl_test
    start_ctl_server
    check_queue_verbs
    check_pause_envelope
    check_pause_mda
    check_pause_smtp
    check_sendmail
    check_update_table
    check_log
    check_other_verbs
    check_traces
    check_permissions
    check_stats
    check_socket_removed
    check_offline
}
