//! The control protocol between `smtpctl` (and `sendmail`) and the daemon, as pure code.
//!
//! A client sends one [`Request`] frame and reads one [`Response`] frame, as many times as
//! it likes on one connection. Frames are length-prefixed and versioned (see [`encode`] and [`decode`]):
//! an 8-byte header (`SC`, [`VERSION`], a tag, a big-endian payload length) and a payload
//! whose size is bounded per tag ([`MAX_SUBMISSION`] for a local submission,
//! [`MAX_FRAME`] for other requests), so a reader never buffers more than one bounded
//! frame. [`FrameDecoder`] decodes incrementally from whatever bytes arrive.
//!
//! [`ControlState::answer`] implements the engine side of the verbs of smtpctl(8): it
//! reads the [`Engine`](crate::engine::Engine) for `show` verbs and says which
//! [`Control`](crate::engine::Control) to feed for `schedule`, `remove`, `pause` and
//! `resume` (of agents and of envelopes), or which [`Effect`] only the runtime can perform (`pause smtp`, `show
//! message`, local submission).

mod answer;
mod offline;
mod queue_row;
mod wire;

#[cfg(test)]
mod tests;

pub use answer::{Answer, ControlState, Effect, TRACE_SUBSYSTEMS};
pub use offline::{
    decode_offline, encode_offline, OfflineError, OfflineMessage, MAX_OFFLINE_LINE,
    MAX_OFFLINE_RECIPIENTS, OFFLINE_MAGIC, OFFLINE_VERSION,
};
pub use queue_row::QueueRow;
pub use wire::{decode, encode, DecodeError, FrameDecoder, Reader, Wire, HEADER_LEN};

use crate::queue::EnvelopeId;
use crate::scheduler::Target;

/// The protocol version written in every frame header; a frame of another version is
/// refused with [`DecodeError::Version`].
pub const VERSION: u8 = 1;

/// The largest payload of a request other than a submission and of a short response
/// (64 KiB).
pub const MAX_FRAME: u32 = 64 * 1024;

/// The largest payload of a local submission ([`Request::Enqueue`]) and of a long
/// response (queue listings, message text): 64 MiB.
pub const MAX_SUBMISSION: u32 = 64 * 1024 * 1024;

/// A delivery agent or listener that `pause` and `resume` apply to (smtpctl(8)).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Agent {
    /// Local deliveries (`mda`).
    Mda,
    /// Relayed deliveries (`mta`).
    Mta,
    /// Accepting new SMTP sessions (`smtp`); only the runtime can do it.
    Smtp,
}

impl Agent {
    /// The smtpctl(8) word for it: `mda`, `mta` or `smtp`.
    pub fn name(self) -> &'static str {
        match self {
            Agent::Mda => "mda",
            Agent::Mta => "mta",
            Agent::Smtp => "smtp",
        }
    }
}

/// A message handed in by the local enqueuer (sendmail(8)): envelope and raw bytes.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Submission {
    /// The reverse path (`-f`), without angle brackets; empty for `<>`.
    pub sender: String,
    /// The forward paths, at least one.
    pub recipients: Vec<String>,
    /// The message as read on standard input, lines ending in LF or CRLF, not
    /// dot-stuffed.
    pub message: Vec<u8>,
}

/// One command of smtpctl(8), or a local submission.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Request {
    /// `show queue`: one [`QueueRow`] per envelope.
    ShowQueue,
    /// `show envelope ID`: the envelope's spool record.
    ShowEnvelope(EnvelopeId),
    /// `show message ID`: the message the envelope belongs to.
    ShowMessage(EnvelopeId),
    /// `show stats`: counters in OpenSMTPD's naming, plus `uptime`.
    ShowStats,
    /// `show status`: whether MDA, MTA and SMTP are running or paused.
    ShowStatus,
    /// `show routes`: relay routes known to the daemon.
    ShowRoutes,
    /// `show hosts`: remote MX hosts known to the daemon.
    ShowHosts,
    /// `schedule ID|all`: try these envelopes now.
    Schedule(Target),
    /// `remove ID|all`: drop these envelopes without a report.
    Remove(Target),
    /// `pause mda|mta|smtp`.
    Pause(Agent),
    /// `resume mda|mta|smtp`.
    Resume(Agent),
    /// `pause envelope ID|all`: suspend scheduling of these envelopes.
    PauseEnvelope(Target),
    /// `resume envelope ID|all`: schedule these envelopes again.
    ResumeEnvelope(Target),
    /// `monitor`: one snapshot of the counters (the client asks every second).
    Monitor,
    /// `log brief`: stop verbose logging.
    LogBrief,
    /// `log verbose`: log verbosely.
    LogVerbose,
    /// `trace SUBSYSTEM`.
    Trace(String),
    /// `untrace SUBSYSTEM`.
    Untrace(String),
    /// `update table NAME`: read a file table again.
    UpdateTable(String),
    /// A local submission (sendmail(8)).
    Enqueue(Submission),
}

/// Whether each part of the daemon runs (`show status`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Status {
    /// Local deliveries are paused.
    pub mda_paused: bool,
    /// Relayed deliveries are paused.
    pub mta_paused: bool,
    /// New SMTP sessions are refused.
    pub smtp_paused: bool,
}

impl Status {
    /// The three lines smtpctl(8) prints: `MDA running`, `MTA paused`, `SMTP running`.
    pub fn lines(&self) -> Vec<String> {
        let word = |paused: bool| if paused { "paused" } else { "running" };
        vec![
            format!("MDA {}", word(self.mda_paused)),
            format!("MTA {}", word(self.mta_paused)),
            format!("SMTP {}", word(self.smtp_paused)),
        ]
    }
}

/// The daemon's answer to one [`Request`].
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Response {
    /// Done.
    Ok,
    /// Refused or failed, with a reason for the administrator.
    Error(String),
    /// Lines of text to print as they are.
    Text(Vec<String>),
    /// Counters, sorted by name (`show stats`, `monitor`).
    Stats(Vec<(String, i64)>),
    /// The queue (`show queue`).
    Envelopes(Vec<QueueRow>),
    /// Running or paused (`show status`).
    Status(Status),
}
