//! Sending messages: pipelined and not, the checks before MAIL, per-recipient results,
//! RSET and reuse, BDAT, LMTP, and failures in the middle of a message.

use super::*;
use crate::params::{BodyType, Notify, Ret};

const PIPE: &[&str] = &["PIPELINING", "8BITMIME", "SIZE 100000"];

#[test]
fn pipelined_message_leaves_in_one_write_and_reports_each_recipient() {
    let mut run = Run::greeted(config(), PIPE);
    run.send(message(
        1,
        &["a@example.net", "b@example.net", "c@example.net"],
        "Hi\r\n",
    ));
    let group = "MAIL FROM:<s@example.org> SIZE=4\r\n\
                 RCPT TO:<a@example.net>\r\n\
                 RCPT TO:<b@example.net>\r\n\
                 RCPT TO:<c@example.net>\r\n\
                 DATA\r\n";
    assert_eq!(run.take(), vec![Action::Send(Bytes::from(group))]);
    run.recv("250 2.1.0 ok\r\n250 2.1.5 ok\r\n");
    assert_eq!(run.take(), vec![], "waits for every reply");
    run.recv("550 5.1.1 no such user\r\n250 2.1.5 ok\r\n354 go\r\n");
    assert_eq!(run.sent(), "Hi\r\n.\r\n");
    run.recv("250 2.0.0 queued as X\r\n");
    let actions = run.take();
    let expected = vec![('D', 250), ('P', 550), ('D', 250)];
    assert_eq!(outcomes(&actions), vec![(1, expected)]);
    assert_eq!(actions.last(), Some(&Action::Ready));
    assert_eq!(run.sent(), "", "no RSET after a completed transaction");
}

#[test]
fn without_pipelining_each_command_waits_for_its_reply() {
    let mut run = Run::greeted(config(), &["8BITMIME"]);
    run.send(message(1, &["a@example.net", "b@example.net"], ".dot\r\nx"));
    assert_eq!(run.sent(), "MAIL FROM:<s@example.org>\r\n");
    run.recv("250 ok\r\n");
    assert_eq!(run.sent(), "RCPT TO:<a@example.net>\r\n");
    run.recv("450 4.2.0 mailbox busy\r\n");
    assert_eq!(run.sent(), "RCPT TO:<b@example.net>\r\n");
    run.recv("250 ok\r\n");
    assert_eq!(run.sent(), "DATA\r\n");
    run.recv("354 go\r\n");
    assert_eq!(run.sent(), "..dot\r\nx\r\n.\r\n", "stuffed, line ended");
    run.recv("250 queued\r\n");
    assert_eq!(
        outcomes(&run.take()),
        vec![(1, vec![('T', 450), ('D', 250)])]
    );
}

#[test]
fn all_recipients_refused_resets_and_reuses_the_connection() {
    let mut run = Run::greeted(config(), PIPE);
    run.send(message(1, &["a@example.net", "b@example.net"], "x\r\n"));
    run.take();
    run.recv("250 ok\r\n550 no\r\n551 no\r\n554 5.5.1 no valid recipients\r\n");
    let actions = run.take();
    assert_eq!(outcomes(&actions), vec![(1, vec![('P', 550), ('P', 551)])]);
    assert_eq!(
        actions.last(),
        Some(&Action::Send(Bytes::from_static(b"RSET\r\n")))
    );
    run.recv("250 reset\r\n");
    assert_eq!(run.take(), vec![Action::Ready]);
    // The connection carries the next message.
    run.send(message(2, &["c@example.net"], "y\r\n"));
    assert!(run.sent().starts_with("MAIL FROM:<s@example.org>"));
    run.recv("250 ok\r\n250 ok\r\n354 go\r\n");
    assert_eq!(run.sent(), "y\r\n.\r\n");
    run.recv("250 queued\r\n");
    let actions = run.take();
    assert_eq!(outcomes(&actions), vec![(2, vec![('D', 250)])]);
    // Without pipelining, DATA is not even sent.
    let mut run = Run::greeted(config(), &[]);
    run.send(message(3, &["a@example.net"], "x\r\n"));
    run.recv("250 ok\r\n");
    run.take();
    run.recv("550 no\r\n");
    assert_eq!(run.sent(), "RSET\r\n");
    assert_eq!(outcomes(&run.take()), vec![(3, vec![('P', 550)])]);
}

