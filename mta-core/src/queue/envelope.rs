//! An envelope: one recipient of one queued message, with everything the scheduler needs
//! to retry it and everything a bounce needs to explain it.

use smtp_proto::reply::EnhancedStatus;

use super::ids::{EnvelopeId, MessageId};
use crate::time::UnixTime;

/// How an envelope leaves the queue, as decided by the matching `action` of smtpd.conf.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum DeliveryKind {
    /// Delivered on this host to a local user.
    Local {
        /// The system user the delivery runs as.
        user: String,
        /// The method, as a description (`maildir`, `mbox`, `mda "..."`, `lmtp ...`).
        method: String,
    },
    /// Relayed to another host over SMTP.
    Relay {
        /// The name of the smtpd.conf `action` that relays it.
        action: String,
    },
}

impl DeliveryKind {
    /// True for local deliveries (they have their own in-flight limit and retry policy).
    pub fn is_local(&self) -> bool {
        matches!(self, DeliveryKind::Local { .. })
    }
}

/// The `NOTIFY=` parameter of RCPT TO (RFC 3461 §4.1): which reports the sender wants.
/// All three false is `NOTIFY=NEVER`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Notify {
    /// `SUCCESS`: report a delivery.
    pub success: bool,
    /// `FAILURE`: report a failure.
    pub failure: bool,
    /// `DELAY`: report a long delay.
    pub delay: bool,
}

/// The `RET=` parameter of MAIL FROM (RFC 3461 §4.3): how much of the message a report
/// carries back.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Ret {
    /// `RET=FULL`: the whole message.
    Full,
    /// `RET=HDRS`: only its header.
    Headers,
}

/// The DSN parameters given with the message and this recipient (RFC 3461 §4).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct DsnParams {
    /// `NOTIFY=`; `None` when absent (then failures and delays are reported, §4.1).
    pub notify: Option<Notify>,
    /// `ORCPT=` decoded from xtext, as `addr-type;address` (e.g. `rfc822;a@b`).
    pub orcpt: Option<String>,
    /// `RET=`; `None` when absent (then the full message is returned).
    pub ret: Option<Ret>,
    /// `ENVID=` decoded from xtext.
    pub envid: Option<String>,
}

/// Why the last delivery attempt failed.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Failure {
    /// The RFC 3463 status (class 4 for a temporary failure, 5 for a permanent one).
    pub status: EnhancedStatus,
    /// What the delivery agent or the remote server said, e.g. `550 5.1.1 no such user`.
    pub text: String,
    /// The remote server that answered, for relayed mail (`Remote-MTA:` of RFC 3464).
    pub remote_mta: Option<String>,
}

/// Where an envelope stands in its life.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum EnvelopeState {
    /// Ready to be tried now.
    Pending,
    /// Handed to a delivery agent; its result has not come back.
    InFlight,
    /// Failed temporarily; tried again at `next`.
    Deferred {
        /// The next attempt.
        next: UnixTime,
    },
    /// Its lifetime ran out; waiting to be reported to the sender.
    Expired,
    /// Failed permanently; waiting to be reported to the sender.
    Failed,
}

/// Marks set on an envelope.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct EnvelopeFlags {
    /// This envelope carries a bounce or delay report (its sender is `<>`): a failure of it
    /// is never reported again.
    pub bounce: bool,
    /// The sender authenticated when submitting the message.
    pub authenticated: bool,
}

/// One recipient of one queued message.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Envelope {
    /// Its id; the high half is the message id.
    pub id: EnvelopeId,
    /// The reverse path of MAIL FROM; `None` for the null sender `<>`.
    pub sender: Option<String>,
    /// The recipient as given in RCPT TO.
    pub original_recipient: String,
    /// The recipient after alias and virtual expansion: where the mail goes.
    pub recipient: String,
    /// Local delivery or relay.
    pub delivery: DeliveryKind,
    /// DSN parameters (RFC 3461).
    pub dsn: DsnParams,
    /// When the message was accepted (`Arrival-Date:` of a report).
    pub created: UnixTime,
    /// When it expires: creation plus the queue (or action) ttl.
    pub expires: UnixTime,
    /// How many delivery attempts were started.
    pub tries: u32,
    /// When the last attempt started.
    pub last_try: Option<UnixTime>,
    /// Why the last attempt failed.
    pub last_error: Option<Failure>,
    /// How many entries of `bounce warn-interval` were already reported as delays.
    pub warnings_sent: u32,
    /// Where it stands.
    pub state: EnvelopeState,
    /// Marks.
    pub flags: EnvelopeFlags,
    /// The tag of the listener that accepted the message.
    pub listener: String,
    /// The HELO/EHLO name the client gave.
    pub helo: String,
    /// The client's address, as text.
    pub source: String,
}

impl Envelope {
    /// The message this envelope belongs to.
    pub fn message_id(&self) -> MessageId {
        self.id.message_id()
    }

    /// True when a failure of this envelope must not produce a report: it came from the
    /// null sender or is itself a report (RFC 5321 §4.5.5, RFC 3464 §2: no bounce loops).
    pub fn is_bounce(&self) -> bool {
        self.sender.is_none() || self.flags.bounce
    }

    /// True when a failure should be reported to the sender (RFC 3461 §4.1).
    pub fn wants_failure_report(&self) -> bool {
        !self.is_bounce() && self.dsn.notify.is_none_or(|n| n.failure)
    }

    /// True when a long delay should be reported to the sender (RFC 3461 §4.1).
    pub fn wants_delay_report(&self) -> bool {
        !self.is_bounce() && self.dsn.notify.is_none_or(|n| n.delay)
    }

    /// True when the sender asked for a report of the delivery (RFC 3461 §4.1
    /// `NOTIFY=SUCCESS`; never by default).
    pub fn wants_success_report(&self) -> bool {
        !self.is_bounce() && self.dsn.notify.is_some_and(|n| n.success)
    }

    /// True when the sender asked for the full message in reports (the default).
    pub fn return_full(&self) -> bool {
        self.dsn.ret != Some(Ret::Headers)
    }
}
