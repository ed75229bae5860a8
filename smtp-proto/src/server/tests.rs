//! Scenario tests: each is a list of inputs and the replies and actions expected back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::data::BodyFault;
use crate::reply::{EnhancedStatus, Reply};

/// A session on a virtual clock, with helpers to talk to it.
struct Harness {
    session: ServerSession,
    now: Instant,
}

fn config() -> ServerConfig {
    ServerConfig {
        hostname: "mx.test".into(),
        ..ServerConfig::default()
    }
}

fn harness(config: ServerConfig) -> Harness {
    let now = crate::fuzzing::session::epoch();
    Harness {
        session: ServerSession::new(Arc::new(config), now),
        now,
    }
}

fn reply(code: u16, text: &str) -> Answer {
    let class = (code / 100) as u8;
    Answer::from(Reply::new(
        code,
        Some(EnhancedStatus::new(class, 0, 0)),
        Bytes::from(text.to_owned()),
    ))
}

/// The answer the friendly oracle gives to each question.
fn yes(question: &Question) -> Answer {
    match question {
        Question::Helo { .. } => reply(250, "mx.test hello"),
        Question::DataStart { .. } => reply(354, "go ahead"),
        Question::EndOfMessage { size } => reply(250, &format!("queued {size}")),
        Question::Auth { .. } => reply(235, "authenticated"),
        Question::Vrfy(_) | Question::Expn(_) => reply(250, "known"),
        Question::MailFrom { .. } | Question::RcptTo { .. } => reply(250, "ok"),
    }
}

fn text(actions: &[Action]) -> String {
    let mut out = Vec::new();
    for action in actions {
        if let Action::Send(bytes) = action {
            out.extend_from_slice(bytes);
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn body(actions: &[Action]) -> Vec<u8> {
    let mut out = Vec::new();
    for action in actions {
        if let Action::Body { chunk } = action {
            out.extend_from_slice(chunk);
        }
    }
    out
}

fn asks(actions: &[Action]) -> Vec<(ReqId, Question)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Ask(id, q) => Some((*id, q.clone())),
            _ => None,
        })
        .collect()
}

fn has(actions: &[Action], wanted: &Action) -> bool {
    actions.contains(wanted)
}

impl Harness {
    fn drain(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.session.poll_action()).collect()
    }

    fn input(&mut self, input: Input<'_>) -> Vec<Action> {
        self.session.handle(input, self.now);
        self.drain()
    }

    fn feed(&mut self, bytes: &str) -> Vec<Action> {
        self.input(Input::Received(bytes.as_bytes()))
    }

    fn answer(&mut self, id: ReqId, answer: Answer) -> Vec<Action> {
        self.input(Input::Answer(id, answer))
    }

    /// Feeds `bytes`, answers every question with [`yes`] at once, and returns every
    /// action that came out.
    fn converse(&mut self, bytes: &str) -> Vec<Action> {
        let mut all = self.feed(bytes);
        let mut next = 0;
        while let Some((id, question)) = asks(&all).get(next).cloned() {
            next += 1;
            let more = self.answer(id, yes(&question));
            all.extend(more);
        }
        all
    }

    /// [`Harness::converse`], returning the reply text.
    fn say(&mut self, bytes: &str) -> String {
        text(&self.converse(bytes))
    }

    fn advance(&mut self, by: Duration) -> Vec<Action> {
        self.now += by;
        self.session.handle_timeout(self.now);
        self.drain()
    }
}

/// A session that was greeted and said EHLO.
fn ehloed(config: ServerConfig) -> Harness {
    let mut h = harness(config);
    h.drain();
    h.say("EHLO client.test\r\n");
    h
}

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

/// A session inside DATA, after 354.
fn in_data(config: ServerConfig) -> Harness {
    let mut h = ehloed(config);
    h.say("MAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\n");
    h
}

