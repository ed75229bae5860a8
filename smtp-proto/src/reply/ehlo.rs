//! The service extensions a server lists in its 250 reply to EHLO (RFC 5321 §4.1.1.1),
//! read by the client session and written by the server session.

use bytes::Bytes;

use super::Reply;

/// Most AUTH mechanisms kept from one EHLO reply.
const MAX_AUTH_MECHANISMS: usize = 32;

/// What a server advertised in its EHLO reply.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct EhloCapabilities {
    /// `PIPELINING` (RFC 2920).
    pub pipelining: bool,
    /// `8BITMIME` (RFC 6152).
    pub eightbitmime: bool,
    /// `SIZE [n]` (RFC 1870); `Some(0)` when advertised without a fixed limit.
    pub size: Option<u64>,
    /// `ENHANCEDSTATUSCODES` (RFC 2034).
    pub enhancedstatuscodes: bool,
    /// `SMTPUTF8` (RFC 6531).
    pub smtputf8: bool,
    /// `CHUNKING`, that is BDAT (RFC 3030).
    pub chunking: bool,
    /// `BINARYMIME` (RFC 3030).
    pub binarymime: bool,
    /// `DSN` (RFC 3461).
    pub dsn: bool,
    /// `STARTTLS` (RFC 3207).
    pub starttls: bool,
    /// The SASL mechanisms of `AUTH` (RFC 4954 §3), as advertised; also read from the
    /// old `AUTH=` form.
    pub auth: Vec<Bytes>,
}

impl EhloCapabilities {
    /// Reads the extensions from the lines after the first one (the greeting) of a 250
    /// reply; any other reply advertises nothing. Unknown keywords are ignored.
    pub fn from_reply(reply: &Reply) -> EhloCapabilities {
        let mut caps = EhloCapabilities::default();
        if reply.code != 250 {
            return caps;
        }
        for line in reply.lines.iter().skip(1) {
            let key_len = line
                .iter()
                .position(|&b| b == b' ' || b == b'=')
                .unwrap_or(line.len());
            let keyword = line.get(..key_len).unwrap_or_default();
            let args = line.slice((key_len + 1).min(line.len())..);
            let is = |k: &[u8]| keyword.eq_ignore_ascii_case(k);
            if is(b"PIPELINING") {
                caps.pipelining = true;
            } else if is(b"8BITMIME") {
                caps.eightbitmime = true;
            } else if is(b"SIZE") {
                caps.size = Some(crate::params::parse_number(args.trim_ascii()).unwrap_or(0));
            } else if is(b"ENHANCEDSTATUSCODES") {
                caps.enhancedstatuscodes = true;
            } else if is(b"SMTPUTF8") {
                caps.smtputf8 = true;
            } else if is(b"CHUNKING") {
                caps.chunking = true;
            } else if is(b"BINARYMIME") {
                caps.binarymime = true;
            } else if is(b"DSN") {
                caps.dsn = true;
            } else if is(b"STARTTLS") {
                caps.starttls = true;
            } else if is(b"AUTH") {
                for mech in args.split(|&b| b == b' ').filter(|m| !m.is_empty()) {
                    let known = caps.auth.iter().any(|k| k.eq_ignore_ascii_case(mech));
                    if !known && caps.auth.len() < MAX_AUTH_MECHANISMS {
                        caps.auth.push(args.slice_ref(mech));
                    }
                }
            }
        }
        caps
    }

    /// Whether `mechanism` (any case) was advertised with AUTH.
    pub fn supports_auth(&self, mechanism: &[u8]) -> bool {
        self.auth.iter().any(|m| m.eq_ignore_ascii_case(mechanism))
    }

    /// The 250 EHLO reply advertising these extensions after the `greeting` line
    /// (usually `domain Hello client`).
    pub fn reply(&self, greeting: Bytes) -> Reply {
        let mut lines = vec![greeting];
        let flags: [(bool, &'static [u8]); 8] = [
            (self.pipelining, b"PIPELINING"),
            (self.eightbitmime, b"8BITMIME"),
            (self.enhancedstatuscodes, b"ENHANCEDSTATUSCODES"),
            (self.smtputf8, b"SMTPUTF8"),
            (self.chunking, b"CHUNKING"),
            (self.binarymime, b"BINARYMIME"),
            (self.dsn, b"DSN"),
            (self.starttls, b"STARTTLS"),
        ];
        lines.extend(
            flags
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, k)| Bytes::from_static(k)),
        );
        match self.size {
            Some(0) => lines.push(Bytes::from_static(b"SIZE")),
            Some(n) => lines.push(Bytes::from(format!("SIZE {n}"))),
            None => {}
        }
        if !self.auth.is_empty() {
            let mut auth = b"AUTH".to_vec();
            for mech in &self.auth {
                auth.push(b' ');
                auth.extend_from_slice(mech);
            }
            lines.push(Bytes::from(auth));
        }
        Reply::multiline(250, None, lines)
    }
}
