//! SMTP AUTH credentials (RFC 4954): the runtime's answer to the engine's
//! `Action::CheckPassword`. A listener's credentials table holds crypt(3)-style hashes
//! (table(5): `username encrypted-password` a line, or `"user" => "hash"` in a mapping,
//! made with `smtpctl encrypt`); a listener with `auth` and no table checks system
//! accounts through the shadow file, which needs root.
//!
//! These calls block for the hash's work (bcrypt cost 10 or 5000 SHA-512 rounds, a few
//! milliseconds): run them off any event loop. Each answer goes back to the engine as
//! `Input::PasswordChecked { id, ok }`; the engine answers 535 on `ok == false`.

mod encrypt;
mod scheme;
mod shadow;

pub use encrypt::{encrypt_command, encrypt_lines, encrypt_password};
pub use scheme::{verify_password, Scheme};
pub use shadow::{check_account, find_hash, is_usable, SHADOW_PATH};

use std::fmt;
use std::path::Path;
use std::time::Duration;

/// How long to wait before answering a failed authentication (the 535), so that
/// guessing passwords over one connection is slow and the answer's timing tells
/// nothing (OpenSMTPD pauses a random time under a second; a fixed second is at least
/// as slow for a guesser). The runtime applies it, without blocking other sessions,
/// before it feeds a failed `PasswordChecked` back, or the engine delays the reply;
/// never both. It must cover every 535, including a user missing from the table.
pub const FAILURE_DELAY: Duration = Duration::from_secs(1);

/// Why a password could not be checked. Each one means "refuse", and each should be
/// logged: it is a broken table entry or a broken setup, not a client's mistake.
#[derive(Debug)]
#[non_exhaustive]
pub enum AuthError {
    /// The hash names a scheme we do not check (DES, MD5-crypt `$1$`, ...); it holds
    /// only the scheme prefix, never the digest.
    UnknownScheme {
        /// The `$id$` prefix, or a description when there is none.
        prefix: String,
    },
    /// The hash names a scheme we check but does not parse.
    MalformedHash {
        /// The scheme's name.
        scheme: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A system account was to be checked but the daemon does not run as root.
    SystemAuthNeedsRoot {
        /// The effective uid the daemon runs as.
        uid: u32,
    },
    /// The shadow file could not be read.
    Shadow {
        /// Its path.
        path: String,
        /// The operating system's reason.
        reason: String,
    },
    /// The operating system gave no random bytes for a salt.
    Entropy(String),
    /// The fork server could not check a system account's password.
    ForkServer(String),
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::UnknownScheme { prefix } => write!(
                f,
                "unsupported password hash scheme {prefix} (use bcrypt $2b$, SHA-512-crypt $6$, \
                 SHA-256-crypt $5$ or yescrypt $y$, e.g. from `smtpctl encrypt`)"
            ),
            AuthError::MalformedHash { scheme, reason } => {
                write!(f, "malformed {scheme} password hash: {reason}")
            }
            AuthError::SystemAuthNeedsRoot { uid } => write!(
                f,
                "checking system accounts (`auth` without a credentials table) needs root, \
                 and the daemon runs as uid {uid}: give the listener a table, \
                 `listen on ... auth <credentials>`"
            ),
            AuthError::Shadow { path, reason } => write!(f, "cannot read {path}: {reason}"),
            AuthError::Entropy(reason) => write!(f, "no random bytes for a salt: {reason}"),
            AuthError::ForkServer(reason) => {
                write!(f, "the fork server could not check the password: {reason}")
            }
        }
    }
}

impl std::error::Error for AuthError {}

/// Whether `auth` without a credentials table can work here: the daemon must run as
/// root to read the shadow file. The configuration check calls it and refuses the
/// configuration with the message otherwise.
///
/// # Errors
/// The message to show the administrator.
pub fn system_auth_available() -> Result<(), String> {
    let uid = effective_uid();
    if uid != 0 {
        return Err(AuthError::SystemAuthNeedsRoot { uid }.to_string());
    }
    std::fs::metadata(SHADOW_PATH).map(|_| ()).map_err(|e| {
        format!(
            "`auth` without a credentials table checks system accounts in {SHADOW_PATH}, \
             which cannot be read: {e}"
        )
    })
}

/// The hash in a credentials table value. OpenSMTPD's table parser accepts both a
/// bare `hash` and `username:hash` for a credentials entry and checks the part after
/// the first `:` (table(5)); no crypt(3) hash contains a `:`, so the split is safe.
pub fn table_hash(value: &str) -> &str {
    let value = value.trim();
    match value.split_once(':') {
        Some((_, hash)) => hash,
        None => value,
    }
}

/// Answer a `CheckPassword`: with the credentials table's value (`hash` or
/// `user:hash`, see [`table_hash`]), verify against its hash; without, check the
/// system account `user`: here when the daemon is root, through the fork server when a
/// root daemon has dropped its privileges.
///
/// # Errors
/// Any [`AuthError`]: the password is then refused, and the caller logs the error.
pub fn try_check(user: &str, hash: Option<&str>, password: &[u8]) -> Result<bool, AuthError> {
    match hash {
        Some(value) => verify_password(table_hash(value), password),
        None => {
            let uid = effective_uid();
            if uid == 0 {
                return check_account(Path::new(SHADOW_PATH), user, password);
            }
            match crate::server::fork_server::installed() {
                Some(forker) => forker
                    .check_system_password(user, password)
                    .map_err(AuthError::ForkServer),
                None => Err(AuthError::SystemAuthNeedsRoot { uid }),
            }
        }
    }
}

/// [`try_check`] for callers that want a verdict only: any error is refused and
/// logged on standard error (`warn: auth: user=...: ...`).
pub fn check(user: &str, hash: Option<&str>, password: &[u8]) -> bool {
    match try_check(user, hash, password) {
        Ok(ok) => ok,
        Err(e) => {
            eprintln!("warn: auth: user={}: {e}", user.escape_debug());
            false
        }
    }
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail (POSIX).
    unsafe { libc::geteuid() }
}