#[test]
fn bare_lf_never_ends_data_or_smuggles_a_command() {
    let mut h = in_data(config());
    let all = h.converse("hi\n.\nMAIL FROM:<evil@x.y>\r\nRCPT TO:<v@x.y>\r\nDATA\r\nforged\r\n");
    assert_eq!(text(&all), "");
    assert!(has(
        &all,
        &Action::BodyAborted {
            fault: Some(BodyFault::BareLf)
        }
    ));
    assert_eq!(asks(&all), vec![]);
    let all = h.converse(".\r\nNOOP\r\n");
    assert_eq!(
        text(&all),
        "554 5.6.11 Bare CR or LF in message; lines must end with CRLF\r\n250 2.0.0 Ok\r\n"
    );
    let mut h = in_data(config());
    let all = h.converse("hi\r.\r\nNOOP\r\n.\r\n");
    assert!(text(&all).starts_with("554 5.6.11 "));
}

#[test]
fn normalize_bare_lf_accepts_with_crlf() {
    let mut h = in_data(ServerConfig {
        normalize_bare_lf: true,
        ..config()
    });
    let all = h.converse("a\nb\r\n.\r\n");
    assert_eq!(body(&all), b"a\r\nb\r\n");
    assert_eq!(text(&all), "250 2.0.0 queued 6\r\n");
}

#[test]
fn over_long_body_lines_refuse_the_message() {
    let mut h = in_data(config());
    let all = h.converse(&format!("{}\r\n.\r\n", "z".repeat(999)));
    assert!(text(&all).starts_with("554 5.6.0 "), "{}", text(&all));
    assert!(has(
        &all,
        &Action::BodyAborted {
            fault: Some(BodyFault::LineTooLong)
        }
    ));
    let mut h = in_data(config());
    let all = h.converse(&format!("{}\r\n.\r\n", "z".repeat(998)));
    assert_eq!(text(&all), "250 2.0.0 queued 1000\r\n");
}

#[test]
fn refused_data_start_reads_commands_again() {
    let mut h = ehloed(config());
    h.say("MAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\n");
    let all = h.feed("DATA\r\nNOOP\r\n");
    let (id, _) = asks(&all)[0].clone();
    assert_eq!(
        text(&h.answer(id, reply(451, "try later"))),
        "451 4.0.0 try later\r\n250 2.0.0 Ok\r\n"
    );
}

#[test]
fn bdat_chunks() {
    let mut h = ehloed(config());
    h.say("MAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\n");
    let all = h.feed("BDAT 5\r\nab");
    let (id, question) = asks(&all)[0].clone();
    assert_eq!(question, Question::DataStart { chunking: true });
    let all = h.answer(id, reply(250, "go"));
    assert_eq!(body(&all), b"ab");
    let all = h.converse("c\r\nBDAT 3 LAST\r\n.\r\n");
    assert_eq!(body(&all), b"c\r\n.\r\n");
    assert_eq!(asks(&all)[0].1, Question::EndOfMessage { size: 8 });
    assert_eq!(
        text(&all),
        "250 2.0.0 5 octets received\r\n250 2.0.0 queued 8\r\n"
    );
    // BDAT 0 LAST, and DATA after BDAT.
    h.say("MAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\n");
    let out = h.say("BDAT 2\r\nxyDATA\r\nBDAT 0 LAST\r\n");
    assert_eq!(
        out,
        "250 2.0.0 2 octets received\r\n503 5.5.1 DATA and BDAT cannot be mixed in one transaction\r\n\
         250 2.0.0 queued 2\r\n"
    );
}

#[test]
fn refused_bdat_chunks_are_read_and_dropped() {
    let mut h = ehloed(config());
    let all = h.converse("BDAT 6\r\nRSET\r\nNOOP\r\n");
    assert_eq!(
        text(&all),
        "503 5.5.1 Need MAIL command\r\n250 2.0.0 Ok\r\n"
    );
    assert_eq!(body(&all), b"");
    let limits = crate::limits::Limits {
        message_size: 4,
        ..Default::default()
    };
    let mut h = ehloed(ServerConfig { limits, ..config() });
    h.say("MAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\n");
    let all = h.converse("BDAT 3\r\nabcBDAT 3 LAST\r\ndef");
    assert_eq!(
        text(&all),
        "250 2.0.0 3 octets received\r\n552 5.3.4 Message size exceeds fixed maximum message size\r\n"
    );
    assert!(has(
        &all,
        &Action::BodyAborted {
            fault: Some(BodyFault::TooBig)
        }
    ));
    let no_chunking = Extensions {
        chunking: false,
        ..Extensions::default()
    };
    let mut h = ehloed(ServerConfig {
        extensions: no_chunking,
        ..config()
    });
    assert_eq!(
        h.say("BDAT 4\r\nQUITNOOP\r\n"),
        "502 5.5.1 Command not implemented\r\n250 2.0.0 Ok\r\n"
    );
}

