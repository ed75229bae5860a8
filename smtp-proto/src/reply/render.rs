//! Writes a [`Reply`] in the wire form of RFC 5321 §4.2.1: `code-text` lines, then
//! `code SP text` on the last one, the enhanced status (RFC 2034 §4) after every code.

use bytes::{BufMut, Bytes, BytesMut};

use super::{EnhancedStatus, Reply};

/// Appends up to three decimal digits of `n` without leading zeros, at least one.
fn put_number(out: &mut BytesMut, n: u16) {
    let n = n.min(999);
    if n >= 100 {
        out.put_u8(b'0' + (n / 100) as u8);
    }
    if n >= 10 {
        out.put_u8(b'0' + (n / 10 % 10) as u8);
    }
    out.put_u8(b'0' + (n % 10) as u8);
}

/// Appends `class.subject.detail`.
fn put_status(out: &mut BytesMut, s: EnhancedStatus) {
    out.put_u8(b'0' + s.class.min(9));
    out.put_u8(b'.');
    put_number(out, s.subject);
    out.put_u8(b'.');
    put_number(out, s.detail);
}

/// Appends a text line; a CR or LF in it becomes a space so that a text can never end
/// the reply early or smuggle another one.
fn put_text(out: &mut BytesMut, text: &[u8]) {
    if text.iter().any(|&b| b == b'\r' || b == b'\n') {
        out.extend(
            text.iter()
                .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
    } else {
        out.put_slice(text);
    }
}

impl Reply {
    /// Appends the reply with its CRLFs to `out`: `250-first\r\n250 last\r\n`, each line
    /// prefixed by the enhanced status when there is one. The code is written as three
    /// digits (values past 999 are clamped).
    pub fn render(&self, out: &mut BytesMut) {
        let code = self.code.min(999);
        let digits = [
            b'0' + (code / 100) as u8,
            b'0' + (code / 10 % 10) as u8,
            b'0' + (code % 10) as u8,
        ];
        let empty = [Bytes::new()];
        let lines = if self.lines.is_empty() {
            &empty[..]
        } else {
            &self.lines[..]
        };
        let last = lines.len().saturating_sub(1);
        for (i, text) in lines.iter().enumerate() {
            out.put_slice(&digits);
            out.put_u8(if i == last { b' ' } else { b'-' });
            if let Some(status) = self.status {
                put_status(out, status);
                if !text.is_empty() {
                    out.put_u8(b' ');
                }
            }
            put_text(out, text);
            out.put_slice(b"\r\n");
        }
    }

    /// The rendered reply as one buffer, ready to send.
    pub fn to_bytes(&self) -> Bytes {
        let len: usize = self.lines.iter().map(|l| l.len() + 16).sum();
        let mut out = BytesMut::with_capacity(len.max(16));
        self.render(&mut out);
        out.freeze()
    }
}

/// One line for logs and bounce diagnostics: `550 5.1.1 first line second line`, the
/// lines joined by spaces, non-UTF-8 octets replaced.
impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:03}", self.code.min(999))?;
        if let Some(status) = self.status {
            write!(f, " {status}")?;
        }
        for line in &self.lines {
            write!(
                f,
                " {}",
                String::from_utf8_lossy(line).replace(['\r', '\n'], " ")
            )?;
        }
        Ok(())
    }
}
