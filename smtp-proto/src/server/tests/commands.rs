//! Commands, their order, and the replies of the command phase.

use super::*;

#[test]
fn greets_first() {
    let mut h = harness(config());
    assert_eq!(
        h.drain(),
        vec![Action::Send(Bytes::from_static(
            b"220 mx.test ESMTP ready\r\n"
        ))]
    );
    assert!(h.session.poll_timeout().is_some());
}

#[test]
fn ehlo_advertises_what_is_offered() {
    let mut h = harness(config());
    h.drain();
    let all = h.feed("EHLO client.test\r\n");
    let (id, question) = asks(&all).pop().unwrap();
    assert!(matches!(question, Question::Helo { esmtp: true, .. }));
    assert_eq!(text(&all), "", "no reply before the answer");
    let out = text(&h.answer(id, yes(&question)));
    assert_eq!(
        out,
        "250-mx.test hello\r\n250-PIPELINING\r\n250-SIZE 36700160\r\n250-8BITMIME\r\n\
         250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250 DSN\r\n"
    );
    let tls = ServerConfig {
        tls_available: true,
        auth: true,
        ..config()
    };
    let mut h = harness(tls);
    h.drain();
    let out = h.say("EHLO c\r\n");
    assert!(
        out.contains("250-STARTTLS\r\n") || out.ends_with("250 STARTTLS\r\n"),
        "{out}"
    );
    assert!(!out.contains("AUTH"), "no AUTH over plaintext: {out}");
    let plain = ServerConfig {
        auth: true,
        auth_plaintext: true,
        ..config()
    };
    let mut h = harness(plain);
    h.drain();
    assert!(h.say("EHLO c\r\n").ends_with("250 AUTH PLAIN LOGIN\r\n"));
}

#[test]
fn helo_is_one_line_and_refusals_are_relayed() {
    let mut h = harness(config());
    h.drain();
    assert_eq!(h.say("HELO client\r\n"), "250 mx.test hello\r\n");
    let all = h.feed("EHLO bad\r\n");
    let (id, _) = asks(&all)[0].clone();
    assert_eq!(
        text(&h.answer(id, reply(550, "go away"))),
        "550 5.0.0 go away\r\n"
    );
}

#[test]
fn commands_out_of_sequence_get_503() {
    let mut h = harness(config());
    h.drain();
    assert_eq!(
        h.say("MAIL FROM:<a@b.c>\r\n"),
        "503 5.5.1 Send HELO or EHLO first\r\n"
    );
    h.say("EHLO c\r\n");
    assert_eq!(
        h.say("RCPT TO:<a@b.c>\r\n"),
        "503 5.5.1 Need MAIL command\r\n"
    );
    assert_eq!(h.say("DATA\r\n"), "503 5.5.1 Need MAIL command\r\n");
    assert_eq!(h.say("MAIL FROM:<a@b.c>\r\n"), "250 2.0.0 ok\r\n");
    assert_eq!(
        h.say("MAIL FROM:<a@b.c>\r\n"),
        "503 5.5.1 Nested MAIL command\r\n"
    );
    assert_eq!(h.say("DATA\r\n"), "554 5.5.1 No valid recipients\r\n");
}

#[test]
fn simple_commands() {
    let mut h = ehloed(config());
    assert_eq!(h.say("NOOP\r\n"), "250 2.0.0 Ok\r\n");
    assert!(h.say("HELP\r\n").starts_with("214 2.0.0 "));
    assert_eq!(
        h.say("VRFY postmaster\r\n"),
        "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery\r\n"
    );
    assert_eq!(h.say("EXPN list\r\n"), "502 5.5.1 EXPN not supported\r\n");
    assert_eq!(h.say("FOO\r\n"), "500 5.5.1 Command unrecognized\r\n");
    let all = h.converse("QUIT\r\nNOOP\r\n");
    assert_eq!(text(&all), "221 2.0.0 mx.test Bye\r\n");
    assert_eq!(all.last(), Some(&Action::Close(CloseReason::Quit)));
    assert!(h.session.is_closed());
    assert_eq!(h.session.poll_timeout(), None);
    assert_eq!(h.feed("NOOP\r\n"), vec![]);
}