#[test]
fn a_refused_sender_fails_every_recipient_with_its_reply() {
    let mut run = Run::greeted(config(), PIPE);
    run.send(message(1, &["a@example.net", "b@example.net"], "x\r\n"));
    run.take();
    run.recv("451 4.3.0 later\r\n503 no MAIL\r\n503 no MAIL\r\n503 no MAIL\r\n");
    let actions = run.take();
    assert_eq!(outcomes(&actions), vec![(1, vec![('T', 451), ('T', 451)])]);
    assert_eq!(
        actions.last(),
        Some(&Action::Ready),
        "no transaction to reset"
    );
    let mut run = Run::greeted(config(), &[]);
    run.send(message(2, &["a@example.net"], "x\r\n"));
    run.take();
    run.recv("553 5.1.8 bad sender\r\n");
    let actions = run.take();
    assert_eq!(outcomes(&actions), vec![(2, vec![('P', 553)])]);
    assert_eq!(run.sent(), "");
}

#[test]
fn data_refused_or_final_reply_failing_fails_the_accepted_recipients() {
    let mut run = Run::greeted(config(), PIPE);
    run.send(message(1, &["a@example.net", "b@example.net"], "x\r\n"));
    run.take();
    run.recv("250 ok\r\n250 ok\r\n550 no\r\n451 4.3.0 not now\r\n");
    let actions = run.take();
    assert_eq!(outcomes(&actions), vec![(1, vec![('T', 451), ('P', 550)])]);
    assert_eq!(
        actions.last(),
        Some(&Action::Send(Bytes::from_static(b"RSET\r\n")))
    );

    let mut run = Run::greeted(config(), PIPE);
    run.send(message(2, &["a@example.net"], "x\r\n"));
    run.recv("250 ok\r\n250 ok\r\n354 go\r\n");
    run.take();
    run.recv("554 5.7.1 spam\r\n");
    let actions = run.take();
    assert_eq!(outcomes(&actions), vec![(2, vec![('P', 554)])]);
    assert_eq!(
        actions.last(),
        Some(&Action::Ready),
        "the dot ended the transaction"
    );
}

#[test]
fn a_421_mid_message_fails_it_temporarily_but_keeps_decided_recipients() {
    let mut run = Run::greeted(config(), PIPE);
    run.send(message(1, &["a@example.net", "b@example.net"], "x\r\n"));
    run.send(message(2, &["c@example.net"], "y\r\n"));
    run.take();
    run.recv("250 ok\r\n550 5.1.1 unknown\r\n250 ok\r\n354 go\r\n");
    run.take();
    run.recv("421 4.3.2 shutting down\r\n");
    let actions = run.take();
    let first = vec![('P', 550), ('T', 421)];
    assert_eq!(outcomes(&actions), vec![(1, first), (2, vec![('T', 421)])]);
    let reply = crate::reply::Reply::new(
        421,
        Some(crate::reply::EnhancedStatus::new(4, 3, 2)),
        "shutting down",
    );
    assert_failed(&actions, &ErrorReason::ServiceClosing(reply), true);
}

#[test]
fn timeouts_during_a_message_fail_it_temporarily() {
    let t = config().timeouts;
    let mut run = Run::greeted(config(), PIPE);
    run.send(message(1, &["a@example.net"], "x\r\n"));
    assert_eq!(run.session.poll_timeout(), Some(run.now + t.mail));
    run.recv("250 ok\r\n");
    assert_eq!(run.session.poll_timeout(), Some(run.now + t.rcpt));
    run.recv("250 ok\r\n");
    assert_eq!(run.session.poll_timeout(), Some(run.now + t.data_init));
    run.recv("354 go\r\n");
    assert_eq!(run.session.poll_timeout(), Some(run.now + t.data_end));
    run.take();
    run.wait(t.data_end);
    let actions = run.take();
    assert_eq!(outcomes(&actions), vec![(1, vec![('T', 421)])]);
    assert_failed(&actions, &ErrorReason::Timeout("end of data"), true);
    if let Action::Outcome(o) = &actions[0] {
        assert_eq!(
            o.recipients[0].reply().status.map(|s| s.to_string()),
            Some("4.4.2".into())
        );
    }
}

#[test]
fn too_big_for_the_server_fails_permanently_without_mail() {
    let mut run = Run::greeted(config(), &["PIPELINING", "SIZE 10"]);
    run.send(message(
        1,
        &["a@example.net", "b@example.net"],
        "0123456789ab\r\n",
    ));
    let actions = run.take();
    assert_eq!(outcomes(&actions), vec![(1, vec![('P', 552), ('P', 552)])]);
    assert_eq!(actions.last(), Some(&Action::Ready));
    assert_eq!(run.sent(), "");
}

