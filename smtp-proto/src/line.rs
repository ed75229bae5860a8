//! A bounded CRLF line framer over a `BytesMut` receive buffer.
//!
//! The framer remembers how far it has already searched, so feeding a line in many small
//! reads costs O(new bytes) and never rescans. A line longer than the limit is never
//! buffered: its bytes are dropped as they arrive and the framer reports it once, when
//! its end is finally seen (RFC 5321 §4.5.3.1.4 and §4.2.4: "500 Line too long").
//!
//! Command lines end at LF; a CR just before it is stripped. Accepting a bare LF here is
//! harmless (the client waits for our reply before it may send a body) and it is how
//! many interactive clients behave. Bodies follow the strict rules of [`crate::data`].

use bytes::{Buf, Bytes, BytesMut};

/// What the framer found at the front of the buffer.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Framed {
    /// One complete line, without its line ending, copied out of the receive buffer (so
    /// values taken from it do not pin the buffer's allocation).
    Line(Bytes),
    /// A line exceeded the limit; it was dropped entirely, up to and including its LF.
    TooLong,
}

/// Splits a byte stream into lines of at most `max` octets (line ending included).
#[derive(Clone, Default, Debug)]
pub struct LineFramer {
    /// Bytes at the front of the buffer already searched for LF without finding one.
    scanned: usize,
    /// The current line is too long; its bytes are dropped until its LF.
    discarding: bool,
}

impl LineFramer {
    /// A framer at the start of a line.
    pub fn new() -> Self {
        LineFramer::default()
    }

    /// Forgets the search progress; call when the buffer was changed behind the framer's
    /// back (emptied after STARTTLS, or consumed by a body reader).
    pub fn reset(&mut self) {
        self.scanned = 0;
        self.discarding = false;
    }

    /// The length (line ending included) of the complete line at the front of `buf`,
    /// without consuming it, or `None` when no complete line of at most `max` octets is
    /// there yet. Over-long partial input is dropped from `buf` as a side effect.
    pub fn peek(&mut self, buf: &mut BytesMut, max: usize) -> Option<usize> {
        if self.discarding {
            match find_lf(buf) {
                Some(end) => {
                    // The over-long line ends here; leave its tail (through the LF) for
                    // `next_line` to drop and report.
                    return Some(end.saturating_add(1));
                }
                None => {
                    buf.clear();
                    return None;
                }
            }
        }
        let from = self.scanned.min(buf.len());
        match buf.get(from..).and_then(find_lf) {
            Some(at) => Some(from.saturating_add(at).saturating_add(1)),
            None => {
                if buf.len() >= max {
                    self.discarding = true;
                    self.scanned = 0;
                    buf.clear();
                } else {
                    self.scanned = buf.len();
                }
                None
            }
        }
    }

    /// The complete line at the front of `buf`, if any, consumed from it.
    pub fn next_line(&mut self, buf: &mut BytesMut, max: usize) -> Option<Framed> {
        let total = self.peek(buf, max)?;
        self.scanned = 0;
        if self.discarding || total > max {
            self.discarding = false;
            buf.advance(total.min(buf.len()));
            return Some(Framed::TooLong);
        }
        let mut len = total.saturating_sub(1);
        if len > 0 && buf.get(len - 1) == Some(&b'\r') {
            len -= 1;
        }
        let line = Bytes::copy_from_slice(buf.get(..len).unwrap_or_default());
        buf.advance(total.min(buf.len()));
        Some(Framed::Line(line))
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// A word with the high bit set in the lowest byte of `word` equal to zero (bits above
/// the lowest zero byte may be spurious, so only the lowest set bit is meaningful).
#[inline(always)]
fn zero_bytes(word: u64) -> u64 {
    word.wrapping_sub(ONES) & !word & HIGHS
}

/// Position of the first byte for which `hit` finds a match, scanning eight bytes at a
/// time; `hit(word)` returns a mask as [`zero_bytes`] does.
#[inline(always)]
fn find_by_word(hay: &[u8], hit: impl Fn(u64) -> u64, byte: impl Fn(u8) -> bool) -> Option<usize> {
    let mut words = hay.chunks_exact(8);
    let mut base = 0usize;
    for chunk in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        let mask = hit(u64::from_le_bytes(bytes));
        if mask != 0 {
            return Some(base + (mask.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    words
        .remainder()
        .iter()
        .position(|b| byte(*b))
        .map(|at| base + at)
}

/// Position of the first LF in `hay`.
pub(crate) fn find_lf(hay: &[u8]) -> Option<usize> {
    find_by_word(hay, |w| zero_bytes(w ^ (ONES * 0x0a)), |b| b == b'\n')
}

/// Position of the first CR or LF in `hay`: the DATA scanner's hot loop.
pub(crate) fn find_cr_or_lf(hay: &[u8]) -> Option<usize> {
    find_by_word(
        hay,
        |w| zero_bytes(w ^ (ONES * 0x0d)) | zero_bytes(w ^ (ONES * 0x0a)),
        |b| b == b'\r' || b == b'\n',
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[&[u8]], max: usize) -> Vec<Framed> {
        let mut framer = LineFramer::new();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for part in input {
            buf.extend_from_slice(part);
            while let Some(f) = framer.next_line(&mut buf, max) {
                out.push(f);
            }
        }
        out
    }

    fn line(s: &str) -> Framed {
        Framed::Line(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn splits_crlf_and_bare_lf_lines() {
        let got = lines(&[b"EHLO a\r\nNOOP\nQU", b"IT\r", b"\n"], 100);
        assert_eq!(got, vec![line("EHLO a"), line("NOOP"), line("QUIT")]);
    }

    #[test]
    fn over_long_line_is_dropped_and_reported_once_at_its_end() {
        let long = vec![b'x'; 30];
        let got = lines(&[&long, &long, b"x\r\nNOOP\r\n"], 10);
        assert_eq!(got, vec![Framed::TooLong, line("NOOP")]);
        // A line of exactly the limit, CRLF included, is accepted.
        assert_eq!(lines(&[b"12345678\r\n"], 10), vec![line("12345678")]);
        assert_eq!(lines(&[b"123456789\r\n"], 10), vec![Framed::TooLong]);
    }

    #[test]
    fn peek_does_not_consume() {
        let mut framer = LineFramer::new();
        let mut buf = BytesMut::from(&b"RCPT TO:<a@b>\r\nDATA\r\n"[..]);
        assert_eq!(framer.peek(&mut buf, 100), Some(15));
        assert_eq!(framer.peek(&mut buf, 100), Some(15));
        assert_eq!(framer.next_line(&mut buf, 100), Some(line("RCPT TO:<a@b>")));
        assert_eq!(framer.next_line(&mut buf, 100), Some(line("DATA")));
        assert!(buf.is_empty());
    }

    #[test]
    fn word_search_matches_naive_search() {
        let mut hay = vec![b'a'; 40];
        for at in 0..40 {
            for byte in [b'\r', b'\n', 0x8d, 0x0c, 0x0e] {
                let mut h = hay.clone();
                h[at] = byte;
                let naive = h.iter().position(|b| *b == b'\r' || *b == b'\n');
                assert_eq!(find_cr_or_lf(&h), naive, "at {at} byte {byte}");
                assert_eq!(find_lf(&h), h.iter().position(|b| *b == b'\n'));
            }
        }
        hay[3] = 0x0b;
        assert_eq!(find_cr_or_lf(&hay), None);
    }
}
