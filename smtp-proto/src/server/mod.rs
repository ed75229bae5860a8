//! The server session machine: one inbound SMTP connection (RFC 5321 §4, with
//! PIPELINING, CHUNKING, STARTTLS, AUTH, SIZE, 8BITMIME, SMTPUTF8 and DSN parameters).
//!
//! The session knows the protocol and nothing else. It frames and parses commands,
//! enforces command order, line and size limits and pipelining order, and asks the
//! engine every policy question ([`Question`]) as an [`Action::Ask`], replying to the
//! client only once the [`Answer`] is in. It performs no I/O and reads no clock.
//!
//! A driver's loop:
//!
//! ```no_run
//! # use std::{sync::Arc, time::Instant};
//! # use smtp_proto::server::{Action, Input, ServerConfig, ServerSession};
//! # fn read(_: &mut [u8]) -> usize { 0 }
//! # fn drive(now: impl Fn() -> Instant) {
//! let mut session = ServerSession::new(Arc::new(ServerConfig::default()), now());
//! let mut buf = vec![0; 64 * 1024];
//! while !session.is_closed() {
//!     while let Some(action) = session.poll_action() {
//!         match action {
//!             Action::Send(bytes) => { /* write them */ }
//!             Action::Ask(id, question) => { /* decide, later: handle(Input::Answer(id, ..)) */ }
//!             _ => { /* StartTls, Body, BodyAborted, Close, Event */ }
//!         }
//!     }
//!     // Wait for readability, an answer, or `session.poll_timeout()`, then:
//!     let cap = session.recv_capacity().min(buf.len());
//!     let n = read(&mut buf[..cap]);
//!     if n == 0 {
//!         session.handle(Input::PeerClosed, now());
//!     } else {
//!         session.handle(Input::Received(&buf[..n]), now());
//!     }
//! }
//! # }
//! ```

mod actions;
mod answer;
mod auth;
mod body;
mod command;
mod config;
mod pipeline;
mod render;
mod state;

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;

pub use actions::{Action, Answer, AuthMechanism, CloseReason, Event, Input, Question, ReqId};
pub use config::{Extensions, ServerConfig};

use crate::line::LineFramer;
use crate::reply::EnhancedStatus;
use crate::timer::{after, ServerTimer, ServerTimers};
use pipeline::{Pending, Pipeline};
use render::Canned;
use state::{Greeted, Mode, Transaction};

/// One inbound SMTP connection, as a pure state machine.
///
/// Its methods are of four kinds:
/// - `&self` getters: [`is_closed`](Self::is_closed), [`buffered_len`](Self::buffered_len),
///   [`recv_capacity`](Self::recv_capacity), [`poll_timeout`](Self::poll_timeout);
/// - [`handle`](Self::handle) for input from the network, the TLS layer and the engine;
/// - [`handle_timeout`](Self::handle_timeout) when the deadline of `poll_timeout` passed;
/// - [`poll_action`](Self::poll_action) to drain what must be done, until it returns
///   `None`, after every `new`, `handle` and `handle_timeout`.
///
/// `now` must never go backwards.
#[derive(Debug)]
pub struct ServerSession {
    config: Arc<ServerConfig>,
    rx: BytesMut,
    framer: LineFramer,
    mode: Mode,
    greeted: Option<Greeted>,
    tls: bool,
    authenticated: bool,
    txn: Option<Transaction>,
    pipeline: Pipeline,
    actions: VecDeque<Action>,
    timers: ServerTimers,
    next_question: u64,
    transactions: u64,
    commands: u64,
    errors: usize,
    shutdown: bool,
    peer_closed: bool,
    /// A positive `DataStart` began a body whose end (`EndOfMessage` or `BodyAborted`)
    /// the engine has not been told yet.
    body_open: bool,
    /// Too many errors: the session reads nothing more and closes once answered.
    closing: bool,
}

