# Helpers shared by the relay end-to-end tests of the smol daemon (tests-e2e/relay-*.sh;
# sourced, not run). On top of server.bash: the `smtpd` binary (and `smtpctl`), helper
# processes (SMTP sinks, dnsmasq, smtp-sink, OpenSMTPD) started in the background and
# stopped by pid at exit with the daemon, and Postfix's smtp-sink unpacked on first use.
#
# SMTPD: the daemon to test, SMTPCTL: its control client (default: built here, release
# profile, into ${CARGO_TARGET_DIR:-target}). POSTFIX_TOOLS: where Postfix's package is
# unpacked (default ~/.cache/postfix-tools, as /work/shared/bench/smtp-load.sh does).

. "$(dirname "${BASH_SOURCE[0]}")/server.bash"

# The system python3 has aiosmtpd (python3-aiosmtpd); pyenv's may not.
SINK_PYTHON=${SINK_PYTHON:-/usr/bin/python3}
RELAY_PY="$E2E_LIB/relay_e2e.py"
HELPER_PIDS=()

# build_smtpd: the smol daemon, run by server.bash's start_server (which starts $SMTPD_STD).
build_smtpd() {
    build_smol_server
    SMTPD_STD=$SMTPD
}

# relay_setup: build, make the test directory, and stop every helper at exit.
relay_setup() {
    build_smtpd
    make_test_dir
    trap relay_cleanup EXIT
}

# descendants PID: PID and every process below it (by parent pid).
descendants() {
    local c
    echo "$1"
    for c in $(pgrep -P "$1" 2>/dev/null || true); do descendants "$c"; done
}

# stop_pid PID: SIGTERM to PID, up to 5 s, then SIGKILL to it and to whatever it had
# started (OpenSMTPD's privilege-separated processes); reaps it.
stop_pid() {
    local pid=$1 tree i
    tree=$(descendants "$pid" | xargs)
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    for i in $tree; do kill -KILL "$i" 2>/dev/null || true; done
    wait "$pid" 2>/dev/null || true
}

relay_cleanup() {
    local rc=$? pid
    set +e
    stop_server
    for pid in "${HELPER_PIDS[@]}"; do stop_pid "$pid"; done
    HELPER_PIDS=()
    cleanup
    exit $rc
}

# wait_listen HOST PORT [SECONDS]: until something accepts connections there.
wait_listen() {
    python3 - "$1" "$2" "${3:-10}" <<'PY' || fail "nothing listens on $1:$2"
import socket, sys, time
host, port, deadline = sys.argv[1], int(sys.argv[2]), time.time() + float(sys.argv[3])
while time.time() < deadline:
    try:
        socket.create_connection((host, port), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
PY
}

# start_sink IP PORT: an aiosmtpd sink writing to $TEST_DIR/sink-IP-PORT (see relay_e2e.py);
# its pid in SINK_PID.
start_sink() {
    "$SINK_PYTHON" "$RELAY_PY" sink "$1" "$2" "$TEST_DIR/sink-$1-$2" \
        >>"$TEST_DIR/sink-$1-$2.log" 2>&1 &
    SINK_PID=$!
    HELPER_PIDS+=("$SINK_PID")
    wait_listen "$1" "$2"
}

# start_dns ARGS...: dnsmasq answering only for *.test on 127.0.0.1:$DNSPORT, with the
# given --mx-host/--host-record options.
start_dns() {
    DNSPORT=$(free_port)
    dnsmasq --no-daemon --conf-file=/dev/null --no-resolv --no-hosts --bind-interfaces \
        --listen-address=127.0.0.1 --port="$DNSPORT" --pid-file="$TEST_DIR/dnsmasq.pid" \
        --local=/test/ "$@" >>"$TEST_DIR/dnsmasq.log" 2>&1 &
    HELPER_PIDS+=($!)
    python3 "$RELAY_PY" wait-dns "$DNSPORT" || fail "dnsmasq did not start: $(cat "$TEST_DIR/dnsmasq.log")"
}

# sink_count DIR: messages an aiosmtpd sink has written to DIR.
sink_count() {
    local f=("$1"/*.eml)
    [ -e "${f[0]}" ] && echo "${#f[@]}" || echo 0
}

# postfix_tools: unpack Debian's postfix package (never installed: it conflicts with
# opensmtpd) so that smtp-sink and smtp-source can run from it.
postfix_tools() {
    POSTFIX_TOOLS=${POSTFIX_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/postfix-tools}
    if [ ! -x "$POSTFIX_TOOLS/usr/sbin/smtp-sink" ] || [ ! -x "$POSTFIX_TOOLS/usr/sbin/smtp-source" ]; then
        mkdir -p "$POSTFIX_TOOLS"
        (cd "$POSTFIX_TOOLS" && { apt-get download postfix >/dev/null 2>&1 ||
            { apt-get update -qq && apt-get download postfix >/dev/null; }; } &&
            dpkg -x postfix_*.deb .) || fail "could not unpack Postfix's smtp-sink into $POSTFIX_TOOLS"
    fi
    SMTP_SINK="$POSTFIX_TOOLS/usr/sbin/smtp-sink"
    SMTP_SOURCE="$POSTFIX_TOOLS/usr/sbin/smtp-source"
}

# postfix_run PROGRAM ARGS...: a Postfix tool with its private libraries (in the
# foreground: a function run in the background would put a subshell's pid in $!).
postfix_run() {
    LD_LIBRARY_PATH="$POSTFIX_TOOLS/usr/lib/postfix${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$@"
}

# start_server_with CONFIG ARGS...: as server.bash's start_server, with more arguments
# for the daemon. The relay tests pass `-s $TEST_DIR/smtpd.sock`: a daemon run as root
# would otherwise take /var/run/smtpd.sock, shared with any other daemon on the machine.
start_server_with() {
    local config=$1
    shift
    "$SMTPD_STD" -d "$@" -f "$config" >>"$TEST_DIR/server.log" 2>&1 &
    SERVER_PID=$!
    python3 "$E2E_LIB/smtp_e2e.py" wait-port "$PORT" || {
        echo "server did not start; log:" >&2
        tail -n 30 "$TEST_DIR/server.log" >&2
        exit 1
    }
}
