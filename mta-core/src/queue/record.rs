//! The on-disk envelope record: a versioned text format an administrator can read with
//! `cat`, and a future release can still read.
//!
//! ```text
//! version: 1
//! id: 3a2f00c1d40b9e77
//! message: 3a2f00c1
//! sender: alice@example.org
//! original-recipient: bob@example.net
//! recipient: bob@example.net
//! delivery: relay
//! action: outbound
//! created: 1795896568
//! expires: 1796242168
//! tries: 2
//! state: deferred
//! next-try: 1795898168
//! ```
//!
//! The first line is `version: N`; every other line is `key: value`. Values are escaped
//! (`\\`, `\n`, `\r`, `\xHH` for other control characters) so no value can start a line of
//! its own. Keys this version does not know are ignored (a later release may add some);
//! a missing required key, a repeated key or a malformed value is an error. Times are
//! seconds since the epoch, with `.mmm` milliseconds when not whole. An empty `sender`
//! is the null sender `<>`; an absent optional key is `None`.

use smtp_proto::reply::EnhancedStatus;
use std::collections::HashMap;
use std::fmt::Write as _;
use thiserror::Error;

use super::envelope::{
    DeliveryKind, DsnParams, Envelope, EnvelopeFlags, EnvelopeState, Failure, Notify, Ret,
};
use super::ids::EnvelopeId;
use crate::time::UnixTime;

/// The format version this release writes.
pub const RECORD_VERSION: u32 = 1;

/// Why bytes are not an envelope record.
#[derive(Clone, PartialEq, Eq, Debug, Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The record is not UTF-8 text.
    #[error("record is not utf-8")]
    NotUtf8,
    /// The first line is not `version: N` with N >= 1.
    #[error("record does not start with a version line")]
    NoVersion,
    /// A line without `key:`.
    #[error("malformed line {0}")]
    MalformedLine(usize),
    /// A key given twice.
    #[error("key {0:?} is repeated")]
    Repeated(String),
    /// A required key is absent.
    #[error("required key {0:?} is missing")]
    Missing(&'static str),
    /// A value that does not parse.
    #[error("invalid value for key {0:?}")]
    Invalid(&'static str),
}

/// Escapes a value so it holds no line break and no control character.
fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() && u32::from(c) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

/// Reverses [`escape_into`]; `None` on a malformed escape.
fn unescape(value: &str) -> Option<String> {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '\\' => out.push('\\'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            'x' => {
                let hi = chars.next()?.to_digit(16)?;
                let lo = chars.next()?.to_digit(16)?;
                out.push(char::from_u32(hi * 16 + lo)?);
            }
            _ => return None,
        }
    }
    Some(out)
}

fn format_time(t: UnixTime) -> String {
    if t.subsec_millis() == 0 {
        t.as_secs().to_string()
    } else {
        format!("{}.{:03}", t.as_secs(), t.subsec_millis())
    }
}

fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_time(s: &str) -> Option<UnixTime> {
    let (secs, millis) = match s.split_once('.') {
        Some((secs, millis)) if millis.len() == 3 => (secs, parse_u64(millis)?),
        Some(_) => return None,
        None => (s, 0),
    };
    let ms = parse_u64(secs)?.checked_mul(1000)?.checked_add(millis)?;
    Some(UnixTime::from_millis(ms))
}

fn parse_status(s: &str) -> Option<EnhancedStatus> {
    let mut parts = s.split('.');
    let class = parts.next()?;
    let subject = parts.next()?;
    let detail = parts.next()?;
    if parts.next().is_some() || subject.len() > 3 || detail.len() > 3 {
        return None;
    }
    let class = match class {
        "2" => 2,
        "4" => 4,
        "5" => 5,
        _ => return None,
    };
    let subject = u16::try_from(parse_u64(subject)?).ok()?;
    let detail = u16::try_from(parse_u64(detail)?).ok()?;
    Some(EnhancedStatus::new(class, subject, detail))
}

fn format_notify(n: Notify) -> String {
    let mut words = Vec::new();
    if n.success {
        words.push("success");
    }
    if n.failure {
        words.push("failure");
    }
    if n.delay {
        words.push("delay");
    }
    if words.is_empty() {
        "never".to_owned()
    } else {
        words.join(",")
    }
}

