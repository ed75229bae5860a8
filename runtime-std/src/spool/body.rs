//! The message file of layout 3, `queue/m.<msgid>`: one or more units, each a message,
//! then the envelope records it was committed with, then a fixed-size footer naming the
//! message and giving both lengths.
//!
//! ```text
//! <message bytes>
//! <envelope records as committed>          records::encode, possibly none
//! \nsmtpd-spool 3 <msgid, padded with spaces to 64> <20 digits: message length>
//!     <20 digits: records length>\n         (one line: the footer, FOOTER_LEN bytes)
//! ... the next unit, if any
//! ```
//!
//! One file holds what one commit makes durable, so a commit costs one fsync. Messages
//! committed together from memory share one file ([`super::GroupCommitter::submit_buffered`]),
//! which is then linked under each of their names: a batch costs one fsync whatever its
//! size. Readers find their unit by walking the footers back from the end and see only
//! its message ([`QueuedBody`]); later envelope updates live in `e.<msgid>`.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileExt;

use super::MAX_ID_LEN;

/// What starts a footer, before the message id.
const FOOTER_TAG: &[u8] = b"\nsmtpd-spool 3 ";

/// Digits of each length in the footer.
const LENGTH_DIGITS: usize = 20;

/// The footer's length in bytes.
pub(crate) const FOOTER_LEN: usize = FOOTER_TAG.len() + MAX_ID_LEN + 2 * (1 + LENGTH_DIGITS) + 1;

/// The footer closing the unit of message `msgid` (a valid spool id), of `message_len`
/// bytes and `records_len` bytes of records.
pub(crate) fn footer(msgid: &str, message_len: u64, records_len: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(FOOTER_LEN);
    out.extend_from_slice(FOOTER_TAG);
    out.extend_from_slice(
        format!(
            "{msgid:<MAX_ID_LEN$} {message_len:0LENGTH_DIGITS$} {records_len:0LENGTH_DIGITS$}\n"
        )
        .as_bytes(),
    );
    out
}

/// Append `records` and the footer of message `msgid` (whose `message_len` bytes are
/// written already) to `out`; the unit's length past the message.
pub(crate) fn close_unit<W: Write>(
    out: &mut W,
    msgid: &str,
    message_len: u64,
    records: &[u8],
) -> io::Result<u64> {
    out.write_all(records)?;
    out.write_all(&footer(msgid, message_len, records.len() as u64))?;
    Ok((records.len() + FOOTER_LEN) as u64)
}

/// The bytes of a message file holding `message` committed with no records, for tests
/// that build spool files by hand.
#[cfg(test)]
pub(crate) fn file_bytes(msgid: &str, message: &[u8]) -> Vec<u8> {
    let mut out = message.to_vec();
    let _ = close_unit(
        &mut out,
        msgid,
        message.len() as u64,
        &super::records::encode(&[]),
    );
    out
}

fn damaged(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("message file: {what}"))
}

/// One footer read back: the message id, the message length, the records length.
pub(crate) fn parse_footer(footer: &[u8]) -> io::Result<(&str, u64, u64)> {
    let fields = footer
        .strip_prefix(FOOTER_TAG)
        .and_then(|rest| rest.strip_suffix(b"\n"))
        .filter(|rest| rest.len() == MAX_ID_LEN + 2 * (1 + LENGTH_DIGITS))
        .ok_or_else(|| damaged("no footer"))?;
    let (id, lengths) = fields.split_at(MAX_ID_LEN);
    let msgid = std::str::from_utf8(id)
        .ok()
        .map(|id| id.trim_end_matches(' '))
        .filter(|id| super::check_id(id).is_ok())
        .ok_or_else(|| damaged("no message id in the footer"))?;
    let number = |digits: Option<&[u8]>| -> io::Result<u64> {
        digits
            .filter(|d| d.len() == LENGTH_DIGITS && d.iter().all(u8::is_ascii_digit))
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| damaged("no lengths in the footer"))
    };
    let message_len = number(lengths.get(1..=LENGTH_DIGITS))?;
    let records_len = number(lengths.get(LENGTH_DIGITS + 2..))?;
    if lengths.first() != Some(&b' ') || lengths.get(LENGTH_DIGITS + 1) != Some(&b' ') {
        return Err(damaged("no lengths in the footer"));
    }
    Ok((msgid, message_len, records_len))
}

/// Where the unit of one message lies in its file.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Unit {
    /// Offset of its first message byte.
    pub start: u64,
    /// Its message's length.
    pub message_len: u64,
    /// Its records' length (they follow the message).
    pub records_len: u64,
}

/// The unit of message `msgid` in `file`, found by walking the footers back from the end.
///
/// # Errors
/// `InvalidData` when a footer is damaged or no unit is `msgid`'s.
pub(crate) fn locate(file: &File, msgid: &str) -> io::Result<Unit> {
    let mut end = file.metadata()?.len();
    let mut footer = [0u8; FOOTER_LEN];
    while end > 0 {
        let at = end
            .checked_sub(FOOTER_LEN as u64)
            .ok_or_else(|| damaged("shorter than its footer"))?;
        file.read_exact_at(&mut footer, at)?;
        let (id, message_len, records_len) = parse_footer(&footer)?;
        let start = message_len
            .checked_add(records_len)
            .and_then(|n| at.checked_sub(n))
            .ok_or_else(|| damaged("lengths beyond the file"))?;
        if id == msgid {
            return Ok(Unit {
                start,
                message_len,
                records_len,
            });
        }
        end = start;
    }
    Err(damaged(&format!("no unit of message {msgid}")))
}

