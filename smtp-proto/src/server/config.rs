//! The server session's configuration: identity, advertised extensions, policy switches,
//! limits and timeouts. Shared by all sessions of a listener behind an `Arc`.

use crate::limits::Limits;
use crate::timer::Timeouts;

/// The ESMTP extensions advertised in the EHLO reply (RFC 5321 §4.1.1.1).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Extensions {
    /// PIPELINING (RFC 2920).
    pub pipelining: bool,
    /// 8BITMIME (RFC 6152).
    pub eight_bit_mime: bool,
    /// SIZE with the configured message size limit (RFC 1870).
    pub size: bool,
    /// ENHANCEDSTATUSCODES (RFC 2034); when off, replies carry no `x.y.z` prefix.
    pub enhanced_status_codes: bool,
    /// SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    /// CHUNKING, the BDAT command (RFC 3030).
    pub chunking: bool,
    /// BINARYMIME (RFC 3030); advertised only with CHUNKING.
    pub binarymime: bool,
    /// DSN (RFC 3461).
    pub dsn: bool,
}

impl Default for Extensions {
    fn default() -> Self {
        Extensions {
            pipelining: true,
            eight_bit_mime: true,
            size: true,
            enhanced_status_codes: true,
            smtputf8: true,
            chunking: true,
            binarymime: false,
            dsn: true,
        }
    }
}

/// Everything a server session needs to know before the first byte arrives.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ServerConfig {
    /// Our host name, in the greeting, the EHLO reply and 421 replies.
    pub hostname: String,
    /// Text after `220 <hostname> ESMTP` in the greeting.
    pub greeting: String,
    /// Advertised extensions.
    pub extensions: Extensions,
    /// The runtime can do TLS: STARTTLS is advertised while TLS is not active (RFC 3207).
    pub tls_available: bool,
    /// MAIL is refused with `530 5.7.0` until TLS is active (RFC 3207 §4).
    pub tls_required: bool,
    /// AUTH PLAIN and LOGIN are offered (RFC 4954).
    pub auth: bool,
    /// AUTH is offered over plaintext too; otherwise only once TLS is active, and a try
    /// before gets `538 5.7.11` (RFC 4954 §6).
    pub auth_plaintext: bool,
    /// MAIL is refused with `530 5.7.0` until AUTH succeeded (RFC 4954 §6).
    pub auth_required: bool,
    /// VRFY is a question to the engine; otherwise it gets `252 2.5.0` (RFC 5321 §3.5.3).
    pub vrfy: bool,
    /// EXPN is a question to the engine; otherwise it gets `502 5.5.1`.
    pub expn: bool,
    /// Rewrite bare LF in DATA to CRLF instead of refusing the message; a bare LF still
    /// never ends a message (see [`crate::data`]).
    pub normalize_bare_lf: bool,
    /// Size bounds.
    pub limits: Limits,
    /// Timeouts (RFC 5321 §4.5.3.2).
    pub timeouts: Timeouts,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            hostname: "localhost".into(),
            greeting: "ready".into(),
            extensions: Extensions::default(),
            tls_available: false,
            tls_required: false,
            auth: false,
            auth_plaintext: false,
            auth_required: false,
            vrfy: false,
            expn: false,
            normalize_bare_lf: false,
            limits: Limits::default(),
            timeouts: Timeouts::default(),
        }
    }
}
