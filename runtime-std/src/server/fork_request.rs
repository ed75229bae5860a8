//! The packets between the daemon and its fork server ([`super::fork_server`]): one
//! request or reply per `SOCK_SEQPACKET` packet, fields separated by NUL (no field holds
//! one: they are C strings for the system anyway, and a password travels in hex).

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use mta_core::engine::LocalMethodSpec;
use mta_core::expand::FileLookup;

use super::delivery_worker::LocalJob;

/// Largest request or reply packet.
pub const MAX_PACKET: usize = 64 * 1024;

/// Largest `.forward` read through the fork server: its text must fit in one reply.
pub const MAX_FORWARD: u64 = 60 * 1024;

/// What the daemon asks the fork server.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Request {
    /// Run one local delivery as its user.
    Deliver(LocalJob),
    /// Check a system account's password against the shadow file.
    CheckPassword {
        /// The account.
        user: String,
        /// The password the client gave.
        password: Vec<u8>,
    },
    /// Read the `.forward` file in a directory as its user. Only a file of that name is
    /// ever read, so that the daemon's account cannot use the root server to read
    /// another file.
    ReadForward {
        /// The user's id: the file must be theirs.
        uid: u32,
        /// The user's group.
        gid: u32,
        /// The user's home directory.
        directory: String,
    },
    /// Remove the daemon's control socket (the path the server was started with) at a
    /// clean exit: after the privilege drop the daemon may not unlink it itself.
    RemoveControlSocket,
}

/// The fork server's answer to one [`Request`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Reply {
    /// The delivery succeeded.
    Delivered,
    /// The delivery failed for good.
    PermFail(String),
    /// Try again later (any request).
    TempFail(String),
    /// The password is right.
    Yes,
    /// The password is wrong, or the account unknown or locked.
    No,
    /// The file's text.
    Content(String),
    /// No such file, or one to ignore.
    Absent,
}

/// `L NUL id NUL msgid NUL sender NUL recipient NUL user NUL method NUL hostname`,
/// `A NUL id NUL user NUL hex(password)`, `F NUL id NUL uid NUL gid NUL directory` or
/// `S NUL id`; `None`
/// when it would not fit in a packet.
pub fn encode_request(id: u64, request: &Request) -> Option<Vec<u8>> {
    let fields = match request {
        Request::Deliver(job) => {
            let (user, method) = LocalMethodSpec {
                user: job.user.clone(),
                method: job.method.clone(),
            }
            .format();
            vec![
                "L".to_owned(),
                id.to_string(),
                job.msgid.clone(),
                job.sender.clone(),
                job.recipient.clone(),
                user,
                method,
                job.hostname.clone(),
            ]
        }
        Request::CheckPassword { user, password } => vec![
            "A".to_owned(),
            id.to_string(),
            user.clone(),
            password.iter().map(|b| format!("{b:02x}")).collect(),
        ],
        Request::ReadForward {
            uid,
            gid,
            directory,
        } => vec![
            "F".to_owned(),
            id.to_string(),
            uid.to_string(),
            gid.to_string(),
            directory.clone(),
        ],
        Request::RemoveControlSocket => vec!["S".to_owned(), id.to_string()],
    };
    let packet = fields.join("\0").into_bytes();
    (packet.len() <= MAX_PACKET).then_some(packet)
}

/// The inverse of [`encode_request`]; `None` for a malformed packet.
pub fn decode_request(packet: &[u8]) -> Option<(u64, Request)> {
    let text = std::str::from_utf8(packet).ok()?;
    let mut f = text.split('\0');
    let kind = f.next()?;
    let id = f.next()?.parse().ok()?;
    let request = match kind {
        "L" => {
            let (msgid, sender, recipient, user, method, hostname) = (
                f.next()?,
                f.next()?,
                f.next()?,
                f.next()?,
                f.next()?,
                f.next()?,
            );
            let spec = LocalMethodSpec::parse(user, method).ok()?;
            Request::Deliver(LocalJob {
                msgid: msgid.to_owned(),
                sender: sender.to_owned(),
                recipient: recipient.to_owned(),
                user: spec.user,
                method: spec.method,
                hostname: hostname.to_owned(),
            })
        }
        "A" => Request::CheckPassword {
            user: f.next()?.to_owned(),
            password: from_hex(f.next()?)?,
        },
        "F" => Request::ReadForward {
            uid: f.next()?.parse().ok()?,
            gid: f.next()?.parse().ok()?,
            directory: f.next()?.to_owned(),
        },
        "S" => Request::RemoveControlSocket,
        _ => return None,
    };
    f.next().is_none().then_some((id, request))
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}

/// `id NUL kind NUL text`, kind `D`, `T`, `P`, `Y`, `N`, `C` or `A`; texts of failures
/// are cut at 4 KiB, a file's content at what fits in a packet.
pub fn encode_reply(id: u64, reply: &Reply) -> Vec<u8> {
    let (kind, text) = match reply {
        Reply::Delivered => ("D", ""),
        Reply::TempFail(t) => ("T", t.as_str()),
        Reply::PermFail(t) => ("P", t.as_str()),
        Reply::Yes => ("Y", ""),
        Reply::No => ("N", ""),
        Reply::Content(t) => ("C", t.as_str()),
        Reply::Absent => ("A", ""),
    };
    let limit = if kind == "C" { MAX_PACKET - 64 } else { 4096 };
    let mut end = text.len().min(limit);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{id}\0{kind}\0{}", text.get(..end).unwrap_or_default()).into_bytes()
}

