//! Values inside statements: durations (`4d`), sizes (`35M`), ports, relay URLs, listen
//! addresses and inline tables (`{ a, b }`, `{ k = v }`).

use std::net::IpAddr; // allow-impure: address values, no socket
use std::time::Duration;

use super::lexer::TokKind;
use super::model::{ListenAddress, RelayScheme, RelayUrl};
use super::parser::{describe, PErr, Toks};
use crate::table::TableEntries;

/// Parses `N{s|m|h|d}`, a positive delay with its unit, as smtpd.conf(5) delays.
pub(crate) fn duration(s: &str) -> Option<Duration> {
    let (digits, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (s.get(..i)?, c),
        _ => return None,
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(n.checked_mul(mult)?)).filter(|d| !d.is_zero())
}

/// Prints a duration with the largest unit that divides it exactly.
pub(crate) fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    for (unit, mult) in [('d', 86_400), ('h', 3600), ('m', 60)] {
        if s != 0 && s.checked_rem(mult) == Some(0) {
            return format!("{}{unit}", s / mult);
        }
    }
    format!("{s}s")
}

/// Parses a size: bytes, or a number with a `K`, `M`, `G` or `T` suffix (scan_scaled(3)).
pub(crate) fn size(s: &str) -> Option<u64> {
    let (digits, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let mult: u64 = match c.to_ascii_uppercase() {
                'B' => 1,
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return None,
            };
            (s.get(..i)?, mult)
        }
        _ => (s, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits
        .parse::<u64>()
        .ok()?
        .checked_mul(mult)
        .filter(|n| *n <= MAX_NUMBER)
}

/// Prints a size with the largest binary suffix that divides it exactly.
pub(crate) fn format_size(n: u64) -> String {
    for (unit, shift) in [('T', 40), ('G', 30), ('M', 20), ('K', 10)] {
        if n != 0 && n.checked_rem(1u64 << shift) == Some(0) {
            return format!("{}{unit}", n >> shift);
        }
    }
    n.to_string()
}

/// Parses a port number 1..=65535.
pub(crate) fn port(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u16>().ok().filter(|p| *p != 0)
}

/// Largest number accepted, as OpenSMTPD reads numbers into a signed 64-bit integer.
const MAX_NUMBER: u64 = i64::MAX as u64;

/// Parses a non-negative count.
pub(crate) fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|n| *n <= MAX_NUMBER)
}

/// Reads the next word or quoted string as a raw value (keywords included), for numbers,
/// sizes and durations.
pub(crate) fn raw(toks: &mut Toks<'_>, what: &str, after: &str) -> Result<String, PErr> {
    match toks.peek().map(|t| &t.kind) {
        Some(TokKind::Word(w) | TokKind::Quoted(w)) => {
            let w = w.clone();
            toks.bump();
            Ok(w)
        }
        _ => Err(toks.expected(what, after)),
    }
}

/// Reads a delay such as `4d`.
pub(crate) fn read_duration(toks: &mut Toks<'_>, after: &str) -> Result<Duration, PErr> {
    let at = toks.here();
    let s = raw(toks, "a positive delay with a unit, such as \"4d\",", after)?;
    duration(&s).ok_or((
        at.0,
        at.1,
        format!("expected a positive delay with a unit, such as \"4d\", after \"{after}\", found \"{s}\""),
    ))
}

/// Reads an unquoted word, as numbers must be.
fn unquoted(toks: &mut Toks<'_>, what: &str, after: &str) -> Result<String, PErr> {
    match toks.peek().map(|t| &t.kind) {
        Some(TokKind::Word(w)) => {
            let w = w.clone();
            toks.bump();
            Ok(w)
        }
        _ => Err(toks.expected(what, after)),
    }
}

/// Reads a count.
pub(crate) fn read_number(toks: &mut Toks<'_>, after: &str) -> Result<u64, PErr> {
    let at = toks.here();
    let s = unquoted(toks, "a number", after)?;
    number(&s).ok_or((
        at.0,
        at.1,
        format!("expected a number after \"{after}\", found \"{s}\""),
    ))
}

/// Reads a port.
pub(crate) fn read_port(toks: &mut Toks<'_>, after: &str) -> Result<u16, PErr> {
    let at = toks.here();
    let s = unquoted(toks, "a port number", after)?;
    port(&s).ok_or((
        at.0,
        at.1,
        format!("expected a port number (1-65535) after \"{after}\", found \"{s}\""),
    ))
}

/// Classifies the address of `listen on`.
pub(crate) fn listen_address(s: &str) -> ListenAddress {
    if s == "all" {
        ListenAddress::Any
    } else if s == "localhost" {
        ListenAddress::Localhost
    } else if let Ok(ip) = s.parse::<IpAddr>() {
        ListenAddress::Ip(ip)
    } else if s.contains('.') {
        ListenAddress::Host(s.to_string())
    } else {
        ListenAddress::Interface(s.to_string())
    }
}