#[test]
fn vrfy_and_expn_ask_when_configured() {
    let mut h = ehloed(ServerConfig {
        vrfy: true,
        expn: true,
        ..config()
    });
    let all = h.feed("VRFY joe\r\n");
    assert_eq!(asks(&all)[0].1, Question::Vrfy(Bytes::from_static(b"joe")));
    assert_eq!(
        text(&h.answer(asks(&all)[0].0, reply(250, "Joe <joe@x>"))),
        "250 2.0.0 Joe <joe@x>\r\n"
    );
    assert_eq!(h.say("EXPN list\r\n"), "250 2.0.0 known\r\n");
}

#[test]
fn full_transaction_with_data() {
    let mut h = ehloed(config());
    let all = h.feed("MAIL FROM:<a@b.c> SIZE=100\r\n");
    let (id, question) = asks(&all)[0].clone();
    assert!(
        matches!(question, Question::MailFrom { .. }),
        "{question:?}"
    );
    let all = h.answer(id, reply(250, "sender ok"));
    assert_eq!(text(&all), "250 2.0.0 sender ok\r\n");
    assert!(has(
        &all,
        &Action::Event(Event::TransactionStarted { number: 1 })
    ));
    assert_eq!(h.say("RCPT TO:<d@e.f>\r\n"), "250 2.0.0 ok\r\n");
    let all = h.feed("DATA\r\n");
    let (id, question) = asks(&all)[0].clone();
    assert_eq!(question, Question::DataStart { chunking: false });
    assert_eq!(
        text(&h.answer(id, reply(250, "whatever"))),
        "354 End data with <CR><LF>.<CR><LF>\r\n"
    );
    let all = h.feed("Subject: hi\r\n\r\n..dot\r\n");
    assert_eq!(body(&all), b"Subject: hi\r\n\r\n.dot\r\n");
    let all = h.feed("end\r\n.\r\n");
    assert_eq!(body(&all), b"end\r\n");
    let (id, question) = asks(&all)[0].clone();
    assert_eq!(question, Question::EndOfMessage { size: 26 });
    assert_eq!(text(&all), "", "the final reply waits for the engine");
    assert_eq!(h.session.recv_capacity(), 0);
    assert_eq!(
        text(&h.answer(id, reply(250, "queued as X"))),
        "250 2.0.0 queued as X\r\n"
    );
    // The transaction is over.
    assert_eq!(
        h.say("RCPT TO:<d@e.f>\r\n"),
        "503 5.5.1 Need MAIL command\r\n"
    );
}

#[test]
fn pipelined_replies_leave_in_order_and_together() {
    let mut h = ehloed(config());
    let all = h.feed(
        "MAIL FROM:<a@b.c>\r\nRCPT TO:<1@x.y>\r\nRCPT TO:<2@x.y>\r\nRCPT TO:<3@x.y>\r\nDATA\r\n",
    );
    assert_eq!(asks(&all).len(), 1, "RCPT waits for the MAIL answer");
    assert_eq!(h.session.recv_capacity(), 0);
    let mail = asks(&all)[0].0;
    let all = h.answer(mail, reply(250, "mail"));
    assert_eq!(text(&all), "250 2.0.0 mail\r\n");
    let rcpts = asks(&all);
    assert_eq!(rcpts.len(), 3, "RCPTs are asked together");
    // Answers out of order: nothing leaves until the first one is in.
    assert_eq!(text(&h.answer(rcpts[2].0, reply(250, "three"))), "");
    assert_eq!(text(&h.answer(rcpts[1].0, reply(550, "two"))), "");
    let all = h.answer(rcpts[0].0, reply(250, "one"));
    assert_eq!(
        all.iter().filter(|a| matches!(a, Action::Send(_))).count(),
        1,
        "replies ready together leave in one Send"
    );
    assert_eq!(
        text(&all),
        "250 2.0.0 one\r\n550 5.0.0 two\r\n250 2.0.0 three\r\n"
    );
    assert!(matches!(asks(&all)[..], [(_, Question::DataStart { .. })]));
    // Answers to questions no longer waited for are ignored.
    assert_eq!(
        h.answer(rcpts[0].0, reply(250, "again")),
        vec![Action::Event(Event::StaleAnswer(rcpts[0].0))]
    );
}

