//! A bounded, incremental reply parser for the client side (RFC 5321 §4.2.1).
//!
//! The parser reads from the front of the caller's buffer and takes bytes out only when
//! a whole reply is there. It remembers how far it has checked, so bytes are scanned
//! once however the stream is split, and it fails as soon as a line or a reply grows
//! past its limits, so the caller never has to buffer more than
//! `max_lines * max_line_len` bytes for one reply.

use bytes::{Bytes, BytesMut};

use super::{EnhancedStatus, Reply};

/// Limits of one reply.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ReplyLimits {
    /// Most lines in one (multiline) reply.
    pub max_lines: usize,
    /// Longest line, CRLF included (RFC 5321 §4.5.3.1.5 asks for at least 512).
    pub max_line_len: usize,
}

impl Default for ReplyLimits {
    fn default() -> Self {
        ReplyLimits {
            max_lines: 128,
            max_line_len: 4096,
        }
    }
}

/// Why the reply stream cannot be read. The stream cannot be resynchronized after
/// one: the client should close the connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// A line is longer than `max_line_len`.
    #[error("reply line too long")]
    LineTooLong,
    /// A reply has more than `max_lines` lines.
    #[error("too many lines in one reply")]
    TooManyLines,
    /// A line does not start with a reply code: three digits, the first 2 to 5.
    #[error("invalid reply code")]
    BadCode,
    /// The code is followed by something other than `-`, a space or the line end.
    #[error("invalid separator after the reply code")]
    BadSeparator,
    /// A continuation line carries another code than the first line.
    #[error("reply code changed within a multiline reply")]
    CodeMismatch,
    /// A line ends in LF without CR, or has a CR inside it.
    #[error("bare CR or LF in a reply")]
    BareCrLf,
}

/// Reads replies one at a time from a byte stream; see the module docs.
#[derive(Clone, Debug)]
pub struct ReplyParser {
    limits: ReplyLimits,
    /// Bytes at the front of the buffer that form the checked lines of this reply.
    checked: usize,
    /// How many lines of this reply are checked.
    lines: usize,
    /// Where the search for the LF of the current line resumes.
    scan: usize,
    /// The code of this reply, from its first line.
    code: Option<u16>,
    /// The first error; it is returned again by every later call.
    failed: Option<ReplyError>,
}

/// A checked reply line: its code, whether it is the last one, and where its text is.
struct Line {
    code: u16,
    last: bool,
}

/// Checks one line without its CRLF.
fn check_line(line: &[u8]) -> Result<Line, ReplyError> {
    let digit = |i: usize| {
        line.get(i)
            .filter(|b| b.is_ascii_digit())
            .map(|b| u16::from(b - b'0'))
    };
    let (Some(a), Some(b), Some(c)) = (digit(0), digit(1), digit(2)) else {
        return Err(ReplyError::BadCode);
    };
    if !(2..=5).contains(&a) {
        return Err(ReplyError::BadCode);
    }
    let last = match line.get(3) {
        None | Some(b' ') => true,
        Some(b'-') => false,
        Some(_) => return Err(ReplyError::BadSeparator),
    };
    if line.contains(&b'\r') {
        return Err(ReplyError::BareCrLf);
    }
    Ok(Line {
        code: a * 100 + b * 10 + c,
        last,
    })
}

/// An enhanced status `class.subject.detail` at the start of `text` whose class is
/// `class`, followed by a space or the end; returns it and the bytes it takes, the
/// space included (RFC 3463 §2, RFC 2034 §4).
pub(crate) fn status_prefix(text: &[u8], class: u16) -> Option<(EnhancedStatus, usize)> {
    let first = *text.first()?;
    if !matches!(class, 2 | 4 | 5) || u16::from(first) != u16::from(b'0') + class {
        return None;
    }
    let mut at = 1usize;
    let mut part = || -> Option<u16> {
        if text.get(at) != Some(&b'.') {
            return None;
        }
        at += 1;
        let digits = text
            .get(at..)?
            .iter()
            .take(4)
            .take_while(|b| b.is_ascii_digit())
            .count();
        if !(1..=3).contains(&digits) {
            return None;
        }
        let value = text
            .get(at..at + digits)?
            .iter()
            .fold(0u16, |n, &b| n * 10 + u16::from(b - b'0'));
        at += digits;
        Some(value)
    };
    let subject = part()?;
    let detail = part()?;
    let taken = match text.get(at) {
        None => at,
        Some(b' ') => at + 1,
        Some(_) => return None,
    };
    Some((EnhancedStatus::new(first - b'0', subject, detail), taken))
}

