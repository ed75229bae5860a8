//! The client session machine: one outbound SMTP (or LMTP) connection that delivers
//! one or more messages (RFC 5321 §3 and §4, with PIPELINING, CHUNKING, STARTTLS,
//! AUTH, SIZE, 8BITMIME, SMTPUTF8 and DSN).
//!
//! The session greets (EHLO, falling back to HELO), upgrades to TLS and authenticates
//! as its [`ClientConfig`] says, then sends each [`OutboundMessage`] it is given (the
//! whole MAIL/RCPT/DATA group in one write when the server pipelines), reports one
//! [`Outcome`] per message with a result per recipient, resets and reuses the
//! connection for the next, and QUITs when told. Anything wrong with the server or the
//! connection (a refused greeting, a malformed or unexpected reply, a reply out of
//! turn, a timeout, 421) ends the session with a [`SessionError`], and the messages it
//! held fail temporarily. A body is given whole, or streamed by the caller piece by
//! piece when the session asks for it ([`OutboundBody::Streamed`]). It performs no I/O
//! and reads no clock.
//!
//! A driver's loop:
//!
//! ```no_run
//! # use std::{sync::Arc, time::Instant};
//! # use smtp_proto::client::{Action, ClientConfig, ClientSession, Input};
//! # fn read(_: &mut [u8]) -> usize { 0 }
//! # fn drive(now: impl Fn() -> Instant) {
//! let mut session = ClientSession::new(Arc::new(ClientConfig::default()), now());
//! let mut buf = vec![0; 16 * 1024];
//! while !session.is_closed() {
//!     while let Some(action) = session.poll_action() {
//!         match action {
//!             Action::Send(bytes) => { /* write them */ }
//!             Action::Ready => { /* handle(Input::Message(..)) or handle(Input::Quit) */ }
//!             Action::BodyWanted { id } => { /* handle(Input::BodyChunk(..)).., BodyEnd */ }
//!             _ => { /* StartTls, Outcome, SessionError, Close */ }
//!         }
//!     }
//!     // Wait for readability or `session.poll_timeout()`, then:
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
mod body;
mod config;
mod setup;
mod transaction;

#[cfg(test)]
mod pair;
#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

pub use actions::{
    Action, ErrorReason, Input, OutboundBody, OutboundMessage, OutboundRecipient, Outcome,
    RecipientResult, SessionError,
};
pub use config::{ClientConfig, Credentials, TlsPolicy};

use crate::reply::{EhloCapabilities, EnhancedStatus, Reply, ReplyParser};
use setup::AuthStep;
use transaction::Transaction;

/// Where the session stands; each state waits for one thing.
#[derive(Debug)]
enum Phase {
    /// Waiting for the 220 greeting.
    Greeting,
    /// Waiting for the reply to EHLO (or LHLO).
    Ehlo,
    /// Waiting for the reply to HELO, after EHLO was refused.
    Helo,
    /// Waiting for the reply to STARTTLS.
    StartTls,
    /// Waiting for the runtime's TLS handshake.
    TlsHandshake,
    /// Waiting for a reply of the AUTH exchange.
    Auth(AuthStep),
    /// Nothing in flight: ready for a message.
    Idle,
    /// A message is being sent.
    Transaction(Box<Transaction>),
    /// Waiting for the reply to RSET.
    Rset,
    /// Waiting for the reply to QUIT.
    Quit,
    /// Done.
    Closed,
}

