//! DATA body handling: dot-unstuffing and end-of-data detection (RFC 5321 §4.5.2),
//! dot-stuffing for the client side, and the BDAT chunk countdown (RFC 3030).
//!
//! The body reader is strict about line endings, because a lenient one is how SMTP
//! smuggling works (CVE-2023-51764/51765/51766): only `CRLF . CRLF` ends a message, and
//! only a CRLF starts a new line for dot-unstuffing. A bare LF or bare CR never ends a
//! message; by default it dooms the message (refused after its real end), or, with
//! [`BodyPolicy::normalize_bare_lf`], a bare LF is rewritten to CRLF inside the content.
//!
//! Body bytes leave as `Bytes` slices of the receive buffer, split only around stuffed
//! dots: one chunk per read in the common case, never a copy per byte or per line.

use bytes::{Buf, Bytes, BytesMut};

use crate::line::{find_cr_or_lf, find_lf};

/// What the body reader enforces.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BodyPolicy {
    /// Longest line on the wire, CRLF and stuffed dot included (RFC 5321 §4.5.3.1.6).
    pub max_line: usize,
    /// Largest body in octets after unstuffing (RFC 1870).
    pub max_size: u64,
    /// Rewrite a bare LF to CRLF instead of refusing the message. The rewritten LF still
    /// does not start a line for end-of-data or unstuffing purposes.
    pub normalize_bare_lf: bool,
}

/// Why a body was refused; it is discarded up to its end, then answered.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum BodyFault {
    /// The body grew past the size limit (552 5.3.4, RFC 1870 §6).
    TooBig,
    /// A line exceeded the text line limit (RFC 5321 §4.5.3.1.6).
    LineTooLong,
    /// An LF not preceded by CR (RFC 5321 §2.3.8, SMTP smuggling).
    BareLf,
    /// A CR not followed by LF (RFC 5321 §2.3.8, SMTP smuggling).
    BareCr,
}

impl BodyFault {
    /// Faults in the order that decides the reply when several occurred.
    const BY_PRIORITY: [BodyFault; 4] = [
        BodyFault::BareLf,
        BodyFault::BareCr,
        BodyFault::TooBig,
        BodyFault::LineTooLong,
    ];

    fn index(self) -> usize {
        match self {
            BodyFault::BareLf => 0,
            BodyFault::BareCr => 1,
            BodyFault::TooBig => 2,
            BodyFault::LineTooLong => 3,
        }
    }
}

/// Where the reader stands relative to the line structure.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Scan {
    /// Just after CRLF (or at the start of the body).
    LineStart,
    /// A dot at the start of a line was read and withheld.
    Dot,
    /// `.` then CR at the start of a line were read and withheld.
    DotCr,
    /// Inside a line.
    MidLine,
    /// Inside a line, the last byte read was CR (already delivered).
    Cr,
}

/// Progress of [`DotReader::read`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BodyProgress {
    /// The buffer was consumed entirely; more input is needed.
    NeedMore,
    /// `CRLF . CRLF` was consumed; what follows in the buffer is the next command.
    Complete,
}

/// Reads one DATA body: unstuffs dots, finds the end, enforces the [`BodyPolicy`].
///
/// Faults are collected as a set and the size is counted even after the body is doomed,
/// so the verdict at the end does not depend on how the input was split into reads.
#[derive(Clone, Debug)]
pub struct DotReader {
    policy: BodyPolicy,
    scan: Scan,
    line_len: usize,
    size: u64,
    faults: [bool; 4],
}

impl DotReader {
    /// A reader at the start of a body (just after the 354 reply).
    pub fn new(policy: BodyPolicy) -> Self {
        DotReader {
            policy,
            scan: Scan::LineStart,
            line_len: 0,
            size: 0,
            faults: [false; 4],
        }
    }