/// A queued message opened for reading: the message bytes of its unit and nothing else,
/// read from the first byte (positioned reads, so a descriptor passed to another process
/// reads the same whatever its shared offset).
#[derive(Debug)]
pub struct QueuedBody {
    file: File,
    start: u64,
    len: u64,
    /// The length of the records that follow the message in its unit.
    records_len: u64,
    pos: u64,
}

impl QueuedBody {
    /// The message `msgid` in the message file `file` (layout 3).
    ///
    /// # Errors
    /// The file cannot be read or holds no valid unit of `msgid` (`InvalidData`).
    pub fn open(file: File, msgid: &str) -> io::Result<QueuedBody> {
        let unit = locate(&file, msgid)?;
        Ok(QueuedBody {
            file,
            start: unit.start,
            len: unit.message_len,
            records_len: unit.records_len,
            pos: 0,
        })
    }

    /// The envelope records the message was committed with.
    pub(crate) fn committed_records(&self) -> io::Result<Vec<u8>> {
        let len = usize::try_from(self.records_len).map_err(|_| damaged("records too large"))?;
        let mut records = vec![0u8; len];
        self.file
            .read_exact_at(&mut records, self.start.saturating_add(self.len))?;
        Ok(records)
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
        let n = self
            .file
            .read_at(buf, self.start.saturating_add(self.pos))?;
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

    fn scratch(tag: &str, bytes: &[u8]) -> File {
        let path = std::env::temp_dir().join(format!("spool-body-{tag}-{}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        let file = File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        file
    }

    #[test]
    fn footer_has_its_fixed_length_and_reads_back() {
        for (msgid, message, records) in [("a", 0u64, 0u64), ("m-1.x_y", 1234, 400)] {
            let footer = footer(msgid, message, records);
            assert_eq!(footer.len(), FOOTER_LEN);
            assert_eq!(parse_footer(&footer).unwrap(), (msgid, message, records));
        }
        let longest = "a".repeat(MAX_ID_LEN);
        assert_eq!(footer(&longest, 1, 2).len(), FOOTER_LEN);
    }

    #[test]
    fn a_queued_body_reads_and_seeks_within_its_message_only() {
        let file = scratch("one", &file_bytes("m1", b"Subject: x\r\n\r\nhello\r\n"));
        let mut body = QueuedBody::open(file, "m1").unwrap();
        assert_eq!(body.len(), 21);
        let mut text = String::new();
        body.read_to_string(&mut text).unwrap();
        assert_eq!(text, "Subject: x\r\n\r\nhello\r\n");
        assert_eq!(body.seek(SeekFrom::End(-7)).unwrap(), 14);
        let mut tail = Vec::new();
        body.read_to_end(&mut tail).unwrap();
        assert_eq!(tail, b"hello\r\n");
        assert!(body.seek(SeekFrom::Current(-100)).is_err());
    }

    #[test]
    fn units_sharing_a_file_are_found_by_their_message_id() {
        let mut bytes = Vec::new();
        for (msgid, text, records) in [("a", "first", "ra"), ("b", "", ""), ("c", "third", "rc")] {
            bytes.extend_from_slice(text.as_bytes());
            close_unit(&mut bytes, msgid, text.len() as u64, records.as_bytes()).unwrap();
        }
        let file = scratch("shared", &bytes);
        for (msgid, text, records) in [("a", "first", "ra"), ("b", "", ""), ("c", "third", "rc")] {
            let mut body = QueuedBody::open(file.try_clone().unwrap(), msgid).unwrap();
            assert_eq!(body.committed_records().unwrap(), records.as_bytes());
            let mut read = String::new();
            body.read_to_string(&mut read).unwrap();
            assert_eq!(read, text);
        }
        let missing = locate(&file, "d").unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn damaged_footers_are_invalid_data() {
        let good = footer("m", 10, 5);
        let mut bad_digit = good.clone();
        bad_digit[FOOTER_LEN - 3] = b'x';
        let mut no_newline = good.clone();
        no_newline[FOOTER_LEN - 1] = b' ';
        let mut bad_id = good.clone();
        bad_id[FOOTER_TAG.len()] = b'/';
        for footer in [&bad_digit, &no_newline, &bad_id, &good[1..].to_vec()] {
            let err = parse_footer(footer).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{footer:?}");
        }
        // Lengths pointing before the file's start.
        let file = scratch("short", &footer("m", 10, 5));
        assert_eq!(
            locate(&file, "m").unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }

    quickcheck! {
        fn parse_never_panics(bytes: Vec<u8>) -> bool {
            let _ = parse_footer(&bytes);
            true
        }

        fn footer_round_trips(message: u64, records: u64, id_len: u8) -> bool {
            let msgid = "x".repeat(usize::from(id_len) % MAX_ID_LEN + 1);
            parse_footer(&footer(&msgid, message, records)).ok()
                == Some((msgid.as_str(), message, records))
        }
    }
}
