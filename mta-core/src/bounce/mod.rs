//! Delivery status notifications (RFC 3464): bounces and delay notices.
//!
//! The scheduler decides *when* a report is due ([`Report`] in its `Bounce`,
//! `DelayNotice` and `SuccessNotice` actions); [`compose`] writes the report message itself: a
//! `multipart/report; report-type=delivery-status` (RFC 6522) with a human-readable part,
//! a `message/delivery-status` part (RFC 3464 §2) and the original message or its header
//! (RFC 3461 §4.3 `RET=`). The runtime queues it as a new message from the null sender
//! `<>` to the original sender, flagged as a bounce so that it is never reported on again.

#[cfg(test)]
mod tests;
mod text;

pub use text::{count_received_headers, is_looping, MAX_RECEIVED_HEADERS};

use smtp_proto::reply::EnhancedStatus;

use std::time::Duration;

use crate::queue::{
    DeliveryKind, DsnParams, Envelope, EnvelopeFlags, EnvelopeId, EnvelopeState, MessageId,
    SplitMix64,
};
use crate::time::UnixTime;
use text::{append_crlf_lines, header_section, is_7bit, one_line_ascii};

/// What a report tells the sender.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum ReportKind {
    /// Delivery failed for good (permanent failure or expiry): `Action: failed`.
    Failure,
    /// Delivery is late and still being tried: `Action: delayed`.
    Delay,
    /// Delivered, as the sender asked with `NOTIFY=SUCCESS`: `Action: delivered` for a
    /// local delivery, `relayed` for a relay (the next hop may not report further).
    Success,
}

/// A report to send to one message's sender about some of its recipients.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Report {
    /// Failure or delay.
    pub kind: ReportKind,
    /// The message reported on.
    pub message: MessageId,
    /// Its sender, who receives the report (never the null sender).
    pub sender: String,
    /// The envelopes reported on, as they stood (state, last error, tries).
    pub envelopes: Vec<Envelope>,
}

impl Report {
    /// The envelope that carries this report to its sender: from the null sender `<>`,
    /// flagged as a bounce so that its own failure is never reported (RFC 3464 §2,
    /// RFC 5321 §4.5.5), with no DSN parameters. `id` is a fresh id of the report's own
    /// message, `delivery` what the rules chose for the sender's address, `ttl` the queue
    /// lifetime; listener, HELO and source name this host.
    pub fn envelope(
        &self,
        id: EnvelopeId,
        delivery: DeliveryKind,
        now: UnixTime,
        ttl: Duration,
        hostname: &str,
    ) -> Envelope {
        Envelope {
            id,
            sender: None,
            original_recipient: self.sender.clone(),
            recipient: self.sender.clone(),
            delivery,
            dsn: DsnParams::default(),
            created: now,
            expires: now.saturating_add(ttl),
            tries: 0,
            last_try: None,
            last_error: None,
            warnings_sent: 0,
            state: EnvelopeState::Pending,
            flags: EnvelopeFlags {
                bounce: true,
                authenticated: false,
            },
            listener: String::new(),
            helo: hostname.to_owned(),
            source: "local".to_owned(),
        }
    }
}

/// What the report needs from outside the queue.
#[derive(Clone, Copy, Debug)]
pub struct BounceContext<'a> {
    /// This server's name: `Reporting-MTA:`, and the domain of `From: MAILER-DAEMON@`.
    pub hostname: &'a str,
    /// The current time, for `Date:` and the `Message-ID:`.
    pub now: UnixTime,
    /// Randomness for the MIME boundary and the `Message-ID:` (from the runtime's seed).
    pub seed: u64,
}

/// A message larger than this is returned with its header only, even with `RET=FULL`
/// (RFC 3461 §4.3 lets the MTA return less than asked).
pub const MAX_RETURNED_MESSAGE: usize = 10 * 1024 * 1024;

/// Longest diagnostic text copied into a report line.
const MAX_DIAGNOSTIC: usize = 512;

/// Longest address or host name copied into a report line.
const MAX_NAME: usize = 320;

/// `Status:` of an expired envelope: delivery time expired (RFC 3463 §3.5, X.4.7).
const EXPIRED: EnhancedStatus = EnhancedStatus::new(5, 4, 7);

/// The status reported for one envelope, of the class the report kind requires.
fn status_of(kind: ReportKind, e: &Envelope) -> EnhancedStatus {
    let class = match kind {
        ReportKind::Failure if e.state == EnvelopeState::Expired => return EXPIRED,
        ReportKind::Failure => 5,
        ReportKind::Delay => 4,
        ReportKind::Success => return EnhancedStatus::new(2, 0, 0),
    };
    match &e.last_error {
        Some(f) => EnhancedStatus::new(class, f.status.subject, f.status.detail),
        None => EnhancedStatus::new(class, 0, 0),
    }
}