/// The inverse of [`encode_reply`]; `None` for a malformed packet.
pub fn decode_reply(packet: &[u8]) -> Option<(u64, Reply)> {
    let text = String::from_utf8_lossy(packet);
    let mut f = text.splitn(3, '\0');
    let id = f.next()?.parse().ok()?;
    let kind = f.next()?;
    let text = f.next().unwrap_or_default().to_owned();
    let reply = match kind {
        "D" => Reply::Delivered,
        "T" => Reply::TempFail(text),
        "P" => Reply::PermFail(text),
        "Y" => Reply::Yes,
        "N" => Reply::No,
        "C" => Reply::Content(text),
        "A" => Reply::Absent,
        _ => return None,
    };
    Some((id, reply))
}

/// Read a `.forward` at `path` for the user `owner` (forward(5)): a file that does not
/// exist, cannot be read, is not a regular file, belongs to someone else or is writable
/// by group or others is [`FileLookup::Absent`]; at most [`MAX_FORWARD`] bytes are read.
pub fn read_forward(path: &Path, owner: u32) -> FileLookup {
    read_unless_denied(path, owner).unwrap_or(FileLookup::Absent)
}

/// [`read_forward`], but `None` when this process may not look at the file (a home
/// directory closed to it), so that the caller can ask someone who may.
pub fn read_unless_denied(path: &Path, owner: u32) -> Option<FileLookup> {
    use std::io::ErrorKind::{NotFound, PermissionDenied};
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == PermissionDenied => return None,
        Err(e) if e.kind() == NotFound => return Some(FileLookup::Absent),
        Err(_) => return Some(FileLookup::TempFail),
    };
    if meta.uid() != owner || meta.mode() & 0o022 != 0 || !meta.is_file() {
        return Some(FileLookup::Absent);
    }
    let mut text = String::new();
    match std::fs::File::open(path).and_then(|f| f.take(MAX_FORWARD).read_to_string(&mut text)) {
        Ok(_) => Some(FileLookup::Content(text)),
        Err(e) if e.kind() == PermissionDenied => None,
        Err(e) if e.kind() == NotFound => Some(FileLookup::Absent),
        Err(_) => Some(FileLookup::TempFail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mta_core::expand::{LocalMethod, LocalUser};

    #[test]
    fn requests_and_replies_round_trip() {
        let job = LocalJob {
            msgid: "0a1b2c3d".into(),
            sender: String::new(),
            recipient: "a+tag@example.org".into(),
            user: Some(LocalUser {
                name: "a".into(),
                uid: 1000,
                gid: 1000,
                directory: "/home/a:b".into(),
            }),
            method: LocalMethod::Lmtp {
                dest: "/run/lmtp".into(),
                rcpt: "a".into(),
            },
            hostname: "mx.example.org".into(),
        };
        for request in [
            Request::Deliver(job),
            Request::CheckPassword {
                user: "alice".into(),
                password: b"p\xffw:\0rd".to_vec(),
            },
            Request::ReadForward {
                uid: 1000,
                gid: 100,
                directory: "/home/a b".into(),
            },
            Request::RemoveControlSocket,
        ] {
            let packet = encode_request(7, &request).expect("fits");
            assert_eq!(decode_request(&packet), Some((7, request)));
        }
        for reply in [
            Reply::Delivered,
            Reply::TempFail("later".into()),
            Reply::PermFail("no: never".into()),
            Reply::Yes,
            Reply::No,
            Reply::Content("alice@example.org\n| /bin/true\n".into()),
            Reply::Absent,
        ] {
            assert_eq!(decode_reply(&encode_reply(9, &reply)), Some((9, reply)));
        }
    }

    #[test]
    fn malformed_packets_are_ignored() {
        assert_eq!(decode_request(b"A\x003\x00alice\x00zz"), None);
        assert_eq!(decode_request(b"A\x003\x00alice\x00abc"), None);
        assert_eq!(decode_request(b"F\x003\x00x\x000\x00/p"), None);
        assert_eq!(decode_request(b"F\x003\x001\x000\x00/p\x00extra"), None);
        assert_eq!(decode_request(b"Q\x003"), None);
        assert_eq!(decode_reply(b"3\x00Z\x00"), None);
    }

    #[test]
    fn a_long_content_is_cut_to_fit_a_packet() {
        let text = "é".repeat(MAX_PACKET);
        let packet = encode_reply(1, &Reply::Content(text));
        assert!(packet.len() <= MAX_PACKET);
        assert!(matches!(
            decode_reply(&packet),
            Some((1, Reply::Content(_)))
        ));
    }

    #[test]
    fn forward_files_follow_the_ownership_rules() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("smtpd-forward-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join(".forward");
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        assert_eq!(read_forward(&path, me), FileLookup::Absent);
        std::fs::write(&path, "bob@example.org\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("mode");
        assert_eq!(
            read_forward(&path, me),
            FileLookup::Content("bob@example.org\n".into())
        );
        assert_eq!(read_forward(&path, me.wrapping_add(1)), FileLookup::Absent);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o664)).expect("mode");
        assert_eq!(read_forward(&path, me), FileLookup::Absent);
        assert_eq!(read_forward(&dir, me), FileLookup::Absent);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
