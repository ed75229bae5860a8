//! Format specifiers of smtpd.conf(5) ("FORMAT SPECIFIERS"): `%{rcpt.user}`,
//! `%{user.directory}`... in `maildir` paths, `mda` commands and `mda wrapper`s.
//!
//! Syntax: `%{TOKEN[SLICE]:MOD|MOD}`; `%%` is a literal `%`; a leading `~/` is the user's
//! home directory; any other `%` is copied as is. Tokens (case-insensitive) are `sender`,
//! `sender.user`, `sender.domain`, `rcpt`, `rcpt.user`, `rcpt.domain`, `dest`,
//! `dest.user`, `dest.domain`, `user.username`, `user.directory`, `mbox.from`, `mda`.
//! Modifiers (`lowercase`, `uppercase`, `strip`, `raw`) apply first, then sanitizing, then
//! the slice. A slice `[B:E]` counts characters, `E` is inclusive, either may be omitted
//! or negative (from the end, `E = -k` being `k` characters before the last); `[I]` is the
//! one character at `I` (`[-1]` is the last). An empty value stays empty whatever the
//! slice; a slice that starts past the end or ends before it starts is an error.
//!
//! # Sanitizing: what an address can put in a path or a command
//! Every token but `user.directory` and `mda` comes from an address (or a user name), so
//! it is *tainted* and:
//! - each character other than an ASCII letter or digit, a non-ASCII letter or digit, or
//!   one of `- _ . + = @ ,` is replaced with `:` (so `/`, `\`, blanks, newlines and every
//!   shell metacharacter `$ ( ) ; & | < > * ? [ ] { } ~ ! # % ' " ^` and backquote become
//!   `:`): no address can add a path separator or shell syntax;
//! - a tainted `.` that would begin a path component (at the start of the result or right
//!   after a `/`) refuses the whole expansion: `..`, `.` and hidden names such as `.ssh`
//!   cannot be reached through an address (OpenSMTPD refuses a leading dot too);
//! - `raw` is refused on tainted tokens: unlike OpenSMTPD, this server never lets an
//!   address reach a command or path unescaped. On `user.directory` and `mda` (which come
//!   from the configuration or the password database) `raw` changes nothing.
//!
//! A result holding a control character (from any source) is refused, and so is one longer
//! than [`MAX_EXPANSION_LEN`].

/// Longest expansion result, in bytes (a path of PATH_MAX on most systems).
pub const MAX_EXPANSION_LEN: usize = 4096;

/// Longest `%{...}` token, in bytes.
const MAX_TOKEN_LEN: usize = 128;

/// What the specifiers of one delivery expand to.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct FormatContext<'a> {
    /// The envelope sender, empty for the null sender `<>`.
    pub sender: &'a str,
    /// The recipient as given at RCPT TO.
    pub rcpt: &'a str,
    /// The recipient after alias and virtual expansion.
    pub dest: &'a str,
    /// The local user the delivery runs as.
    pub user_name: &'a str,
    /// That user's home directory.
    pub user_directory: &'a str,
    /// The `mda` command a wrapper wraps; `None` outside `mda wrapper`.
    pub mda: Option<&'a str>,
    /// The sub-address delimiter for `strip` (`smtp sub-addr-delim`, `+` by default).
    pub sub_addr_delim: char,
}

/// Why a template could not be expanded.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// A `%{` without its `}`, or a token longer than 128 bytes.
    #[error("unterminated or over-long format specifier at byte {0}")]
    Unterminated(usize),
    /// A token name that smtpd.conf(5) does not define.
    #[error("unknown format token {0:?}")]
    UnknownToken(String),
    /// A modifier other than `lowercase`, `uppercase`, `strip` and `raw`.
    #[error("unknown format modifier {0:?}")]
    UnknownModifier(String),
    /// A slice that does not parse or does not fit the value.
    #[error("invalid slice in format token {0:?}")]
    BadSlice(String),
    /// `%{mda}` outside an `mda wrapper`.
    #[error("%{{mda}} is only available in mda wrappers")]
    NoMda,
    /// `raw` on a token that comes from an address.
    #[error("raw expansion of address-derived token {0:?} is refused")]
    RawRefused(String),
    /// An address-derived `.` would start a path component (`..`, `.ssh`...).
    #[error("address-derived value {0:?} would start a path component with a dot")]
    LeadingDot(String),
    /// The result holds a control character.
    #[error("expanded value holds a control character")]
    ControlCharacter,
    /// The result is longer than [`MAX_EXPANSION_LEN`].
    #[error("expanded value is too long")]
    TooLong,
}

