//! Line endings for local delivery: the queue holds a message as it came off the wire
//! (CRLF lines), while mailbox files and delivery programs expect Unix lines (LF), as
//! OpenSMTPD hands them over. LMTP, a wire protocol again, gets CRLF back.

use std::io::{self, Read};

/// A reader that turns every CRLF of the inner reader into LF; a CR not followed by LF
/// is kept.
#[derive(Debug)]
pub struct UnixLines<R> {
    inner: R,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
    /// A CR not yet known to precede an LF.
    held_cr: bool,
    eof: bool,
}

impl<R: Read> UnixLines<R> {
    /// Wrap `inner`.
    pub fn new(inner: R) -> Self {
        UnixLines {
            inner,
            buf: vec![0; 64 * 1024].into_boxed_slice(),
            pos: 0,
            len: 0,
            held_cr: false,
            eof: false,
        }
    }
}

impl<R: Read> Read for UnixLines<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut written = 0;
        while written < out.len() {
            if self.pos == self.len {
                if written > 0 {
                    break;
                }
                if self.eof {
                    if std::mem::take(&mut self.held_cr) {
                        if let Some(slot) = out.get_mut(written) {
                            *slot = b'\r';
                        }
                        written += 1;
                        continue;
                    }
                    break;
                }
                match self.inner.read(&mut self.buf) {
                    Ok(0) => self.eof = true,
                    Ok(n) => (self.pos, self.len) = (0, n),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
                continue;
            }
            let byte = self.buf.get(self.pos).copied().unwrap_or(0);
            self.pos += 1;
            let emit = if std::mem::take(&mut self.held_cr) && byte != b'\n' {
                // A lone CR: write it, then look at this byte again.
                self.pos -= 1;
                b'\r'
            } else if byte == b'\r' {
                self.held_cr = true;
                continue;
            } else {
                byte
            };
            if let Some(slot) = out.get_mut(written) {
                *slot = emit;
            }
            written += 1;
        }
        Ok(written)
    }
}