#[test]
fn pipelined_simple_commands_share_one_send() {
    let mut h = ehloed(config());
    let all = h.feed("NOOP\r\nNOOP\r\nRSET\r\n");
    assert_eq!(
        all.iter().filter(|a| matches!(a, Action::Send(_))).count(),
        1
    );
    assert_eq!(text(&all), "250 2.0.0 Ok\r\n".repeat(3));
}

#[test]
fn bad_input_is_refused_and_too_many_errors_close() {
    let mut h = ehloed(ServerConfig {
        limits: crate::limits::Limits {
            errors: 3,
            ..Default::default()
        },
        ..config()
    });
    assert_eq!(
        h.say(&format!("NOOP {}\r\n", "x".repeat(5000))),
        "500 5.5.2 Line too long\r\n"
    );
    assert_eq!(h.say("MAIL FROM:<<\r\n").split(' ').next(), Some("501"));
    let all = h.converse("BLAH\r\nNOOP\r\n");
    assert_eq!(
        text(&all),
        "500 5.5.1 Command unrecognized\r\n421 4.7.0 mx.test Too many errors, closing connection\r\n"
    );
    assert_eq!(all.last(), Some(&Action::Close(CloseReason::TooManyErrors)));
}

#[test]
fn rset_and_ehlo_end_the_transaction() {
    let mut h = ehloed(config());
    h.say("MAIL FROM:<a@b.c>\r\n");
    assert_eq!(h.say("RSET\r\n"), "250 2.0.0 Ok\r\n");
    assert_eq!(
        h.say("RCPT TO:<a@b.c>\r\n"),
        "503 5.5.1 Need MAIL command\r\n"
    );
    h.say("MAIL FROM:<a@b.c>\r\n");
    h.say("EHLO again\r\n");
    assert_eq!(
        h.say("RCPT TO:<a@b.c>\r\n"),
        "503 5.5.1 Need MAIL command\r\n"
    );
}

#[test]
fn size_and_recipient_limits() {
    let limits = crate::limits::Limits {
        recipients: 2,
        message_size: 100,
        ..Default::default()
    };
    let mut h = ehloed(ServerConfig { limits, ..config() });
    assert_eq!(
        h.say("MAIL FROM:<a@b.c> SIZE=101\r\n"),
        "552 5.3.4 Message size exceeds fixed maximum message size\r\n"
    );
    h.say("MAIL FROM:<a@b.c> SIZE=100\r\n");
    let out = h.say("RCPT TO:<1@x.y>\r\nRCPT TO:<2@x.y>\r\nRCPT TO:<3@x.y>\r\n");
    assert_eq!(
        out,
        "250 2.0.0 ok\r\n250 2.0.0 ok\r\n452 4.5.3 Too many recipients\r\n"
    );
    h.say("DATA\r\n");
    let all = h.converse(&format!("{}\r\n.\r\nNOOP\r\n", "y".repeat(120)));
    assert!(has(
        &all,
        &Action::BodyAborted {
            fault: Some(BodyFault::TooBig)
        }
    ));
    assert_eq!(asks(&all), vec![], "no EndOfMessage for a refused body");
    assert_eq!(
        text(&all),
        "552 5.3.4 Message size exceeds fixed maximum message size\r\n250 2.0.0 Ok\r\n"
    );
}

