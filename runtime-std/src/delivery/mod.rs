//! Local delivery agents: maildir, mbox, mda, lmtp.
//!
//! Each agent is a blocking function that takes the message as a reader and returns a
//! [`DeliveryOutcome`]; the engine turns a temporary failure into a retry and a permanent
//! one into a bounce. Agents never panic on a failing disk or peer: every error is an
//! outcome. [`user::run_as_user`] runs an agent with the recipient's privileges, and
//! [`user::lookup_user`] finds the recipient's account.

pub mod batch_flush;
pub mod dir_sync;
mod lines;
pub mod lmtp;
pub mod maildir;
pub mod mbox;
pub mod mda;
pub mod user;

pub use lines::UnixLines;

use std::io;
use std::process::ExitStatus;

/// The result of one delivery attempt for one recipient.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum DeliveryOutcome {
    /// The message is stored; the envelope can leave the queue.
    Delivered,
    /// Try again later (a 4xx in DSN terms, RFC 3463 class 4), with the reason.
    TempFail(String),
    /// Give up and bounce (class 5), with the reason.
    PermFail(String),
}

impl DeliveryOutcome {
    /// A file or socket error: always temporary, since disks fill up and come back,
    /// permissions get fixed and servers restart.
    pub fn from_io(context: &str, error: &io::Error) -> DeliveryOutcome {
        DeliveryOutcome::TempFail(format!("{context}: {error}"))
    }

    /// Whether this is [`DeliveryOutcome::Delivered`].
    pub fn is_delivered(&self) -> bool {
        matches!(self, DeliveryOutcome::Delivered)
    }
}

/// `EX_NOUSER` from `sysexits.h`: the addressee is unknown.
pub const EX_NOUSER: i32 = 67;
/// `EX_OSERR` from `sysexits.h`: an operating system error (fork failed, ...).
pub const EX_OSERR: i32 = 71;
/// `EX_IOERR` from `sysexits.h`: an input/output error.
pub const EX_IOERR: i32 = 74;
/// `EX_TEMPFAIL` from `sysexits.h`: try again later.
pub const EX_TEMPFAIL: i32 = 75;
/// `EX_CONFIG` from `sysexits.h`: a configuration error, fixed by an administrator.
pub const EX_CONFIG: i32 = 78;

/// Map a delivery program's exit status to an outcome, the way MTAs read `sysexits.h`:
/// 0 is delivered; `EX_TEMPFAIL`, `EX_OSERR`, `EX_IOERR` and `EX_CONFIG` are temporary
/// (an administrator or time can fix them); a death by signal is temporary (a timeout
/// kill, an OOM kill); every other code (`EX_NOUSER`, `EX_NOPERM`, 1, ...) is permanent.
/// `detail` (e.g. the program's stderr) is appended to the reason.
pub fn outcome_from_exit(status: ExitStatus, detail: &str) -> DeliveryOutcome {
    use std::os::unix::process::ExitStatusExt;
    let detail = detail.trim();
    let reason = |what: String| {
        if detail.is_empty() {
            what
        } else {
            format!("{what}: {detail}")
        }
    };
    match status.code() {
        Some(0) => DeliveryOutcome::Delivered,
        Some(code @ (EX_TEMPFAIL | EX_OSERR | EX_IOERR | EX_CONFIG)) => {
            DeliveryOutcome::TempFail(reason(format!("command exited with status {code}")))
        }
        Some(code) => {
            DeliveryOutcome::PermFail(reason(format!("command exited with status {code}")))
        }
        None => {
            let signal = status.signal().unwrap_or(0);
            DeliveryOutcome::TempFail(reason(format!("command killed by signal {signal}")))
        }
    }
}
