//! What the [`Engine`](super::Engine) wants done: answers to sessions, questions for the
//! runtime, spool and delivery effects, log lines.

use bytes::Bytes;
use smtp_proto::server::{Answer, ReqId};

use super::input::{LookupId, SessionId};
use crate::bounce::Report;
use crate::expand;
use crate::queue::{Envelope, EnvelopeId, MessageId};

/// One thing to do; drain with [`Engine::poll_action`](super::Engine::poll_action) after
/// every `handle` until it returns `None`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Action {
    /// Give this answer to the session's question (its `Input::Answer(req, answer)`).
    Answer {
        /// The session that asked.
        session: SessionId,
        /// The session's id of the question.
        req: ReqId,
        /// The reply the client will see.
        answer: Answer,
    },
    /// Find something out (password database, `.forward`, `:include:`) and answer with
    /// [`super::Input::LookupAnswer`]. A failure to find out is `TempFail`, never
    /// `NotFound`/`Absent` (a guess would turn a transient fault into a 5xx).
    Lookup {
        /// The id to answer with.
        id: LookupId,
        /// The session the recipient belongs to (for per-session ordering or logs);
        /// `SessionId(0)`, never a session's id, for the recipient of a report.
        session: SessionId,
        /// What to find out.
        question: expand::Question,
    },
    /// Check an AUTH password (RFC 4954) and answer with [`super::Input::PasswordChecked`].
    /// `hash` is the crypt(3) hash from the listener's credentials table; `None` means the
    /// listener uses the system's login credentials (`auth` without a table): check the
    /// password against the account `user`. For a user the table does not know, `hash` is
    /// a decoy that matches no password (checked so that the refusal takes as long as a
    /// wrong password's); the engine refuses that user whatever the answer.
    CheckPassword {
        /// The id to answer with.
        id: LookupId,
        /// The authentication identity.
        user: String,
        /// The stored hash, or `None` for the system account database.
        hash: Option<String>,
        /// The password the client gave.
        password: Bytes,
    },
    /// Create the incoming file of a new message and write `header` (the `Received:`
    /// line, CRLF-terminated) first; the body the session streams follows it. Should the
    /// file not be created, let the body run and answer the commit with `Err`.
    OpenMessage {
        /// The session whose body it is.
        session: SessionId,
        /// The new message's id.
        msgid: MessageId,
        /// The header the engine composed.
        header: Bytes,
    },
    /// Throw the incoming message away (body aborted, loop detected, session gone).
    AbortMessage {
        /// The session whose body it was.
        session: SessionId,
        /// The message.
        msgid: MessageId,
    },
    /// Make the incoming message and these envelope records durable (fsync, atomic
    /// rename), then answer [`super::Input::Committed`]. Records are
    /// [`queue::encode`](crate::queue::encode) bytes, one per envelope.
    CommitMessage {
        /// The session waiting for its final reply.
        session: SessionId,
        /// The message.
        msgid: MessageId,
        /// Envelope ids and their records.
        envelopes: Vec<(EnvelopeId, Vec<u8>)>,
    },
    /// Deliver this envelope (see [`super::LocalMethodSpec`] for local methods), then
    /// answer [`super::Input::DeliveryResult`].
    Deliver(Envelope),
    /// Rewrite this envelope's record in the spool (with
    /// [`queue::encode`](crate::queue::encode)).
    UpdateEnvelope(Envelope),
    /// Delete this envelope from the spool (and its message once it has no envelope left).
    RemoveEnvelope(EnvelopeId),
    /// Queue a report (bounce, delay or success notice, per `report.kind`): read the
    /// original message `report.message`, write [`bounce::compose`](crate::bounce::compose)
    /// as the new message `msgid` with `envelopes` (from `<>` to the original sender
    /// after alias expansion, usually one, flagged as bounces), commit it, then answer
    /// [`super::Input::BounceQueued`]. The engine emits the `RemoveEnvelope`s of the
    /// reported envelopes only after that answer, so the original is still there.
    QueueBounce {
        /// What to report.
        report: Report,
        /// The report's own message id.
        msgid: MessageId,
        /// The envelopes that carry the report (records: [`queue::encode`](crate::queue::encode)).
        envelopes: Vec<Envelope>,
    },
    /// One log line, in OpenSMTPD's style (`smtp-in: ...`, `delivery: ...`).
    Log(String),
}
