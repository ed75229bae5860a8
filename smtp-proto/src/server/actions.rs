//! What goes into the server session and what comes out: inputs, actions, the questions
//! it asks the engine and the answers it expects back.

use bytes::Bytes;

use crate::command::Identity;
use crate::data::BodyFault;
use crate::params::{MailParams, RcptParams};
use crate::reply::Reply;
use crate::timer::ServerTimer;
use crate::types::{ForwardPath, ReversePath};

/// One input to [`super::ServerSession::handle`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Input<'a> {
    /// Bytes read from the client (plaintext, after TLS when TLS is active). Feed at most
    /// [`super::ServerSession::recv_capacity`] bytes.
    Received(&'a [u8]),
    /// The client closed its side of the connection (a read returned 0).
    PeerClosed,
    /// The TLS handshake that followed [`Action::StartTls`] finished (RFC 3207 §4.2).
    TlsEstablished {
        /// The negotiated protocol, e.g. `TLSv1.3`, for logs.
        protocol: &'a str,
        /// The negotiated cipher suite, for logs.
        cipher: &'a str,
    },
    /// The engine's answer to an [`Action::Ask`].
    Answer(ReqId, Answer),
    /// The server is shutting down: `421` at the next command (at once when idle), then
    /// close (RFC 5321 §3.8).
    Shutdown,
}

/// Identifies one question of one session; echo it back in [`Input::Answer`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ReqId(pub u64);

/// The engine's verdict on a question: the reply the client will see. The engine chooses
/// code, enhanced status and text; the session relays it in command order.
///
/// For `Helo` a positive answer's first line follows the code (`250 mx.example.org Hi`)
/// and the session appends the EHLO keywords; for `DataStart` a positive answer becomes
/// `354` (DATA) or lets the BDAT chunk in; for `EndOfMessage` give the final reply only
/// once the message is durable.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Answer {
    /// The reply to relay.
    pub reply: Reply,
}

impl From<Reply> for Answer {
    fn from(reply: Reply) -> Self {
        Answer { reply }
    }
}

/// The SASL mechanisms the session speaks (RFC 4954).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum AuthMechanism {
    /// PLAIN (RFC 4616).
    Plain,
    /// LOGIN (draft-murchison-sasl-login).
    Login,
}

/// A policy question for the engine; the session waits for its [`Answer`] before it
/// replies to the command (and before it reads commands that depend on it).
///
/// `Debug` never shows an AUTH password.
#[derive(Clone, PartialEq, Eq)]
pub enum Question {
    /// May this client greet with this identity (RFC 5321 §4.1.1.1)?
    Helo {
        /// EHLO (true) or HELO (false).
        esmtp: bool,
        /// The domain or address literal the client gave.
        identity: Identity,
    },
    /// Is this sender acceptable (RFC 5321 §4.1.1.2)?
    MailFrom {
        /// The reverse path.
        path: ReversePath,
        /// The ESMTP parameters, already checked against what we advertise.
        params: MailParams,
    },
    /// Is this recipient acceptable (RFC 5321 §4.1.1.3)?
    RcptTo {
        /// The forward path.
        path: ForwardPath,
        /// The ESMTP parameters, already checked against what we advertise.
        params: RcptParams,
    },
    /// May the body begin? Asked before `354` to DATA and before the first BDAT chunk is
    /// accepted; a positive answer means `Body` chunks will follow.
    DataStart {
        /// The body comes in BDAT chunks (RFC 3030) rather than after DATA.
        chunking: bool,
    },
    /// The body is complete: make the message durable, then answer with the final reply.
    EndOfMessage {
        /// Body octets delivered (after unstuffing).
        size: u64,
    },
    /// Are these credentials good (RFC 4954 §4)? Answer 235 2.7.0 or 535 5.7.8.
    Auth {
        /// The mechanism used.
        mechanism: AuthMechanism,
        /// The authorization identity (empty when not given).
        authzid: Bytes,
        /// The authentication identity (user name).
        authcid: Bytes,
        /// The password.
        password: Bytes,
    },
    /// VRFY (RFC 5321 §3.5.1), asked only when the config lets the engine answer.
    Vrfy(Bytes),
    /// EXPN (RFC 5321 §3.5.2), asked only when the config lets the engine answer.
    Expn(Bytes),
}

