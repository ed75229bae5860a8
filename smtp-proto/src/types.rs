//! Validated newtypes over `Bytes`: domains, mailboxes and the paths of MAIL and RCPT.
//!
//! Each value is a sub-slice of the received line (a refcount bump, no copy). Values kept
//! past the current command should be re-homed with [`Mailbox::detached`] (or
//! `Bytes::copy_from_slice`) by whoever keeps them, so a short address does not pin a
//! large read buffer.

use bytes::{BufMut, Bytes, BytesMut};

use crate::command::CommandError;

mod syntax;
#[cfg(test)]
mod tests;

pub(crate) use syntax::{is_atext, path_body, path_end, PathBody};

/// Longest local part, in octets (RFC 5321 §4.5.3.1.1).
pub const MAX_LOCAL_PART_LEN: usize = 64;
/// Longest domain or address literal, in octets (RFC 5321 §4.5.3.1.2).
pub const MAX_DOMAIN_LEN: usize = 255;
/// Longest reverse- or forward-path, angle brackets included (RFC 5321 §4.5.3.1.3).
pub const MAX_PATH_LEN: usize = 256;

/// A domain name (RFC 5321 §4.1.2 `Domain`), or a U-label domain under SMTPUTF8.
/// Stored as received; compare with `eq_ignore_ascii_case`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Domain(pub(crate) Bytes);

/// An address literal, the bracketed form (RFC 5321 §4.1.3): `[192.0.2.1]`,
/// `[IPv6:2001:db8::1]` or a general literal `[tag:content]`. Stored with the brackets.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AddressLiteral(pub(crate) Bytes);

/// The part of a mailbox after the `@`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Host {
    /// A domain name.
    Domain(Domain),
    /// An address literal.
    Literal(AddressLiteral),
}

/// `Local-part "@" ( Domain / address-literal )` (RFC 5321 §4.1.2).
///
/// `local` is the local part as it appears on the wire (a dot-string, or a
/// quoted-string including its quotes).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Mailbox {
    pub(crate) local: Bytes,
    pub(crate) host: Host,
}

/// The argument of `MAIL FROM:`: the null path `<>` or a mailbox.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum ReversePath {
    /// `<>`, used by bounces (RFC 5321 §4.5.5).
    Null,
    /// An ordinary sender.
    Mailbox(Mailbox),
}

/// The argument of `RCPT TO:`: `<postmaster>` without a domain, or a mailbox.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum ForwardPath {
    /// `<Postmaster>` with no domain (RFC 5321 §4.1.1.3), any case.
    Postmaster,
    /// An ordinary recipient (including `postmaster@domain`).
    Mailbox(Mailbox),
}

fn utf8_lossy(b: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(b)
}

impl Domain {
    /// Validates `input` as a domain (RFC 5321 §4.1.2 `Domain`; U-labels allowed when
    /// `smtputf8`, RFC 6531 §3.3) and keeps it as it is, without a copy.
    ///
    /// # Errors
    /// `BadAddress` for bad syntax, `TooLong` past 255 octets or 63 per label,
    /// `NeedsSmtpUtf8` for non-ASCII without `smtputf8`.
    pub fn parse(input: Bytes, smtputf8: bool) -> Result<Domain, CommandError> {
        syntax::check_utf8(&input, smtputf8)?;
        syntax::check_domain(&input, smtputf8)?;
        Ok(Domain(input))
    }
    /// The domain as text.
    pub fn as_str(&self) -> std::borrow::Cow<'_, str> {
        utf8_lossy(&self.0)
    }
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl AddressLiteral {
    /// Validates a bracketed address literal (RFC 5321 §4.1.3): IPv4, `IPv6:` with a
    /// valid IPv6 address, or a general `tag:content` literal.
    ///
    /// # Errors
    /// `BadAddress` for bad syntax, `TooLong` past 255 octets.
    pub fn parse(input: Bytes) -> Result<AddressLiteral, CommandError> {
        syntax::check_literal(&input)?;
        Ok(AddressLiteral(input))
    }
    /// The literal with its brackets, as text.
    pub fn as_str(&self) -> std::borrow::Cow<'_, str> {
        utf8_lossy(&self.0)
    }
    /// The raw bytes, brackets included.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl Host {
    /// Validates a domain, or an address literal when `input` starts with `[`.
    ///
    /// # Errors
    /// As [`Domain::parse`] and [`AddressLiteral::parse`].
    pub fn parse(input: Bytes, smtputf8: bool) -> Result<Host, CommandError> {
        if input.first() == Some(&b'[') {
            AddressLiteral::parse(input).map(Host::Literal)
        } else {
            Domain::parse(input, smtputf8).map(Host::Domain)
        }
    }
    /// The raw bytes of the domain or the bracketed literal.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Host::Domain(d) => d.as_bytes(),
            Host::Literal(l) => l.as_bytes(),
        }
    }
    /// A copy that owns its bytes (see the module docs).
    pub fn detached(&self) -> Host {
        match self {
            Host::Domain(d) => Host::Domain(Domain(Bytes::copy_from_slice(&d.0))),
            Host::Literal(l) => Host::Literal(AddressLiteral(Bytes::copy_from_slice(&l.0))),
        }
    }
}