#[test]
fn eight_bit_bodies_need_8bitmime() {
    let body = "Subject: caf\u{e9}\r\n\r\nx\r\n";
    let mut run = Run::greeted(config(), &["PIPELINING"]);
    run.send(message(1, &["a@example.net"], body));
    let actions = run.take();
    assert_eq!(outcomes(&actions), vec![(1, vec![('P', 554)])]);
    if let Action::Outcome(o) = &actions[0] {
        let reply = o.recipients[0].reply();
        assert_eq!(reply.status.map(|s| s.to_string()), Some("5.6.3".into()));
        assert!(reply.to_string().contains("8BITMIME"), "{reply}");
    }
    let mut run = Run::greeted(config(), &["PIPELINING", "8BITMIME"]);
    run.send(message(2, &["a@example.net"], body));
    assert!(run
        .sent()
        .starts_with("MAIL FROM:<s@example.org> BODY=8BITMIME\r\n"));
    // A 7-bit body labelled 8BITMIME goes to a 7-bit server without the label.
    let mut run = Run::greeted(config(), &[]);
    let mut seven = message(3, &["a@example.net"], "x\r\n");
    seven.params.body = Some(BodyType::EightBitMime);
    run.send(seven);
    assert_eq!(run.sent(), "MAIL FROM:<s@example.org>\r\n");
}

#[test]
fn utf8_addresses_need_smtputf8() {
    let mut run = Run::greeted(config(), &["8BITMIME"]);
    run.send(message(1, &["r\u{e9}@example.net"], "x\r\n"));
    let actions = run.take();
    assert_eq!(outcomes(&actions), vec![(1, vec![('P', 553)])]);
    let mut run = Run::greeted(config(), &["SMTPUTF8"]);
    run.send(message(2, &["r\u{e9}@example.net"], "x\r\n"));
    assert_eq!(run.sent(), "MAIL FROM:<s@example.org> SMTPUTF8\r\n");
}

#[test]
fn dsn_parameters_only_when_advertised() {
    let mut dsn = message(1, &["a@example.net"], "x\r\n");
    dsn.params.ret = Some(Ret::Headers);
    dsn.params.envid = Some(Bytes::from_static(b"id+1"));
    dsn.recipients[0].params.notify = Some(Notify {
        failure: true,
        ..Notify::default()
    });
    let mut run = Run::greeted(config(), &["PIPELINING", "DSN"]);
    run.send(dsn.clone());
    let sent = run.sent();
    assert!(
        sent.starts_with("MAIL FROM:<s@example.org> RET=HDRS ENVID=id+2B1\r\n"),
        "{sent}"
    );
    assert!(
        sent.contains("RCPT TO:<a@example.net> NOTIFY=FAILURE\r\n"),
        "{sent}"
    );
    let mut run = Run::greeted(config(), &["PIPELINING"]);
    run.send(dsn);
    let sent = run.sent();
    assert!(sent.starts_with("MAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.net>\r\n"));
}

#[test]
fn bdat_carries_binarymime_and_chunking_when_asked() {
    let mut binary = message(1, &["a@example.net"], ".\r\nraw\0");
    binary.params.body = Some(BodyType::BinaryMime);
    let mut run = Run::greeted(config(), &["PIPELINING", "CHUNKING"]);
    run.send(binary.clone());
    assert_eq!(
        outcomes(&run.take()),
        vec![(1, vec![('P', 554)])],
        "no BINARYMIME"
    );
    let mut run = Run::greeted(config(), &["PIPELINING", "CHUNKING", "BINARYMIME"]);
    run.send(binary);
    let group = "MAIL FROM:<s@example.org> BODY=BINARYMIME\r\n\
                 RCPT TO:<a@example.net>\r\nBDAT 7 LAST\r\n.\r\nraw\0";
    assert_eq!(run.sent(), group, "not stuffed");
    run.recv("250 ok\r\n250 ok\r\n250 2.0.0 queued\r\n");
    assert_eq!(outcomes(&run.take()), vec![(1, vec![('D', 250)])]);
    // With `chunking`, without pipelining: BDAT once a recipient is in.
    let mut config = config();
    config.chunking = true;
    let mut run = Run::greeted(config, &["CHUNKING"]);
    run.send(message(2, &["a@example.net"], "x\r\n"));
    run.recv("250 ok\r\n");
    run.take();
    run.recv("250 ok\r\n");
    assert_eq!(run.sent(), "BDAT 3 LAST\r\nx\r\n");
    run.recv("452 4.3.1 full\r\n");
    let actions = run.take();
    assert_eq!(outcomes(&actions), vec![(2, vec![('T', 452)])]);
    let rset = Action::Send(Bytes::from_static(b"RSET\r\n"));
    assert_eq!(
        actions.last(),
        Some(&rset),
        "a refused BDAT leaves the transaction open"
    );
}