impl std::fmt::Debug for Question {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Question::Helo { esmtp, identity } => f
                .debug_struct("Helo")
                .field("esmtp", esmtp)
                .field("identity", identity)
                .finish(),
            Question::MailFrom { path, params } => f
                .debug_struct("MailFrom")
                .field("path", path)
                .field("params", params)
                .finish(),
            Question::RcptTo { path, params } => f
                .debug_struct("RcptTo")
                .field("path", path)
                .field("params", params)
                .finish(),
            Question::DataStart { chunking } => f
                .debug_struct("DataStart")
                .field("chunking", chunking)
                .finish(),
            Question::EndOfMessage { size } => {
                f.debug_struct("EndOfMessage").field("size", size).finish()
            }
            Question::Auth {
                mechanism,
                authzid,
                authcid,
                ..
            } => f
                .debug_struct("Auth")
                .field("mechanism", mechanism)
                .field("authzid", authzid)
                .field("authcid", authcid)
                .field("password", &"<redacted>")
                .finish(),
            Question::Vrfy(what) => f.debug_tuple("Vrfy").field(what).finish(),
            Question::Expn(what) => f.debug_tuple("Expn").field(what).finish(),
        }
    }
}

/// Why the session closed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum CloseReason {
    /// The client sent QUIT and got 221.
    Quit,
    /// The client closed the connection.
    PeerClosed,
    /// A timer expired (421 4.4.2 was sent).
    Timeout(ServerTimer),
    /// Too many bad commands (421 4.7.0 was sent).
    TooManyErrors,
    /// The server is shutting down (421 4.3.2 was sent).
    Shutdown,
    /// The client sent more than the receive buffer holds while the session waited for
    /// the engine (421 4.7.0 was sent).
    InputOverflow,
}

/// Something worth logging or counting; never needed for correctness.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Event {
    /// A command line was read (its verb, upper-cased, or `?` when unparsable).
    Command {
        /// The verb.
        verb: &'static str,
    },
    /// MAIL was accepted; transactions are numbered from 1 within the session.
    TransactionStarted {
        /// The transaction's number.
        number: u64,
    },
    /// A body was refused by the session itself.
    BodyRefused(BodyFault),
    /// Bytes that followed STARTTLS in the same read were dropped (RFC 3207 §5,
    /// CVE-2011-0411), or plaintext arrived during the handshake.
    DiscardedPlaintext {
        /// How many bytes.
        bytes: usize,
    },
    /// TLS is active; the session is back to its pre-EHLO state.
    TlsEstablished {
        /// The protocol, as given by the runtime.
        protocol: String,
        /// The cipher suite, as given by the runtime.
        cipher: String,
    },
    /// An answer arrived for a question this session no longer waits for.
    StaleAnswer(ReqId),
}

/// What the session wants done; drain with [`super::ServerSession::poll_action`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Action {
    /// Write these bytes (one or more complete replies) to the client.
    Send(Bytes),
    /// Write nothing more in plaintext and start the TLS handshake; feed
    /// [`Input::TlsEstablished`] when it is done.
    StartTls,
    /// Ask the engine; answer with [`Input::Answer`] with the same id, in any order.
    Ask(ReqId, Question),
    /// The next slice of the current message body, unstuffed.
    Body {
        /// The bytes.
        chunk: Bytes,
    },
    /// The body that a positive `DataStart` began will not be completed: throw away the
    /// `Body` chunks received for it. After a positive `DataStart`, exactly one of
    /// `Ask(EndOfMessage)` or `BodyAborted` follows.
    BodyAborted {
        /// The session's reason, if it refused the body itself (`None`: reset, closed).
        fault: Option<BodyFault>,
    },
    /// Close the connection (after writing everything sent before).
    Close(CloseReason),
    /// For logs and statistics only.
    Event(Event),
}
