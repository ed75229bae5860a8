//! Opening and ending the session: greeting, EHLO/HELO, STARTTLS, AUTH, QUIT, and the
//! ways a server can break it (malformed replies, replies out of turn, 421, timeouts).

use super::*;
use crate::client::{Credentials, TlsPolicy};
use crate::reply::{Reply, ReplyError};

fn tls_config(policy: TlsPolicy) -> ClientConfig {
    ClientConfig {
        tls: policy,
        tls_available: true,
        ..config()
    }
}

fn with_credentials(mut config: ClientConfig) -> ClientConfig {
    config.credentials = Some(Credentials {
        user: Bytes::from_static(b"tim"),
        password: Bytes::from_static(b"tanstaaf"),
    });
    config
}

#[test]
fn greets_with_ehlo_then_is_ready_and_quits() {
    let mut run = Run::new(config());
    assert_eq!(run.sent(), "", "nothing before the greeting");
    run.recv("220 mx.example ESMTP\r\n");
    assert_eq!(run.sent(), "EHLO client.example\r\n");
    run.recv(&ehlo(&["PIPELINING", "SIZE 1000"]));
    assert_eq!(run.take(), vec![Action::Ready]);
    assert!(run.session.is_idle());
    assert!(run.session.capabilities().pipelining);
    assert_eq!(run.session.capabilities().size, Some(1000));
    assert_eq!(run.session.poll_timeout(), None, "no timer while idle");
    run.input(Input::Quit);
    assert_eq!(run.sent(), "QUIT\r\n");
    run.recv("221 bye\r\n");
    assert_eq!(run.take(), vec![Action::Close]);
    assert!(run.session.is_closed());
}

#[test]
fn falls_back_to_helo_when_ehlo_is_not_understood() {
    for code in ["500", "502", "554"] {
        let mut run = Run::new(config());
        run.recv("220 mx.example\r\n");
        run.take();
        run.recv(&format!("{code} what?\r\n"));
        assert_eq!(run.sent(), "HELO client.example\r\n");
        run.recv("250 mx.example\r\n");
        assert_eq!(run.take(), vec![Action::Ready]);
        assert_eq!(run.session.capabilities(), &Default::default());
    }
    let mut run = Run::new(config());
    run.recv("220 mx.example\r\n");
    run.recv("502 no EHLO\r\n");
    run.take();
    run.recv("501 no HELO either\r\n");
    let actions = run.take();
    let reason = ErrorReason::Refused {
        command: "HELO",
        reply: Reply::new(501, None, Bytes::from_static(b"no HELO either")),
    };
    assert_failed(&actions, &reason, false);
    assert_eq!(
        actions[1],
        Action::Send(Bytes::from_static(b"QUIT\r\n")),
        "polite: the server is in step"
    );
}

#[test]
fn a_refused_greeting_ends_the_session_and_fails_messages_temporarily() {
    let mut run = Run::new(config());
    run.send(message(7, &["a@example.net"], "x\r\n"));
    run.recv("554 go away\r\n");
    let actions = run.take();
    assert_eq!(outcomes(&actions), vec![(7, vec![('T', 421)])]);
    let reply = Reply::new(554, None, Bytes::from_static(b"go away"));
    assert_failed(&actions, &ErrorReason::Greeting(reply), false);
    let mut run = Run::new(config());
    run.recv("421 busy\r\n");
    let actions = run.take();
    let reply = Reply::new(421, None, Bytes::from_static(b"busy"));
    assert_failed(&actions, &ErrorReason::ServiceClosing(reply), true);
}

#[test]
fn opportunistic_starttls_upgrades_and_greets_again() {
    let mut run = Run::new(tls_config(TlsPolicy::Opportunistic));
    run.recv("220 mx.example\r\n");
    run.take();
    run.recv(&ehlo(&["STARTTLS", "PIPELINING"]));
    assert_eq!(run.sent(), "STARTTLS\r\n");
    run.recv("220 go ahead\r\n");
    assert_eq!(run.take(), vec![Action::StartTls]);
    assert!(
        run.session.poll_timeout().is_some(),
        "the handshake is timed"
    );
    run.input(Input::TlsEstablished);
    assert!(run.session.is_tls());
    assert_eq!(run.session.capabilities(), &Default::default(), "forgotten");
    assert_eq!(run.sent(), "EHLO client.example\r\n");
    run.recv(&ehlo(&["PIPELINING"]));
    assert_eq!(run.take(), vec![Action::Ready]);
}