/// Expands the format specifiers of `template` (a maildir path, an mda command).
///
/// # Errors
/// [`FormatError`] for a malformed template or a value refused by sanitizing (see the
/// module documentation).
pub fn expand_format(template: &str, ctx: &FormatContext<'_>) -> Result<String, FormatError> {
    let mut out = String::new();
    let mut rest = template;
    if let Some(after) = template.strip_prefix("~/") {
        out.push_str(ctx.user_directory);
        out.push('/');
        rest = after;
    }
    while let Some(pos) = rest.find('%') {
        out.push_str(rest.get(..pos).unwrap_or(""));
        let tail = rest.get(pos..).unwrap_or("");
        if let Some(after) = tail.strip_prefix("%%") {
            out.push('%');
            rest = after;
        } else if let Some(after) = tail.strip_prefix("%{") {
            let offset = template.len().saturating_sub(tail.len());
            let end = after
                .find('}')
                .filter(|&e| e <= MAX_TOKEN_LEN)
                .ok_or(FormatError::Unterminated(offset))?;
            let token = after.get(..end).unwrap_or("");
            let value = expand_token(token, ctx)?;
            if value.tainted
                && value.text.starts_with('.')
                && (out.is_empty() || out.ends_with('/'))
            {
                return Err(FormatError::LeadingDot(value.text));
            }
            out.push_str(&value.text);
            rest = after.get(end.saturating_add(1)..).unwrap_or("");
        } else {
            out.push('%');
            rest = tail.get(1..).unwrap_or("");
        }
        if out.len() > MAX_EXPANSION_LEN {
            return Err(FormatError::TooLong);
        }
    }
    out.push_str(rest);
    if out.len() > MAX_EXPANSION_LEN {
        return Err(FormatError::TooLong);
    }
    if out.chars().any(char::is_control) {
        return Err(FormatError::ControlCharacter);
    }
    Ok(out)
}

/// One expanded token, and whether it came from an address.
struct Expanded {
    text: String,
    tainted: bool,
}

/// `TOKEN[SLICE]:MODS` → its value.
fn expand_token(token: &str, ctx: &FormatContext<'_>) -> Result<Expanded, FormatError> {
    let (name, slice, mods) = split_token(token)?;
    let (value, tainted) = token_value(name, ctx)?;
    let mut text = value;
    let mut raw = false;
    for modifier in mods.into_iter().flat_map(|m| m.split('|')) {
        match modifier.to_ascii_lowercase().as_str() {
            "lowercase" => text = text.to_lowercase(),
            "uppercase" => text = text.to_uppercase(),
            "strip" => text = strip_tag(&text, ctx.sub_addr_delim),
            "raw" => raw = true,
            _ => return Err(FormatError::UnknownModifier(modifier.to_string())),
        }
    }
    if raw && tainted {
        return Err(FormatError::RawRefused(name.to_string()));
    }
    if tainted {
        text = sanitize(&text);
    }
    let text = match slice {
        Some(slice) => {
            apply_slice(&text, slice).ok_or_else(|| FormatError::BadSlice(token.to_string()))?
        }
        None => text,
    };
    Ok(Expanded { text, tainted })
}

/// Splits `name[slice]:mods` into its three parts.
fn split_token(token: &str) -> Result<(&str, Option<&str>, Option<&str>), FormatError> {
    let bad = || FormatError::BadSlice(token.to_string());
    match token.find('[') {
        Some(open) => {
            let close = token.find(']').filter(|&c| c > open).ok_or_else(bad)?;
            let name = token.get(..open).unwrap_or("");
            let slice = token.get(open.saturating_add(1)..close).unwrap_or("");
            let after = token.get(close.saturating_add(1)..).unwrap_or("");
            let mods = match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or_else(bad)?),
            };
            Ok((name, Some(slice), mods))
        }
        None => match token.split_once(':') {
            Some((name, mods)) => Ok((name, None, Some(mods))),
            None => Ok((token, None, None)),
        },
    }
}

