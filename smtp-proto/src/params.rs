//! ESMTP parameters of MAIL and RCPT (RFC 5321 §4.1.2 `Mail-parameters`): SIZE (RFC 1870),
//! BODY (RFC 6152, RFC 3030), SMTPUTF8 (RFC 6531), AUTH= (RFC 4954 §5) and the DSN
//! parameters RET, ENVID, NOTIFY, ORCPT (RFC 3461).
//!
//! Keywords are case-insensitive. A keyword we do not implement, or one that belongs to
//! the other command (NOTIFY on MAIL), is `UnknownParameter` (555, RFC 5321 §4.1.1.11);
//! a repeated keyword or a bad value is `BadParameter` (501).

use bytes::{BufMut, Bytes, BytesMut};

use crate::command::CommandError;
use crate::xtext;

/// Longest ENVID value, in characters on the wire (RFC 3461 §4.4).
pub const MAX_ENVID_LEN: usize = 100;
/// Longest ORCPT value, in characters on the wire (RFC 3461 §4.2).
pub const MAX_ORCPT_LEN: usize = 500;

/// `BODY=` of MAIL FROM.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum BodyType {
    /// `BODY=7BIT`.
    SevenBit,
    /// `BODY=8BITMIME` (RFC 6152).
    EightBitMime,
    /// `BODY=BINARYMIME` (RFC 3030); requires BDAT.
    BinaryMime,
}

/// `RET=` of MAIL FROM (RFC 3461 §4.3): what a DSN should carry.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Ret {
    /// `RET=FULL`: the whole message.
    Full,
    /// `RET=HDRS`: the headers only.
    Headers,
}

/// `NOTIFY=` of RCPT TO (RFC 3461 §4.1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Notify {
    /// `NEVER` was given (exclusive with the others).
    pub never: bool,
    /// `SUCCESS` was given.
    pub success: bool,
    /// `FAILURE` was given.
    pub failure: bool,
    /// `DELAY` was given.
    pub delay: bool,
}

/// `ORCPT=addr-type;xtext` of RCPT TO (RFC 3461 §4.2), with the xtext decoded.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct OriginalRecipient {
    /// The address type, usually `rfc822`.
    pub addr_type: Bytes,
    /// The decoded address.
    pub addr: Bytes,
}

/// The parameters accepted on MAIL FROM.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct MailParams {
    /// `SIZE=n`, the size the client declares.
    pub size: Option<u64>,
    /// `BODY=`.
    pub body: Option<BodyType>,
    /// `SMTPUTF8` was given.
    pub smtputf8: bool,
    /// `AUTH=<mailbox>` or `AUTH=<>`, xtext-decoded; `Some(empty)` for `<>`.
    pub auth: Option<Bytes>,
    /// `RET=`.
    pub ret: Option<Ret>,
    /// `ENVID=`, xtext-decoded.
    pub envid: Option<Bytes>,
}

/// The parameters accepted on RCPT TO.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct RcptParams {
    /// `NOTIFY=`.
    pub notify: Option<Notify>,
    /// `ORCPT=`.
    pub orcpt: Option<OriginalRecipient>,
}

