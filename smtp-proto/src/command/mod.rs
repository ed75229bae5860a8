//! SMTP commands (RFC 5321 §4.1, RFC 3207, RFC 4954, RFC 3030): the parsed form, a
//! parser over one received line, and a renderer (the client session's side).

use bytes::Bytes;

mod parse;
mod render;
#[cfg(test)]
mod tests;

pub use parse::parse;

use crate::params::{MailParams, RcptParams};
use crate::reply::Reply;
use crate::types::{ForwardPath, ReversePath};

/// The argument of HELO/EHLO: a domain or an address literal (RFC 5321 §4.1.1.1).
pub type Identity = crate::types::Host;

/// One parsed command line, without its CRLF.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Command {
    /// `HELO domain`.
    Helo(Identity),
    /// `EHLO domain` or `EHLO address-literal`.
    Ehlo(Identity),
    /// `MAIL FROM:<reverse-path> [params]`.
    Mail(ReversePath, MailParams),
    /// `RCPT TO:<forward-path> [params]`.
    Rcpt(ForwardPath, RcptParams),
    /// `DATA`.
    Data,
    /// `BDAT size [LAST]` (RFC 3030); the chunk bytes follow the line.
    Bdat {
        /// The chunk size in bytes.
        size: u64,
        /// `LAST` was given.
        last: bool,
    },
    /// `RSET`.
    Rset,
    /// `NOOP [string]`.
    Noop,
    /// `QUIT`.
    Quit,
    /// `VRFY string`.
    Vrfy(Bytes),
    /// `EXPN string`.
    Expn(Bytes),
    /// `HELP [string]`.
    Help(Option<Bytes>),
    /// `STARTTLS` (RFC 3207).
    StartTls,
    /// `AUTH mechanism [initial-response]` (RFC 4954 §4); `=` as the initial response
    /// means an empty one and is kept as an empty `Bytes`.
    Auth {
        /// The SASL mechanism name, upper-cased.
        mechanism: Bytes,
        /// The base64 initial response, still encoded.
        initial: Option<Bytes>,
    },
}

/// What the parser needs to know about the session to judge a line.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ParseOptions {
    /// UTF-8 in addresses is allowed (the client gave `SMTPUTF8` and we advertise it).
    /// The parser itself accepts UTF-8 in MAIL FROM only when its own parameters
    /// carry SMTPUTF8; this flag covers RCPT TO within such a transaction.
    pub smtputf8: bool,
}

/// Why a command line was refused; each maps to the reply the server sends.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The verb is not one we know (500 5.5.1).
    #[error("command unrecognized")]
    Unrecognized,
    /// A known verb with an argument that does not parse (501 5.5.4); the text says what.
    #[error("syntax error: {0}")]
    Syntax(&'static str),
    /// The mailbox is syntactically unacceptable (553 5.1.3 for a recipient, 553 5.1.7
    /// for a sender); the text says what.
    #[error("bad address: {0}")]
    BadAddress(&'static str),
    /// A part of the path is longer than RFC 5321 §4.5.3.1 allows (501 5.5.4 / 553).
    #[error("{0} too long")]
    TooLong(&'static str),
    /// An ESMTP parameter we do not implement (555 5.5.4).
    #[error("unsupported parameter")]
    UnknownParameter,
    /// A known ESMTP parameter with a bad value (501 5.5.4).
    #[error("bad parameter value: {0}")]
    BadParameter(&'static str),
    /// Non-ASCII where SMTPUTF8 is not in effect (553 5.6.7, RFC 6531 §3.7.4.1).
    #[error("non-ASCII address without SMTPUTF8")]
    NeedsSmtpUtf8,
}

impl CommandError {
    /// The reply the server sends for this error; `for_recipient` chooses between the
    /// sender (5.1.7) and recipient (5.1.3) address status codes.
    pub fn reply(&self, for_recipient: bool) -> Reply {
        use crate::reply::EnhancedStatus as E;
        let (code, status, text): (u16, E, String) = match self {
            CommandError::Unrecognized => (500, E::new(5, 5, 1), "Command unrecognized".into()),
            CommandError::Syntax(what) => (501, E::new(5, 5, 4), format!("Syntax error: {what}")),
            CommandError::BadAddress(what) => {
                let s = if for_recipient {
                    E::new(5, 1, 3)
                } else {
                    E::new(5, 1, 7)
                };
                (553, s, format!("Bad address syntax: {what}"))
            }
            CommandError::TooLong(what) => (501, E::new(5, 5, 4), format!("{what} too long")),
            CommandError::UnknownParameter => {
                (555, E::new(5, 5, 4), "Unsupported parameter".into())
            }
            CommandError::BadParameter(what) => {
                (501, E::new(5, 5, 4), format!("Bad parameter: {what}"))
            }
            CommandError::NeedsSmtpUtf8 => (
                553,
                E::new(5, 6, 7),
                "Non-ASCII address requires SMTPUTF8".into(),
            ),
        };
        Reply::new(code, Some(status), text)
    }
}