fn status_text(s: EnhancedStatus) -> String {
    format!("{}.{}.{}", s.class, s.subject, s.detail)
}

/// Why one recipient is reported, in words, for the human-readable part.
fn reason_of(kind: ReportKind, e: &Envelope) -> String {
    if kind == ReportKind::Success {
        return action_of(kind, e).into();
    }
    let last = e
        .last_error
        .as_ref()
        .map(|f| one_line_ascii(&f.text, MAX_DIAGNOSTIC));
    match (kind, e.state, last) {
        (ReportKind::Failure, EnvelopeState::Expired, Some(t)) => {
            format!("delivery time expired; last error: {t}")
        }
        (ReportKind::Failure, EnvelopeState::Expired, None) => "delivery time expired".into(),
        (_, _, Some(t)) => t,
        (ReportKind::Failure, _, None) => "delivery failed".into(),
        (_, _, None) => "not delivered yet".into(),
    }
}

/// The `Action:` of one recipient (RFC 3464 §2.3.3).
fn action_of(kind: ReportKind, e: &Envelope) -> &'static str {
    match kind {
        ReportKind::Failure => "failed",
        ReportKind::Delay => "delayed",
        ReportKind::Success if e.delivery.is_local() => "delivered",
        ReportKind::Success => "relayed",
    }
}

/// `type; value` from an `ORCPT` kept as `type;value` (RFC 3464 §2.3.1).
fn original_recipient_field(orcpt: &str) -> String {
    match orcpt.split_once(';') {
        Some((kind, addr)) => format!(
            "{}; {}",
            one_line_ascii(kind.trim(), 32),
            one_line_ascii(addr.trim(), MAX_NAME)
        ),
        None => format!("rfc822; {}", one_line_ascii(orcpt.trim(), MAX_NAME)),
    }
}

/// A MIME boundary that does not occur in `content`. `=_` cannot appear in
/// quoted-printable text, and 128 random bits make a clash with anything else unlikely;
/// a clash is nonetheless checked and redrawn.
fn boundary(rng: &mut SplitMix64, content: &[u8]) -> String {
    let mut b = String::new();
    for _ in 0..8 {
        b = format!("=_{:016x}{:016x}", rng.next_u64(), rng.next_u64());
        if !content.windows(b.len()).any(|w| w == b.as_bytes()) {
            break;
        }
    }
    b
}

/// The human-readable part.
fn human_part(report: &Report, host: &str) -> String {
    let mut s = format!("This is the mail system at {host}.\r\n\r\n");
    match report.kind {
        ReportKind::Failure => s.push_str(
            "Your message could not be delivered to the recipients below.\r\n\
             The reasons are given next to each address; your message is\r\n\
             attached.\r\n\r\n",
        ),
        ReportKind::Delay => {
            s.push_str(
                "Your message has not been delivered yet to the recipients below.\r\n\
                 Delivery will be tried again; you do not need to send it again.\r\n",
            );
            if let Some(until) = report.envelopes.iter().map(|e| e.expires).max() {
                s.push_str(&format!(
                    "The last attempt will be on {}.\r\n",
                    until.rfc5322()
                ));
            }
            s.push_str("\r\n");
        }
        ReportKind::Success => s.push_str(
            "Your message was delivered to the recipients below, as you asked\r\n\
             to be told. Its header is attached.\r\n\r\n",
        ),
    }
    for e in &report.envelopes {
        s.push_str(&format!(
            "<{}>: {}\r\n",
            one_line_ascii(&e.original_recipient, MAX_NAME),
            reason_of(report.kind, e)
        ));
    }
    s
}

