//! Scripted-server tests of the client session: server bytes in, actions out.

mod session;
mod transaction;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{
    Action, ClientConfig, ClientSession, ErrorReason, Input, OutboundMessage, OutboundRecipient,
    Outcome, RecipientResult, SessionError,
};
use crate::params::MailParams;
use crate::types::{ForwardPath, Host, ReversePath};

/// A client and everything it did.
struct Run {
    session: ClientSession,
    now: Instant,
    actions: Vec<Action>,
}

fn config() -> ClientConfig {
    ClientConfig {
        helo: Host::parse(Bytes::from_static(b"client.example"), false).unwrap(),
        ..ClientConfig::default()
    }
}

fn message(id: u64, rcpts: &[&str], body: &str) -> OutboundMessage {
    OutboundMessage {
        id,
        sender: ReversePath::parse(Bytes::from_static(b"<s@example.org>"), false).unwrap(),
        recipients: rcpts
            .iter()
            .map(|r| {
                let path = ForwardPath::parse(Bytes::from(format!("<{r}>")), true).unwrap();
                OutboundRecipient::new(path)
            })
            .collect(),
        params: MailParams::default(),
        body: Bytes::from(body.to_owned()).into(),
    }
}

/// An EHLO reply advertising `keywords`.
fn ehlo(keywords: &[&str]) -> String {
    let mut lines = vec!["mx.example hello".to_owned()];
    lines.extend(keywords.iter().map(|k| (*k).to_owned()));
    let last = lines.len() - 1;
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| format!("250{}{l}\r\n", if i == last { ' ' } else { '-' }))
        .collect()
}

impl Run {
    fn new(config: ClientConfig) -> Run {
        let now = crate::fuzzing::session::epoch();
        let session = ClientSession::new(Arc::new(config), now);
        let mut run = Run {
            session,
            now,
            actions: Vec::new(),
        };
        run.drain();
        run
    }

    /// Connected and greeted with these extensions; what was sent so far is dropped.
    fn greeted(config: ClientConfig, keywords: &[&str]) -> Run {
        let mut run = Run::new(config);
        run.recv("220 mx.example ESMTP\r\n");
        run.recv(&ehlo(keywords));
        run.take();
        run
    }

    fn drain(&mut self) {
        while let Some(action) = self.session.poll_action() {
            self.actions.push(action);
        }
    }

    fn input(&mut self, input: Input<'_>) {
        self.session.handle(input, self.now);
        self.drain();
    }

    fn recv(&mut self, bytes: &str) {
        self.input(Input::Received(bytes.as_bytes()));
    }

    fn send(&mut self, message: OutboundMessage) {
        self.input(Input::Message(message));
    }

    /// Moves the clock by `by` and handles the timer.
    fn wait(&mut self, by: Duration) {
        self.now += by;
        self.session.handle_timeout(self.now);
        self.drain();
    }

    /// The actions since the last call.
    fn take(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// The bytes sent since the last call; other actions are kept.
    fn sent(&mut self) -> String {
        let mut text = String::new();
        self.actions.retain(|a| match a {
            Action::Send(bytes) => {
                text.push_str(&String::from_utf8_lossy(bytes));
                false
            }
            _ => true,
        });
        text
    }
}

/// The reply code of each recipient of an outcome, with its kind.
fn codes(outcome: &Outcome) -> Vec<(char, u16)> {
    outcome
        .recipients
        .iter()
        .map(|r| match r {
            RecipientResult::Delivered(reply) => ('D', reply.code),
            RecipientResult::TempFail(reply) => ('T', reply.code),
            RecipientResult::PermFail(reply) => ('P', reply.code),
        })
        .collect()
}

/// The outcomes among `actions`.
fn outcomes(actions: &[Action]) -> Vec<(u64, Vec<(char, u16)>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Outcome(o) => Some((o.id, codes(o))),
            _ => None,
        })
        .collect()
}

/// The session errors among `actions`.
fn errors(actions: &[Action]) -> Vec<SessionError> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SessionError(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

/// The session ended with this error, and then closed.
fn assert_failed(actions: &[Action], reason: &ErrorReason, temporary: bool) {
    let errors = errors(actions);
    assert_eq!(errors.len(), 1, "{actions:?}");
    assert_eq!(&errors[0].reason, reason);
    assert_eq!(errors[0].temporary, temporary, "{reason:?}");
    assert_eq!(actions.last(), Some(&Action::Close), "{actions:?}");
}
