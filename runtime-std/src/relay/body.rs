//! A spooled message streamed to a client session: never held whole in memory, with
//! every bare LF sent as CRLF (RFC 5321 §2.3.8). The session needs the exact size up
//! front (SIZE, and BDAT announces it: RFC 3030 §2) and whether any octet is 8-bit
//! (RFC 6152), so the file is read twice: once to count, once to send.

use std::io::{self, Read, Seek, SeekFrom};

use bytes::Bytes;
use smtp_proto::client::OutboundBody;

use crate::spool::{QueuedBody, Spool};

/// Octets read from the file per chunk.
const CHUNK: usize = 64 * 1024;

/// The content of one queued message, positioned for sending.
#[derive(Debug)]
pub(crate) struct SpooledBody {
    file: QueuedBody,
    after_cr: bool,
    buf: Vec<u8>,
}

impl SpooledBody {
    /// Open message `msgid`, measure it and return it with the session's body
    /// declaration.
    ///
    /// # Errors
    /// The message cannot be read.
    pub(crate) fn open(spool: &Spool, msgid: &str) -> io::Result<(SpooledBody, OutboundBody)> {
        let mut body = SpooledBody {
            file: spool.read_message(msgid)?,
            after_cr: false,
            buf: vec![0u8; CHUNK],
        };
        let mut size: u64 = 0;
        let mut eight_bit = false;
        while let Some(chunk) = body.next_chunk()? {
            size = size.saturating_add(chunk.len() as u64);
            eight_bit |= chunk.iter().any(|&b| b >= 0x80);
        }
        body.file.seek(SeekFrom::Start(0))?;
        body.after_cr = false;
        Ok((body, OutboundBody::Streamed { size, eight_bit }))
    }

    /// The next piece of the content with CRLF line ends; `None` at the end.
    ///
    /// # Errors
    /// Reading the file failed.
    pub(crate) fn next_chunk(&mut self) -> io::Result<Option<Bytes>> {
        let n = loop {
            match self.file.read(&mut self.buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(n.saturating_add(n / 16));
        to_crlf(
            self.buf.get(..n).unwrap_or_default(),
            &mut self.after_cr,
            &mut out,
        );
        Ok(Some(Bytes::from(out)))
    }
}

/// Copy `input` to `out`, putting a CR before every LF that has none; `after_cr` carries
/// the last octet's state across chunks.
fn to_crlf(input: &[u8], after_cr: &mut bool, out: &mut Vec<u8>) {
    for &byte in input {
        if byte == b'\n' && !*after_cr {
            out.push(b'\r');
        }
        out.push(byte);
        *after_cr = byte == b'\r';
    }
}

#[cfg(test)]
mod tests {
    use super::to_crlf;

    #[test]
    fn bare_lf_gets_cr_and_crlf_stays_across_chunk_boundaries() {
        let mut after_cr = false;
        let mut out = Vec::new();
        to_crlf(b"a\nb\r", &mut after_cr, &mut out);
        to_crlf(b"\nc\n", &mut after_cr, &mut out);
        assert_eq!(out, b"a\r\nb\r\nc\r\n");
    }
}