#[test]
fn large_bodies_leave_in_large_pieces() {
    let line = "a line of text, fifty bytes long, more or less.\r\n";
    let body: String = std::iter::repeat_n(line, 5000).collect();
    let mut run = Run::greeted(config(), &["PIPELINING", "SIZE 1000000"]);
    run.send(message(1, &["a@example.net"], &body));
    run.take();
    run.recv("250 ok\r\n250 ok\r\n354 go\r\n");
    let sends: Vec<usize> = run
        .take()
        .iter()
        .filter_map(|a| match a {
            Action::Send(b) => Some(b.len()),
            _ => None,
        })
        .collect();
    assert_eq!(sends.len(), 4, "{sends:?}");
    assert!(sends.iter().all(|&n| n <= 64 * 1024 + 8));
    assert_eq!(sends.iter().sum::<usize>(), body.len() + 3);
}

#[test]
fn lmtp_reports_each_recipient_from_its_own_reply() {
    let mut config = config();
    config.lmtp = true;
    let mut run = Run::new(config);
    run.recv("220 lmtp.example LMTP\r\n");
    assert_eq!(run.sent(), "LHLO client.example\r\n");
    run.recv(&ehlo(&["PIPELINING", "8BITMIME"]));
    run.take();
    run.send(message(
        1,
        &["a@x.example", "b@x.example", "c@x.example"],
        "x\r\n",
    ));
    run.take();
    run.recv("250 ok\r\n250 ok\r\n550 no\r\n250 ok\r\n354 go\r\n");
    assert_eq!(run.sent(), "x\r\n.\r\n");
    run.recv("250 2.0.0 a delivered\r\n");
    assert_eq!(run.take(), vec![], "one reply per accepted recipient");
    run.recv("452 4.2.2 c over quota\r\n");
    let actions = run.take();
    assert_eq!(
        outcomes(&actions),
        vec![(1, vec![('D', 250), ('P', 550), ('T', 452)])]
    );
    assert_eq!(actions.last(), Some(&Action::Ready));
    // LHLO refused: no HELO in LMTP.
    let mut config = super::config();
    config.lmtp = true;
    let mut run = Run::new(config);
    run.recv("220 lmtp.example\r\n");
    run.take();
    run.recv("500 what\r\n");
    assert!(matches!(
        errors(&run.take())[0].reason,
        ErrorReason::Refused {
            command: "LHLO",
            ..
        }
    ));
}

#[test]
fn messages_given_early_wait_for_the_session_and_quit_follows_them() {
    let mut run = Run::new(config());
    run.send(message(1, &["a@example.net"], "x\r\n"));
    run.send(message(2, &[], "x\r\n"));
    run.input(Input::Quit);
    run.recv("220 mx.example\r\n");
    run.take();
    run.recv(&ehlo(&["PIPELINING"]));
    assert!(run.sent().starts_with("MAIL FROM:"));
    run.recv("250 ok\r\n250 ok\r\n354 go\r\n");
    run.take();
    run.recv("250 queued\r\n");
    assert_eq!(run.sent(), "QUIT\r\n");
    let actions = run.take();
    assert_eq!(outcomes(&actions), vec![(1, vec![('D', 250)]), (2, vec![])]);
    assert!(!actions.contains(&Action::Ready));
    run.recv("221 bye\r\n");
    assert_eq!(run.take(), vec![Action::Close]);
}

fn streamed(id: u64, rcpts: &[&str], content: &str) -> OutboundMessage {
    let mut message = message(id, rcpts, "");
    message.body = crate::client::OutboundBody::Streamed {
        size: content.len() as u64,
        eight_bit: !content.is_ascii(),
    };
    message
}