#[test]
fn opportunistic_tls_goes_on_in_plaintext_when_absent_or_refused() {
    let mut run = Run::new(tls_config(TlsPolicy::Opportunistic));
    run.recv("220 mx.example\r\n");
    run.take();
    run.recv(&ehlo(&["PIPELINING"]));
    assert_eq!(run.take(), vec![Action::Ready]);
    let mut run = Run::new(tls_config(TlsPolicy::Opportunistic));
    run.recv("220 mx.example\r\n");
    run.recv(&ehlo(&["STARTTLS"]));
    run.take();
    run.recv("454 TLS not available\r\n");
    assert_eq!(run.take(), vec![Action::Ready]);
    assert!(!run.session.is_tls());
    // Without TLS in the runtime, STARTTLS is never tried.
    let mut run = Run::new(config());
    run.recv("220 mx.example\r\n");
    run.take();
    run.recv(&ehlo(&["STARTTLS"]));
    assert_eq!(run.take(), vec![Action::Ready]);
}

#[test]
fn never_policy_ignores_starttls() {
    let mut run = Run::new(tls_config(TlsPolicy::Never));
    run.recv("220 mx.example\r\n");
    run.take();
    run.recv(&ehlo(&["STARTTLS"]));
    assert_eq!(run.take(), vec![Action::Ready]);
}

#[test]
fn required_tls_fails_when_not_offered_or_refused() {
    let mut run = Run::new(tls_config(TlsPolicy::Required));
    run.send(message(1, &["a@example.net"], "x\r\n"));
    run.recv("220 mx.example\r\n");
    run.take();
    run.recv(&ehlo(&["PIPELINING"]));
    let actions = run.take();
    assert_eq!(outcomes(&actions), vec![(1, vec![('T', 421)])]);
    assert_failed(&actions, &ErrorReason::TlsNotAvailable, false);
    assert!(actions.contains(&Action::Send(Bytes::from_static(b"QUIT\r\n"))));

    let mut run = Run::new(tls_config(TlsPolicy::Required));
    run.recv("220 mx.example\r\n");
    run.recv(&ehlo(&["STARTTLS"]));
    run.take();
    run.recv("454 4.7.0 not now\r\n");
    let reply = Reply::new(
        454,
        Some(crate::reply::EnhancedStatus::new(4, 7, 0)),
        "not now",
    );
    let reason = ErrorReason::Refused {
        command: "STARTTLS",
        reply,
    };
    assert_failed(&run.take(), &reason, true);

    // Implicit TLS (smtps): already encrypted, STARTTLS never sent.
    let mut implicit = tls_config(TlsPolicy::Required);
    implicit.implicit_tls = true;
    let mut run = Run::new(implicit);
    run.recv("220 mx.example\r\n");
    run.take();
    run.recv(&ehlo(&["STARTTLS"]));
    assert_eq!(run.take(), vec![Action::Ready]);
}

#[test]
fn bytes_after_the_starttls_reply_are_an_injection() {
    let mut run = Run::new(tls_config(TlsPolicy::Opportunistic));
    run.recv("220 mx.example\r\n");
    run.recv(&ehlo(&["STARTTLS"]));
    run.take();
    run.recv("220 go ahead\r\n250 injected\r\n");
    let actions = run.take();
    assert!(!actions.contains(&Action::StartTls));
    assert_failed(&actions, &ErrorReason::OutOfTurn, true);
}

