# write_config FILE [EXTRA]: the configuration of an end-to-end test: the queue and the
# maildirs in $TEST_DIR, a listener on 127.0.0.1 port $PORT, every address delivered as
# the unprivileged user `nobody` into $TEST_DIR/mail/ADDRESS. EXTRA lines come first
# (more actions and match rules, which win over the catch-all).
write_config() {
    {
        echo "queue path \"$TEST_DIR/queue\""
        echo "listen on 127.0.0.1 port $PORT"
        echo "action \"box\" maildir \"$TEST_DIR/mail/%{rcpt:lowercase}\" virtual { \"@\" = \"nobody\" }"
        printf '%s\n' "${2:-}"
        echo "match from any for any action \"box\""
    } >"$1"
}
