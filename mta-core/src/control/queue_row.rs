//! One line of `smtpctl show queue`, in the field order smtpctl(8) documents.

use crate::queue::{Envelope, EnvelopeState};
use crate::time::UnixTime;

/// One envelope as `show queue` lists it: the fields smtpctl(8) documents, separated by
/// `|` when printed with [`QueueRow::line`].
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct QueueRow {
    /// The envelope id (16 hex digits when printed).
    pub id: u64,
    /// Address family of the client that enqueued the mail: `inet4`, `inet6` or `local`.
    pub family: String,
    /// Type of delivery: `mta`, `mda` or `bounce`.
    pub kind: String,
    /// Flags, comma-separated (`authenticated`, `bounce`, and `suspend` for an envelope
    /// held by `pause envelope`, as OpenSMTPD's smtpctl writes it), or `-`.
    pub flags: String,
    /// The return path, empty for `<>`.
    pub sender: String,
    /// The recipient as given in RCPT TO.
    pub original_recipient: String,
    /// Where the mail goes after expansion.
    pub recipient: String,
    /// Creation time, seconds since the epoch.
    pub created: u64,
    /// Expiry time, seconds since the epoch.
    pub expires: u64,
    /// Time of the last attempt, seconds since the epoch, 0 when never tried.
    pub last_try: u64,
    /// Number of attempts.
    pub tries: u32,
    /// `pending` or `inflight`.
    pub runstate: String,
    /// Seconds before the next attempt if pending, or since the attempt started if in
    /// flight.
    pub delay: u64,
    /// The error of the last failed attempt, empty if none.
    pub error: String,
}

impl QueueRow {
    /// The row of `envelope` at time `now`, not held.
    pub fn of(envelope: &Envelope, now: UnixTime) -> QueueRow {
        QueueRow::of_queued(envelope, false, now)
    }

    /// The row of a queued `envelope` at time `now`; `held` when the scheduler holds it
    /// (`pause envelope`): flagged `suspend`, and still `pending` with the time to its next
    /// try, as OpenSMTPD shows a suspended envelope.
    pub fn of_queued(envelope: &Envelope, held: bool, now: UnixTime) -> QueueRow {
        let family = family(&envelope.source);
        let kind = if envelope.flags.bounce {
            "bounce"
        } else if envelope.delivery.is_local() {
            "mda"
        } else {
            "mta"
        };
        let mut flags = Vec::new();
        if envelope.flags.authenticated {
            flags.push("authenticated");
        }
        if envelope.flags.bounce {
            flags.push("bounce");
        }
        if held {
            flags.push("suspend");
        }
        let flags = if flags.is_empty() {
            "-".to_owned()
        } else {
            flags.join(",")
        };
        let last_try = envelope.last_try.map_or(0, UnixTime::as_secs);
        let (runstate, delay) = match envelope.state {
            EnvelopeState::InFlight => (
                "inflight",
                now.as_secs()
                    .saturating_sub(envelope.last_try.unwrap_or(now).as_secs()),
            ),
            EnvelopeState::Deferred { next } => {
                ("pending", next.as_secs().saturating_sub(now.as_secs()))
            }
            EnvelopeState::Pending | EnvelopeState::Expired | EnvelopeState::Failed => {
                ("pending", 0)
            }
        };
        QueueRow {
            id: envelope.id.get(),
            family: family.to_owned(),
            kind: kind.to_owned(),
            flags,
            sender: envelope.sender.clone().unwrap_or_default(),
            original_recipient: envelope.original_recipient.clone(),
            recipient: envelope.recipient.clone(),
            created: envelope.created.as_secs(),
            expires: envelope.expires.as_secs(),
            last_try,
            tries: envelope.tries,
            runstate: runstate.to_owned(),
            delay,
            error: envelope
                .last_error
                .as_ref()
                .map(|f| f.text.clone())
                .unwrap_or_default(),
        }
    }

    /// The line smtpctl prints, fields separated by `|`; a `|` or line break inside a
    /// field is written as a space so the line keeps its shape.
    pub fn line(&self) -> String {
        let clean = |s: &str| s.replace(['|', '\r', '\n'], " ");
        format!(
            "{:016x}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
            self.id,
            clean(&self.family),
            clean(&self.kind),
            clean(&self.flags),
            clean(&self.sender),
            clean(&self.original_recipient),
            clean(&self.recipient),
            self.created,
            self.expires,
            self.last_try,
            self.tries,
            clean(&self.runstate),
            self.delay,
            clean(&self.error),
        )
    }
}

/// The address family of a client address written as text (`192.0.2.1`,
/// `[2001:db8::1]:25`, `local`...).
fn family(source: &str) -> &'static str {
    use std::net::{IpAddr, SocketAddr}; // allow-impure: address values, no socket
    let trimmed = source.trim();
    let host = if let Ok(addr) = trimmed.parse::<SocketAddr>() {
        addr.ip()
    } else if let Ok(ip) = trimmed
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        ip
    } else {
        return "local";
    };
    if host.is_ipv4() {
        "inet4"
    } else {
        "inet6"
    }
}
