//! What goes into the client session and what comes out: the messages to deliver,
//! per-recipient outcomes and the errors that concern the connection.

use bytes::Bytes;

use crate::params::{MailParams, RcptParams};
use crate::reply::{EnhancedStatus, Reply, ReplyError};
use crate::types::{ForwardPath, ReversePath};

/// One recipient of an [`OutboundMessage`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct OutboundRecipient {
    /// The forward path of RCPT TO.
    pub path: ForwardPath,
    /// NOTIFY and ORCPT (RFC 3461); passed on only when the server advertises DSN.
    pub params: RcptParams,
}

impl OutboundRecipient {
    /// A recipient without DSN parameters.
    pub fn new(path: ForwardPath) -> Self {
        OutboundRecipient {
            path,
            params: RcptParams::default(),
        }
    }
}

/// A message to deliver over this connection.
///
/// `params` says what the caller knows of the message; the session adapts it to what
/// the server advertised: SIZE is filled in with the body size, BODY=8BITMIME is given
/// whenever the body holds 8-bit octets, DSN parameters and `AUTH=` are dropped when
/// the server cannot take them. A body the server cannot take (too big, 8-bit, UTF-8
/// addresses, BINARYMIME) fails permanently without a MAIL command.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct OutboundMessage {
    /// The caller's tag, echoed in the [`Outcome`].
    pub id: u64,
    /// The reverse path of MAIL FROM.
    pub sender: ReversePath,
    /// The recipients, in the order their results are reported.
    pub recipients: Vec<OutboundRecipient>,
    /// The MAIL FROM parameters the caller asks for.
    pub params: MailParams,
    /// The message, headers and body, with CRLF line endings, not dot-stuffed.
    pub body: OutboundBody,
}

/// The content of an [`OutboundMessage`]: in memory, or streamed by the caller so a
/// large message never has to be held whole.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum OutboundBody {
    /// The whole content.
    Whole(Bytes),
    /// The content follows once the session asks for it with [`Action::BodyWanted`]:
    /// feed [`Input::BodyChunk`]s then [`Input::BodyEnd`]. The size (exact: BDAT
    /// announces it, RFC 3030 §2) and whether any octet is 8-bit are declared up front,
    /// for SIZE and 8BITMIME (RFC 1870, RFC 6152).
    Streamed {
        /// The content's size in octets.
        size: u64,
        /// Some octet is above 127.
        eight_bit: bool,
    },
}

impl OutboundBody {
    /// The content's size in octets.
    pub fn size(&self) -> u64 {
        match self {
            OutboundBody::Whole(bytes) => bytes.len() as u64,
            OutboundBody::Streamed { size, .. } => *size,
        }
    }

    /// Some octet is above 127 (RFC 6152).
    pub fn is_eight_bit(&self) -> bool {
        match self {
            OutboundBody::Whole(bytes) => bytes.iter().any(|&b| b >= 0x80),
            OutboundBody::Streamed { eight_bit, .. } => *eight_bit,
        }
    }
}

impl From<Bytes> for OutboundBody {
    fn from(bytes: Bytes) -> Self {
        OutboundBody::Whole(bytes)
    }
}

/// What happened to one recipient.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum RecipientResult {
    /// The server took responsibility for it (the reply to the end of the body, or in
    /// LMTP the recipient's own reply).
    Delivered(Reply),
    /// Try again later: a 4yz reply, or a failure of the connection (the reply is then
    /// made up by the session and says what went wrong).
    TempFail(Reply),
    /// Do not try again: a 5yz reply to this message's MAIL, RCPT or body, or a
    /// condition found before sending (size, 8BITMIME, SMTPUTF8).
    PermFail(Reply),
}

impl RecipientResult {
    /// The failure a 4yz or 5yz reply means; anything else counts as temporary.
    pub(crate) fn failure(reply: Reply) -> Self {
        if reply.is_permanent() {
            RecipientResult::PermFail(reply)
        } else {
            RecipientResult::TempFail(reply)
        }
    }

    /// The reply behind the result.
    pub fn reply(&self) -> &Reply {
        match self {
            RecipientResult::Delivered(r)
            | RecipientResult::TempFail(r)
            | RecipientResult::PermFail(r) => r,
        }
    }
}

/// The fate of one message: one result per recipient, in the message's order.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Outcome {
    /// The caller's tag from [`OutboundMessage::id`].
    pub id: u64,
    /// One result per recipient.
    pub recipients: Vec<RecipientResult>,
}

