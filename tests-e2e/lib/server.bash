# Helpers shared by the smtpd-std end-to-end tests (sourced, not run: scripts/test-all
# runs only tests-e2e/*.sh). Each test gets its own temporary directory, port and
# configuration, and its server is always stopped by pid at exit.
#
# SMTPD_STD, SMTPD, SMTPCTL: the binaries to test (smtpd-std, smtpd, smtpctl; default:
# built here by build_server, build_smol_server, build_smtpctl, release profile, into
# ${CARGO_TARGET_DIR:-target}).

E2E_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
E2E_LIB="$E2E_ROOT/tests-e2e/lib"

# The directory release binaries are built into.
release_dir() {
    local target=${CARGO_TARGET_DIR:-target}
    case "$target" in /*) ;; *) target="$E2E_ROOT/$target" ;; esac
    echo "$target/release"
}

# build_server: SMTPD_STD, smtpd-std.
build_server() {
    if [ -z "${SMTPD_STD:-}" ]; then
        (cd "$E2E_ROOT" && cargo build -q --release -p runtime-std --bin smtpd-std)
        SMTPD_STD="$(release_dir)/smtpd-std"
    fi
    [ -x "$SMTPD_STD" ] || { echo "no binary at $SMTPD_STD" >&2; exit 1; }
}

# build_smol_server: SMTPD, the smol daemon `smtpd`.
build_smol_server() {
    if [ -z "${SMTPD:-}" ]; then
        (cd "$E2E_ROOT" && cargo build -q --release -p runtime-smol --bin smtpd)
        SMTPD="$(release_dir)/smtpd"
    fi
    [ -x "$SMTPD" ] || { echo "no binary at $SMTPD" >&2; exit 1; }
}

# build_smtpctl: SMTPCTL, the control client.
build_smtpctl() {
    if [ -z "${SMTPCTL:-}" ]; then
        (cd "$E2E_ROOT" && cargo build -q --release -p runtime-std --bin smtpctl)
        SMTPCTL="$(release_dir)/smtpctl"
    fi
    [ -x "$SMTPCTL" ] || { echo "no binary at $SMTPCTL" >&2; exit 1; }
}

# A fresh test directory readable by the unprivileged account deliveries run as when
# the daemon is root; mail/ is where the maildirs go.
make_test_dir() {
    TEST_DIR=$(mktemp -d /tmp/smtpd-e2e.XXXXXX)
    chmod 755 "$TEST_DIR"
    mkdir -m 1777 "$TEST_DIR/mail"
    SERVER_PID=
    trap cleanup EXIT
}

cleanup() {
    stop_server
    if [ -n "${KEEP_TEST_DIR:-}" ]; then
        echo "test directory kept: $TEST_DIR" >&2
    else
        rm -rf "$TEST_DIR"
    fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_server CONFIG: start the daemon in the foreground on CONFIG, wait for its port.
start_server() {
    # The control socket stays in the test directory (as root the default is the shared
    # /var/run/smtpd.sock).
    "$SMTPD_STD" -d -s "$TEST_DIR/smtpd.sock" -f "$1" >>"$TEST_DIR/server.log" 2>&1 &
    SERVER_PID=$!
    python3 "$E2E_LIB/smtp_e2e.py" wait-port "$PORT" || {
        echo "server did not start; log:" >&2
        tail -n 30 "$TEST_DIR/server.log" >&2
        exit 1
    }
}

# stop_server [SIGNAL]: stop the daemon by pid (SIGTERM by default) and wait for it.
stop_server() {
    if [ -n "${SERVER_PID:-}" ]; then
        kill "-${1:-TERM}" "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}

fail() {
    echo "FAIL: $*" >&2
    echo "--- server log (tail)" >&2
    tail -n 40 "$TEST_DIR/server.log" >&2 || true
    exit 1
}