fn parse_notify(s: &str) -> Option<Notify> {
    let mut n = Notify::default();
    if s == "never" {
        return Some(n);
    }
    for word in s.split(',') {
        match word {
            "success" => n.success = true,
            "failure" => n.failure = true,
            "delay" => n.delay = true,
            _ => return None,
        }
    }
    Some(n)
}

fn parse_flags(s: &str) -> Option<EnvelopeFlags> {
    let mut f = EnvelopeFlags::default();
    for word in s.split(',').filter(|w| !w.is_empty()) {
        match word {
            "bounce" => f.bounce = true,
            "authenticated" => f.authenticated = true,
            // A flag from a later release is not ours to interpret.
            _ => {}
        }
    }
    Some(f)
}

/// The record of `envelope`, as written to the spool.
pub fn encode(envelope: &Envelope) -> Vec<u8> {
    let mut out = String::with_capacity(512);
    let mut line = |key: &str, value: &str| {
        out.push_str(key);
        out.push_str(": ");
        escape_into(&mut out, value);
        out.push('\n');
    };
    line("version", &RECORD_VERSION.to_string());
    line("id", &envelope.id.to_string());
    line("message", &envelope.message_id().to_string());
    line("sender", envelope.sender.as_deref().unwrap_or(""));
    line("original-recipient", &envelope.original_recipient);
    line("recipient", &envelope.recipient);
    match &envelope.delivery {
        DeliveryKind::Local { user, method } => {
            line("delivery", "local");
            line("user", user);
            line("method", method);
        }
        DeliveryKind::Relay { action } => {
            line("delivery", "relay");
            line("action", action);
        }
    }
    if let Some(n) = envelope.dsn.notify {
        line("notify", &format_notify(n));
    }
    if let Some(orcpt) = &envelope.dsn.orcpt {
        line("orcpt", orcpt);
    }
    if let Some(ret) = envelope.dsn.ret {
        line("ret", if ret == Ret::Full { "full" } else { "hdrs" });
    }
    if let Some(envid) = &envelope.dsn.envid {
        line("envid", envid);
    }
    line("created", &format_time(envelope.created));
    line("expires", &format_time(envelope.expires));
    line("tries", &envelope.tries.to_string());
    if let Some(t) = envelope.last_try {
        line("last-try", &format_time(t));
    }
    if let Some(f) = &envelope.last_error {
        let s = f.status;
        line(
            "last-status",
            &format!("{}.{}.{}", s.class, s.subject, s.detail),
        );
        line("last-error", &f.text);
        if let Some(mta) = &f.remote_mta {
            line("remote-mta", mta);
        }
    }
    line("warnings-sent", &envelope.warnings_sent.to_string());
    let state = match envelope.state {
        EnvelopeState::Pending => "pending",
        EnvelopeState::InFlight => "in-flight",
        EnvelopeState::Deferred { .. } => "deferred",
        EnvelopeState::Expired => "expired",
        EnvelopeState::Failed => "failed",
    };
    line("state", state);
    if let EnvelopeState::Deferred { next } = envelope.state {
        line("next-try", &format_time(next));
    }
    let mut flags = Vec::new();
    if envelope.flags.bounce {
        flags.push("bounce");
    }
    if envelope.flags.authenticated {
        flags.push("authenticated");
    }
    line("flags", &flags.join(","));
    line("listener", &envelope.listener);
    line("helo", &envelope.helo);
    line("source", &envelope.source);
    out.into_bytes()
}

/// The unescaped `key: value` lines of a record, after its version line.
struct Fields(HashMap<String, String>);

impl Fields {
    fn take(&mut self, key: &'static str) -> Option<String> {
        self.0.remove(key)
    }

    fn required(&mut self, key: &'static str) -> Result<String, RecordError> {
        self.take(key).ok_or(RecordError::Missing(key))
    }

    fn parsed<T>(
        &mut self,
        key: &'static str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, RecordError> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => parse(&v).map(Some).ok_or(RecordError::Invalid(key)),
        }
    }

    fn required_parsed<T>(
        &mut self,
        key: &'static str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, RecordError> {
        self.parsed(key, parse)?.ok_or(RecordError::Missing(key))
    }
}

