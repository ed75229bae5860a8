//! STARTTLS and AUTH.

use super::*;

#[test]
fn starttls_drops_pipelined_plaintext_and_resets() {
    let cfg = ServerConfig {
        tls_available: true,
        tls_required: true,
        auth: true,
        ..config()
    };
    let mut h = ehloed(cfg);
    assert_eq!(
        h.say("MAIL FROM:<a@b.c>\r\n"),
        "530 5.7.0 Must issue a STARTTLS command first\r\n"
    );
    let all = h.feed("STARTTLS\r\nMAIL FROM:<evil@x.y>\r\n");
    assert_eq!(
        all,
        vec![
            Action::Event(Event::Command { verb: "STARTTLS" }),
            Action::Event(Event::DiscardedPlaintext { bytes: 22 }),
            Action::Send(Bytes::from_static(b"220 2.0.0 Ready to start TLS\r\n")),
            Action::StartTls,
        ]
    );
    assert_eq!(h.session.recv_capacity(), 0);
    let all = h.input(Input::TlsEstablished {
        protocol: "TLSv1.3",
        cipher: "X",
    });
    assert!(matches!(
        all[..],
        [Action::Event(Event::TlsEstablished { .. })]
    ));
    assert_eq!(
        h.say("MAIL FROM:<a@b.c>\r\n"),
        "503 5.5.1 Send HELO or EHLO first\r\n"
    );
    let ehlo = h.say("EHLO c\r\n");
    assert!(
        !ehlo.contains("STARTTLS") && ehlo.contains("AUTH PLAIN LOGIN"),
        "{ehlo}"
    );
    assert_eq!(h.say("STARTTLS\r\n"), "503 5.5.1 TLS already active\r\n");
    assert_eq!(h.say("MAIL FROM:<a@b.c>\r\n"), "250 2.0.0 ok\r\n");
    let mut h = ehloed(config());
    assert_eq!(
        h.say("STARTTLS\r\n"),
        "502 5.5.1 Command not implemented\r\n"
    );
}

/// A session over TLS offering AUTH, after EHLO.
fn auth_ready(required: bool) -> Harness {
    let cfg = ServerConfig {
        tls_available: true,
        auth: true,
        auth_required: required,
        ..config()
    };
    let mut h = ehloed(cfg);
    h.say("STARTTLS\r\n");
    h.input(Input::TlsEstablished {
        protocol: "TLSv1.3",
        cipher: "X",
    });
    h.say("EHLO c\r\n");
    h
}

#[test]
fn auth_plain_with_and_without_initial_response() {
    let mut h = auth_ready(true);
    assert_eq!(
        h.say("MAIL FROM:<a@b.c>\r\n"),
        "530 5.7.0 Authentication required\r\n"
    );
    // "\0joe\0secret"
    let all = h.feed("AUTH PLAIN AGpvZQBzZWNyZXQ=\r\n");
    let (id, question) = asks(&all)[0].clone();
    assert_eq!(
        question,
        Question::Auth {
            mechanism: AuthMechanism::Plain,
            authzid: Bytes::new(),
            authcid: Bytes::from_static(b"joe"),
            password: Bytes::from_static(b"secret"),
        }
    );
    assert_eq!(
        text(&h.answer(id, reply(535, "bad credentials"))),
        "535 5.0.0 bad credentials\r\n"
    );
    assert_eq!(h.say("AUTH PLAIN\r\n"), "334 \r\n");
    assert_eq!(h.say("AGpvZQBzZWNyZXQ=\r\n"), "235 2.0.0 authenticated\r\n");
    assert_eq!(
        h.say("AUTH PLAIN AGpvZQBzZWNyZXQ=\r\n"),
        "503 5.5.1 Already authenticated\r\n"
    );
    assert_eq!(h.say("MAIL FROM:<a@b.c>\r\n"), "250 2.0.0 ok\r\n");
}

#[test]
fn auth_login_cancel_and_refusals() {
    let mut h = auth_ready(false);
    assert_eq!(h.say("AUTH LOGIN\r\n"), "334 VXNlcm5hbWU6\r\n");
    assert_eq!(h.say("am9l\r\n"), "334 UGFzc3dvcmQ6\r\n");
    let all = h.feed("c2VjcmV0\r\n");
    assert!(
        matches!(&asks(&all)[0].1, Question::Auth { mechanism: AuthMechanism::Login, authcid, .. } if authcid == "joe")
    );
    let mut h = auth_ready(false);
    assert_eq!(h.say("AUTH LOGIN am9l\r\n"), "334 UGFzc3dvcmQ6\r\n");
    assert_eq!(h.say("*\r\n"), "501 5.0.0 Authentication canceled\r\n");
    assert_eq!(
        h.say("AUTH CRAM-MD5\r\n"),
        "504 5.5.4 Unrecognized authentication type\r\n"
    );
    h.say("AUTH PLAIN\r\n");
    assert_eq!(h.say("!!!\r\n"), "501 5.5.2 Invalid base64 data\r\n");
    h.say("AUTH PLAIN\r\n");
    assert_eq!(
        h.say("am9l\r\n"),
        "501 5.5.2 Malformed authentication data\r\n"
    );
    h.say("MAIL FROM:<a@b.c>\r\n");
    assert_eq!(
        h.say("AUTH PLAIN AGpvZQBzZWNyZXQ=\r\n"),
        "503 5.5.1 AUTH not permitted during a mail transaction\r\n"
    );
    let mut h = ehloed(ServerConfig {
        auth: true,
        ..config()
    });
    assert_eq!(
        h.say("AUTH PLAIN AGpvZQBzZWNyZXQ=\r\n"),
        "538 5.7.11 Encryption required for requested authentication mechanism\r\n"
    );
    let mut h = ehloed(config());
    assert_eq!(
        h.say("AUTH PLAIN AGpvZQBzZWNyZXQ=\r\n"),
        "502 5.5.1 Command not implemented\r\n"
    );
}

#[test]
fn auth_password_never_shows_in_debug() {
    let question = Question::Auth {
        mechanism: AuthMechanism::Plain,
        authzid: Bytes::new(),
        authcid: Bytes::from_static(b"joe"),
        password: Bytes::from_static(b"hunter2"),
    };
    let shown = format!("{question:?}");
    assert!(
        shown.contains("joe") && !shown.contains("hunter2"),
        "{shown}"
    );
}

#[test]
fn shutdown_or_peer_close_during_the_tls_handshake_hangs_up() {
    let cfg = ServerConfig {
        tls_available: true,
        ..config()
    };
    let mut h = ehloed(cfg.clone());
    h.say("STARTTLS\r\n");
    assert_eq!(
        h.input(Input::Shutdown),
        vec![Action::Close(CloseReason::Shutdown)]
    );
    let mut h = ehloed(cfg);
    h.say("STARTTLS\r\n");
    assert_eq!(
        h.input(Input::PeerClosed),
        vec![Action::Close(CloseReason::PeerClosed)]
    );
}
