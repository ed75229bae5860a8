//! SMTP replies (RFC 5321 §4.2) with enhanced status codes (RFC 3463): the type, a
//! renderer for single and multiline replies, and a bounded parser for the client side.

use bytes::Bytes;

mod ehlo;
mod parse;
mod render;
#[cfg(test)]
mod tests;

pub use ehlo::EhloCapabilities;
#[cfg(test)]
pub(crate) use parse::status_prefix;
pub use parse::{ReplyError, ReplyLimits, ReplyParser};

/// An enhanced mail system status code `class.subject.detail` (RFC 3463 §2).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct EnhancedStatus {
    /// 2 (success), 4 (persistent transient failure) or 5 (permanent failure).
    pub class: u8,
    /// The subject, 0..=999.
    pub subject: u16,
    /// The detail, 0..=999.
    pub detail: u16,
}

impl EnhancedStatus {
    /// `class.subject.detail`.
    pub const fn new(class: u8, subject: u16, detail: u16) -> Self {
        EnhancedStatus {
            class,
            subject,
            detail,
        }
    }
}

impl std::fmt::Display for EnhancedStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// One reply: a three-digit code, an optional enhanced status, and one or more lines of
/// text (without codes and CRLFs). The enhanced status, when present, prefixes every line.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Reply {
    /// The reply code, 200..=599.
    pub code: u16,
    /// The RFC 3463 status, if any.
    pub status: Option<EnhancedStatus>,
    /// The text lines; never empty (an empty text is one empty line).
    pub lines: Vec<Bytes>,
}

impl Reply {
    /// A one-line reply.
    pub fn new(code: u16, status: Option<EnhancedStatus>, text: impl Into<Bytes>) -> Self {
        Reply {
            code,
            status,
            lines: vec![text.into()],
        }
    }

    /// A multiline reply.
    pub fn multiline(code: u16, status: Option<EnhancedStatus>, lines: Vec<Bytes>) -> Self {
        let lines = if lines.is_empty() {
            vec![Bytes::new()]
        } else {
            lines
        };
        Reply {
            code,
            status,
            lines,
        }
    }

    /// 2yz: the command succeeded.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }
    /// 3yz: more input is expected (DATA, AUTH challenges).
    pub fn is_intermediate(&self) -> bool {
        (300..400).contains(&self.code)
    }
    /// 4yz: try again later.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }
    /// 5yz: do not try again.
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }
}
