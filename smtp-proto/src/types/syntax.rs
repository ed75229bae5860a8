//! The character-level grammar of RFC 5321 §4.1.2–4.1.3 (paths, local parts, domains,
//! address literals) with the UTF-8 extensions of RFC 6531 §3.3.

use bytes::{BufMut, Bytes, BytesMut};

use super::{AddressLiteral, Domain, Host, Mailbox};
use super::{MAX_DOMAIN_LEN, MAX_LOCAL_PART_LEN, MAX_PATH_LEN};
use crate::command::CommandError;

/// Longest label of an ASCII domain (RFC 1035 §2.3.4).
const MAX_LABEL_LEN: usize = 63;

/// What sits between the angle brackets of a MAIL or RCPT path.
#[derive(Debug)]
pub(crate) enum PathBody {
    /// `<>`.
    Null,
    /// `<postmaster>` with no domain, any case.
    Postmaster,
    /// `<local@host>`, a source route dropped.
    Mailbox(Mailbox),
}

/// `atext` of RFC 5322 §3.2.3, plus `UTF8-non-ascii` under SMTPUTF8 (RFC 6531 §3.3).
pub(crate) fn is_atext(b: u8, utf8: bool) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b) || (utf8 && b >= 0x80)
}

/// `Let-dig`, plus the octets of a U-label under SMTPUTF8.
fn is_let_dig(b: u8, utf8: bool) -> bool {
    b.is_ascii_alphanumeric() || (utf8 && b >= 0x80)
}

/// `qtextSMTP` (RFC 5321 §4.1.2), plus `UTF8-non-ascii` under SMTPUTF8.
fn is_qtext(b: u8, utf8: bool) -> bool {
    matches!(b, 32..=33 | 35..=91 | 93..=126) || (utf8 && b >= 0x80)
}

/// Non-ASCII octets need SMTPUTF8 (RFC 6531 §3.7.4.1), and must then be valid UTF-8.
pub(crate) fn check_utf8(input: &[u8], utf8: bool) -> Result<(), CommandError> {
    if input.is_ascii() {
        Ok(())
    } else if !utf8 {
        Err(CommandError::NeedsSmtpUtf8)
    } else if std::str::from_utf8(input).is_err() {
        Err(CommandError::BadAddress("invalid UTF-8"))
    } else {
        Ok(())
    }
}

/// `Domain = sub-domain *("." sub-domain)`, `sub-domain = Let-dig [Ldh-str]`; an
/// underscore is also allowed inside a label (not at its ends), as resolvers' `res_hnok`
/// and OpenSMTPD allow, because Windows hosts put it in their EHLO names.
pub(crate) fn check_domain(d: &[u8], utf8: bool) -> Result<(), CommandError> {
    if d.is_empty() {
        return Err(CommandError::BadAddress("empty domain"));
    }
    if d.len() > MAX_DOMAIN_LEN {
        return Err(CommandError::TooLong("domain"));
    }
    for label in d.split(|&b| b == b'.') {
        let (Some(&first), Some(&last)) = (label.first(), label.last()) else {
            return Err(CommandError::BadAddress("empty domain label"));
        };
        let inner_ok = label
            .iter()
            .all(|&b| is_let_dig(b, utf8) || b == b'-' || b == b'_');
        if !is_let_dig(first, utf8) || !is_let_dig(last, utf8) || !inner_ok {
            return Err(CommandError::BadAddress("invalid domain"));
        }
        if label.is_ascii() && label.len() > MAX_LABEL_LEN {
            return Err(CommandError::TooLong("domain label"));
        }
    }
    Ok(())
}

/// `Snum 3("." Snum)`, each `Snum` one to three digits worth at most 255.
fn is_ipv4(s: &[u8]) -> bool {
    let mut parts = 0usize;
    for part in s.split(|&b| b == b'.') {
        parts += 1;
        if part.is_empty() || part.len() > 3 || !part.iter().all(u8::is_ascii_digit) {
            return false;
        }
        let value = part.iter().fold(0u32, |n, &b| n * 10 + u32::from(b - b'0'));
        if value > 255 {
            return false;
        }
    }
    parts == 4
}