/// The value of a token, and whether it is tainted (address-derived).
fn token_value(name: &str, ctx: &FormatContext<'_>) -> Result<(String, bool), FormatError> {
    let (user_of, domain_of) = (address_user, address_domain);
    let value = match name.to_ascii_lowercase().as_str() {
        "sender" => ctx.sender.to_string(),
        "sender.user" => user_of(ctx.sender).to_string(),
        "sender.domain" => domain_of(ctx.sender).to_string(),
        "rcpt" => ctx.rcpt.to_string(),
        "rcpt.user" => user_of(ctx.rcpt).to_string(),
        "rcpt.domain" => domain_of(ctx.rcpt).to_string(),
        "dest" => ctx.dest.to_string(),
        "dest.user" => user_of(ctx.dest).to_string(),
        "dest.domain" => domain_of(ctx.dest).to_string(),
        "user.username" => ctx.user_name.to_string(),
        "mbox.from" if ctx.sender.is_empty() => "MAILER-DAEMON".to_string(),
        "mbox.from" => ctx.sender.to_string(),
        "user.directory" => return Ok((ctx.user_directory.to_string(), false)),
        "mda" => {
            return ctx
                .mda
                .map(|m| (m.to_string(), false))
                .ok_or(FormatError::NoMda)
        }
        _ => return Err(FormatError::UnknownToken(name.to_string())),
    };
    Ok((value, true))
}

fn address_user(address: &str) -> &str {
    address.rsplit_once('@').map_or(address, |(user, _)| user)
}

fn address_domain(address: &str) -> &str {
    address.rsplit_once('@').map_or("", |(_, domain)| domain)
}

/// `user+tag@domain` → `user@domain`, `user+tag` → `user` (the `strip` modifier).
fn strip_tag(value: &str, delim: char) -> String {
    match value.find(delim) {
        Some(tag) => {
            let head = value.get(..tag).unwrap_or("");
            let after = value.get(tag..).unwrap_or("");
            match after.find('@') {
                Some(at) => format!("{head}{}", after.get(at..).unwrap_or("")),
                None => head.to_string(),
            }
        }
        None => value.to_string(),
    }
}

/// Whether `c` may appear in an expanded address-derived value unchanged.
pub fn is_safe_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '+' | '=' | '@' | ',' | ':')
}

/// Replaces every character that is not [`is_safe_char`] with `:`.
fn sanitize(value: &str) -> String {
    value
        .chars()
        .map(|c| if is_safe_char(c) { c } else { ':' })
        .collect()
}

/// Applies `[B:E]` or `[I]` (character offsets, `E` inclusive) to `value`.
fn apply_slice(value: &str, slice: &str) -> Option<String> {
    let chars: Vec<char> = value.chars().collect();
    let len = i64::try_from(chars.len()).ok()?;
    let (begin, end) = match slice.split_once(':') {
        None => {
            let index = parse_offset(slice)?;
            let index = if index < 0 {
                index.checked_add(len)?
            } else {
                index
            };
            (index, index)
        }
        Some((b, e)) => {
            let begin = if b.is_empty() { 0 } else { parse_offset(b)? };
            let end = if e.is_empty() {
                len.saturating_sub(1)
            } else {
                parse_offset(e)?
            };
            let begin = if begin < 0 {
                begin.checked_add(len)?
            } else {
                begin
            };
            let end = if end < 0 {
                end.checked_add(len.saturating_sub(1))?
            } else {
                end.min(len.saturating_sub(1))
            };
            (begin, end)
        }
    };
    if len == 0 {
        return Some(String::new());
    }
    if begin < 0 || begin >= len || end < begin {
        return None;
    }
    let begin = usize::try_from(begin).ok()?;
    let end = usize::try_from(end)
        .ok()?
        .min(chars.len().saturating_sub(1));
    Some(chars.get(begin..=end)?.iter().collect())
}

/// A decimal offset, optionally negative, at most 6 digits.
fn parse_offset(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}
