//! What the runtime feeds into the [`Engine`](super::Engine): session questions, answers
//! to the engine's own questions (lookups, commits, deliveries) and control commands.

use std::net::SocketAddr; // allow-impure: address values, no socket

use smtp_proto::server::{Question, ReqId};

use crate::expand;
use crate::queue::{EnvelopeId, MessageId};
use crate::scheduler::{Outcome, Scope, Target};

use crate::queue::Envelope;

/// One server session, as numbered by the engine (written as 16 hex digits in logs, like
/// OpenSMTPD's session ids).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct SessionId(pub u64);

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Identifies one question the engine asked the runtime ([`super::Action::Lookup`],
/// [`super::Action::CheckPassword`]); echo it back in the answer.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct LookupId(pub u64);

/// Where a session's client is.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum PeerAddr {
    /// A TCP client.
    Inet(SocketAddr),
    /// The local enqueuer (`listen on socket`, sendmail(8)).
    Local,
}

/// What the runtime knows about a new connection, for
/// [`Engine::open_session`](super::Engine::open_session).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SessionInfo {
    /// Index of the listener in [`Config::listeners`](crate::config::Config::listeners);
    /// `None` for the local enqueuer socket.
    pub listener: Option<usize>,
    /// The client.
    pub peer: PeerAddr,
    /// The local address the client connected to, if any.
    pub local: Option<SocketAddr>,
    /// The client's reverse DNS name, when it resolved (and matched forward).
    pub rdns: Option<String>,
    /// TLS from the first byte (`smtps`).
    pub tls: bool,
}

/// The result of an effect the runtime performed; `Err` holds a reason for logs.
pub type EffectResult = Result<(), String>;

/// A queue control command (smtpctl(8) `schedule`, `remove`, `pause`, `resume`, and
/// their `envelope` forms).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Control {
    /// Try these envelopes now.
    Schedule(Target),
    /// Drop these envelopes without a report.
    Remove(Target),
    /// Stop delivering this kind.
    Pause(Scope),
    /// Deliver this kind again.
    Resume(Scope),
    /// Hold these envelopes (`pause envelope ID|MSGID|all`): they keep their state but
    /// are neither tried nor expired until released.
    Hold(Target),
    /// Release held envelopes (`resume envelope ID|MSGID|all`): each is tried at its next
    /// try time, at once if that passed.
    Release(Target),
}

/// One input to [`Engine::handle`](super::Engine::handle).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Input {
    /// A server session asked a question (its `Ask(ReqId, Question)`); the answer leaves as
    /// [`super::Action::Answer`] with the same session and id, possibly after other
    /// inputs. Prefer [`Input::EndOfMessage`] for `Question::EndOfMessage`, which carries
    /// the loop count; a bare `EndOfMessage` question counts as zero `Received:` headers.
    Question {
        /// The session that asks.
        session: SessionId,
        /// The session's id of the question.
        req: ReqId,
        /// What it asks.
        question: Question,
    },
    /// The session's `Question::EndOfMessage`, with the number of `Received:` headers the
    /// runtime counted in the body's header section (see [`super::ReceivedCounter`]).
    EndOfMessage {
        /// The session.
        session: SessionId,
        /// The session's id of the question.
        req: ReqId,
        /// Body octets (after unstuffing), without the header the engine composed.
        size: u64,
        /// `Received:` headers in the client's message (RFC 5321 §6.3 loop detection).
        received_headers: usize,
    },
    /// STARTTLS finished on this session (RFC 3207); noted in the `Received:` header.
    SessionTls {
        /// The session.
        session: SessionId,
        /// The protocol, e.g. `TLSv1.3`.
        protocol: String,
        /// The cipher suite.
        cipher: String,
    },
    /// The session dropped the body after a positive `DataStart` (its `BodyAborted`).
    BodyAborted {
        /// The session.
        session: SessionId,
    },
    /// The connection is gone; forget the session (an open message is aborted).
    SessionClosed {
        /// The session.
        session: SessionId,
    },
    /// The answer to an [`super::Action::Lookup`].
    LookupAnswer {
        /// The lookup's id.
        id: LookupId,
        /// What the runtime found.
        answer: expand::Answer,
    },
    /// The answer to an [`super::Action::CheckPassword`].
    PasswordChecked {
        /// The check's id.
        id: LookupId,
        /// The password matches.
        ok: bool,
    },
    /// The runtime made (or failed to make) an [`super::Action::CommitMessage`] durable.
    Committed {
        /// The message.
        msgid: MessageId,
        /// `Ok` once message and envelopes are on disk.
        result: EffectResult,
    },
    /// A delivery handed out with [`super::Action::Deliver`] ended.
    DeliveryResult {
        /// The envelope.
        id: EnvelopeId,
        /// How it ended.
        outcome: Outcome,
    },
    /// The runtime queued (or failed to queue) the report of an
    /// [`super::Action::QueueBounce`].
    BounceQueued {
        /// The report's own message id.
        msgid: MessageId,
        /// `Ok` once the report message and its envelope are on disk.
        result: EffectResult,
    },
    /// Whether the spool has room for new mail. While it has none, MAIL FROM is
    /// answered `452 4.3.1` (RFC 3463 §3.4, mail system full) so clients try later.
    SpoolSpace {
        /// There is room (the initial state).
        available: bool,
    },
    /// Envelopes read back from the spool at start.
    Reload(Vec<Envelope>),
    /// A queue control command.
    Control(Control),
    /// Time passed (the deadline of [`Engine::poll_timeout`](super::Engine::poll_timeout)
    /// came).
    Tick,
}