/// Why the session ended early; all of these concern the server or the connection,
/// never one message.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorReason {
    /// The greeting was not 220 (RFC 5321 §4.3.1).
    #[error("greeting refused: {0}")]
    Greeting(Reply),
    /// A command of the session (EHLO and HELO, STARTTLS, AUTH, RSET) was refused.
    #[error("{command} refused: {reply}")]
    Refused {
        /// The verb.
        command: &'static str,
        /// The server's reply.
        reply: Reply,
    },
    /// The server said 421: it is closing the connection (RFC 5321 §3.8).
    #[error("service closing: {0}")]
    ServiceClosing(Reply),
    /// TLS is required but the server does not advertise STARTTLS, or the runtime
    /// cannot do TLS.
    #[error("TLS required but not available")]
    TlsNotAvailable,
    /// Credentials are configured but TLS is not active; they are never sent in
    /// plaintext.
    #[error("refusing to authenticate without TLS")]
    PlaintextCredentials,
    /// Credentials are configured but the server offers neither PLAIN nor LOGIN.
    #[error("no supported AUTH mechanism")]
    NoAuthMechanism,
    /// The reply stream broke the grammar or the limits (RFC 5321 §4.2).
    #[error("malformed reply: {0}")]
    Malformed(ReplyError),
    /// A reply code that makes no sense for the command it answers.
    #[error("unexpected reply to {command}: {reply}")]
    UnexpectedReply {
        /// The verb answered.
        command: &'static str,
        /// The server's reply.
        reply: Reply,
    },
    /// The server sent bytes when no reply was due (before the command was sent, or
    /// after STARTTLS's 220: RFC 3207 §5).
    #[error("reply out of turn")]
    OutOfTurn,
    /// No reply in time, or (`"body"`) the caller stopped streaming the body (RFC 5321
    /// §4.5.3.2).
    #[error("timeout waiting for the {0}")]
    Timeout(&'static str),
    /// The server closed the connection (or the TLS handshake failed).
    #[error("connection closed by the server")]
    PeerClosed,
    /// A streamed body was longer or shorter than declared; after a BDAT announcing
    /// its size the stream cannot be kept in step.
    #[error("streamed body size differs from the declared size")]
    BodySizeMismatch,
}

/// An error of the session, not of a message: messages in flight fail temporarily.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SessionError {
    /// The same server may work when tried again later; `false` for a condition that
    /// stays (a 5yz greeting, EHLO and HELO refused, TLS or AUTH unavailable or
    /// refused), so a router can set this server aside for longer.
    pub temporary: bool,
    /// What went wrong.
    pub reason: ErrorReason,
}

impl SessionError {
    /// The reply given to the recipients of messages this error cut short: the server's
    /// own reply when it was a 4yz, otherwise `421 4.4.0` naming the reason, so they
    /// always fail temporarily.
    pub fn temp_reply(&self) -> Reply {
        match &self.reason {
            ErrorReason::ServiceClosing(r) | ErrorReason::Greeting(r) if r.is_transient() => {
                r.clone()
            }
            ErrorReason::Refused { reply, .. } if reply.is_transient() => reply.clone(),
            reason => {
                let status = match reason {
                    ErrorReason::Timeout(_) => EnhancedStatus::new(4, 4, 2),
                    ErrorReason::TlsNotAvailable | ErrorReason::PlaintextCredentials => {
                        EnhancedStatus::new(4, 7, 10)
                    }
                    _ => EnhancedStatus::new(4, 4, 0),
                };
                Reply::new(421, Some(status), Bytes::from(reason.to_string()))
            }
        }
    }
}

/// One input to [`super::ClientSession::handle`].
// A message is handed over once, by value, and moved straight into the queue: boxing
// it would only add an allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Input<'a> {
    /// Bytes read from the server (plaintext, after TLS when TLS is active). Feed at
    /// most [`super::ClientSession::recv_capacity`] bytes at once to keep reads bounded.
    Received(&'a [u8]),
    /// The server closed the connection (a read returned 0), or the TLS handshake failed.
    PeerClosed,
    /// The TLS handshake that followed [`Action::StartTls`] finished (RFC 3207 §4.2).
    TlsEstablished,
    /// A message to deliver; messages are sent one after the other, in order.
    Message(OutboundMessage),
    /// The next piece of the streamed body asked for with [`Action::BodyWanted`];
    /// ignored when no body is wanted (the session failed meanwhile).
    BodyChunk(Bytes),
    /// The streamed body is complete.
    BodyEnd,
    /// No more messages: QUIT once those given are done.
    Quit,
}

/// What the session wants done; drain with [`super::ClientSession::poll_action`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Action {
    /// Write these bytes to the server: commands (a pipelined group leaves as one), or
    /// a large piece of a body.
    Send(Bytes),
    /// Write nothing more in plaintext and start the TLS handshake; feed
    /// [`Input::TlsEstablished`] when it is done, or [`Input::PeerClosed`] if it fails.
    StartTls,
    /// Feed the streamed body of this message now: [`Input::BodyChunk`]s (each leaves
    /// at once as a write), then [`Input::BodyEnd`]. Stop if the session fails.
    BodyWanted {
        /// The message's [`OutboundMessage::id`].
        id: u64,
    },
    /// The fate of one message; exactly one per [`Input::Message`].
    Outcome(Outcome),
    /// The session is idle and can take another message.
    Ready,
    /// The session failed; the `Outcome`s of the messages it held precede this.
    SessionError(SessionError),
    /// Close the connection (after writing everything sent before).
    Close,
}
