//! The envelope file of a queued message: every envelope record of the message in one
//! file, `queue/e.<msgid>`, rewritten whole (temporary file, fsync, rename) on each update
//! or removal. Its appearance is the commit marker of the message.
//!
//! Format (the records themselves are opaque bytes):
//!
//! ```text
//! smtpd-envelopes 2\n
//! <evpid> <length>\n<length bytes>\n      one per envelope
//! ```

use std::io;

/// The first line of every envelope file.
const MAGIC: &[u8] = b"smtpd-envelopes 2\n";

/// The largest record accepted when reading an envelope file back.
const MAX_RECORD: usize = 16 * 1024 * 1024;

/// Encode `(evpid, record)` pairs into the bytes of an envelope file.
pub(crate) fn encode(envelopes: &[(String, Vec<u8>)]) -> Vec<u8> {
    let size = envelopes
        .iter()
        .map(|(id, r)| id.len() + r.len() + 24)
        .sum::<usize>();
    let mut out = Vec::with_capacity(MAGIC.len() + size);
    out.extend_from_slice(MAGIC);
    for (evpid, record) in envelopes {
        out.extend_from_slice(evpid.as_bytes());
        out.extend_from_slice(format!(" {}\n", record.len()).as_bytes());
        out.extend_from_slice(record);
        out.push(b'\n');
    }
    out
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("envelope file: {what}"))
}

/// Decode the bytes of an envelope file, sorted by evpid; any damage is `InvalidData`.
pub(crate) fn decode(bytes: &[u8]) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut rest = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| invalid("unknown format"))?;
    let mut envelopes = Vec::new();
    while !rest.is_empty() {
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| invalid("truncated record header"))?;
        let header = std::str::from_utf8(rest.get(..end).unwrap_or_default())
            .map_err(|_| invalid("record header is not text"))?;
        let (evpid, len) = header
            .split_once(' ')
            .ok_or_else(|| invalid("malformed record header"))?;
        super::check_id(evpid).map_err(|_| invalid("bad envelope id"))?;
        let len: usize = len.parse().map_err(|_| invalid("bad record length"))?;
        if len > MAX_RECORD {
            return Err(invalid("record too long"));
        }
        let body_start = end.saturating_add(1);
        let body_end = body_start
            .checked_add(len)
            .ok_or_else(|| invalid("bad record length"))?;
        let record = rest
            .get(body_start..body_end)
            .ok_or_else(|| invalid("truncated record"))?;
        if rest.get(body_end) != Some(&b'\n') {
            return Err(invalid("record not terminated"));
        }
        envelopes.push((evpid.to_owned(), record.to_vec()));
        rest = rest.get(body_end.saturating_add(1)..).unwrap_or_default();
    }
    envelopes.sort();
    Ok(envelopes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_whatever_their_bytes() {
        let envelopes = vec![
            ("a1".to_owned(), b"x\ny 12\n\n".to_vec()),
            ("b2".to_owned(), Vec::new()),
            ("c3".to_owned(), vec![0, 255, b'\n']),
        ];
        assert_eq!(decode(&encode(&envelopes)).unwrap(), envelopes);
        assert_eq!(decode(&encode(&[])).unwrap(), Vec::new());
    }

    #[test]
    fn every_truncation_is_refused_or_a_whole_prefix() {
        let bytes = encode(&[
            ("a1".to_owned(), b"first".to_vec()),
            ("b2".to_owned(), b"second".to_vec()),
        ]);
        for cut in 0..bytes.len() {
            let prefix = bytes.get(..cut).unwrap();
            if let Ok(found) = decode(prefix) {
                assert!(found.len() < 2, "cut at {cut} decoded everything");
                assert!(prefix.ends_with(b"\n"));
            }
        }
        assert!(decode(b"smtpd-envelopes 2\n../x 1\na\n").is_err());
        assert!(decode(b"smtpd-envelopes 2\na 99999999999999999999\n").is_err());
        assert!(decode(b"other\n").is_err());
    }
}