/// Splits a record into its version and fields.
fn split_fields(text: &str) -> Result<Fields, RecordError> {
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let version = lines
        .next()
        .and_then(|l| l.strip_prefix("version:"))
        .and_then(|v| parse_u64(v.trim()))
        .ok_or(RecordError::NoVersion)?;
    // A later version may add keys, and we read what we know of it; a version that
    // changed the meaning of a key would have to change the first line's key too.
    if version < 1 {
        return Err(RecordError::NoVersion);
    }
    let mut fields = HashMap::new();
    for (n, line) in lines.enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once(':')
            .ok_or(RecordError::MalformedLine(n + 2))?;
        let value = value.strip_prefix(' ').unwrap_or(value);
        let value = unescape(value).ok_or(RecordError::MalformedLine(n + 2))?;
        if fields.insert(key.to_owned(), value).is_some() {
            return Err(RecordError::Repeated(key.to_owned()));
        }
    }
    Ok(Fields(fields))
}

/// The envelope a record describes.
///
/// # Errors
/// [`RecordError`] when the bytes are not a record of a known version, or a required key
/// is missing or malformed. Unknown keys are ignored.
pub fn decode(bytes: &[u8]) -> Result<Envelope, RecordError> {
    let text = std::str::from_utf8(bytes).map_err(|_| RecordError::NotUtf8)?;
    let mut f = split_fields(text)?;
    let id: EnvelopeId = f.required_parsed("id", |v| v.parse().ok())?;
    if let Some(message) = f.take("message") {
        if message != id.message_id().to_string() {
            return Err(RecordError::Invalid("message"));
        }
    }
    let sender = Some(f.required("sender")?).filter(|s| !s.is_empty());
    let original_recipient = f.required("original-recipient")?;
    let recipient = f.required("recipient")?;
    let delivery = match f.required("delivery")?.as_str() {
        "local" => DeliveryKind::Local {
            user: f.required("user")?,
            method: f.required("method")?,
        },
        "relay" => DeliveryKind::Relay {
            action: f.required("action")?,
        },
        _ => return Err(RecordError::Invalid("delivery")),
    };
    let dsn = DsnParams {
        notify: f.parsed("notify", parse_notify)?,
        orcpt: f.take("orcpt"),
        ret: f.parsed("ret", |v| match v {
            "full" => Some(Ret::Full),
            "hdrs" => Some(Ret::Headers),
            _ => None,
        })?,
        envid: f.take("envid"),
    };
    let created = f.required_parsed("created", parse_time)?;
    let expires = f.required_parsed("expires", parse_time)?;
    let tries = f
        .parsed("tries", |v| u32::try_from(parse_u64(v)?).ok())?
        .unwrap_or(0);
    let last_try = f.parsed("last-try", parse_time)?;
    let last_error = match f.parsed("last-status", parse_status)? {
        Some(status) => Some(Failure {
            status,
            text: f.required("last-error")?,
            remote_mta: f.take("remote-mta"),
        }),
        None => None,
    };
    let warnings_sent = f
        .parsed("warnings-sent", |v| u32::try_from(parse_u64(v)?).ok())?
        .unwrap_or(0);
    let state = match f.required("state")?.as_str() {
        "pending" => EnvelopeState::Pending,
        "in-flight" => EnvelopeState::InFlight,
        "deferred" => EnvelopeState::Deferred {
            next: f.required_parsed("next-try", parse_time)?,
        },
        "expired" => EnvelopeState::Expired,
        "failed" => EnvelopeState::Failed,
        _ => return Err(RecordError::Invalid("state")),
    };
    let flags = f.parsed("flags", parse_flags)?.unwrap_or_default();
    Ok(Envelope {
        id,
        sender,
        original_recipient,
        recipient,
        delivery,
        dsn,
        created,
        expires,
        tries,
        last_try,
        last_error,
        warnings_sent,
        state,
        flags,
        listener: f.take("listener").unwrap_or_default(),
        helo: f.take("helo").unwrap_or_default(),
        source: f.take("source").unwrap_or_default(),
    })
}
