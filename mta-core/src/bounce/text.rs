//! Text helpers for reports: keeping caller-supplied strings 7-bit and on one line, and
//! finding the header section of a message.

/// Longest line a message may carry (RFC 5322 §2.1.1), without its CRLF.
pub(crate) const MAX_LINE: usize = 998;

/// `s` made safe for one 7-bit header or body line: line breaks and other controls become
/// spaces, non-ASCII characters `?`, and the result is cut at `max` bytes.
pub(crate) fn one_line_ascii(s: &str, max: usize) -> String {
    s.chars()
        .map(|c| match c {
            c if c.is_ascii_control() => ' ',
            c if !c.is_ascii() => '?',
            c => c,
        })
        .take(max)
        .collect()
}

/// The header section of a message (up to, not including, the empty line that ends it;
/// the whole input when there is none).
pub(crate) fn header_section(message: &[u8]) -> &[u8] {
    let mut start = 0;
    while start < message.len() {
        let rest = message.get(start..).unwrap_or_default();
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        let line = rest.get(..end).unwrap_or_default();
        if line == b"\n" || line == b"\r\n" {
            return message.get(..start).unwrap_or_default();
        }
        start += end;
    }
    message
}

/// True when `bytes` can travel as 7-bit MIME content (RFC 2045 §2.7): ASCII without NUL
/// and lines of at most [`MAX_LINE`] bytes.
pub(crate) fn is_7bit(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b != 0 && b < 0x80)
        && bytes
            .split(|&b| b == b'\n')
            .all(|l| l.len() <= MAX_LINE + 1)
}

/// Appends `bytes` to `out` with every line ending made CRLF and a final CRLF ensured.
/// With `force_ascii`, NUL and non-ASCII bytes become `?` and long lines are folded, so
/// even a broken header section can be returned as 7-bit text.
pub(crate) fn append_crlf_lines(out: &mut Vec<u8>, bytes: &[u8], force_ascii: bool) {
    if bytes.is_empty() {
        return;
    }
    let mut line_len = 0usize;
    let mut prev_cr = false;
    for &b in bytes {
        match b {
            b'\n' => {
                if !prev_cr {
                    out.extend_from_slice(b"\r\n");
                }
                line_len = 0;
                prev_cr = false;
                continue;
            }
            b'\r' => {
                out.extend_from_slice(b"\r\n");
                line_len = 0;
                prev_cr = true;
                continue;
            }
            _ => {}
        }
        prev_cr = false;
        if force_ascii && line_len >= MAX_LINE {
            out.extend_from_slice(b"\r\n ");
            line_len = 1;
        }
        let b = if force_ascii && (b == 0 || b >= 0x80) {
            b'?'
        } else {
            b
        };
        out.push(b);
        line_len += 1;
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
}

/// RFC 5321 §6.3 suggests a limit on `Received:` fields to detect loops; like common MTAs
/// we refuse a message that has more than this many.
pub const MAX_RECEIVED_HEADERS: usize = 100;

/// How many `Received:` fields the header section of `message` holds (field names are
/// case-insensitive, RFC 5322 §1.2.2; continuation lines are not fields). Compare with
/// [`MAX_RECEIVED_HEADERS`] to detect a mail loop (RFC 5321 §6.3).
pub fn count_received_headers(message: &[u8]) -> usize {
    header_section(message)
        .split(|&b| b == b'\n')
        .filter(|line| {
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                return false;
            };
            let name = line.get(..colon).unwrap_or_default();
            // Obsolete syntax allows blanks before the colon (RFC 5322 §4.5).
            let name = name.trim_ascii_end();
            name.eq_ignore_ascii_case(b"received")
        })
        .count()
}

/// True when `message` went through more than [`MAX_RECEIVED_HEADERS`] hops: a loop, to be
/// refused (554 5.4.6) rather than delivered again.
pub fn is_looping(message: &[u8]) -> bool {
    count_received_headers(message) > MAX_RECEIVED_HEADERS
}
