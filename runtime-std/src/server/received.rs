//! Counting the `Received:` headers of a message as its body streams by, for loop
//! detection (RFC 5321 §6.3): only the header section counts, up to the first empty line.

/// Longest header name prefix kept while a line's start spans two chunks.
const PREFIX: usize = 9;

/// A streaming counter of `Received:` header lines.
#[derive(Clone, Debug)]
pub struct ReceivedCounter {
    count: usize,
    /// Still inside the header section.
    in_header: bool,
    /// The first bytes of the current line, while fewer than [`PREFIX`] are known.
    line: Vec<u8>,
    /// The current line is already classified (or longer than the prefix).
    decided: bool,
}

impl Default for ReceivedCounter {
    fn default() -> Self {
        ReceivedCounter {
            count: 0,
            in_header: true,
            line: Vec::with_capacity(PREFIX),
            decided: false,
        }
    }
}

impl ReceivedCounter {
    /// Feed the next body bytes.
    pub fn feed(&mut self, chunk: &[u8]) {
        for &byte in chunk {
            if !self.in_header {
                return;
            }
            if byte == b'\n' {
                let blank = !self.decided && matches!(self.line.as_slice(), [] | [b'\r']);
                if blank {
                    self.in_header = false;
                }
                self.line.clear();
                self.decided = false;
                continue;
            }
            if self.decided {
                continue;
            }
            self.line.push(byte);
            if self.line.len() == PREFIX {
                if self.line.eq_ignore_ascii_case(b"received:") {
                    self.count = self.count.saturating_add(1);
                }
                self.decided = true;
            }
        }
    }

    /// `Received:` headers seen so far.
    pub fn count(&self) -> usize {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::ReceivedCounter;

    #[test]
    fn counts_header_lines_only_across_any_split() {
        let text = b"Received: a\r\nreceived: b\r\nSubject: x\r\n\r\nReceived: body\r\n";
        for cut in 0..text.len() {
            let mut c = ReceivedCounter::default();
            let (a, b) = text.split_at(cut);
            c.feed(a);
            c.feed(b);
            assert_eq!(c.count(), 2, "cut at {cut}");
        }
    }
}