    /// The fault that decides the reply, if the body is doomed: a bare line ending first
    /// (it may be an attack), then size, then line length.
    pub fn fault(&self) -> Option<BodyFault> {
        BodyFault::BY_PRIORITY
            .into_iter()
            .find(|f| self.faults.get(f.index()).copied().unwrap_or(false))
    }

    /// Body octets seen so far (after unstuffing and normalization), delivered or not.
    pub fn size(&self) -> u64 {
        self.size
    }

    fn set_fault(&mut self, fault: BodyFault) {
        if let Some(slot) = self.faults.get_mut(fault.index()) {
            *slot = true;
        }
    }

    /// Hands `bytes` to `sink` unless the body is doomed or would grow too big.
    fn deliver(&mut self, bytes: Bytes, sink: &mut impl FnMut(Bytes)) {
        if bytes.is_empty() {
            return;
        }
        self.size = self.size.saturating_add(bytes.len() as u64);
        if self.size > self.policy.max_size {
            self.set_fault(BodyFault::TooBig);
        }
        if self.fault().is_none() {
            sink(bytes);
        }
    }

    fn grow_line(&mut self, by: usize) {
        self.line_len = self.line_len.saturating_add(by);
        if self.line_len > self.policy.max_line {
            self.set_fault(BodyFault::LineTooLong);
        }
    }