impl ServerSession {
    /// A session for a connection accepted at `now`; the 220 greeting is the first
    /// action.
    pub fn new(config: Arc<ServerConfig>, now: Instant) -> Self {
        let mut session = ServerSession {
            rx: BytesMut::new(),
            framer: LineFramer::new(),
            mode: Mode::Command,
            greeted: None,
            tls: false,
            authenticated: false,
            txn: None,
            pipeline: Pipeline::default(),
            actions: VecDeque::new(),
            timers: ServerTimers::default(),
            next_question: 0,
            transactions: 0,
            commands: 0,
            errors: 0,
            shutdown: false,
            peer_closed: false,
            body_open: false,
            closing: false,
            config,
        };
        let greeting = format!(
            "{} ESMTP {}",
            session.config.hostname, session.config.greeting
        );
        session.pipeline.push(|out| {
            render::write_lines(out, 220, None, std::iter::once(greeting.as_bytes()), false)
        });
        session.finish(now);
        session
    }

    /// Feeds one input.
    ///
    /// Call [`poll_action`](Self::poll_action) until `None` afterwards. Answers for
    /// questions the session no longer waits for (after a timeout) are ignored.
    pub fn handle(&mut self, input: Input<'_>, now: Instant) {
        if matches!(self.mode, Mode::Closed) {
            return;
        }
        match input {
            Input::Received(bytes) => self.receive(bytes, now),
            Input::PeerClosed => self.peer_closed = true,
            Input::TlsEstablished { protocol, cipher } => self.tls_established(protocol, cipher),
            Input::Answer(id, answer) => self.answer(id, answer),
            Input::Shutdown => self.shutdown = true,
        }
        self.drive(now);
        self.finish(now);
    }