#[test]
fn rejected_recipients_leave_no_valid_recipient() {
    let mut h = ehloed(config());
    h.say("MAIL FROM:<a@b.c>\r\n");
    let all = h.feed("RCPT TO:<x@y.z>\r\n");
    h.answer(asks(&all)[0].0, reply(550, "no such user"));
    assert_eq!(h.say("DATA\r\n"), "554 5.5.1 No valid recipients\r\n");
}

#[test]
fn parameters_must_be_advertised_and_follow_ehlo() {
    let mut h = harness(config());
    h.drain();
    h.say("HELO client\r\n");
    assert_eq!(
        h.say("MAIL FROM:<a@b.c> SIZE=10\r\n"),
        "555 5.5.4 Parameter not supported here\r\n"
    );
    let ext = Extensions {
        dsn: false,
        smtputf8: false,
        ..Extensions::default()
    };
    let mut h = ehloed(ServerConfig {
        extensions: ext,
        ..config()
    });
    assert_eq!(
        h.say("MAIL FROM:<a@b.c> RET=HDRS\r\n"),
        "555 5.5.4 Parameter not supported here\r\n"
    );
    assert_eq!(
        h.say("MAIL FROM:<a@b.c> SMTPUTF8\r\n"),
        "555 5.5.4 Parameter not supported here\r\n"
    );
    h.say("MAIL FROM:<a@b.c>\r\n");
    assert_eq!(
        h.say("RCPT TO:<d@e.f> NOTIFY=NEVER\r\n"),
        "555 5.5.4 Parameter not supported here\r\n"
    );
    let mut h = ehloed(config());
    assert!(h
        .say("MAIL FROM:<a@b.c> FOO=BAR\r\n")
        .starts_with("555 5.5.4 "));
}

#[test]
fn smtputf8_transactions_accept_utf8_recipients() {
    let mut h = ehloed(config());
    assert_eq!(h.say("MAIL FROM:<a@b.c> SMTPUTF8\r\n"), "250 2.0.0 ok\r\n");
    assert_eq!(
        h.say("RCPT TO:<jös@bücher.example>\r\n"),
        "250 2.0.0 ok\r\n"
    );
    let mut h = ehloed(config());
    h.say("MAIL FROM:<a@b.c>\r\n");
    assert!(h
        .say("RCPT TO:<jös@bücher.example>\r\n")
        .starts_with("553 5.6.7 "));
}

#[test]
fn transactions_per_session_are_limited() {
    let limits = crate::limits::Limits {
        transactions: 1,
        ..Default::default()
    };
    let mut h = ehloed(ServerConfig { limits, ..config() });
    h.say("MAIL FROM:<a@b.c>\r\nRSET\r\n");
    assert_eq!(
        h.say("MAIL FROM:<a@b.c>\r\n"),
        "452 4.3.2 Too many transactions in this session\r\n"
    );
}

#[test]
fn auth_needs_ehlo_and_long_auth_lines_are_refused() {
    let cfg = ServerConfig {
        auth: true,
        auth_plaintext: true,
        ..config()
    };
    let mut h = harness(cfg.clone());
    h.drain();
    h.say("HELO c\r\n");
    assert_eq!(h.say("AUTH PLAIN\r\n"), "503 5.5.1 Send EHLO first\r\n");
    let mut h = ehloed(cfg);
    assert_eq!(h.say("AUTH LOGIN\r\n"), "334 VXNlcm5hbWU6\r\n");
    let long = "A".repeat(13000);
    assert_eq!(
        h.say(&format!("{long}\r\n")),
        "500 5.5.6 Authentication Exchange line is too long\r\n"
    );
    // Back to commands.
    assert_eq!(h.say("NOOP\r\n"), "250 2.0.0 Ok\r\n");
}