    /// Consumes body bytes from the front of `buf`, handing content to `sink` as slices
    /// of it, until the buffer is empty or the end of data was consumed.
    pub fn read(&mut self, buf: &mut BytesMut, sink: &mut impl FnMut(Bytes)) -> BodyProgress {
        // `at` is the scan position; content before it that is not yet delivered starts
        // at the front of `buf` (withheld or skipped bytes are removed as they are seen).
        let mut at = 0usize;
        loop {
            let Some(&byte) = buf.get(at) else {
                let run = buf.split_to(at.min(buf.len())).freeze();
                self.deliver(run, sink);
                return BodyProgress::NeedMore;
            };
            match self.scan {
                Scan::LineStart => {
                    if byte == b'.' {
                        let run = buf.split_to(at.min(buf.len())).freeze();
                        self.deliver(run, sink);
                        buf.advance(1.min(buf.len()));
                        at = 0;
                        self.line_len = 1;
                        self.scan = Scan::Dot;
                    } else {
                        self.line_len = 0;
                        self.scan = Scan::MidLine;
                    }
                }
                Scan::Dot => {
                    if byte == b'\r' {
                        buf.advance(1.min(buf.len()));
                        self.scan = Scan::DotCr;
                    } else {
                        // The dot was stuffing: it is gone, the line goes on.
                        self.scan = Scan::MidLine;
                    }
                }
                Scan::DotCr => {
                    if byte == b'\n' {
                        buf.advance(1.min(buf.len()));
                        return BodyProgress::Complete;
                    }
                    // `.` CR then something else: the CR is bare; the message is doomed.
                    self.set_fault(BodyFault::BareCr);
                    self.scan = Scan::MidLine;
                }
                Scan::Cr => {
                    if byte == b'\n' {
                        self.grow_line(1);
                        at += 1;
                        self.scan = Scan::LineStart;
                    } else {
                        self.set_fault(BodyFault::BareCr);
                        self.scan = Scan::MidLine;
                    }
                }
                Scan::MidLine => {
                    let rest = buf.get(at..).unwrap_or_default();
                    let Some(found) = find_cr_or_lf(rest) else {
                        self.grow_line(rest.len());
                        at = buf.len();
                        continue;
                    };
                    let stop = at + found;
                    match buf.get(stop) {
                        Some(b'\r') => match buf.get(stop + 1) {
                            Some(b'\n') => {
                                self.grow_line(found + 2);
                                at = stop + 2;
                                self.scan = Scan::LineStart;
                            }
                            Some(_) => {
                                self.grow_line(found + 1);
                                self.set_fault(BodyFault::BareCr);
                                at = stop + 1;
                            }
                            None => {
                                self.grow_line(found + 1);
                                at = stop + 1;
                                self.scan = Scan::Cr;
                            }
                        },
                        _ => {
                            // A bare LF (a CRLF would have been found at its CR).
                            if self.policy.normalize_bare_lf {
                                self.grow_line(found + 1);
                                let run = buf.split_to(stop.min(buf.len())).freeze();
                                self.deliver(run, sink);
                                buf.advance(1.min(buf.len()));
                                self.deliver(Bytes::from_static(b"\r\n"), sink);
                                at = 0;
                                self.line_len = 0;
                            } else {
                                self.set_fault(BodyFault::BareLf);
                                self.grow_line(found + 1);
                                at = stop + 1;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Dot-stuffs a body for sending after DATA (RFC 5321 §4.5.2), chunk by chunk.
///
/// A dot is doubled at the start of every line. Lines start after any LF, even a bare
/// one, so that a lenient receiver can never see an end of data inside the content.
#[derive(Clone, Debug)]
pub struct DotStuffer {
    at_line_start: bool,
    after_cr: bool,
    /// Nothing was pushed yet, or the content so far ends with CRLF.
    after_crlf: bool,
}

impl Default for DotStuffer {
    fn default() -> Self {
        DotStuffer {
            at_line_start: true,
            after_cr: false,
            after_crlf: true,
        }
    }
}

impl DotStuffer {
    /// A stuffer at the start of a body.
    pub fn new() -> Self {
        DotStuffer::default()
    }

    /// Appends the stuffed form of `chunk` to `out`.
    pub fn push(&mut self, mut chunk: &[u8], out: &mut BytesMut) {
        out.reserve(chunk.len().saturating_add(8));
        while !chunk.is_empty() {
            if self.at_line_start && chunk.first() == Some(&b'.') {
                out.extend_from_slice(b".");
            }
            let (line, rest) = match find_lf(chunk) {
                Some(at) => chunk.split_at((at + 1).min(chunk.len())),
                None => (chunk, &[][..]),
            };
            out.extend_from_slice(line);
            let before_last = match line.len() {
                0 => None,
                1 => Some(self.after_cr),
                n => Some(line.get(n - 2) == Some(&b'\r')),
            };
            self.at_line_start = line.last() == Some(&b'\n');
            self.after_crlf = self.at_line_start && before_last == Some(true);
            self.after_cr = line.last() == Some(&b'\r');
            chunk = rest;
        }
    }

    /// Ends the body: adds a CRLF if the content did not end with one, then `.` CRLF.
    pub fn finish(&mut self, out: &mut BytesMut) {
        // The end marker must follow a real CRLF (a bare LF does not end a line).
        if !self.after_crlf {
            out.extend_from_slice(if self.after_cr { b"\n" } else { b"\r\n" });
        }
        out.extend_from_slice(b".\r\n");
        *self = DotStuffer::new();
    }
}

/// Dot-stuffs a whole body and appends the end-of-data marker.
pub fn stuff(body: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(body.len().saturating_add(8));
    let mut stuffer = DotStuffer::new();
    stuffer.push(body, &mut out);
    stuffer.finish(&mut out);
    out.freeze()
}

/// Counts down the octets of one BDAT chunk (RFC 3030 §2): exactly `size` octets, no
/// unstuffing, no line rules.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BdatChunk {
    remaining: u64,
}

impl BdatChunk {
    /// A chunk of `size` octets still to read.
    pub fn new(size: u64) -> Self {
        BdatChunk { remaining: size }
    }

    /// Octets of the chunk not yet read.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Takes the chunk's next octets from the front of `buf` (none when it is complete).
    pub fn take(&mut self, buf: &mut BytesMut) -> Option<Bytes> {
        if self.remaining == 0 || buf.is_empty() {
            return None;
        }
        let n = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        self.remaining -= n as u64;
        Some(buf.split_to(n).freeze())
    }

    /// All octets were read.
    pub fn is_complete(&self) -> bool {
        self.remaining == 0
    }
}

#[cfg(test)]
mod tests;
