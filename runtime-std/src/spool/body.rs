//! The message file of layout 3, `queue/m.<msgid>`: the message, then the envelope
//! records it was committed with, then a fixed-size footer giving the message's length.
//!
//! ```text
//! <message bytes>
//! <envelope records as committed>            records::encode, possibly none
//! \nsmtpd-spool 3 <20-digit message length>\n  the footer, FOOTER_LEN bytes
//! ```
//!
//! One file holds what one commit makes durable, so a commit costs one fsync. Readers see
//! only the message ([`QueuedBody`]); later envelope updates live in `e.<msgid>`.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileExt;

/// What starts the footer, before the message length.
const FOOTER_TAG: &[u8] = b"\nsmtpd-spool 3 ";

/// Digits of the message length in the footer.
const LENGTH_DIGITS: usize = 20;

/// The footer's length in bytes.
pub(crate) const FOOTER_LEN: usize = FOOTER_TAG.len() + LENGTH_DIGITS + 1;

/// The footer closing a message of `message_len` bytes.
pub(crate) fn footer(message_len: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(FOOTER_LEN);
    out.extend_from_slice(FOOTER_TAG);
    out.extend_from_slice(format!("{message_len:0LENGTH_DIGITS$}\n").as_bytes());
    out
}

/// The bytes of a message file holding `message` committed with no records, for tests
/// that build spool files by hand.
#[cfg(test)]
pub(crate) fn file_bytes(message: &[u8]) -> Vec<u8> {
    let mut out = message.to_vec();
    out.extend_from_slice(&super::records::encode(&[]));
    out.extend_from_slice(&footer(message.len() as u64));
    out
}

fn damaged(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("message file: {what}"))
}

/// Where the parts of a message file of `file_len` bytes lie, from its `footer` bytes:
/// the message length, then the records' length.
pub(crate) fn parse_footer(footer: &[u8], file_len: u64) -> io::Result<(u64, u64)> {
    let digits = footer
        .strip_prefix(FOOTER_TAG)
        .and_then(|rest| rest.strip_suffix(b"\n"))
        .filter(|d| d.len() == LENGTH_DIGITS && d.iter().all(u8::is_ascii_digit))
        .ok_or_else(|| damaged("no footer"))?;
    let message_len: u64 = std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| damaged("message length out of range"))?;
    let records_len = file_len
        .checked_sub(FOOTER_LEN as u64)
        .and_then(|rest| rest.checked_sub(message_len))
        .ok_or_else(|| damaged("message length beyond the file"))?;
    Ok((message_len, records_len))
}

/// The parts of the message file `file`: message length, records length.
fn layout(file: &File) -> io::Result<(u64, u64)> {
    let file_len = file.metadata()?.len();
    let start = file_len
        .checked_sub(FOOTER_LEN as u64)
        .ok_or_else(|| damaged("shorter than its footer"))?;
    let mut footer = [0u8; FOOTER_LEN];
    file.read_exact_at(&mut footer, start)?;
    parse_footer(&footer, file_len)
}

/// The envelope records the message in `file` was committed with.
pub(crate) fn committed_records(file: &File) -> io::Result<Vec<u8>> {
    let (message_len, records_len) = layout(file)?;
    let len = usize::try_from(records_len).map_err(|_| damaged("records too large"))?;
    let mut records = vec![0u8; len];
    file.read_exact_at(&mut records, message_len)?;
    Ok(records)
}

/// A queued message opened for reading: the message bytes of its file and nothing else,
/// read from the first byte (positioned reads, so a descriptor passed to another process
/// reads the same whatever its shared offset).
#[derive(Debug)]
pub struct QueuedBody {
    file: File,
    len: u64,
    pos: u64,
}

impl QueuedBody {
    /// The message of the message file `file` (layout 3).
    ///
    /// # Errors
    /// The file cannot be read or has no valid footer (`InvalidData`).
    pub fn from_file(file: File) -> io::Result<QueuedBody> {
        let (len, _) = layout(&file)?;
        Ok(QueuedBody { file, len, pos: 0 })
    }

    /// The message's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Read for QueuedBody {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let Some(buf) = buf.get_mut(..want) else {
            return Ok(0);
        };
        if buf.is_empty() {
            return Ok(0);
        }
        let n = self.file.read_at(buf, self.pos)?;
        self.pos = self.pos.saturating_add(n as u64);
        Ok(n)
    }
}

impl Seek for QueuedBody {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(at) => Some(at),
            SeekFrom::End(delta) => self.len.checked_add_signed(delta),
            SeekFrom::Current(delta) => self.pos.checked_add_signed(delta),
        };
        let target = target.ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "seek before the message start")
        })?;
        self.pos = target;
        Ok(target)
    }
}

impl AsRawFd for QueuedBody {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::quickcheck;

    #[test]
    fn footer_has_its_fixed_length_and_reads_back() {
        for len in [0u64, 1, 1234, u64::MAX] {
            let footer = footer(len);
            assert_eq!(footer.len(), FOOTER_LEN);
            let file_len = len.checked_add(FOOTER_LEN as u64 + 7);
            if let Some(file_len) = file_len {
                assert_eq!(parse_footer(&footer, file_len).unwrap(), (len, 7));
            }
        }
    }

    #[test]
    fn a_queued_body_reads_and_seeks_within_the_message_only() {
        let path = std::env::temp_dir().join(format!("queued-body-{}", std::process::id()));
        std::fs::write(&path, file_bytes(b"Subject: x\r\n\r\nhello\r\n")).unwrap();
        let mut body = QueuedBody::from_file(File::open(&path).unwrap()).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(body.len(), 21);
        let mut text = String::new();
        body.read_to_string(&mut text).unwrap();
        assert_eq!(text, "Subject: x\r\n\r\nhello\r\n");
        assert_eq!(body.seek(SeekFrom::End(-7)).unwrap(), 14);
        let mut tail = Vec::new();
        body.read_to_end(&mut tail).unwrap();
        assert_eq!(tail, b"hello\r\n");
        assert!(body.seek(SeekFrom::Current(-100)).is_err());
        body.seek(SeekFrom::Start(0)).unwrap();
        let mut again = Vec::new();
        body.read_to_end(&mut again).unwrap();
        assert_eq!(again.len(), 21);
    }

    #[test]
    fn damaged_footers_are_invalid_data() {
        let good = footer(10);
        let mut bad_digit = good.clone();
        bad_digit[FOOTER_TAG.len() + 3] = b'x';
        let mut no_newline = good.clone();
        no_newline[FOOTER_LEN - 1] = b' ';
        for (footer, file_len) in [
            (&bad_digit, 100),
            (&no_newline, 100),
            (&good, 9 + FOOTER_LEN as u64),
            (&good[1..].to_vec(), 100),
        ] {
            let err = parse_footer(footer, file_len).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{footer:?}");
        }
    }

    quickcheck! {
        fn parse_never_panics(bytes: Vec<u8>, file_len: u64) -> bool {
            let _ = parse_footer(&bytes, file_len);
            true
        }

        fn footer_round_trips(len: u64, records: u32) -> bool {
            match len.checked_add(FOOTER_LEN as u64 + u64::from(records)) {
                Some(file_len) => {
                    parse_footer(&footer(len), file_len).ok() == Some((len, u64::from(records)))
                }
                None => true,
            }
        }
    }
}
