//! The `Received:` header the engine puts on top of every accepted message (RFC 5321
//! §4.4), and a streaming counter of the `Received:` headers a message already carries
//! (RFC 5321 §6.3 loop detection).

use super::session::{listener_of, Session};
use super::SOFTWARE_NAME;
use crate::config::Config;
use crate::queue::MessageId;
use crate::time::UnixTime;

/// Printable text only: a control character from a runtime-given name (TLS cipher,
/// reverse DNS) must never split the header.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The `with` protocol of RFC 3848: `SMTP` after HELO, `ESMTP` after EHLO, with `S` for
/// TLS and `A` for an authenticated client.
pub(super) fn protocol(session: &Session) -> &'static str {
    let tls = session.tls.is_some() || session.facts.tls;
    let auth = session.facts.auth_user.is_some();
    match (session.esmtp, tls, auth) {
        (false, _, _) => "SMTP",
        (true, false, false) => "ESMTP",
        (true, true, false) => "ESMTPS",
        (true, false, true) => "ESMTPA",
        (true, true, true) => "ESMTPSA",
    }
}

/// The `Received:` header of a new message, CRLF-terminated, folded as OpenSMTPD folds
/// it: `from HELO (RDNS [IP])`, `by HOST (NAME) with PROTO id MSGID`, the TLS protocol and
/// cipher when known, `for <RCPT>` when there is one recipient, and the date (RFC 5321
/// §4.4, RFC 5322 §3.6.7). `mask-src` on the listener leaves the client's name and
/// address out.
pub(super) fn compose(
    config: &Config,
    session: &Session,
    hostname: &str,
    msgid: MessageId,
    rcpt: Option<&str>,
    now: UnixTime,
) -> Vec<u8> {
    let listener = listener_of(config, &session.info);
    let mask = match listener {
        Some(l) => l.mask_src,
        None => config.socket_listener.as_ref().is_some_and(|s| s.mask_src),
    };
    let helo = clean(session.facts.helo.as_deref().unwrap_or("unknown"));
    let mut out = String::with_capacity(256);
    out.push_str("Received: from ");
    out.push_str(&helo);
    if !mask {
        match session.info.peer {
            super::PeerAddr::Inet(addr) => {
                let rdns = session.info.rdns.as_deref().map(clean);
                let ip = addr.ip();
                match rdns {
                    Some(name) => out.push_str(&format!(" ({name} [{ip}])")),
                    None => out.push_str(&format!(" ([{ip}])")),
                }
            }
            super::PeerAddr::Local => out.push_str(" (localhost)"),
        }
    }
    out.push_str(&format!(
        "\r\n\tby {} ({SOFTWARE_NAME}) with {} id {msgid}",
        clean(hostname),
        protocol(session)
    ));
    if let Some((proto, cipher)) = &session.tls {
        if !proto.is_empty() || !cipher.is_empty() {
            out.push_str(&format!("\r\n\t({}:{})", clean(proto), clean(cipher)));
        }
    }
    if listener.is_some_and(|l| l.received_auth) {
        if let Some(user) = &session.facts.auth_user {
            out.push_str(&format!("\r\n\t(authenticated as {})", clean(user)));
        }
    }
    if let Some(rcpt) = rcpt {
        out.push_str(&format!("\r\n\tfor <{}>", clean(rcpt)));
    }
    out.push_str(&format!(";\r\n\t{}\r\n", now.rfc5322()));
    out.into_bytes()
}

/// Where [`ReceivedCounter`] is within the current line.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Scan {
    /// At the start of a line.
    LineStart,
    /// A CR at the start of a line (a blank line if LF follows).
    BlankCr,
    /// This many bytes of `received` matched at the start of the line.
    Name(u8),
    /// `received` matched; blanks may come before the colon (RFC 5322 §4.5).
    Blanks,
    /// The rest of a line that is not a `Received:` field.
    Rest,
    /// The header section is over.
    Done,
}

/// Counts the `Received:` fields of a message's header section (RFC 5322 §2.2: field
/// names are case-insensitive; continuation lines are not fields) as its bytes stream by,
/// in constant memory: feed every body chunk to [`ReceivedCounter::feed`], then compare
/// [`ReceivedCounter::count`] with
/// [`MAX_RECEIVED_HEADERS`](crate::bounce::MAX_RECEIVED_HEADERS). It agrees with
/// [`count_received_headers`](crate::bounce::count_received_headers) on the whole
/// message, however the bytes are split.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ReceivedCounter {
    scan: Scan,
    count: usize,
}

impl Default for ReceivedCounter {
    fn default() -> Self {
        ReceivedCounter::new()
    }
}

const NAME: &[u8] = b"received";

impl ReceivedCounter {
    /// A counter at the start of a message.
    pub const fn new() -> Self {
        ReceivedCounter {
            scan: Scan::LineStart,
            count: 0,
        }
    }

    /// Scans the next bytes of the message; after the header section this costs nothing.
    pub fn feed(&mut self, chunk: &[u8]) {
        for &b in chunk {
            if self.scan == Scan::Done {
                return;
            }
            self.scan = self.step(b);
        }
    }

    fn step(&mut self, b: u8) -> Scan {
        match self.scan {
            Scan::Done => Scan::Done,
            Scan::LineStart => match b {
                b'\n' => Scan::Done,
                b'\r' => Scan::BlankCr,
                _ => self.name(0, b),
            },
            Scan::BlankCr => match b {
                b'\n' => Scan::Done,
                _ => Scan::Rest,
            },
            Scan::Name(i) => self.name(i, b),
            Scan::Blanks => match b {
                b'\n' => Scan::LineStart,
                b':' => self.field(),
                b' ' | b'\t' | b'\r' | 0x0c => Scan::Blanks,
                _ => Scan::Rest,
            },
            Scan::Rest => match b {
                b'\n' => Scan::LineStart,
                _ => Scan::Rest,
            },
        }
    }

    fn name(&mut self, matched: u8, b: u8) -> Scan {
        if b == b'\n' {
            return Scan::LineStart;
        }
        match NAME.get(usize::from(matched)) {
            Some(&c) if b.eq_ignore_ascii_case(&c) => Scan::Name(matched.saturating_add(1)),
            Some(_) => Scan::Rest,
            None => match b {
                b':' => self.field(),
                b' ' | b'\t' | b'\r' | 0x0c => Scan::Blanks,
                _ => Scan::Rest,
            },
        }
    }

    fn field(&mut self) -> Scan {
        self.count = self.count.saturating_add(1);
        Scan::Rest
    }

    /// `Received:` fields seen so far.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Whether the header section is over (later bytes are not looked at).
    pub fn header_done(&self) -> bool {
        self.scan == Scan::Done
    }
}