    /// Handles an expired timer: `421 4.4.2` and close. Early or repeated calls are
    /// no-ops. Call [`poll_action`](Self::poll_action) until `None` afterwards.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(timer) = self.timers.expired(now) {
            let text = format!("{} Timeout, closing connection", self.config.hostname);
            self.close_with(
                421,
                EnhancedStatus::new(4, 4, 2),
                &text,
                CloseReason::Timeout(timer),
            );
        }
    }

    /// The next thing to do, in order; `None` when there is nothing left.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// The session has closed (after `Action::Close`); drop it once drained.
    pub fn is_closed(&self) -> bool {
        matches!(self.mode, Mode::Closed)
    }

    /// Received bytes not yet consumed (pipelined commands waiting, a partial line).
    pub fn buffered_len(&self) -> usize {
        self.rx.len()
    }

    /// Replies held back for ordering, for invariant checks.
    pub fn held_replies(&self) -> usize {
        self.pipeline.held()
    }

    /// How many bytes the session accepts now: 0 while it waits for the engine
    /// (backpressure) or during the TLS handshake, otherwise the free room of the
    /// receive buffer. Feeding more while waiting is tolerated up to the buffer's limit;
    /// past it the session answers `421` and closes.
    pub fn recv_capacity(&self) -> usize {
        match self.mode {
            Mode::Closed | Mode::TlsHandshake => 0,
            _ if self.pipeline.waiting() > 0 => 0,
            _ => self.config.limits.recv_buffer.saturating_sub(self.rx.len()),
        }
    }

    fn receive(&mut self, mut bytes: &[u8], now: Instant) {
        if matches!(self.mode, Mode::Data(_) | Mode::Bdat(_)) && !bytes.is_empty() {
            let block = self.config.timeouts.data_block;
            self.timers.set(ServerTimer::DataBlock, after(now, block));
        }
        if matches!(self.mode, Mode::TlsHandshake) {
            self.discard_plaintext(bytes.len());
            return;
        }
        while !bytes.is_empty() && !self.is_closed() {
            if matches!(self.mode, Mode::TlsHandshake) {
                self.discard_plaintext(bytes.len());
                return;
            }
            let room = self.config.limits.recv_buffer.saturating_sub(self.rx.len());
            if room == 0 {
                let text = format!("{} Too much pipelined input", self.config.hostname);
                self.close_with(
                    421,
                    EnhancedStatus::new(4, 7, 0),
                    &text,
                    CloseReason::InputOverflow,
                );
                return;
            }
            let (now_part, rest) = bytes.split_at(room.min(bytes.len()));
            self.rx.extend_from_slice(now_part);
            bytes = rest;
            if !rest.is_empty() {
                self.drive(now);
            }
        }
    }

    fn discard_plaintext(&mut self, bytes: usize) {
        if bytes > 0 {
            self.event(Event::DiscardedPlaintext { bytes });
        }
    }

    fn tls_established(&mut self, protocol: &str, cipher: &str) {
        if !matches!(self.mode, Mode::TlsHandshake) {
            return;
        }
        // RFC 3207 §4.2: forget everything learned before TLS.
        self.abort_body(None);
        self.txn = None;
        self.greeted = None;
        self.authenticated = false;
        self.tls = true;
        self.mode = Mode::Command;
        self.rx.clear();
        self.framer.reset();
        self.timers.stop(ServerTimer::Idle);
        let (protocol, cipher) = (protocol.to_owned(), cipher.to_owned());
        self.event(Event::TlsEstablished { protocol, cipher });
    }

    /// Reads as many commands and body bytes as the state allows.
    fn drive(&mut self, now: Instant) {
        loop {
            match self.mode {
                Mode::Closed => return,
                Mode::TlsHandshake => {
                    // Nothing can be said in plaintext any more; just hang up.
                    if self.shutdown {
                        self.close(CloseReason::Shutdown);
                    } else if self.peer_closed {
                        self.close(CloseReason::PeerClosed);
                    }
                    return;
                }
                Mode::Data(_) => {
                    if !self.read_data(now) {
                        break;
                    }
                }
                Mode::Bdat(_) => {
                    if !self.read_bdat(now) {
                        break;
                    }
                }
                Mode::Command | Mode::Auth(_) => {
                    if !self.read_line(now) {
                        break;
                    }
                }
            }
        }
        self.close_when_answered();
        if self.peer_closed && self.pipeline.waiting() == 0 {
            // Everything complete has been read and answered; what is left is a partial
            // line or an unfinished body, which the closed peer can never complete.
            self.close(CloseReason::PeerClosed);
        }
    }

    /// Reads one command or AUTH line if the pipeline lets us; false when stuck.
    fn read_line(&mut self, now: Instant) -> bool {
        if self.pipeline.is_parked() || self.closing {
            return false;
        }
        if self.shutdown && self.pipeline.waiting() == 0 {
            let text = format!(
                "{} Service shutting down, closing connection",
                self.config.hostname
            );
            self.close_with(
                421,
                EnhancedStatus::new(4, 3, 2),
                &text,
                CloseReason::Shutdown,
            );
            return false;
        }
        let max = match self.mode {
            Mode::Auth(_) => self.config.limits.auth_line,
            _ => self.config.limits.command_line,
        };
        let waiting = self.pipeline.waiting();
        if waiting > 0 {
            // Only RCPT questions are in flight: another RCPT may join them, as long as
            // the replies held back (answered or not) stay within the pipeline depth.
            if self.pipeline.held() >= self.config.limits.pipeline_depth {
                return false;
            }
            let Some(len) = self.framer.peek(&mut self.rx, max) else {
                return false;
            };
            let line = self.rx.get(..len).unwrap_or_default();
            if !command::is_rcpt(line) {
                return false;
            }
        }
        let Some(framed) = self.framer.next_line(&mut self.rx, max) else {
            return false;
        };
        self.timers.stop(ServerTimer::Idle);
        match std::mem::replace(&mut self.mode, Mode::Command) {
            Mode::Auth(step) => self.auth_line(step, framed, now),
            _ => self.command(framed, now),
        }
        true
    }

    /// Sends what is ready and arms the timers for the state the session is now in.
    fn finish(&mut self, now: Instant) {
        self.flush();
        let timeouts = self.config.timeouts;
        match self.mode {
            Mode::Closed => self.timers.stop_all(),
            Mode::Data(_) | Mode::Bdat(_) => {
                self.timers.stop(ServerTimer::Idle);
                if self.timers.get(ServerTimer::DataBlock).is_none() {
                    self.timers
                        .set(ServerTimer::DataBlock, after(now, timeouts.data_block));
                }
            }
            Mode::Command | Mode::Auth(_) | Mode::TlsHandshake => {
                self.timers.stop(ServerTimer::DataBlock);
                if self.pipeline.waiting() > 0 {
                    self.timers.stop(ServerTimer::Idle);
                } else if self.timers.get(ServerTimer::Idle).is_none() {
                    let first = self.commands == 0 || matches!(self.mode, Mode::TlsHandshake);
                    let wait = if first {
                        timeouts.initial
                    } else {
                        timeouts.server_idle
                    };
                    self.timers.set(ServerTimer::Idle, after(now, wait));
                }
            }
        }
        match self.pipeline.deadline() {
            Some(at) if !self.is_closed() => self.timers.set(ServerTimer::Answer, at),
            _ => self.timers.stop(ServerTimer::Answer),
        }
    }

    fn flush(&mut self) {
        if let Some(bytes) = self.pipeline.flush() {
            self.actions.push_back(Action::Send(bytes));
        }
    }

    fn event(&mut self, event: Event) {
        self.actions.push_back(Action::Event(event));
    }

    fn enhanced(&self) -> bool {
        self.config.extensions.enhanced_status_codes
    }

    /// Queues a canned reply after every earlier one.
    fn reply(&mut self, reply: Canned) {
        let enhanced = self.enhanced();
        self.pipeline
            .push(|out| render::write_canned(out, reply, enhanced));
    }

    /// Queues a canned reply for a command the client should not have sent; too many of
    /// them end the session.
    fn refuse(&mut self, reply: Canned) {
        self.reply(reply);
        self.count_error();
    }

    fn count_error(&mut self) {
        self.errors = self.errors.saturating_add(1);
        if self.errors >= self.config.limits.errors {
            // Read nothing more; the 421 follows the replies still waiting for answers.
            self.closing = true;
            self.close_when_answered();
        }
    }

    fn close_when_answered(&mut self) {
        if self.closing && self.pipeline.waiting() == 0 {
            let text = format!(
                "{} Too many errors, closing connection",
                self.config.hostname
            );
            let status = EnhancedStatus::new(4, 7, 0);
            self.close_with(421, status, &text, CloseReason::TooManyErrors);
        }
    }

    /// Asks the engine; the reply slot waits for the answer until `timeout` passes.
    fn ask(&mut self, question: Question, pending: Pending, now: Instant, timeout: Duration) {
        self.next_question = self.next_question.wrapping_add(1);
        let id = ReqId(self.next_question);
        self.pipeline.wait(id, pending, after(now, timeout));
        self.actions.push_back(Action::Ask(id, question));
    }

    /// Tells the engine the body it began will not complete, if one is open.
    fn abort_body(&mut self, fault: Option<crate::data::BodyFault>) {
        if self.body_open {
            self.body_open = false;
            self.actions.push_back(Action::BodyAborted { fault });
        }
    }

    /// Sends a last reply (after those ready) and closes.
    fn close_with(&mut self, code: u16, status: EnhancedStatus, text: &str, reason: CloseReason) {
        if self.is_closed() {
            return;
        }
        // A 421 may answer any command (RFC 5321 §3.8): replies still waiting for the
        // engine are given up, those ready before them leave first.
        self.pipeline.cancel();
        let enhanced = self.enhanced();
        self.pipeline.push(|out| {
            render::write_lines(
                out,
                code,
                Some(status),
                std::iter::once(text.as_bytes()),
                enhanced,
            )
        });
        self.close(reason);
    }

    /// Flushes what may leave and closes.
    fn close(&mut self, reason: CloseReason) {
        if self.is_closed() {
            return;
        }
        self.abort_body(None);
        self.flush();
        self.pipeline.cancel();
        self.actions.push_back(Action::Close(reason));
        self.mode = Mode::Closed;
        self.rx = BytesMut::new();
        self.txn = None;
        self.timers.stop_all();
    }
}