impl Mailbox {
    /// Validates `local@host` without angle brackets (RFC 5321 §4.1.2 `Mailbox`); UTF-8
    /// is allowed in both parts when `smtputf8` (RFC 6531 §3.3).
    ///
    /// # Errors
    /// `BadAddress` for bad syntax or a missing domain, `TooLong` past the limits of
    /// RFC 5321 §4.5.3.1, `NeedsSmtpUtf8` for non-ASCII without `smtputf8`.
    pub fn parse(input: Bytes, smtputf8: bool) -> Result<Mailbox, CommandError> {
        syntax::check_utf8(&input, smtputf8)?;
        syntax::mailbox(input, smtputf8)
    }
    /// The local part as on the wire (quotes included when quoted).
    pub fn local_part(&self) -> &[u8] {
        &self.local
    }
    /// The local part with quoting removed: `"a\"b"` gives `a"b`. Copies only when the
    /// local part is quoted.
    pub fn local_part_unquoted(&self) -> Bytes {
        syntax::unquote(&self.local)
    }
    /// The domain or address literal.
    pub fn host(&self) -> &Host {
        &self.host
    }
    /// A copy that owns its bytes, for values kept past the current command.
    pub fn detached(&self) -> Mailbox {
        Mailbox {
            local: Bytes::copy_from_slice(&self.local),
            host: self.host.detached(),
        }
    }
    /// Writes `local@host` (no angle brackets).
    pub fn render(&self, out: &mut BytesMut) {
        out.put_slice(&self.local);
        out.put_u8(b'@');
        out.put_slice(self.host.as_bytes());
    }
}

impl ReversePath {
    /// Parses a whole reverse-path with its angle brackets, `<>` included (RFC 5321
    /// §4.1.2); a source route is accepted and dropped (RFC 5321 §4.1.2, Appendix C).
    ///
    /// # Errors
    /// As [`Mailbox::parse`]; `<postmaster>` without a domain is a `BadAddress` here.
    pub fn parse(input: Bytes, smtputf8: bool) -> Result<ReversePath, CommandError> {
        match whole_path(input, smtputf8)? {
            PathBody::Null => Ok(ReversePath::Null),
            PathBody::Mailbox(m) => Ok(ReversePath::Mailbox(m)),
            PathBody::Postmaster => Err(CommandError::BadAddress("missing domain")),
        }
    }
    /// The mailbox, or `None` for the null path.
    pub fn mailbox(&self) -> Option<&Mailbox> {
        match self {
            ReversePath::Null => None,
            ReversePath::Mailbox(m) => Some(m),
        }
    }
    /// A copy that owns its bytes.
    pub fn detached(&self) -> ReversePath {
        match self {
            ReversePath::Null => ReversePath::Null,
            ReversePath::Mailbox(m) => ReversePath::Mailbox(m.detached()),
        }
    }
    /// Writes the path with its angle brackets.
    pub fn render(&self, out: &mut BytesMut) {
        out.put_u8(b'<');
        if let ReversePath::Mailbox(m) = self {
            m.render(out);
        }
        out.put_u8(b'>');
    }
}

impl ForwardPath {
    /// Parses a whole forward-path with its angle brackets (RFC 5321 §4.1.2), or
    /// `<postmaster>` in any case (RFC 5321 §4.1.1.3).
    ///
    /// # Errors
    /// As [`Mailbox::parse`]; the null path `<>` is a `BadAddress` here.
    pub fn parse(input: Bytes, smtputf8: bool) -> Result<ForwardPath, CommandError> {
        match whole_path(input, smtputf8)? {
            PathBody::Null => Err(CommandError::BadAddress("null path is not a recipient")),
            PathBody::Mailbox(m) => Ok(ForwardPath::Mailbox(m)),
            PathBody::Postmaster => Ok(ForwardPath::Postmaster),
        }
    }
    /// The mailbox, or `None` for the bare `<postmaster>`.
    pub fn mailbox(&self) -> Option<&Mailbox> {
        match self {
            ForwardPath::Postmaster => None,
            ForwardPath::Mailbox(m) => Some(m),
        }
    }
    /// A copy that owns its bytes.
    pub fn detached(&self) -> ForwardPath {
        match self {
            ForwardPath::Postmaster => ForwardPath::Postmaster,
            ForwardPath::Mailbox(m) => ForwardPath::Mailbox(m.detached()),
        }
    }
    /// Writes the path with its angle brackets.
    pub fn render(&self, out: &mut BytesMut) {
        match self {
            ForwardPath::Postmaster => out.put_slice(b"<postmaster>"),
            ForwardPath::Mailbox(m) => {
                out.put_u8(b'<');
                m.render(out);
                out.put_u8(b'>');
            }
        }
    }
}

/// A path that must fill `input` exactly.
fn whole_path(input: Bytes, smtputf8: bool) -> Result<PathBody, CommandError> {
    let end = syntax::path_end(&input)?;
    if end != input.len() {
        return Err(CommandError::Syntax("unexpected text after path"));
    }
    syntax::path_body(input, smtputf8)
}

impl std::fmt::Debug for Domain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Domain({:?})", self.as_str())
    }
}

impl std::fmt::Debug for AddressLiteral {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AddressLiteral({:?})", self.as_str())
    }
}

impl std::fmt::Display for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}@{}",
            utf8_lossy(&self.local),
            utf8_lossy(self.host.as_bytes())
        )
    }
}

impl std::fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mailbox({self})")
    }
}