#[test]
fn engine_refusal_of_bdat_fails_the_transaction() {
    let mut h = ehloed(config());
    h.say("MAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\n");
    let all = h.feed("BDAT 2\r\nxyBDAT 1 LAST\r\nz");
    let (id, _) = asks(&all)[0].clone();
    let out = text(&h.converse_answer(id, reply(452, "no room")));
    assert_eq!(out, "452 4.0.0 no room\r\n503 5.5.1 Need MAIL command\r\n");
}

impl Harness {
    fn converse_answer(&mut self, id: ReqId, answer: Answer) -> Vec<Action> {
        let mut all = self.answer(id, answer);
        let mut next = 0;
        while let Some((id, question)) = asks(&all).get(next).cloned() {
            next += 1;
            let more = self.answer(id, yes(&question));
            all.extend(more);
        }
        all
    }
}

#[test]
fn binarymime_requires_bdat() {
    let ext = Extensions {
        binarymime: true,
        ..Extensions::default()
    };
    let mut h = ehloed(ServerConfig {
        extensions: ext,
        ..config()
    });
    h.say("MAIL FROM:<a@b.c> BODY=BINARYMIME\r\nRCPT TO:<d@e.f>\r\n");
    assert_eq!(
        h.say("DATA\r\n"),
        "503 5.5.1 BODY=BINARYMIME requires BDAT\r\n"
    );
    let mut h = ehloed(config());
    assert_eq!(
        h.say("MAIL FROM:<a@b.c> BODY=BINARYMIME\r\n"),
        "555 5.5.4 Parameter not supported here\r\n"
    );
}

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
fn idle_timeout_closes_with_421() {
    let mut h = harness(config());
    h.drain();
    let deadline = h.session.poll_timeout().unwrap();
    assert_eq!(deadline - h.now, Duration::from_secs(300));
    assert_eq!(h.advance(Duration::from_secs(299)), vec![]);
    let all = h.advance(Duration::from_secs(1));
    assert_eq!(
        text(&all),
        "421 4.4.2 mx.test Timeout, closing connection\r\n"
    );
    assert_eq!(
        all.last(),
        Some(&Action::Close(CloseReason::Timeout(
            crate::timer::ServerTimer::Idle
        )))
    );
}

#[test]
fn data_block_and_answer_timeouts() {
    let mut h = in_data(config());
    assert_eq!(
        h.session.poll_timeout().unwrap() - h.now,
        Duration::from_secs(180)
    );
    h.advance(Duration::from_secs(100));
    h.feed("more\r\n");
    assert_eq!(
        h.session.poll_timeout().unwrap() - h.now,
        Duration::from_secs(180)
    );
    let all = h.advance(Duration::from_secs(180));
    assert!(has(&all, &Action::BodyAborted { fault: None }));
    assert_eq!(
        all.last(),
        Some(&Action::Close(CloseReason::Timeout(
            crate::timer::ServerTimer::DataBlock
        )))
    );
    let mut h = ehloed(config());
    h.feed("MAIL FROM:<a@b.c>\r\n");
    assert_eq!(
        h.session.poll_timeout().unwrap() - h.now,
        Duration::from_secs(300)
    );
    let all = h.advance(Duration::from_secs(300));
    assert_eq!(
        text(&all),
        "421 4.4.2 mx.test Timeout, closing connection\r\n"
    );
}

#[test]
fn shutdown_when_idle_and_after_a_message() {
    let mut h = ehloed(config());
    let all = h.input(Input::Shutdown);
    assert_eq!(
        text(&all),
        "421 4.3.2 mx.test Service shutting down, closing connection\r\n"
    );
    assert_eq!(all.last(), Some(&Action::Close(CloseReason::Shutdown)));
    let mut h = in_data(config());
    assert_eq!(text(&h.input(Input::Shutdown)), "");
    let all = h.converse("x\r\n.\r\nNOOP\r\n");
    assert_eq!(
        text(&all),
        "250 2.0.0 queued 3\r\n421 4.3.2 mx.test Service shutting down, closing connection\r\n"
    );
}