/// `Ldh-str` that may also start with a digit: the `Standardized-tag` of a general
/// address literal.
fn is_ldh_tag(s: &[u8]) -> bool {
    matches!((s.first(), s.last()), (Some(f), Some(l)) if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric())
        && s.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-')
}

/// `address-literal = "[" ( IPv4 / "IPv6:" IPv6 / General ) "]"` (RFC 5321 §4.1.3).
pub(crate) fn check_literal(l: &[u8]) -> Result<(), CommandError> {
    if l.len() > MAX_DOMAIN_LEN {
        return Err(CommandError::TooLong("address literal"));
    }
    let inner = l
        .strip_prefix(b"[")
        .and_then(|r| r.strip_suffix(b"]"))
        .ok_or(CommandError::BadAddress("invalid address literal"))?;
    let Some(colon) = inner.iter().position(|&b| b == b':') else {
        return if is_ipv4(inner) {
            Ok(())
        } else {
            Err(CommandError::BadAddress("invalid IPv4 address literal"))
        };
    };
    let tag = inner.get(..colon).unwrap_or_default();
    let content = inner.get(colon + 1..).unwrap_or_default();
    if tag.eq_ignore_ascii_case(b"IPv6") {
        let valid = std::str::from_utf8(content)
            .ok()
            .and_then(|s| s.parse::<std::net::Ipv6Addr>().ok()) // allow-impure: an address value, no socket
            .is_some();
        return if valid {
            Ok(())
        } else {
            Err(CommandError::BadAddress("invalid IPv6 address literal"))
        };
    }
    // dcontent = %d33-90 / %d94-126
    let content_ok =
        !content.is_empty() && content.iter().all(|&b| matches!(b, 33..=90 | 94..=126));
    if is_ldh_tag(tag) && content_ok {
        Ok(())
    } else {
        Err(CommandError::BadAddress("invalid address literal"))
    }
}

/// The length of the local part at the start of `s`: a quoted-string, or a dot-string
/// (RFC 5321 §4.1.2). It ends before the `@`, or wherever the grammar stops.
fn local_part_len(s: &[u8], utf8: bool) -> Result<usize, CommandError> {
    if s.first() == Some(&b'"') {
        let mut i = 1usize;
        loop {
            match s.get(i) {
                None => return Err(CommandError::BadAddress("unterminated quoted string")),
                Some(b'"') => return Ok(i + 1),
                Some(b'\\') => match s.get(i + 1) {
                    Some(32..=126) => i += 2,
                    _ => return Err(CommandError::BadAddress("invalid quoted pair")),
                },
                Some(&b) if is_qtext(b, utf8) => i += 1,
                Some(_) => return Err(CommandError::BadAddress("invalid character in quotes")),
            }
        }
    }
    let len = s
        .iter()
        .position(|&b| !(is_atext(b, utf8) || b == b'.'))
        .unwrap_or(s.len());
    let dots = s.get(..len).unwrap_or_default();
    if dots.is_empty() {
        return Err(CommandError::BadAddress("empty local part"));
    }
    if dots.first() == Some(&b'.')
        || dots.last() == Some(&b'.')
        || dots.windows(2).any(|w| w == b"..")
    {
        return Err(CommandError::BadAddress("invalid dots in local part"));
    }
    Ok(len)
}

/// `Local-part "@" ( Domain / address-literal )` filling `input`; UTF-8 already checked.
pub(crate) fn mailbox(input: Bytes, utf8: bool) -> Result<Mailbox, CommandError> {
    let len = local_part_len(&input, utf8)?;
    if len > MAX_LOCAL_PART_LEN {
        return Err(CommandError::TooLong("local part"));
    }
    match input.get(len) {
        Some(b'@') => {}
        None => return Err(CommandError::BadAddress("missing domain")),
        Some(_) => return Err(CommandError::BadAddress("invalid local part")),
    }
    let host = input.slice(len + 1..);
    let host = if host.first() == Some(&b'[') {
        check_literal(&host)?;
        Host::Literal(AddressLiteral(host))
    } else {
        check_domain(&host, utf8)?;
        Host::Domain(Domain(host))
    };
    Ok(Mailbox {
        local: input.slice(..len),
        host,
    })
}

