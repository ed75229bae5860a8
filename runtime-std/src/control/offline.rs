//! The offline directory, as OpenSMTPD's: when `sendmail` cannot reach the daemon (no
//! control socket, or nobody listening on it), it leaves the prepared submission there
//! as one file ([`mta_core::control::encode_offline`]) owned by the calling user, and the
//! daemon enqueues it at its next start or scan (`server::offline`).
//!
//! Where it is: `offline/` next to the queue directory, in the queue's parent (for root
//! `/var/spool/smtpd/offline`, OpenSMTPD's place; otherwise `offline/` in the state
//! directory). Not inside the queue: the queue is private to the daemon's account
//! (0700, given to that account at start), so users could not reach a directory in it.
//! `sendmail` finds the queue as it finds the socket: the environment variable
//! `SMTPD_QUEUE` names it (needed when smtpd.conf says `queue path`), else the default
//! queue of the user running it (`queue/` in the state directory of
//! [`default_state_dir`](crate::config_load::default_state_dir)) when their own daemon
//! made an offline directory beside it, else the system daemon's ([`SYSTEM_QUEUE`]).
//!
//! The directory is the daemon's: owned by its account, mode 3777 (like OpenSMTPD's
//! 1777, sticky so that users cannot remove each other's files, plus set-group-id so
//! that every file gets the daemon's group). A file is written under a temporary name
//! starting with `.`, made readable by that group only (0640), synced, then renamed to
//! its final name, so the daemon never sees a partial file and other users cannot read
//! it.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use mta_core::control::{encode_offline, OfflineMessage};

/// The environment variable naming the queue directory for `sendmail`.
pub const QUEUE_ENV: &str = "SMTPD_QUEUE";

/// The offline directory's name.
pub const OFFLINE_DIR: &str = "offline";

/// The mode of the offline directory: set-group-id, sticky, writable by all.
pub const OFFLINE_DIR_MODE: u32 = 0o3777;

/// The mode of an offline file: its owner and the daemon's group read it.
pub const OFFLINE_FILE_MODE: u32 = 0o640;

/// Prefix of a file still being written (the daemon skips it).
pub const TEMP_PREFIX: &str = ".";

/// The offline directory of the queue at `queue_dir`: `offline/` beside it.
pub fn offline_dir(queue_dir: &Path) -> PathBuf {
    queue_dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(queue_dir)
        .join(OFFLINE_DIR)
}

/// The system daemon's queue (root's default state directory), whose offline directory
/// is OpenSMTPD's `/var/spool/smtpd/offline`.
pub const SYSTEM_QUEUE: &str = "/var/spool/smtpd/queue";

/// The queue directory `sendmail` assumes: `$SMTPD_QUEUE`, else, as for the socket
/// ([`super::default_socket_path`]), the system queue for root, and for another user
/// `queue/` in their default state directory when their own daemon made an offline
/// directory beside it, else the system queue when the system daemon made one.
pub fn queue_dir_for_client(env: Option<OsString>) -> PathBuf {
    if let Some(given) = env.filter(|v| !v.is_empty()) {
        return PathBuf::from(given);
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let own = crate::config_load::default_state_dir().join("queue");
    super::own_or_system(euid, own, Path::new(SYSTEM_QUEUE), &|q| {
        offline_dir(q).is_dir()
    })
}

/// Whether a failure to connect to the control socket means that no daemon runs (the
/// socket does not exist, or nobody listens on it): the case for the offline directory.
pub fn daemon_absent(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
    )
}

/// sysexits(3) `EX_TEMPFAIL`: the caller may try again later.
const EX_TEMPFAIL: u8 = 75;

/// `sendmail` found no daemon at `socket` (`error`): leave `submission` of `user` in
/// the offline directory of [`QUEUE_ENV`]'s queue and succeed without a word, as
/// OpenSMTPD does; when that fails too, say both and exit `EX_TEMPFAIL` (the message is
/// not sent).
pub fn submit(
    socket: &Path,
    error: &io::Error,
    user: String,
    sender_is_user: bool,
    submission: mta_core::control::Submission,
) -> std::process::ExitCode {
    let dir = offline_dir(&queue_dir_for_client(std::env::var_os(QUEUE_ENV)));
    let message = OfflineMessage {
        user,
        sender_is_user,
        submission,
    };
    match leave_offline(&dir, &message) {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "sendmail: {}; cannot leave the message in {} either: {e}; message not sent",
                super::smtpctl::connect_error(socket, error),
                dir.display()
            );
            std::process::ExitCode::from(EX_TEMPFAIL)
        }
    }
}

