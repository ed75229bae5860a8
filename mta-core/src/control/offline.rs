//! The file `sendmail` leaves in the offline directory when the daemon cannot be reached
//! (as OpenSMTPD's enqueuer does), and the daemon enqueues later: a prepared local
//! submission with the name of the user who wrote it.
//!
//! The format is text up to the message, so an administrator can read it, and versioned:
//!
//! ```text
//! smtpd-offline 1
//! user alice
//! sender user <alice@host.example>
//! recipient <bob@example.org>
//! recipient <carol@example.org>
//! message 1234
//! <exactly 1234 bytes of message, then the end of the file>
//! ```
//!
//! `sender user` says the envelope sender was made from the user's name (no `-f`, no
//! `From:`); `sender given` that it came from the invocation or the message. Addresses
//! are written between angle brackets (they never hold one, see
//! [`Request::Enqueue`](super::Request::Enqueue)), so the null sender is `<>`. Every
//! header line is bounded ([`MAX_OFFLINE_LINE`]), and so is the number of recipients
//! ([`MAX_OFFLINE_RECIPIENTS`]); decoding never reads past the buffer it is given.

use super::Submission;

/// The first word of every offline file.
pub const OFFLINE_MAGIC: &str = "smtpd-offline";

/// The format version written by [`encode_offline`]; [`decode_offline`] refuses others.
pub const OFFLINE_VERSION: u32 = 1;

/// Longest header line, line feed included.
pub const MAX_OFFLINE_LINE: usize = 4096;

/// Most recipients one offline file may name.
pub const MAX_OFFLINE_RECIPIENTS: usize = 10_000;

/// A submission kept in the offline directory.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct OfflineMessage {
    /// The login name of the user who submitted it (the daemon checks it against the
    /// file's owner).
    pub user: String,
    /// True when the envelope sender was made from `user` (no `-f`, no `From:`), so
    /// that the daemon makes it again from the owner's name should they differ.
    pub sender_is_user: bool,
    /// The envelope and the message, as sendmail prepared them.
    pub submission: Submission,
}