/// Parses `[proto://[label@]]host[:port]`.
pub(crate) fn relay_url(s: &str) -> Result<RelayUrl, String> {
    let (scheme, rest) = match s.split_once("://") {
        Some((proto, rest)) => {
            let scheme = match proto {
                "smtp" => RelayScheme::Smtp,
                "smtp+tls" => RelayScheme::SmtpTls,
                "smtp+notls" => RelayScheme::SmtpNoTls,
                "lmtp" => RelayScheme::Lmtp,
                "smtps" => RelayScheme::Smtps,
                other => return Err(format!("unknown relay protocol \"{other}\"")),
            };
            (scheme, rest)
        }
        None => (RelayScheme::Smtp, s),
    };
    let (label, hostport) = match rest.rsplit_once('@') {
        Some((l, h)) if !l.is_empty() => (Some(l.to_string()), h),
        Some(_) => return Err("empty label before \"@\" in relay URL".into()),
        None => (None, rest),
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or("expected \"]\" after an IPv6 address")?;
        match after.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if after.is_empty() => (h, None),
            None => return Err("unexpected text after \"]\" in relay URL".into()),
        }
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() || host.contains(['/', '@', ' ']) {
        return Err(format!("invalid relay host \"{host}\""));
    }
    let port = match port {
        Some(p) => Some(self::port(p).ok_or_else(|| format!("invalid port \"{p}\" in relay URL"))?),
        None => None,
    };
    if scheme == RelayScheme::Lmtp && port.is_none() && !host.starts_with('/') {
        return Err("a port is required with lmtp://".into());
    }
    Ok(RelayUrl {
        scheme,
        label,
        host: host.to_string(),
        port,
    })
}

/// Prints a relay URL in the form [`relay_url`] reads.
pub(crate) fn format_relay_url(u: &RelayUrl) -> String {
    let proto = match u.scheme {
        RelayScheme::Smtp => "smtp",
        RelayScheme::SmtpTls => "smtp+tls",
        RelayScheme::SmtpNoTls => "smtp+notls",
        RelayScheme::Lmtp => "lmtp",
        RelayScheme::Smtps => "smtps",
    };
    let mut s = format!("{proto}://");
    if let Some(l) = &u.label {
        s.push_str(l);
        s.push('@');
    }
    if u.host.contains(':') {
        s.push('[');
        s.push_str(&u.host);
        s.push(']');
    } else {
        s.push_str(&u.host);
    }
    if let Some(p) = u.port {
        s.push(':');
        s.push_str(&p.to_string());
    }
    s
}

/// Most entries accepted in one inline table.
const MAX_INLINE_ENTRIES: usize = 10_000;

/// Reads `{ v, v }` or `{ k = v, k => v }` (commas optional); the `{` is current.
pub(crate) fn inline_table(toks: &mut Toks<'_>, after: &str) -> Result<TableEntries, PErr> {
    let open = toks.here();
    if !toks.eat_kind(&TokKind::LBrace) {
        return Err(toks.expected("\"{\"", after));
    }
    let mut list = Vec::new();
    let mut map = Vec::new();
    let mut after_value = false;
    loop {
        if toks.eat_kind(&TokKind::RBrace) {
            break;
        }
        if toks.at_kind(&TokKind::Comma) {
            if !after_value {
                return Err(toks.err("expected a table value before \",\"".into()));
            }
            toks.bump();
            after_value = false;
            continue;
        }
        after_value = true;
        let key = match toks.peek().map(|t| &t.kind) {
            Some(TokKind::Word(w) | TokKind::Quoted(w)) => w.clone(),
            Some(k) => {
                return Err(toks.err(format!(
                    "expected a table value or \"}}\", found {}",
                    describe(k)
                )))
            }
            None => return Err(toks.err("expected \"}\" to close the table".into())),
        };
        toks.bump();
        if toks.eat_kind(&TokKind::Assign) || toks.eat_kind(&TokKind::Arrow) {
            let value = match toks.peek().map(|t| &t.kind) {
                Some(TokKind::Word(w) | TokKind::Quoted(w)) => w.clone(),
                _ => return Err(toks.expected("a value", &format!("{key} ="))),
            };
            toks.bump();
            map.push((key, value));
        } else {
            list.push(key);
        }
        if list.len().saturating_add(map.len()) > MAX_INLINE_ENTRIES {
            return Err((open.0, open.1, "too many entries in inline table".into()));
        }
    }
    match (list.is_empty(), map.is_empty()) {
        (false, true) => Ok(TableEntries::List(list)),
        (true, false) => Ok(TableEntries::Map(map)),
        (true, true) => Err((
            open.0,
            open.1,
            "expected at least one value in the table".into(),
        )),
        (false, false) => Err((
            open.0,
            open.1,
            "a table holds either values or key-value pairs, not both".into(),
        )),
    }
}