/// A name no other file in the directory has: the time, then 64 random bits.
fn fresh_name(prefix: &str) -> String {
    let mut random = [0u8; 8];
    // A failure leaves zeros: the pid and time still tell names apart, and create_new
    // refuses a name taken.
    let _ = getrandom::fill(&mut random);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{prefix}{}.{:x}.{:016x}",
        now.as_secs(),
        std::process::id(),
        u64::from_le_bytes(random)
    )
}

/// Leaves `message` in the offline directory `dir` as one file: written under a
/// temporary name, synced, renamed into place, the directory synced. Returns the file's
/// path.
///
/// # Errors
/// When the message cannot be encoded, the directory does not exist or refuses the
/// file, or a write fails (the temporary file is then removed).
pub fn leave_offline(dir: &Path, message: &OfflineMessage) -> io::Result<PathBuf> {
    let bytes = encode_offline(message)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let meta = std::fs::metadata(dir)?;
    if !meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} is not a directory", dir.display()),
        ));
    }
    let temp = dir.join(fresh_name(TEMP_PREFIX));
    let result = write_synced(&temp, &bytes).and_then(|()| {
        let path = dir.join(fresh_name(""));
        std::fs::rename(&temp, &path)?;
        // The rename is the commit; an unreadable directory only costs its sync.
        if let Ok(d) = File::open(dir) {
            d.sync_all()?;
        }
        Ok(path)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Creates `path` (a new file, not following a link), writes `bytes`, sets
/// [`OFFLINE_FILE_MODE`] whatever the umask, and syncs it.
fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(OFFLINE_FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(OFFLINE_FILE_MODE))?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mta_core::control::{decode_offline, Submission};
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn the_directory_is_beside_the_queue() {
        assert_eq!(
            offline_dir(Path::new("/var/spool/smtpd/queue")),
            Path::new("/var/spool/smtpd/offline")
        );
        assert_eq!(offline_dir(Path::new("queue")), Path::new("queue/offline"));
        assert_eq!(
            queue_dir_for_client(Some("/q".into())),
            Path::new("/q").to_path_buf()
        );
    }

    #[test]
    fn a_user_without_a_daemon_of_their_own_uses_the_systems() {
        let own = || PathBuf::from("/home/u/.local/state/smtpd/queue");
        let system = Path::new(SYSTEM_QUEUE);
        let only_system = |p: &Path| p == system;
        let both = |_: &Path| true;
        let neither = |_: &Path| false;
        use super::super::own_or_system;
        assert_eq!(own_or_system(0, own(), system, &both), system);
        assert_eq!(own_or_system(1000, own(), system, &both), own());
        assert_eq!(own_or_system(1000, own(), system, &only_system), system);
        assert_eq!(own_or_system(1000, own(), system, &neither), own());
    }

    #[test]
    fn a_file_is_left_whole_and_private() {
        let dir = std::env::temp_dir().join(format!("offline-client-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let message = OfflineMessage {
            user: "alice".to_owned(),
            sender_is_user: false,
            submission: Submission {
                sender: "a@b".to_owned(),
                recipients: vec!["c@d".to_owned()],
                message: b"Subject: x\n\nbody\n".to_vec(),
            },
        };
        let path = leave_offline(&dir, &message).unwrap();
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file is left");
        assert!(!path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(TEMP_PREFIX));
        assert_eq!(
            std::fs::metadata(&path).unwrap().mode() & 0o777,
            OFFLINE_FILE_MODE
        );
        assert_eq!(decode_offline(&std::fs::read(&path).unwrap()), Ok(message));
        assert!(leave_offline(
            &dir.join("none"),
            &decode_offline(&std::fs::read(&path).unwrap()).unwrap()
        )
        .is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