/// Why bytes are not an offline file, or a message cannot be written as one.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OfflineError {
    /// The file does not start with `smtpd-offline VERSION`.
    #[error("not an offline message file")]
    Magic,
    /// A version this code does not read.
    #[error("offline file version {0} is not supported (this is version {OFFLINE_VERSION})")]
    Version(u32),
    /// A header line that is too long, not UTF-8, unknown, repeated or malformed.
    #[error("offline file line {line}: {what}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        what: &'static str,
    },
    /// A field missing from the header (`user`, `sender`, a `recipient`, `message`).
    #[error("offline file lacks its {0} line")]
    Missing(&'static str),
    /// The message is shorter or longer than its `message` line says.
    #[error("offline file message is {found} bytes, its header says {declared}")]
    Length {
        /// Bytes declared.
        declared: u64,
        /// Bytes present.
        found: u64,
    },
    /// A value that cannot be written (a line break, an angle bracket in an address, a
    /// space in a user name, an empty user or recipient list, too many recipients).
    #[error("cannot write {0} in an offline file")]
    Unwritable(&'static str),
}

/// Whether `address` can be written between angle brackets on one line.
fn address_ok(address: &str) -> bool {
    address.len() < MAX_OFFLINE_LINE - 32
        && !address.contains(['<', '>'])
        && !address.chars().any(char::is_control)
}

/// Whether `user` can be written as one word.
fn user_ok(user: &str) -> bool {
    !user.is_empty()
        && user.len() < MAX_OFFLINE_LINE - 32
        && !user.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// The bytes of the offline file for `message`.
///
/// # Errors
/// [`OfflineError::Unwritable`] for a value the format cannot hold.
pub fn encode_offline(message: &OfflineMessage) -> Result<Vec<u8>, OfflineError> {
    let sub = &message.submission;
    if !user_ok(&message.user) {
        return Err(OfflineError::Unwritable("this user name"));
    }
    if !address_ok(&sub.sender) {
        return Err(OfflineError::Unwritable("this sender"));
    }
    if sub.recipients.is_empty() || sub.recipients.len() > MAX_OFFLINE_RECIPIENTS {
        return Err(OfflineError::Unwritable("this number of recipients"));
    }
    if sub
        .recipients
        .iter()
        .any(|r| r.is_empty() || !address_ok(r))
    {
        return Err(OfflineError::Unwritable("this recipient"));
    }
    let origin = if message.sender_is_user {
        "user"
    } else {
        "given"
    };
    let mut header = format!(
        "{OFFLINE_MAGIC} {OFFLINE_VERSION}\nuser {}\nsender {origin} <{}>\n",
        message.user, sub.sender
    );
    for r in &sub.recipients {
        header.push_str("recipient <");
        header.push_str(r);
        header.push_str(">\n");
    }
    header.push_str(&format!("message {}\n", sub.message.len()));
    let mut out = header.into_bytes();
    out.extend_from_slice(&sub.message);
    Ok(out)
}

/// The header being read: fields seen so far.
#[derive(Default)]
struct Fields {
    user: Option<String>,
    sender: Option<(bool, String)>,
    recipients: Vec<String>,
}

/// The address between the angle brackets of `value`.
fn bracketed(value: &str) -> Option<&str> {
    value
        .strip_prefix('<')?
        .strip_suffix('>')
        .filter(|a| address_ok(a))
}

/// Reads an offline file.
///
/// # Errors
/// [`OfflineError`] naming what is wrong; never panics, whatever the bytes.
pub fn decode_offline(bytes: &[u8]) -> Result<OfflineMessage, OfflineError> {
    let mut rest = bytes;
    let mut fields = Fields::default();
    let mut number = 0usize;
    loop {
        number = number.saturating_add(1);
        let bad = |what| OfflineError::Line { line: number, what };
        let end = rest.iter().take(MAX_OFFLINE_LINE).position(|&b| b == b'\n');
        let Some(end) = end else {
            if number == 1 {
                return Err(OfflineError::Magic);
            }
            return Err(if rest.len() >= MAX_OFFLINE_LINE {
                bad("too long")
            } else {
                OfflineError::Missing("message")
            });
        };
        let line = rest.get(..end).unwrap_or_default();
        rest = rest.get(end.saturating_add(1)..).unwrap_or_default();
        let Ok(line) = std::str::from_utf8(line) else {
            return Err(if number == 1 {
                OfflineError::Magic
            } else {
                bad("not UTF-8")
            });
        };
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        if number == 1 {
            if key != OFFLINE_MAGIC {
                return Err(OfflineError::Magic);
            }
            let version: u32 = value.parse().map_err(|_| OfflineError::Magic)?;
            if version != OFFLINE_VERSION {
                return Err(OfflineError::Version(version));
            }
            continue;
        }
        match key {
            "user" if fields.user.is_none() && user_ok(value) => {
                fields.user = Some(value.to_owned());
            }
            "sender" if fields.sender.is_none() => {
                let (origin, address) = value.split_once(' ').ok_or(bad("malformed sender"))?;
                let from_user = match origin {
                    "user" => true,
                    "given" => false,
                    _ => return Err(bad("unknown sender origin")),
                };
                let address = bracketed(address).ok_or(bad("malformed sender"))?;
                fields.sender = Some((from_user, address.to_owned()));
            }
            "recipient" => {
                if fields.recipients.len() >= MAX_OFFLINE_RECIPIENTS {
                    return Err(bad("too many recipients"));
                }
                let address = bracketed(value)
                    .filter(|a| !a.is_empty())
                    .ok_or(bad("malformed recipient"))?;
                fields.recipients.push(address.to_owned());
            }
            "message" => {
                let declared: u64 = value.parse().map_err(|_| bad("malformed size"))?;
                let found = rest.len() as u64;
                if declared != found {
                    return Err(OfflineError::Length { declared, found });
                }
                return finish(fields, rest);
            }
            "user" | "sender" => return Err(bad("repeated or malformed field")),
            _ => return Err(bad("unknown field")),
        }
    }
}

/// The message of a complete header and its body.
fn finish(fields: Fields, body: &[u8]) -> Result<OfflineMessage, OfflineError> {
    let user = fields.user.ok_or(OfflineError::Missing("user"))?;
    let (sender_is_user, sender) = fields.sender.ok_or(OfflineError::Missing("sender"))?;
    if fields.recipients.is_empty() {
        return Err(OfflineError::Missing("recipient"));
    }
    Ok(OfflineMessage {
        user,
        sender_is_user,
        submission: Submission {
            sender,
            recipients: fields.recipients,
            message: body.to_vec(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{Arbitrary, Gen, QuickCheck};

    /// A string of letters, digits, punctuation, spaces and a few non-ASCII characters,
    /// the kind of thing addresses and names hold.
    fn word(g: &mut Gen, spaces: bool) -> String {
        let alphabet: Vec<char> = "abcXYZ019.@-_+=%!é中 <>\n\t".chars().collect();
        let len = usize::arbitrary(g) % 24;
        (0..len)
            .map(|_| *g.choose(&alphabet).unwrap_or(&'a'))
            .filter(|c| spaces || !c.is_whitespace())
            .collect()
    }

    impl Arbitrary for OfflineMessage {
        fn arbitrary(g: &mut Gen) -> Self {
            let clean = |s: String| s.replace(['<', '>', '\n', '\t'], "");
            let count = 1 + usize::arbitrary(g) % 5;
            OfflineMessage {
                user: format!("u{}", clean(word(g, false))),
                sender_is_user: bool::arbitrary(g),
                submission: Submission {
                    sender: clean(word(g, true)),
                    recipients: (0..count)
                        .map(|_| format!("r{}", clean(word(g, true))))
                        .collect(),
                    message: Vec::arbitrary(g),
                },
            }
        }
    }

    fn sample() -> OfflineMessage {
        OfflineMessage {
            user: "alice".to_owned(),
            sender_is_user: true,
            submission: Submission {
                sender: "alice@host.example".to_owned(),
                recipients: vec!["bob@example.org".to_owned(), "carol@x".to_owned()],
                message: b"Subject: hi\n\nmessage 3\nrecipient <x>\n".to_vec(),
            },
        }
    }

    #[test]
    fn the_format_is_the_documented_one() {
        let bytes = encode_offline(&sample()).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with(
            "smtpd-offline 1\nuser alice\nsender user <alice@host.example>\n\
             recipient <bob@example.org>\nrecipient <carol@x>\nmessage 37\nSubject: hi\n"
        ));
    }

    #[test]
    fn round_trip_keeps_the_null_sender_and_binary_bodies() {
        let mut m = sample();
        m.sender_is_user = false;
        m.submission.sender = String::new();
        m.submission.message = (0..=255u8).collect();
        assert_eq!(decode_offline(&encode_offline(&m).unwrap()), Ok(m));
    }

    #[test]
    fn unwritable_values_are_refused() {
        let mut m = sample();
        m.submission
            .recipients
            .push("a\nrecipient <evil>".to_owned());
        assert!(encode_offline(&m).is_err());
        let mut m = sample();
        m.user = "two words".to_owned();
        assert!(encode_offline(&m).is_err());
        let mut m = sample();
        m.submission.recipients.clear();
        assert!(encode_offline(&m).is_err());
        let mut m = sample();
        m.submission.sender = "<x>".to_owned();
        assert!(encode_offline(&m).is_err());
    }

    #[test]
    fn damaged_files_say_what_is_wrong() {
        let good = encode_offline(&sample()).unwrap();
        assert_eq!(decode_offline(b""), Err(OfflineError::Magic));
        assert_eq!(decode_offline(b"From: x\n\nbody"), Err(OfflineError::Magic));
        assert_eq!(
            decode_offline(b"smtpd-offline 9\n"),
            Err(OfflineError::Version(9))
        );
        let truncated = good.get(..good.len() - 1).unwrap();
        assert!(matches!(
            decode_offline(truncated),
            Err(OfflineError::Length { .. })
        ));
        let mut longer = good.clone();
        longer.push(b'x');
        assert!(matches!(
            decode_offline(&longer),
            Err(OfflineError::Length { .. })
        ));
        let header_only = b"smtpd-offline 1\nuser a\nsender user <a@b>\n";
        assert_eq!(
            decode_offline(header_only),
            Err(OfflineError::Missing("message"))
        );
        let no_rcpt = b"smtpd-offline 1\nuser a\nsender user <a@b>\nmessage 0\n";
        assert_eq!(
            decode_offline(no_rcpt),
            Err(OfflineError::Missing("recipient"))
        );
        let twice = b"smtpd-offline 1\nuser a\nuser b\n";
        assert!(matches!(
            decode_offline(twice),
            Err(OfflineError::Line { line: 3, .. })
        ));
        let mut long = b"smtpd-offline 1\nuser ".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_OFFLINE_LINE * 2));
        assert!(matches!(
            decode_offline(&long),
            Err(OfflineError::Line { line: 2, .. })
        ));
    }

    #[test]
    fn round_trip_property() {
        fn prop(m: OfflineMessage) -> bool {
            match encode_offline(&m) {
                Ok(bytes) => decode_offline(&bytes) == Ok(m),
                Err(_) => false,
            }
        }
        QuickCheck::new()
            .tests(500)
            .quickcheck(prop as fn(OfflineMessage) -> bool);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        fn prop(bytes: Vec<u8>, cut: usize, m: OfflineMessage) -> bool {
            let _ = decode_offline(&bytes);
            // A real file cut anywhere, or with bytes changed, is refused or read, never
            // a panic; cut before its message, it is always refused.
            let good = encode_offline(&m).unwrap_or_default();
            let at = cut % good.len().max(1);
            let _ = decode_offline(good.get(..at).unwrap_or_default());
            let mut changed = good.clone();
            if let Some(b) = changed.get_mut(at) {
                *b = bytes.first().copied().unwrap_or(b'\n');
            }
            let _ = decode_offline(&changed);
            good.is_empty() || decode_offline(good.get(..at).unwrap_or_default()).is_err()
        }
        QuickCheck::new()
            .tests(1000)
            .quickcheck(prop as fn(Vec<u8>, usize, OfflineMessage) -> bool);
    }
}