#[test]
fn peer_close_waits_for_the_final_reply() {
    let mut h = in_data(config());
    let all = h.feed("x\r\n.\r\nQUIT\r\n");
    let (id, _) = asks(&all)[0].clone();
    assert_eq!(h.input(Input::PeerClosed), vec![]);
    let all = h.answer(id, reply(250, "queued"));
    assert_eq!(text(&all), "250 2.0.0 queued\r\n221 2.0.0 mx.test Bye\r\n");
    assert_eq!(all.last(), Some(&Action::Close(CloseReason::Quit)));
    let mut h = in_data(config());
    let all = h.converse("partial body\r\n");
    assert_eq!(
        all,
        vec![Action::Body {
            chunk: Bytes::from_static(b"partial body\r\n")
        }]
    );
    let all = h.input(Input::PeerClosed);
    assert_eq!(
        all,
        vec![
            Action::BodyAborted { fault: None },
            Action::Close(CloseReason::PeerClosed)
        ]
    );
}

#[test]
fn input_beyond_the_buffer_while_waiting_closes() {
    let limits = crate::limits::Limits {
        recv_buffer: 64,
        ..Default::default()
    };
    let mut h = ehloed(ServerConfig { limits, ..config() });
    let all = h.feed("MAIL FROM:<a@b.c>\r\n");
    assert_eq!(asks(&all).len(), 1);
    assert_eq!(h.feed(&"NOOP\r\n".repeat(10)), vec![]);
    assert!(h.session.buffered_len() <= 64);
    let all = h.feed(&"NOOP\r\n".repeat(10));
    assert_eq!(text(&all), "421 4.7.0 mx.test Too much pipelined input\r\n");
    assert_eq!(all.last(), Some(&Action::Close(CloseReason::InputOverflow)));
}

#[test]
fn enhanced_codes_can_be_turned_off() {
    let ext = Extensions {
        enhanced_status_codes: false,
        ..Extensions::default()
    };
    let mut h = ehloed(ServerConfig {
        extensions: ext,
        ..config()
    });
    assert_eq!(h.say("NOOP\r\n"), "250 Ok\r\n");
    assert_eq!(h.say("RCPT TO:<a@b.c>\r\n"), "503 Need MAIL command\r\n");
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

#[test]
fn rset_between_bdat_chunks_aborts_the_body() {
    let mut h = ehloed(config());
    h.say("MAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\n");
    let all = h.converse("BDAT 2\r\nxyRSET\r\n");
    assert_eq!(body(&all), b"xy");
    assert!(has(&all, &Action::BodyAborted { fault: None }));
    assert_eq!(
        text(&all),
        "250 2.0.0 2 octets received\r\n250 2.0.0 Ok\r\n"
    );
}

#[test]
fn timers_follow_the_state() {
    let mut h = ehloed(config());
    // Waiting for the client: the idle timer only.
    assert_eq!(
        h.session.poll_timeout().unwrap() - h.now,
        Duration::from_secs(300)
    );
    // Waiting for the engine's 354: the answer deadline (RFC 5321 4.5.3.2.4, 2 minutes).
    h.say("MAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\n");
    let all = h.feed("DATA\r\n");
    assert_eq!(
        h.session.poll_timeout().unwrap() - h.now,
        Duration::from_secs(120)
    );
    h.answer(asks(&all)[0].0, reply(354, "go"));
    // In the body: the data block timer.
    assert_eq!(
        h.session.poll_timeout().unwrap() - h.now,
        Duration::from_secs(180)
    );
    let all = h.feed(".\r\n");
    // Waiting for the final reply: 10 minutes.
    assert_eq!(
        h.session.poll_timeout().unwrap() - h.now,
        Duration::from_secs(600)
    );
    h.answer(asks(&all)[0].0, reply(250, "queued"));
    assert_eq!(
        h.session.poll_timeout().unwrap() - h.now,
        Duration::from_secs(300)
    );
    // An early call is a no-op.
    h.session.handle_timeout(h.now);
    assert_eq!(h.drain(), vec![]);
}