/// `esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")`.
fn is_keyword(k: &[u8]) -> bool {
    k.first().is_some_and(u8::is_ascii_alphanumeric)
        && k.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Splits `params` (space separated `keyword[=value]`) into keywords and values.
fn each_param(
    params: &Bytes,
    mut f: impl FnMut(&[u8], Option<Bytes>) -> Result<(), CommandError>,
) -> Result<(), CommandError> {
    let mut start = 0usize;
    while start < params.len() {
        let rest = params.get(start..).unwrap_or_default();
        let len = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
        if len > 0 {
            let token = params.slice(start..start + len);
            let (keyword, value) = match token.iter().position(|&b| b == b'=') {
                Some(eq) => (token.slice(..eq), Some(token.slice(eq + 1..))),
                None => (token, None),
            };
            if !is_keyword(&keyword) {
                return Err(CommandError::Syntax("invalid parameter keyword"));
            }
            f(&keyword, value)?;
        }
        start += len + 1;
    }
    Ok(())
}

/// The value of a parameter that requires one.
fn required(value: Option<Bytes>, what: &'static str) -> Result<Bytes, CommandError> {
    match value {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(CommandError::BadParameter(what)),
    }
}

/// Rejects a second occurrence of a parameter.
fn once<T>(slot: &Option<T>) -> Result<(), CommandError> {
    match slot {
        Some(_) => Err(CommandError::BadParameter("duplicate parameter")),
        None => Ok(()),
    }
}

/// Decodes an xtext value and refuses control characters in the result.
fn decode_text(value: Bytes, what: &'static str, ascii: bool) -> Result<Bytes, CommandError> {
    let decoded = xtext::decode_bytes(value).map_err(|_| CommandError::BadParameter(what))?;
    let printable = |b: u8| (0x20..0x7f).contains(&b) || (!ascii && b >= 0x80);
    if decoded.iter().all(|&b| printable(b)) {
        Ok(decoded)
    } else {
        Err(CommandError::BadParameter(what))
    }
}

/// `1*20DIGIT` fitting a u64.
fn number(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 20 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| {
        n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// Parses a `SIZE` value (RFC 1870 §3); shared with the `BDAT` chunk size.
pub(crate) fn parse_number(value: &[u8]) -> Option<u64> {
    number(value)
}

impl MailParams {
    /// Parses the space-separated parameters that follow the reverse-path.
    ///
    /// # Errors
    /// `UnknownParameter` for a keyword MAIL does not take, `BadParameter` for a
    /// duplicate or a bad value, `Syntax` for a malformed keyword.
    pub fn parse(params: &Bytes) -> Result<MailParams, CommandError> {
        let mut p = MailParams::default();
        let mut seen_smtputf8 = false;
        each_param(params, |keyword, value| {
            let upper = |k: &str| keyword.eq_ignore_ascii_case(k.as_bytes());
            if upper("SIZE") {
                once(&p.size)?;
                let v = required(value, "SIZE")?;
                p.size = Some(number(&v).ok_or(CommandError::BadParameter("SIZE"))?);
            } else if upper("BODY") {
                once(&p.body)?;
                let v = required(value, "BODY")?;
                p.body = Some(if v.eq_ignore_ascii_case(b"7BIT") {
                    BodyType::SevenBit
                } else if v.eq_ignore_ascii_case(b"8BITMIME") {
                    BodyType::EightBitMime
                } else if v.eq_ignore_ascii_case(b"BINARYMIME") {
                    BodyType::BinaryMime
                } else {
                    return Err(CommandError::BadParameter("BODY"));
                });
            } else if upper("SMTPUTF8") {
                if seen_smtputf8 {
                    return Err(CommandError::BadParameter("duplicate parameter"));
                }
                if value.is_some() {
                    return Err(CommandError::BadParameter("SMTPUTF8 takes no value"));
                }
                seen_smtputf8 = true;
                p.smtputf8 = true;
            } else if upper("AUTH") {
                once(&p.auth)?;
                let v = required(value, "AUTH")?;
                let decoded = decode_text(v, "AUTH", false)?;
                p.auth = Some(if &decoded[..] == b"<>" {
                    Bytes::new()
                } else {
                    decoded
                });
            } else if upper("RET") {
                once(&p.ret)?;
                let v = required(value, "RET")?;
                p.ret = Some(if v.eq_ignore_ascii_case(b"FULL") {
                    Ret::Full
                } else if v.eq_ignore_ascii_case(b"HDRS") {
                    Ret::Headers
                } else {
                    return Err(CommandError::BadParameter("RET"));
                });
            } else if upper("ENVID") {
                once(&p.envid)?;
                let v = required(value, "ENVID")?;
                if v.len() > MAX_ENVID_LEN {
                    return Err(CommandError::BadParameter("ENVID too long"));
                }
                p.envid = Some(decode_text(v, "ENVID", true)?);
            } else {
                return Err(CommandError::UnknownParameter);
            }
            Ok(())
        })?;
        Ok(p)
    }

    /// Appends each parameter as ` KEYWORD=value` (with its leading space).
    pub fn render(&self, out: &mut BytesMut) {
        if let Some(size) = self.size {
            out.put_slice(b" SIZE=");
            out.put_slice(size.to_string().as_bytes());
        }
        if let Some(body) = self.body {
            out.put_slice(match body {
                BodyType::SevenBit => b" BODY=7BIT".as_slice(),
                BodyType::EightBitMime => b" BODY=8BITMIME",
                BodyType::BinaryMime => b" BODY=BINARYMIME",
            });
        }
        if self.smtputf8 {
            out.put_slice(b" SMTPUTF8");
        }
        if let Some(auth) = &self.auth {
            out.put_slice(b" AUTH=");
            if auth.is_empty() {
                out.put_slice(b"<>");
            } else {
                xtext::encode_into(auth, out);
            }
        }
        if let Some(ret) = self.ret {
            out.put_slice(match ret {
                Ret::Full => b" RET=FULL".as_slice(),
                Ret::Headers => b" RET=HDRS",
            });
        }
        if let Some(envid) = &self.envid {
            out.put_slice(b" ENVID=");
            xtext::encode_into(envid, out);
        }
    }
}

impl Notify {
    /// Parses `NEVER` or a comma list of `SUCCESS`, `FAILURE`, `DELAY` (RFC 3461 §4.1).
    fn parse(value: &[u8]) -> Result<Notify, CommandError> {
        let bad = CommandError::BadParameter("NOTIFY");
        let mut n = Notify::default();
        for item in value.split(|&b| b == b',') {
            let flag = if item.eq_ignore_ascii_case(b"NEVER") {
                &mut n.never
            } else if item.eq_ignore_ascii_case(b"SUCCESS") {
                &mut n.success
            } else if item.eq_ignore_ascii_case(b"FAILURE") {
                &mut n.failure
            } else if item.eq_ignore_ascii_case(b"DELAY") {
                &mut n.delay
            } else {
                return Err(bad);
            };
            if *flag {
                return Err(bad);
            }
            *flag = true;
        }
        if n.never && (n.success || n.failure || n.delay) {
            return Err(CommandError::BadParameter("NOTIFY=NEVER is exclusive"));
        }
        Ok(n)
    }

    /// Appends the value (`NEVER` or the comma list).
    fn render(&self, out: &mut BytesMut) {
        let flags = [
            (self.never, b"NEVER".as_slice()),
            (self.success, b"SUCCESS"),
            (self.failure, b"FAILURE"),
            (self.delay, b"DELAY"),
        ];
        let mut first = true;
        for (on, name) in flags {
            if on {
                if !first {
                    out.put_u8(b',');
                }
                out.put_slice(name);
                first = false;
            }
        }
    }
}

impl RcptParams {
    /// Parses the space-separated parameters that follow the forward-path.
    ///
    /// # Errors
    /// As [`MailParams::parse`].
    pub fn parse(params: &Bytes) -> Result<RcptParams, CommandError> {
        let mut p = RcptParams::default();
        each_param(params, |keyword, value| {
            if keyword.eq_ignore_ascii_case(b"NOTIFY") {
                once(&p.notify)?;
                p.notify = Some(Notify::parse(&required(value, "NOTIFY")?)?);
            } else if keyword.eq_ignore_ascii_case(b"ORCPT") {
                once(&p.orcpt)?;
                let v = required(value, "ORCPT")?;
                if v.len() > MAX_ORCPT_LEN {
                    return Err(CommandError::BadParameter("ORCPT too long"));
                }
                let semi = v.iter().position(|&b| b == b';');
                let semi = semi.ok_or(CommandError::BadParameter("ORCPT"))?;
                let addr_type = v.slice(..semi);
                let atom = addr_type.iter().all(|&b| crate::types::is_atext(b, false));
                if addr_type.is_empty() || !atom {
                    return Err(CommandError::BadParameter("ORCPT"));
                }
                let addr = decode_text(v.slice(semi + 1..), "ORCPT", false)?;
                if addr.is_empty() {
                    return Err(CommandError::BadParameter("ORCPT"));
                }
                p.orcpt = Some(OriginalRecipient { addr_type, addr });
            } else {
                return Err(CommandError::UnknownParameter);
            }
            Ok(())
        })?;
        if p.notify
            .is_some_and(|n| !(n.never || n.success || n.failure || n.delay))
        {
            return Err(CommandError::BadParameter("NOTIFY"));
        }
        Ok(p)
    }

    /// Appends each parameter as ` KEYWORD=value` (with its leading space).
    pub fn render(&self, out: &mut BytesMut) {
        if let Some(notify) = &self.notify {
            out.put_slice(b" NOTIFY=");
            notify.render(out);
        }
        if let Some(orcpt) = &self.orcpt {
            out.put_slice(b" ORCPT=");
            out.put_slice(&orcpt.addr_type);
            out.put_u8(b';');
            xtext::encode_into(&orcpt.addr, out);
        }
    }
}