#[test]
fn auth_plain_over_tls() {
    let mut run = Run::new(with_credentials(tls_config(TlsPolicy::Opportunistic)));
    run.recv("220 mx.example\r\n");
    run.recv(&ehlo(&["STARTTLS", "AUTH LOGIN"]));
    run.recv("220 go\r\n");
    run.input(Input::TlsEstablished);
    run.take();
    run.recv(&ehlo(&["AUTH LOGIN PLAIN"]));
    // base64("\0tim\0tanstaaf")
    assert_eq!(run.sent(), "AUTH PLAIN AHRpbQB0YW5zdGFhZg==\r\n");
    run.recv("235 2.7.0 ok\r\n");
    assert_eq!(run.take(), vec![Action::Ready]);
    assert!(run.session.is_authenticated());
}

#[test]
fn auth_login_over_implicit_tls() {
    let mut config = with_credentials(tls_config(TlsPolicy::Required));
    config.implicit_tls = true;
    let mut run = Run::new(config);
    run.recv("220 mx.example\r\n");
    run.take();
    run.recv(&ehlo(&["AUTH LOGIN"]));
    assert_eq!(run.sent(), "AUTH LOGIN\r\n");
    run.recv("334 VXNlcm5hbWU6\r\n");
    assert_eq!(run.sent(), "dGlt\r\n");
    run.recv("334 UGFzc3dvcmQ6\r\n");
    assert_eq!(run.sent(), "dGFuc3RhYWY=\r\n");
    run.recv("235 ok\r\n");
    assert_eq!(run.take(), vec![Action::Ready]);
}

#[test]
fn auth_failures_end_the_session() {
    let mut config = with_credentials(tls_config(TlsPolicy::Required));
    config.implicit_tls = true;
    let mut run = Run::new(config.clone());
    run.recv("220 mx.example\r\n");
    run.recv(&ehlo(&["AUTH PLAIN"]));
    run.take();
    run.recv("535 5.7.8 bad credentials\r\n");
    let actions = run.take();
    let errors = errors(&actions);
    assert!(matches!(
        errors[0].reason,
        ErrorReason::Refused {
            command: "AUTH",
            ..
        }
    ));
    assert!(!errors[0].temporary);
    // No mechanism we speak.
    let mut run = Run::new(config);
    run.recv("220 mx.example\r\n");
    run.take();
    run.recv(&ehlo(&["AUTH CRAM-MD5"]));
    assert_failed(&run.take(), &ErrorReason::NoAuthMechanism, false);
}

#[test]
fn credentials_are_never_sent_in_plaintext() {
    let mut run = Run::new(with_credentials(config()));
    run.recv("220 mx.example\r\n");
    run.take();
    run.recv(&ehlo(&["AUTH PLAIN LOGIN", "STARTTLS"]));
    let actions = run.take();
    assert_failed(&actions, &ErrorReason::PlaintextCredentials, false);
    let sent: Vec<_> = actions
        .iter()
        .filter(|a| matches!(a, Action::Send(_)))
        .collect();
    assert_eq!(sent, vec![&Action::Send(Bytes::from_static(b"QUIT\r\n"))]);
    let shown = format!("{:?}", with_credentials(config()));
    assert!(!shown.contains("tanstaaf"), "{shown}");
}

#[test]
fn malformed_replies_end_the_session_without_a_panic() {
    let cases: [(&str, ReplyError); 5] = [
        ("250-mx\r\n251 other\r\n", ReplyError::CodeMismatch),
        ("250 bare\n", ReplyError::BareCrLf),
        ("2500\r\n", ReplyError::BadSeparator),
        ("150 low\r\n", ReplyError::BadCode),
        (
            "250-x\r\n250-x\r\n250-x\r\n250-x\r\n",
            ReplyError::TooManyLines,
        ),
    ];
    for (bytes, error) in cases {
        let mut config = config();
        config.reply_limits.max_lines = 3;
        let mut run = Run::new(config);
        run.recv("220 mx.example\r\n");
        run.take();
        run.recv(bytes);
        assert_failed(&run.take(), &ErrorReason::Malformed(error), true);
    }
    // An endless line is refused at its limit, never buffered past it.
    let mut config = config();
    config.reply_limits.max_line_len = 100;
    let limit = config.recv_buffer();
    let mut run = Run::new(config);
    run.recv("220 mx.example\r\n");
    run.take();
    for _ in 0..10 {
        run.recv("250-xxxxxxxxxxxxxxxxxxxxxxxx");
        assert!(run.session.buffered_len() <= limit);
    }
    let actions = run.take();
    let reason = ErrorReason::Malformed(ReplyError::LineTooLong);
    assert_failed(&actions, &reason, true);
}

