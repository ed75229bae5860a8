//! Validated newtypes over `Bytes`: domains, mailboxes and the paths of MAIL and RCPT.
//!
//! Each value is a sub-slice of the received line (a refcount bump, no copy). Values kept
//! past the current command should be re-homed with `Bytes::copy_from_slice` by whoever
//! keeps them, so a short address does not pin a large read buffer.

use bytes::Bytes;

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
    /// The raw bytes of the domain or the bracketed literal.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Host::Domain(d) => d.as_bytes(),
            Host::Literal(l) => l.as_bytes(),
        }
    }
}

impl Mailbox {
    /// The local part as on the wire (quotes included when quoted).
    pub fn local_part(&self) -> &[u8] {
        &self.local
    }
    /// The domain or address literal.
    pub fn host(&self) -> &Host {
        &self.host
    }
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
        write!(f, "{}@{}", utf8_lossy(&self.local), utf8_lossy(self.host.as_bytes()))
    }
}

impl std::fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mailbox({self})")
    }
}
