//! Delivery status notifications (RFC 3464): bounces and delay notices.

use crate::queue::{Envelope, MessageId};

/// What a report tells the sender.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum ReportKind {
    /// Delivery failed for good (permanent failure or expiry): `Action: failed`.
    Failure,
    /// Delivery is late and still being tried: `Action: delayed`.
    Delay,
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