/// One outbound connection, as a pure state machine.
///
/// Its methods are of four kinds:
/// - `&self` getters: [`is_closed`](Self::is_closed), [`is_idle`](Self::is_idle),
///   [`capabilities`](Self::capabilities), [`buffered_len`](Self::buffered_len),
///   [`recv_capacity`](Self::recv_capacity), [`poll_timeout`](Self::poll_timeout);
/// - [`handle`](Self::handle) for bytes from the server, TLS, messages and QUIT;
/// - [`handle_timeout`](Self::handle_timeout) when the deadline of `poll_timeout` passed;
/// - [`poll_action`](Self::poll_action) to drain what must be done, until it returns
///   `None`, after every `new`, `handle` and `handle_timeout`.
///
/// `now` must never go backwards.
#[derive(Debug)]
pub struct ClientSession {
    config: Arc<ClientConfig>,
    phase: Phase,
    rx: BytesMut,
    parser: ReplyParser,
    /// Commands being gathered into one `Send`.
    out: BytesMut,
    actions: VecDeque<Action>,
    /// Messages given and not started yet.
    queue: VecDeque<OutboundMessage>,
    /// What the last EHLO advertised (nothing after HELO or before EHLO).
    caps: EhloCapabilities,
    tls: bool,
    authenticated: bool,
    quit: bool,
    /// `Action::Close` was queued; nothing more happens.
    closed: bool,
    /// When the reply now awaited is overdue; `None` when nothing is awaited or the
    /// timer must be armed at the end of the current call.
    deadline: Option<Instant>,
}

impl ClientSession {
    /// A session for a connection just opened at `now` (and, with
    /// [`ClientConfig::implicit_tls`], already under TLS); it waits for the greeting.
    pub fn new(config: Arc<ClientConfig>, now: Instant) -> Self {
        let mut session = ClientSession {
            phase: Phase::Greeting,
            rx: BytesMut::new(),
            parser: ReplyParser::new(config.reply_limits),
            out: BytesMut::new(),
            actions: VecDeque::new(),
            queue: VecDeque::new(),
            caps: EhloCapabilities::default(),
            tls: config.implicit_tls,
            authenticated: false,
            quit: false,
            closed: false,
            deadline: None,
            config,
        };
        session.finish(now);
        session
    }

    /// Feeds one input. Call [`poll_action`](Self::poll_action) until `None` afterwards.
    pub fn handle(&mut self, input: Input<'_>, now: Instant) {
        match input {
            Input::Received(bytes) => self.receive(bytes),
            Input::PeerClosed => self.peer_closed(),
            Input::TlsEstablished => self.tls_established(),
            Input::Message(message) => self.message(message),
            Input::BodyChunk(chunk) => self.body_chunk(chunk),
            Input::BodyEnd => self.body_end(),
            Input::Quit => {
                self.quit = true;
                if matches!(self.phase, Phase::Idle) {
                    self.idle();
                }
            }
        }
        self.finish(now);
    }

