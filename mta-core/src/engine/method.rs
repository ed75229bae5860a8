//! How a local delivery is written into an envelope record, so that a runtime can deliver
//! it after a restart from the record alone.
//!
//! [`DeliveryKind::Local`](crate::queue::DeliveryKind::Local) holds two strings:
//! - `user`: empty for the daemon's unprivileged account (files and commands named by the
//!   aliases table, aliases(5)), else `NAME:UID:GID:HOME` (the home directory last, as it
//!   may hold colons; user names never do);
//! - `method`: one of `mbox`, `maildir:PATH`, `maildir-junk:PATH`, `mda:COMMAND`,
//!   `lmtp:DEST\tRCPT` (a tab before the LMTP recipient: neither a socket address nor an
//!   SMTP address holds one), `file:PATH`, `command:COMMAND`. Paths and commands are
//!   already expanded (format specifiers resolved).

use thiserror::Error;

use crate::expand::{LocalMethod, LocalUser};

/// A local delivery as stored in an envelope: who it runs as and how.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct LocalMethodSpec {
    /// The account; `None` for the daemon's unprivileged account.
    pub user: Option<LocalUser>,
    /// The method, paths and commands expanded.
    pub method: LocalMethod,
}

/// A stored local delivery that cannot be read back.
#[derive(Clone, PartialEq, Eq, Debug, Error)]
#[non_exhaustive]
pub enum MethodSpecError {
    /// The user is not `NAME:UID:GID:HOME` with numeric ids.
    #[error("malformed local user")]
    User,
    /// The method is none of the known forms.
    #[error("malformed local delivery method")]
    Method,
}

impl LocalMethodSpec {
    /// The `(user, method)` strings of [`DeliveryKind::Local`](crate::queue::DeliveryKind::Local).
    pub fn format(&self) -> (String, String) {
        let user = match &self.user {
            None => String::new(),
            Some(u) => format!("{}:{}:{}:{}", u.name, u.uid, u.gid, u.directory),
        };
        let method = match &self.method {
            LocalMethod::Mbox => "mbox".to_owned(),
            LocalMethod::Maildir { path, junk: false } => format!("maildir:{path}"),
            LocalMethod::Maildir { path, junk: true } => format!("maildir-junk:{path}"),
            LocalMethod::Mda { command } => format!("mda:{command}"),
            LocalMethod::Lmtp { dest, rcpt } => format!("lmtp:{dest}\t{rcpt}"),
            LocalMethod::File { path } => format!("file:{path}"),
            LocalMethod::Command { command } => format!("command:{command}"),
        };
        (user, method)
    }

    /// Reads back what [`LocalMethodSpec::format`] wrote.
    ///
    /// # Errors
    /// [`MethodSpecError`] for a user or method string of no known form.
    pub fn parse(user: &str, method: &str) -> Result<LocalMethodSpec, MethodSpecError> {
        let user = if user.is_empty() {
            None
        } else {
            let mut parts = user.splitn(4, ':');
            let (Some(name), Some(uid), Some(gid), Some(directory)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(MethodSpecError::User);
            };
            Some(LocalUser {
                name: name.to_owned(),
                uid: uid.parse().map_err(|_| MethodSpecError::User)?,
                gid: gid.parse().map_err(|_| MethodSpecError::User)?,
                directory: directory.to_owned(),
            })
        };
        let (kind, rest) = method.split_once(':').unwrap_or((method, ""));
        let rest = rest.to_owned();
        let method = match kind {
            "mbox" if method == "mbox" => LocalMethod::Mbox,
            "maildir" => LocalMethod::Maildir {
                path: rest,
                junk: false,
            },
            "maildir-junk" => LocalMethod::Maildir {
                path: rest,
                junk: true,
            },
            "mda" => LocalMethod::Mda { command: rest },
            "lmtp" => {
                let (dest, rcpt) = rest.rsplit_once('\t').ok_or(MethodSpecError::Method)?;
                LocalMethod::Lmtp {
                    dest: dest.to_owned(),
                    rcpt: rcpt.to_owned(),
                }
            }
            "file" => LocalMethod::File { path: rest },
            "command" => LocalMethod::Command { command: rest },
            _ => return Err(MethodSpecError::Method),
        };
        Ok(LocalMethodSpec { user, method })
    }
}
