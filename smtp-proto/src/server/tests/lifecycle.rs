//! Timers, shutdown, peer close, buffer limits and reply formatting.

use super::*;

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