    /// Handles an expired reply timer: the session fails (or, waiting for QUIT's
    /// reply, just closes). Early or repeated calls are no-ops.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.deadline.is_some_and(|at| at <= now) {
            if matches!(self.phase, Phase::Quit) {
                self.close();
            } else {
                let what = self.awaited_verb();
                self.fail(ErrorReason::Timeout(what), true, false);
            }
        }
        self.finish(now);
    }

    /// The next thing to do, in order; `None` when there is nothing left.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// The session has closed (after `Action::Close`); drop it once drained.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Nothing is in flight and no message waits: another message can be sent.
    pub fn is_idle(&self) -> bool {
        matches!(self.phase, Phase::Idle) && self.queue.is_empty()
    }

    /// What the last EHLO reply advertised.
    pub fn capabilities(&self) -> &EhloCapabilities {
        &self.caps
    }

    /// TLS is active (after STARTTLS, or from the start with implicit TLS).
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// AUTH succeeded on this connection.
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }

    /// Received bytes not yet consumed (a partial reply).
    pub fn buffered_len(&self) -> usize {
        self.rx.len()
    }

    /// How many bytes the session takes now: the room left for the reply being read.
    pub fn recv_capacity(&self) -> usize {
        if self.is_closed() {
            return 0;
        }
        self.config.recv_buffer().saturating_sub(self.rx.len())
    }

    /// How many replies are due from the server for what was sent.
    fn awaited(&self) -> usize {
        match &self.phase {
            Phase::Greeting
            | Phase::Ehlo
            | Phase::Helo
            | Phase::StartTls
            | Phase::Auth(_)
            | Phase::Rset
            | Phase::Quit => 1,
            Phase::Transaction(txn) => txn.awaited(),
            Phase::TlsHandshake | Phase::Idle | Phase::Closed => 0,
        }
    }

    /// The verb whose reply is awaited, for errors and logs.
    fn awaited_verb(&self) -> &'static str {
        match &self.phase {
            Phase::Greeting => "greeting",
            Phase::Ehlo if self.config.lmtp => "LHLO",
            Phase::Ehlo => "EHLO",
            Phase::Helo => "HELO",
            Phase::StartTls => "STARTTLS",
            Phase::TlsHandshake => "TLS handshake",
            Phase::Auth(_) => "AUTH",
            Phase::Transaction(txn) => txn.awaited_verb(),
            Phase::Rset => "RSET",
            Phase::Quit => "QUIT",
            Phase::Idle | Phase::Closed => "nothing",
        }
    }

    /// Takes server bytes in, a buffer's worth at a time, and reads every reply due.
    fn receive(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && !self.is_closed() {
            if self.awaited() == 0 {
                if matches!(self.phase, Phase::Idle) {
                    // Nothing in flight: the server is hanging up (a 421 on its idle
                    // timeout); no message is concerned.
                    self.close();
                } else {
                    self.fail(ErrorReason::OutOfTurn, true, false);
                }
                return;
            }
            let room = self.recv_capacity();
            if room == 0 {
                let error = crate::reply::ReplyError::LineTooLong;
                self.fail(ErrorReason::Malformed(error), true, false);
                return;
            }
            let (now_part, rest) = bytes.split_at(room.min(bytes.len()));
            self.rx.extend_from_slice(now_part);
            bytes = rest;
            self.read_replies();
        }
    }

    /// Reads and handles complete replies while some are due.
    fn read_replies(&mut self) {
        while self.awaited() > 0 && !self.rx.is_empty() {
            let reply = match self.parser.parse(&mut self.rx) {
                Ok(Some(reply)) => reply,
                Ok(None) => return,
                Err(error) => {
                    self.fail(ErrorReason::Malformed(error), true, false);
                    return;
                }
            };
            self.deadline = None;
            if self.awaited() == 1 && !self.rx.is_empty() {
                // The server answered a command we have not sent yet.
                self.fail(ErrorReason::OutOfTurn, true, false);
                return;
            }
            self.reply(reply);
        }
        if self.awaited() == 0 && !self.rx.is_empty() && !self.is_closed() {
            self.fail(ErrorReason::OutOfTurn, true, false);
        }
    }

    /// Handles one reply in the current phase. The phase is moved out while its
    /// handler runs; every handler sets the next one (and puts a transaction back
    /// before failing, so its outcome is reported).
    fn reply(&mut self, reply: Reply) {
        if reply.code == 421 && !matches!(self.phase, Phase::Quit) {
            // RFC 5321 §3.8: the server is going away, whatever the command was.
            self.fail(ErrorReason::ServiceClosing(reply), true, false);
            return;
        }
        match std::mem::replace(&mut self.phase, Phase::Closed) {
            Phase::Greeting => self.greeting(reply),
            Phase::Ehlo => self.ehlo(reply),
            Phase::Helo => self.helo(reply),
            Phase::StartTls => self.starttls(reply),
            Phase::Auth(step) => self.auth(step, reply),
            Phase::Transaction(txn) => self.transaction_reply(txn, reply),
            Phase::Rset => self.rset(reply),
            Phase::Quit => self.close(),
            phase @ (Phase::TlsHandshake | Phase::Idle | Phase::Closed) => self.phase = phase,
        }
    }

    fn peer_closed(&mut self) {
        match self.phase {
            _ if self.closed => {}
            Phase::Idle | Phase::Quit => self.close(),
            _ => self.fail(ErrorReason::PeerClosed, true, false),
        }
    }

    fn tls_established(&mut self) {
        if !matches!(self.phase, Phase::TlsHandshake) {
            return;
        }
        // RFC 3207 §4.2: forget everything learned before TLS and greet again.
        self.tls = true;
        self.caps = EhloCapabilities::default();
        self.parser = ReplyParser::new(self.config.reply_limits);
        self.rx.clear();
        self.send_ehlo();
    }

    fn message(&mut self, message: OutboundMessage) {
        if self.is_closed() || self.quit {
            // Too late for this connection: the message waits for another one.
            let status = EnhancedStatus::new(4, 4, 0);
            let reply = Reply::new(421, Some(status), Bytes::from_static(b"session closing"));
            self.outcome_all(message, &RecipientResult::TempFail(reply));
            return;
        }
        self.queue.push_back(message);
        if matches!(self.phase, Phase::Idle) {
            self.idle();
        }
    }

    /// Appends a command line to the group being written.
    fn command(&mut self, line: &[u8]) {
        self.out.extend_from_slice(line);
    }

    /// Queues an action after the commands gathered so far.
    fn push(&mut self, action: Action) {
        self.flush();
        self.actions.push_back(action);
    }

    /// Sends `bytes` after the commands gathered so far, as its own write.
    fn send(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.push(Action::Send(bytes));
        }
    }

    fn flush(&mut self) {
        if !self.out.is_empty() {
            let bytes = self.out.split().freeze();
            self.actions.push_back(Action::Send(bytes));
        }
    }

    /// Reports every recipient of `message` with the same result.
    fn outcome_all(&mut self, message: OutboundMessage, result: &RecipientResult) {
        let recipients = vec![result.clone(); message.recipients.len()];
        self.push(Action::Outcome(Outcome {
            id: message.id,
            recipients,
        }));
    }

    /// Nothing in flight: start the next message, QUIT, or say we are ready.
    fn idle(&mut self) {
        self.phase = Phase::Idle;
        while matches!(self.phase, Phase::Idle) {
            if let Some(message) = self.queue.pop_front() {
                self.start(message);
            } else if self.quit {
                self.command(b"QUIT\r\n");
                self.phase = Phase::Quit;
            } else {
                self.push(Action::Ready);
                return;
            }
        }
    }

    /// Ends the session: temporary outcomes for every message held, the error, a QUIT
    /// when the server is still in step (`polite`), and Close.
    fn fail(&mut self, reason: ErrorReason, temporary: bool, polite: bool) {
        if self.is_closed() {
            return;
        }
        let error = SessionError { temporary, reason };
        let temp = RecipientResult::TempFail(error.temp_reply());
        // Whatever was gathered for the server is dropped with the session.
        self.out.clear();
        if let Phase::Transaction(txn) = std::mem::replace(&mut self.phase, Phase::Closed) {
            let outcome = txn.cut_short(&temp);
            self.actions.push_back(Action::Outcome(outcome));
        }
        while let Some(message) = self.queue.pop_front() {
            self.outcome_all(message, &temp);
        }
        self.actions.push_back(Action::SessionError(error));
        if polite {
            self.command(b"QUIT\r\n");
        }
        self.close();
    }

    fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.push(Action::Close);
        self.phase = Phase::Closed;
        self.rx = BytesMut::new();
        self.deadline = None;
    }

    /// Writes what was gathered and arms the timer for what is awaited now.
    fn finish(&mut self, now: Instant) {
        self.flush();
        let streaming = matches!(&self.phase, Phase::Transaction(txn) if txn.stream.is_some());
        let waiting = self.awaited() > 0 || streaming || matches!(self.phase, Phase::TlsHandshake);
        if !waiting || self.is_closed() {
            self.deadline = None;
        } else if self.deadline.is_none() {
            let t = &self.config.timeouts;
            let wait = match &self.phase {
                Phase::Greeting | Phase::TlsHandshake => t.initial,
                Phase::Transaction(txn) => txn.timeout(t),
                _ => t.mail,
            };
            self.deadline = Some(now + wait);
        }
    }
}
