//! The client session's configuration: our name, the TLS policy, credentials, LMTP
//! mode, timeouts and reply limits. Shared by the sessions of one route behind an `Arc`.

use bytes::Bytes;

use crate::command::Identity;
use crate::reply::ReplyLimits;
use crate::timer::Timeouts;
use crate::types::{Domain, Host};

/// When the session upgrades the connection with STARTTLS (RFC 3207).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum TlsPolicy {
    /// STARTTLS when the server advertises it and the runtime can do TLS; otherwise go
    /// on in plaintext (`smtp://`).
    #[default]
    Opportunistic,
    /// TLS or nothing (`smtp+tls://`): a server that does not advertise STARTTLS, or
    /// refuses it, ends the session. With [`ClientConfig::implicit_tls`] (`smtps://`)
    /// the runtime has already started TLS and this holds trivially.
    Required,
    /// Never STARTTLS, even when advertised (`smtp+notls://`).
    Never,
}

/// A user name and password for AUTH PLAIN or LOGIN (RFC 4954, RFC 4616), sent only
/// over TLS. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The authentication identity.
    pub user: Bytes,
    /// The password.
    pub password: Bytes,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &String::from_utf8_lossy(&self.user))
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Everything a client session needs to know before it connects.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ClientConfig {
    /// The name we give in EHLO/HELO/LHLO (RFC 5321 §4.1.1.1).
    pub helo: Identity,
    /// When to use STARTTLS.
    pub tls: TlsPolicy,
    /// The runtime can run a TLS handshake; without it STARTTLS is never tried.
    pub tls_available: bool,
    /// The runtime started TLS before the greeting (`smtps://`, RFC 8314 §3.3): the
    /// session counts as encrypted from the start and never sends STARTTLS.
    pub implicit_tls: bool,
    /// Authenticate with these after EHLO, only once TLS is active (RFC 4954 §4).
    pub credentials: Option<Credentials>,
    /// Speak LMTP (RFC 2033): LHLO instead of EHLO, no HELO fallback, and one reply per
    /// accepted recipient after the body.
    pub lmtp: bool,
    /// Send every body with BDAT when the server advertises CHUNKING (RFC 3030), which
    /// spares the dot-stuffing; BINARYMIME bodies use BDAT regardless.
    pub chunking: bool,
    /// How long to wait for each reply (RFC 5321 §4.5.3.2). `initial` covers the
    /// greeting and the TLS handshake, `mail` every command without a timeout of its own
    /// (EHLO, STARTTLS, AUTH, RSET, QUIT), `data_end` the reply to a whole body.
    pub timeouts: Timeouts,
    /// Bounds of one reply; the receive buffer never holds more than one reply's worth.
    pub reply_limits: ReplyLimits,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            helo: Host::Domain(Domain(Bytes::from_static(b"localhost"))),
            tls: TlsPolicy::default(),
            tls_available: false,
            implicit_tls: false,
            credentials: None,
            lmtp: false,
            chunking: false,
            timeouts: Timeouts::default(),
            reply_limits: ReplyLimits::default(),
        }
    }
}

impl ClientConfig {
    /// The most bytes the session buffers: one reply at its limits.
    pub fn recv_buffer(&self) -> usize {
        self.reply_limits
            .max_lines
            .max(1)
            .saturating_mul(self.reply_limits.max_line_len.max(1))
    }
}
