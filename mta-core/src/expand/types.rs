//! The inputs, questions and results of recipient expansion: plain values that can be
//! printed, compared and recorded.

use smtp_proto::reply::{EnhancedStatus, Reply};

use crate::rules::SessionFacts;

/// What to expand: one accepted recipient and the action its rule chose.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ExpandRequest {
    /// The session the recipient arrived on (address targets are matched again).
    pub session: SessionFacts,
    /// The envelope sender, empty for `<>`.
    pub sender: String,
    /// The recipient as given at RCPT TO.
    pub recipient: String,
    /// The name of the action the matching rule chose.
    pub action: String,
}

/// Identifies one question of one expander, to match its answer.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct QueryId(pub u32);

/// Something only the runtime can find out.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Question {
    /// Look a system user up in the password database (getpwnam(3)); answer with
    /// [`Answer::User`].
    User {
        /// The user name, lower-cased.
        name: String,
    },
    /// Read the user's `~/.forward` (forward(5)) with that user's rights; answer with
    /// [`Answer::File`]. The runtime answers `Absent` for a file it must ignore (group or
    /// world writable, not owned by the user).
    Forward {
        /// The user.
        user: LocalUser,
    },
    /// Read an `:include:` file of an alias (aliases(5)); answer with [`Answer::File`].
    Include {
        /// The absolute path.
        path: String,
    },
}

/// The runtime's answer to a [`Question`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Answer {
    /// Answer to [`Question::User`].
    User(UserLookup),
    /// Answer to [`Question::Forward`] and [`Question::Include`].
    File(FileLookup),
}

/// The result of a password database lookup.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum UserLookup {
    /// The user exists.
    Found {
        /// User id.
        uid: u32,
        /// Group id.
        gid: u32,
        /// Home directory.
        directory: String,
    },
    /// No such user.
    NotFound,
    /// The lookup failed for now.
    TempFail,
}

/// The result of reading a file.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum FileLookup {
    /// The file's text.
    Content(String),
    /// No such file (or one to be ignored).
    Absent,
    /// The file could not be read for now.
    TempFail,
}

/// A local user deliveries run as.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct LocalUser {
    /// The user name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Home directory.
    pub directory: String,
}

/// How a local delivery is made, with its paths and commands already expanded.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum LocalMethod {
    /// Append to the user's mbox.
    Mbox,
    /// Deliver into this maildir.
    Maildir {
        /// The maildir path.
        path: String,
        /// File `X-Spam: yes` messages into the Junk folder.
        junk: bool,
    },
    /// Run this command with the message on its standard input.
    Mda {
        /// The command line (through the `mda wrapper` if the action names one).
        command: String,
    },
    /// Hand to an LMTP server (RFC 2033).
    Lmtp {
        /// `host:port` or a UNIX socket path.
        dest: String,
        /// The RCPT TO to give: the user name, or the address with `rcpt-to`.
        rcpt: String,
    },
    /// Append to a file named by an alias or `.forward` (aliases(5) `/path`).
    File {
        /// The absolute path.
        path: String,
    },
    /// Pipe to a command named by an alias or `.forward` (aliases(5) `|command`).
    Command {
        /// The command line.
        command: String,
    },
}

/// One local delivery.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct LocalDelivery {
    /// The action it belongs to.
    pub action: String,
    /// The address after expansion (`%{dest}`).
    pub dest: String,
    /// Who it runs as; `None` for files and commands of the aliases table, which run as
    /// the daemon's unprivileged account (aliases(5)).
    pub user: Option<LocalUser>,
    /// How.
    pub method: LocalMethod,
}

/// One outcome of expansion.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Delivery {
    /// Deliver on this machine.
    Local(LocalDelivery),
    /// Relay to this address with a relay action.
    Relay {
        /// The relay action's name.
        action: String,
        /// The destination address.
        address: String,
    },
}

/// Why a recipient is refused, as an SMTP reply.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Refusal {
    /// The reply code, 4xx or 5xx.
    pub code: u16,
    /// The enhanced status (RFC 3463), when known.
    pub status: Option<EnhancedStatus>,
    /// The reply text.
    pub text: String,
}

impl Refusal {
    pub(crate) fn new(code: u16, status: (u8, u16, u16), text: &str) -> Refusal {
        let (class, subject, detail) = status;
        Refusal {
            code,
            status: Some(EnhancedStatus::new(class, subject, detail)),
            text: text.to_string(),
        }
    }

    /// `550 5.1.1`: no such user (RFC 3463 §3.2, bad destination mailbox address).
    pub fn unknown_user() -> Refusal {
        Refusal::new(550, (5, 1, 1), "Invalid recipient: user unknown")
    }

    /// `550 5.7.1`: no rule accepts this recipient, or a `reject` rule matched (what
    /// OpenSMTPD answers; RFC 3463 §3.8, delivery not authorized).
    pub fn not_authorized() -> Refusal {
        Refusal::new(550, (5, 7, 1), "Delivery not authorized, message refused")
    }

    /// `451 4.3.0`: a lookup failed for now; the client should try again later.
    pub fn temp_failure() -> Refusal {
        Refusal::new(451, (4, 3, 0), "Temporary failure, try again later")
    }

    /// Whether the client may try again later (4xx).
    pub fn is_temporary(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// The refusal as a reply to RCPT TO.
    pub fn to_reply(&self) -> Reply {
        Reply::new(self.code, self.status, self.text.clone().into_bytes())
    }
}

/// What the expander wants done.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ExpandAction {
    /// Find something out and answer with [`crate::expand::Expander::handle`].
    Ask(QueryId, Question),
    /// Expansion is over: the deliveries (deduplicated, in order), or a refusal.
    Done(Result<Vec<Delivery>, Refusal>),
}