/// Builds a reply from `raw`, whole checked lines with their CRLFs.
fn build(raw: &Bytes, code: u16) -> Reply {
    let mut texts = Vec::new();
    let mut start = 0usize;
    while start < raw.len() {
        let rest = raw.get(start..).unwrap_or_default();
        let len = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let content_end = start + len.saturating_sub(1);
        texts.push(raw.slice((start + 4).min(content_end)..content_end));
        start += len + 1;
    }
    let status = texts
        .first()
        .and_then(|t| status_prefix(t, code / 100))
        .map(|(s, _)| s);
    if let Some(status) = status {
        for text in &mut texts {
            if let Some((s, taken)) = status_prefix(text, code / 100) {
                if s == status {
                    *text = text.slice(taken..);
                }
            }
        }
    }
    Reply::multiline(code, status, texts)
}

impl ReplyParser {
    /// A parser with these limits.
    pub fn new(limits: ReplyLimits) -> Self {
        ReplyParser {
            limits,
            checked: 0,
            lines: 0,
            scan: 0,
            code: None,
            failed: None,
        }
    }

    /// Takes one complete reply from the front of `buf`, or returns `None` when more
    /// bytes are needed (and leaves `buf` untouched). Call again after each reply:
    /// pipelined replies may already be in `buf`. `buf` must only grow at its end
    /// between calls.
    ///
    /// # Errors
    /// A [`ReplyError`] when the stream breaks the grammar or the limits; it is sticky.
    pub fn parse(&mut self, buf: &mut BytesMut) -> Result<Option<Reply>, ReplyError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        match self.advance(buf) {
            Err(e) => {
                self.failed = Some(e);
                Err(e)
            }
            ok => ok,
        }
    }

    /// Checks the lines not checked yet; see [`ReplyParser::parse`].
    fn advance(&mut self, buf: &mut BytesMut) -> Result<Option<Reply>, ReplyError> {
        loop {
            let line_start = self.checked;
            let window_end = buf
                .len()
                .min(line_start.saturating_add(self.limits.max_line_len));
            let window = buf.get(self.scan..window_end).unwrap_or_default();
            let Some(offset) = window.iter().position(|&b| b == b'\n') else {
                if buf.len().saturating_sub(line_start) >= self.limits.max_line_len {
                    return Err(ReplyError::LineTooLong);
                }
                self.scan = buf.len();
                return Ok(None);
            };
            let line_end = self.scan + offset + 1;
            let line = buf.get(line_start..line_end).unwrap_or_default();
            let content = line.strip_suffix(b"\r\n").ok_or(ReplyError::BareCrLf)?;
            let checked = check_line(content)?;
            if self.code.is_some_and(|c| c != checked.code) {
                return Err(ReplyError::CodeMismatch);
            }
            self.code = Some(checked.code);
            self.lines += 1;
            self.checked = line_end;
            self.scan = line_end;
            if checked.last {
                let raw = buf.split_to(line_end).freeze();
                self.checked = 0;
                self.scan = 0;
                self.lines = 0;
                self.code = None;
                return Ok(Some(build(&raw, checked.code)));
            }
            if self.lines >= self.limits.max_lines {
                return Err(ReplyError::TooManyLines);
            }
        }
    }

    /// Bytes at the front of the buffer that belong to the reply in progress.
    pub fn pending_len(&self) -> usize {
        self.scan
    }
}

impl Default for ReplyParser {
    fn default() -> Self {
        ReplyParser::new(ReplyLimits::default())
    }
}