/// The `message/delivery-status` part (RFC 3464 §2.2 and §2.3).
fn status_part(report: &Report, host: &str) -> String {
    let mut s = format!("Reporting-MTA: dns; {host}\r\n");
    if let Some(first) = report.envelopes.first() {
        if let Some(envid) = &first.dsn.envid {
            s.push_str(&format!(
                "Original-Envelope-Id: {}\r\n",
                one_line_ascii(envid, 100)
            ));
        }
        s.push_str(&format!("Arrival-Date: {}\r\n", first.created.rfc5322()));
    }
    for e in &report.envelopes {
        s.push_str("\r\n");
        if let Some(orcpt) = &e.dsn.orcpt {
            s.push_str(&format!(
                "Original-Recipient: {}\r\n",
                original_recipient_field(orcpt)
            ));
        }
        s.push_str(&format!(
            "Final-Recipient: rfc822; {}\r\n",
            one_line_ascii(&e.recipient, MAX_NAME)
        ));
        s.push_str(&format!("Action: {}\r\n", action_of(report.kind, e)));
        s.push_str(&format!(
            "Status: {}\r\n",
            status_text(status_of(report.kind, e))
        ));
        // After a success, the last error is an old temporary one: not worth reporting.
        let last_error = e
            .last_error
            .as_ref()
            .filter(|_| report.kind != ReportKind::Success);
        if let Some(f) = last_error {
            if let Some(mta) = &f.remote_mta {
                s.push_str(&format!(
                    "Remote-MTA: dns; {}\r\n",
                    one_line_ascii(mta, MAX_NAME)
                ));
            }
            // RFC 3464 §2.3.6: "smtp" for SMTP replies; local agents report Unix errors.
            let kind = if e.delivery.is_local() {
                "x-unix"
            } else {
                "smtp"
            };
            s.push_str(&format!(
                "Diagnostic-Code: {kind}; {}\r\n",
                one_line_ascii(&f.text, MAX_DIAGNOSTIC)
            ));
        }
        if let Some(t) = e.last_try {
            s.push_str(&format!("Last-Attempt-Date: {}\r\n", t.rfc5322()));
        }
        if report.kind == ReportKind::Delay {
            s.push_str(&format!("Will-Retry-Until: {}\r\n", e.expires.rfc5322()));
        }
    }
    s
}

/// Writes the report message for `report`, ready to be queued from `<>` to its sender.
///
/// `original` is the reported message as stored (header and body, or at least its
/// header). A failure report returns it whole as `message/rfc822` when the sender did not
/// ask for `RET=HDRS` (RET is about failures, RFC 3461 §4.3), it is 7-bit clean and at most [`MAX_RETURNED_MESSAGE`] bytes; otherwise its
/// header section is returned as `text/rfc822-headers` (RFC 6522 §4), with any 8-bit
/// bytes replaced, so the whole report is 7-bit with CRLF line ends.
pub fn compose(report: &Report, ctx: &BounceContext<'_>, original: &[u8]) -> Vec<u8> {
    let host = one_line_ascii(ctx.hostname, MAX_NAME);
    let return_full = report.kind == ReportKind::Failure
        && report.envelopes.first().is_none_or(|e| e.return_full());
    let full = return_full && original.len() <= MAX_RETURNED_MESSAGE && is_7bit(original);
    let returned = if full {
        original
    } else {
        header_section(original)
    };
    let mut rng = SplitMix64::new(ctx.seed);
    let boundary = boundary(&mut rng, returned);
    let subject = match report.kind {
        ReportKind::Failure => "Delivery status notification: error",
        ReportKind::Delay => "Delivery status notification: delay",
        ReportKind::Success => "Delivery status notification: success",
    };
    let mut out = Vec::with_capacity(returned.len().saturating_add(4096));
    let head = format!(
        "From: Mail Delivery System <MAILER-DAEMON@{host}>\r\n\
         To: <{to}>\r\n\
         Subject: {subject}\r\n\
         Date: {date}\r\n\
         Message-ID: <{secs}.{rand:016x}@{host}>\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\
         \tboundary=\"{boundary}\"\r\n\
         \r\n\
         This is a MIME-encapsulated delivery status notification.\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         Content-Description: Notification\r\n\
         \r\n\
         {human}\
         \r\n\
         --{boundary}\r\n\
         Content-Type: message/delivery-status\r\n\
         Content-Description: Delivery report\r\n\
         \r\n\
         {status}\
         \r\n\
         --{boundary}\r\n",
        to = one_line_ascii(&report.sender, MAX_NAME),
        date = ctx.now.rfc5322(),
        secs = ctx.now.as_secs(),
        rand = rng.next_u64(),
        human = human_part(report, &host),
        status = status_part(report, &host),
    );
    out.extend_from_slice(head.as_bytes());
    if full {
        out.extend_from_slice(
            b"Content-Type: message/rfc822\r\nContent-Description: Undelivered message\r\n\r\n",
        );
        append_crlf_lines(&mut out, returned, false);
    } else {
        out.extend_from_slice(
            b"Content-Type: text/rfc822-headers\r\nContent-Description: Message header\r\n\r\n",
        );
        append_crlf_lines(&mut out, returned, true);
    }
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}