#[test]
fn streamed_bodies_are_asked_for_after_354_and_stuffed_piece_by_piece() {
    let mut run = Run::greeted(config(), PIPE);
    run.send(streamed(1, &["a@example.net"], ".a\r\n.b\r\n"));
    assert!(run
        .sent()
        .starts_with("MAIL FROM:<s@example.org> SIZE=8\r\n"));
    run.recv("250 ok\r\n250 ok\r\n354 go\r\n");
    assert_eq!(run.take(), vec![Action::BodyWanted { id: 1 }]);
    let block = config().timeouts.data_block;
    assert_eq!(run.session.poll_timeout(), Some(run.now + block));
    run.now += Duration::from_secs(60);
    run.input(Input::BodyChunk(Bytes::from_static(b".a\r")));
    assert_eq!(run.sent(), "..a\r");
    assert_eq!(
        run.session.poll_timeout(),
        Some(run.now + block),
        "restarted"
    );
    run.input(Input::BodyChunk(Bytes::from_static(b"\n.b\r\n")));
    assert_eq!(run.sent(), "\n..b\r\n");
    run.input(Input::BodyEnd);
    assert_eq!(run.sent(), ".\r\n");
    let end = config().timeouts.data_end;
    assert_eq!(run.session.poll_timeout(), Some(run.now + end));
    run.recv("250 queued\r\n");
    assert_eq!(outcomes(&run.take()), vec![(1, vec![('D', 250)])]);
    // A caller that stops feeding: the session gives up after the data block timeout.
    run.send(streamed(2, &["a@example.net"], "xyz"));
    run.recv("250 ok\r\n250 ok\r\n354 go\r\n");
    run.take();
    run.wait(block);
    let actions = run.take();
    assert_eq!(outcomes(&actions), vec![(2, vec![('T', 421)])]);
    assert_failed(&actions, &ErrorReason::Timeout("body"), true);
}

#[test]
fn streamed_bodies_go_with_bdat_announced_in_advance() {
    let mut config = config();
    config.chunking = true;
    let mut run = Run::greeted(config, &["PIPELINING", "CHUNKING"]);
    run.send(streamed(1, &["a@example.net"], "abcdef"));
    let actions = run.take();
    let group = "MAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.net>\r\nBDAT 6 LAST\r\n";
    assert_eq!(
        actions,
        vec![
            Action::Send(Bytes::from(group)),
            Action::BodyWanted { id: 1 }
        ]
    );
    run.recv("250 ok\r\n250 ok\r\n");
    run.input(Input::BodyChunk(Bytes::from_static(b"abc")));
    // The reply to BDAT LAST cannot come before its octets were sent.
    run.recv("250 too early\r\n");
    assert_failed(&run.take(), &ErrorReason::OutOfTurn, true);

    let mut config = super::config();
    config.chunking = true;
    let mut run = Run::greeted(config, &["PIPELINING", "CHUNKING"]);
    run.send(streamed(2, &["a@example.net"], "abcdef"));
    run.take();
    run.input(Input::BodyChunk(Bytes::from_static(b"abc")));
    run.input(Input::BodyChunk(Bytes::from_static(b"def")));
    assert_eq!(run.sent(), "abcdef");
    run.input(Input::BodyEnd);
    assert_eq!(run.take(), vec![]);
    run.recv("250 ok\r\n250 ok\r\n250 queued\r\n");
    assert_eq!(outcomes(&run.take()), vec![(2, vec![('D', 250)])]);
}

#[test]
fn a_streamed_body_of_the_wrong_size_ends_the_session() {
    let mut config = config();
    config.chunking = true;
    let mut run = Run::greeted(config, &["PIPELINING", "CHUNKING"]);
    run.send(streamed(1, &["a@example.net"], "abcdef"));
    run.take();
    run.input(Input::BodyChunk(Bytes::from_static(b"abc")));
    run.input(Input::BodyEnd);
    let actions = run.take();
    assert_eq!(outcomes(&actions), vec![(1, vec![('T', 421)])]);
    assert_failed(&actions, &ErrorReason::BodySizeMismatch, true);
    // Late pieces after the failure are ignored.
    run.input(Input::BodyChunk(Bytes::from_static(b"def")));
    assert_eq!(run.take(), vec![]);
    let mut run = Run::greeted(super::config(), PIPE);
    run.send(streamed(2, &["a@example.net"], "ab"));
    run.recv("250 ok\r\n250 ok\r\n354 go\r\n");
    run.take();
    run.input(Input::BodyChunk(Bytes::from_static(b"abc")));
    assert_failed(&run.take(), &ErrorReason::BodySizeMismatch, true);
}

#[test]
fn an_eight_bit_streamed_body_is_declared_by_the_caller() {
    let mut run = Run::greeted(config(), &[]);
    run.send(streamed(1, &["a@example.net"], "caf\u{e9}"));
    assert_eq!(outcomes(&run.take()), vec![(1, vec![('P', 554)])]);
}