#[test]
fn unexpected_codes_and_replies_out_of_turn_end_the_session() {
    let mut run = Run::new(config());
    run.recv("354 what\r\n");
    let reason = ErrorReason::UnexpectedReply {
        command: "greeting",
        reply: Reply::new(354, None, Bytes::from_static(b"what")),
    };
    assert_failed(&run.take(), &reason, true);
    // The EHLO reply before EHLO was sent.
    let mut run = Run::new(config());
    run.recv("220 mx.example\r\n250 mx.example\r\n");
    assert_failed(&run.take(), &ErrorReason::OutOfTurn, true);
    // Bytes while the handshake runs.
    let mut run = Run::new(tls_config(TlsPolicy::Opportunistic));
    run.recv("220 mx.example\r\n");
    run.recv(&ehlo(&["STARTTLS"]));
    run.recv("220 go\r\n");
    run.take();
    run.recv("250 early\r\n");
    assert_failed(&run.take(), &ErrorReason::OutOfTurn, true);
}

#[test]
fn an_idle_server_hanging_up_is_no_error() {
    let mut run = Run::greeted(config(), &[]);
    run.recv("421 4.4.2 idle timeout\r\n");
    assert_eq!(run.take(), vec![Action::Close]);
    let mut run = Run::greeted(config(), &[]);
    run.input(Input::PeerClosed);
    assert_eq!(run.take(), vec![Action::Close]);
    // A message given afterwards fails temporarily at once.
    run.send(message(3, &["a@example.net", "b@example.net"], "x\r\n"));
    assert_eq!(
        outcomes(&run.take()),
        vec![(3, vec![('T', 421), ('T', 421)])]
    );
}

#[test]
fn timeouts_follow_rfc_5321_and_fail_the_session() {
    let t = config().timeouts;
    let mut run = Run::new(config());
    let start = run.now;
    assert_eq!(run.session.poll_timeout(), Some(start + t.initial));
    run.wait(t.initial - Duration::from_secs(1));
    assert_eq!(run.take(), vec![], "early: no-op");
    run.wait(Duration::from_secs(1));
    let actions = run.take();
    assert_failed(&actions, &ErrorReason::Timeout("greeting"), true);
    run.wait(Duration::from_secs(600));
    assert_eq!(run.take(), vec![], "repeated: no-op");

    let mut run = Run::new(config());
    run.recv("220 mx.example\r\n");
    assert_eq!(run.session.poll_timeout(), Some(run.now + t.mail));
    // A partial reply does not push the deadline back.
    run.now += Duration::from_secs(10);
    run.recv("250-mx.example\r\n");
    assert_eq!(
        run.session.poll_timeout(),
        Some(run.now - Duration::from_secs(10) + t.mail)
    );
    run.wait(t.mail);
    assert_failed(&run.take(), &ErrorReason::Timeout("EHLO"), true);

    // QUIT's reply never comes: just close.
    let mut run = Run::greeted(config(), &[]);
    run.input(Input::Quit);
    run.take();
    run.wait(t.mail);
    assert_eq!(run.take(), vec![Action::Close]);
}

#[test]
fn peer_closing_mid_session_fails_temporarily() {
    let mut run = Run::new(config());
    run.recv("220 mx.example\r\n");
    run.take();
    run.input(Input::PeerClosed);
    assert_failed(&run.take(), &ErrorReason::PeerClosed, true);
}

#[test]
fn the_session_and_its_actions_can_move_between_threads() {
    fn movable<T: Send + Sync>() {}
    movable::<ClientSession>();
    movable::<Action>();
    movable::<Input<'static>>();
}
