//! Scenario tests: each is a list of inputs and the replies and actions expected back.

mod body;
mod commands;
mod lifecycle;
mod tls_auth;

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

/// A session inside DATA, after 354.
fn in_data(config: ServerConfig) -> Harness {
    let mut h = ehloed(config);
    h.say("MAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\n");
    h
}
