//! The values of alias and virtual tables, and the lines of `~/.forward` files: the
//! expansion targets of aliases(5) and forward(5).

use std::fmt;

/// Longest alias value element accepted, in bytes.
pub const MAX_TARGET_LEN: usize = 4096;

/// One destination an alias expands to (aliases(5)).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum AliasTarget {
    /// `user`: a local user, or another alias key.
    User(String),
    /// `user@domain`: an address (local or remote, decided by the rules).
    Address {
        /// The local part.
        user: String,
        /// The domain.
        domain: String,
    },
    /// `|command`: pipe the message to a command.
    Command(String),
    /// `/path/to/file`: append the message to a file (absolute path).
    File(String),
    /// `:include:/path`: more targets, read from a file in the aliases format.
    Include(String),
    /// `error:code message`: refuse with this reply.
    Error {
        /// The three-digit reply code, 4xx (temporary) or 5xx (permanent).
        code: u16,
        /// The text, possibly starting with an RFC 3463 enhanced status.
        message: String,
    },
}

/// An alias value element that is no valid target.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("invalid alias target {target:?}: {reason}")]
pub struct AliasError {
    /// The element as written.
    pub target: String,
    /// Why it was refused.
    pub reason: &'static str,
}

impl fmt::Display for AliasTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AliasTarget::User(user) => f.write_str(user),
            AliasTarget::Address { user, domain } => write!(f, "{user}@{domain}"),
            AliasTarget::Command(cmd) => write!(f, "|{cmd}"),
            AliasTarget::File(path) => f.write_str(path),
            AliasTarget::Include(path) => write!(f, ":include:{path}"),
            AliasTarget::Error { code, message } => write!(f, "error:{code} {message}"),
        }
    }
}

impl AliasTarget {
    /// Reads one element of an alias value (already split from its list, see
    /// [`split_alias_list`]); surrounding double quotes are removed first.
    ///
    /// # Errors
    /// [`AliasError`] for an empty or over-long element, a control character, a relative
    /// file path, a bad `error:` code or text, or a user name with blanks or a slash.
    pub fn parse(element: &str) -> Result<AliasTarget, AliasError> {
        let text = unquote(element.trim());
        let refuse = |reason| AliasError {
            target: element.to_string(),
            reason,
        };
        if text.is_empty() {
            return Err(refuse("empty target"));
        }
        if text.len() > MAX_TARGET_LEN {
            return Err(refuse("target too long"));
        }
        if text.chars().any(char::is_control) {
            return Err(refuse("control character"));
        }
        if let Some(cmd) = text.strip_prefix('|') {
            let cmd = cmd.trim();
            return if cmd.is_empty() {
                Err(refuse("empty command"))
            } else {
                Ok(AliasTarget::Command(cmd.into()))
            };
        }
        if text.starts_with('/') {
            return Ok(AliasTarget::File(text.into()));
        }
        if let Some(path) = strip_prefix_ignore_case(text, ":include:") {
            let path = path.trim();
            return if path.starts_with('/') {
                Ok(AliasTarget::Include(path.into()))
            } else {
                Err(refuse("include path must be absolute"))
            };
        }
        if let Some(rest) = strip_prefix_ignore_case(text, "error:") {
            return parse_error(rest)
                .ok_or_else(|| refuse("error needs a 4xx or 5xx code and a message"));
        }
        if text.contains(|c: char| c.is_whitespace() || c == '/') {
            return Err(refuse("blank or slash in an address"));
        }
        match text.rsplit_once('@') {
            Some((user, domain)) if !user.is_empty() && !domain.is_empty() => {
                Ok(AliasTarget::Address {
                    user: user.into(),
                    domain: domain.into(),
                })
            }
            Some(_) => Err(refuse("address without user or domain")),
            None => Ok(AliasTarget::User(text.into())),
        }
    }
}

/// `NNN text` after `error:`: a 4xx or 5xx code and a non-empty text (aliases(5)).
fn parse_error(rest: &str) -> Option<AliasTarget> {
    let rest = rest.trim_start();
    let digits = rest.get(..3)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let code: u16 = digits.parse().ok()?;
    if !(400..600).contains(&code) {
        return None;
    }
    let after = rest.get(3..)?;
    let message = after.strip_prefix([' ', '-']).map(str::trim).unwrap_or("");
    if message.is_empty() {
        return None;
    }
    Some(AliasTarget::Error {
        code,
        message: message.into(),
    })
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        text.get(prefix.len()..)
    } else {
        None
    }
}

fn unquote(text: &str) -> &str {
    text.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text)
}

/// Splits an alias value at the commas that are outside double quotes, trimming each
/// element and dropping empty ones: `bob, "|/bin/x a,b", /var/log/m` gives three.
pub fn split_alias_list(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0usize;
    let mut quoted = false;
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                push_trimmed(&mut out, value.get(start..i).unwrap_or(""));
                start = i.saturating_add(1);
            }
            _ => {}
        }
    }
    push_trimmed(&mut out, value.get(start..).unwrap_or(""));
    out
}

fn push_trimmed<'a>(out: &mut Vec<&'a str>, element: &'a str) {
    let element = element.trim();
    if !element.is_empty() {
        out.push(element);
    }
}
