#!/usr/bin/env bash
# Compares our configuration checker with OpenSMTPD's on every modern corpus file:
# `smtpd-std -n -f FILE` and `/usr/sbin/smtpd -n -f FILE` must agree on valid/invalid.
# Also checks that the normalized configuration we print for each valid file (-n -v) is
# accepted by OpenSMTPD. Classic files and our extensions are skipped (see the corpus
# README: OpenSMTPD 6.8 reads neither). A file we refuse with "is not supported" (a
# feature not built here, such as the relay option srs) is listed, not failed.
#
# SMTPD_STD: our binary (default: built here with cargo into the default target dir).
# OPENSMTPD: OpenSMTPD's smtpd (default /usr/sbin/smtpd). Runs as root (sudo otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
CORPUS=mta-core/tests/config-corpus
OPENSMTPD=${OPENSMTPD:-/usr/sbin/smtpd}

if [ ! -x "$OPENSMTPD" ]; then
    echo "config-oracle: $OPENSMTPD not installed, skipped" >&2
    exit 0
fi
if [ -z "${SMTPD_STD:-}" ]; then
    cargo build -q -p runtime-std --bin smtpd-std
    SMTPD_STD=${CARGO_TARGET_DIR:-target}/debug/smtpd-std
fi
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# The corpus names its tables, includes and certificates /tmp/smtpd-corpus/NAME.
mkdir -p /tmp/smtpd-corpus
cp "$CORPUS"/files/* /tmp/smtpd-corpus/
if [ ! -f /tmp/smtpd-corpus/cert.pem ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -keyout /tmp/smtpd-corpus/key.pem \
        -out /tmp/smtpd-corpus/cert.pem -days 3650 -subj /CN=mail.example.com 2>/dev/null
fi
chmod 600 /tmp/smtpd-corpus/key.pem
printed=$(mktemp /tmp/smtpd-corpus/printed.XXXXXX)
trap 'rm -f "$printed"' EXIT

verdict() { # command... -> "valid" or "invalid"
    if "$@" >/dev/null 2>&1; then echo valid; else echo invalid; fi
}

fail=0
count=0
refused=0
for f in "$CORPUS"/valid/modern/*.conf "$CORPUS"/invalid/modern/*.conf "$CORPUS"/invalid/runtime/*.conf; do
    count=$((count + 1))
    ours=$(verdict "$SMTPD_STD" -n -f "$f")
    theirs=$(verdict as_root timeout 20 "$OPENSMTPD" -n -f "$f")
    expected=valid
    case "$f" in */invalid/*) expected=invalid ;; esac
    # A feature we refuse on purpose (valid grammar, not built here) is refused with
    # "is not supported": that is a known gap, said here, not a disagreement on grammar.
    said=$("$SMTPD_STD" -n -f "$f" 2>&1 || true)
    if [ "$ours" = invalid ] && [ "$theirs" = valid ] && [ "$expected" = valid ] &&
        [[ "$said" == *"is not supported"* ]]; then
        echo "REFUSED ON PURPOSE $f: $said"
        refused=$((refused + 1))
        continue
    fi
    if [ "$ours" != "$theirs" ] || [ "$ours" != "$expected" ]; then
        echo "DISAGREE $f: ours=$ours opensmtpd=$theirs expected=$expected"
        "$SMTPD_STD" -n -f "$f" 2>&1 | sed 's/^/  ours: /'
        as_root "$OPENSMTPD" -n -f "$f" 2>&1 | sed 's/^/  opensmtpd: /'
        fail=1
        continue
    fi
    if [ "$ours" = valid ]; then
        "$SMTPD_STD" -n -v -f "$f" | grep -v '^configuration OK$' >"$printed"
        if [ "$(verdict as_root timeout 20 "$OPENSMTPD" -n -f "$printed")" != valid ]; then
            echo "PRINTED FORM REJECTED by OpenSMTPD for $f:"
            as_root "$OPENSMTPD" -n -f "$printed" 2>&1 | sed 's/^/  /'
            fail=1
        fi
    fi
done
if [ "$fail" != 0 ]; then
    echo "config-oracle: disagreements with OpenSMTPD (see above)"
    exit 1
fi
echo "config-oracle: $count modern files, same verdict as OpenSMTPD ($refused refused on purpose)"