/// Removes the quotes and quoted-pair backslashes of a quoted local part.
pub(crate) fn unquote(local: &Bytes) -> Bytes {
    let Some(inner) = local
        .strip_prefix(b"\"")
        .and_then(|r| r.strip_suffix(b"\""))
    else {
        return local.clone();
    };
    let mut out = BytesMut::with_capacity(inner.len());
    let mut escaped = false;
    for &b in inner {
        if b == b'\\' && !escaped {
            escaped = true;
        } else {
            out.put_u8(b);
            escaped = false;
        }
    }
    out.freeze()
}

/// The index just past the `>` closing the path that starts `arg` with `<`. A quoted
/// string may only open the local part (after any source route), and brackets only
/// enclose an address literal, so a `>` counts everywhere but inside those two.
pub(crate) fn path_end(arg: &[u8]) -> Result<usize, CommandError> {
    if arg.first() != Some(&b'<') {
        return Err(CommandError::Syntax("address must be enclosed in <>"));
    }
    let unterminated = CommandError::Syntax("unterminated <path>");
    let mut i = 1usize;
    if arg.get(i) == Some(&b'@') {
        // A source route ends at its colon, or the path ends inside it.
        let stop = arg.iter().skip(i).position(|&b| b == b':' || b == b'>');
        i += stop.ok_or(unterminated.clone())?;
        if arg.get(i) == Some(&b':') {
            i += 1;
        }
    }
    if arg.get(i) == Some(&b'"') {
        i += 1;
        loop {
            match arg.get(i) {
                None => return Err(unterminated),
                Some(b'"') => break,
                Some(b'\\') => i += 2,
                Some(_) => i += 1,
            }
        }
    }
    // An address literal may hold a `>` of its own (`dcontent`, RFC 5321 §4.1.3).
    let mut in_literal = false;
    for (at, &b) in arg.iter().enumerate().skip(i) {
        match b {
            b'[' => in_literal = true,
            b']' => in_literal = false,
            b'>' if !in_literal => return Ok(at + 1),
            _ => {}
        }
    }
    Err(unterminated)
}

/// `A-d-l = At-domain *( "," At-domain )`, `At-domain = "@" Domain` (RFC 5321 §4.1.2).
fn check_source_route(route: &[u8], utf8: bool) -> Result<(), CommandError> {
    for hop in route.split(|&b| b == b',') {
        let domain = hop
            .strip_prefix(b"@")
            .ok_or(CommandError::BadAddress("invalid source route"))?;
        check_domain(domain, utf8).map_err(|_| CommandError::BadAddress("invalid source route"))?;
    }
    Ok(())
}

/// Parses `path` (from `<` to `>` inclusive, as found by [`path_end`]).
pub(crate) fn path_body(path: Bytes, utf8: bool) -> Result<PathBody, CommandError> {
    if path.len() > MAX_PATH_LEN {
        return Err(CommandError::TooLong("path"));
    }
    check_utf8(&path, utf8)?;
    let inner_end = path.len().saturating_sub(1);
    if inner_end < 1 || path.first() != Some(&b'<') || path.last() != Some(&b'>') {
        return Err(CommandError::Syntax("address must be enclosed in <>"));
    }
    let mut inner = path.slice(1..inner_end);
    if inner.is_empty() {
        return Ok(PathBody::Null);
    }
    if inner.first() == Some(&b'@') {
        let colon = inner
            .iter()
            .position(|&b| b == b':')
            .ok_or(CommandError::BadAddress("invalid source route"))?;
        check_source_route(inner.get(..colon).unwrap_or_default(), utf8)?;
        inner = inner.slice(colon + 1..);
    }
    let len = local_part_len(&inner, utf8)?;
    if len == inner.len() {
        return if inner.eq_ignore_ascii_case(b"postmaster") {
            Ok(PathBody::Postmaster)
        } else {
            Err(CommandError::BadAddress("missing domain"))
        };
    }
    mailbox(inner, utf8).map(PathBody::Mailbox)
}
