//! One scan of the offline directory: each file checked on its open descriptor, read,
//! decoded, handed to an enqueuer, then removed, set aside or kept (see
//! [`super`] for the rules).

use std::ffi::{CStr, CString, OsStr};
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::io::{AsRawFd, FromRawFd};
use std::path::{Path, PathBuf};

use mta_core::control::{decode_offline, OfflineMessage};

use crate::control::offline::TEMP_PREFIX;
use crate::control::sendmail::qualify;
use crate::delivery::user::{lookup_uid, UserLookup};
use crate::server::log::Log;

/// Prefix of a file set aside because it cannot be used (undecodable, a link, too large,
/// unreadable, an owner without an account).
pub const CORRUPT_PREFIX: &str = "corrupt-";

/// Prefix of a file set aside because the daemon refused its message for good (5xx).
pub const REFUSED_PREFIX: &str = "refused-";

/// Most files looked at in one scan; the rest wait for the next.
const MAX_PER_SCAN: usize = 10_000;

/// What the enqueuer made of one offline message.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Enqueued {
    /// Queued (`250`): the file goes.
    Accepted(String),
    /// Refused for good (`5xx`): the file is set aside.
    Refused(String),
    /// Not queued this time (`4xx`, no session): the file stays for the next scan.
    Failed(String),
}

/// What one scan did.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ScanCounts {
    /// Files whose message was queued and which were removed.
    pub enqueued: usize,
    /// Files renamed `corrupt-` or `refused-`.
    pub set_aside: usize,
    /// Files left for the next scan.
    pub kept: usize,
}

/// The scanner of one offline directory.
#[derive(Clone, Debug)]
pub struct OfflineScan {
    dir: PathBuf,
    max_size: u64,
    hostname: String,
}

/// A file ready to be enqueued, and how to recognise it when removing it.
struct Ready {
    message: OfflineMessage,
    dev: u64,
    ino: u64,
}

/// What a file turned out to be.
enum Taken {
    Ready(Box<Ready>),
    Aside(String),
    Keep(String),
    Gone,
}

/// Opens the directory `dir` itself, never a link to one.
pub(super) fn open_dir(dir: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir)
}

impl OfflineScan {
    /// A scanner of `dir` taking files of at most `max_size` bytes; `hostname` qualifies
    /// a sender made again from a file owner's name.
    pub fn new(dir: PathBuf, max_size: u64, hostname: String) -> OfflineScan {
        OfflineScan {
            dir,
            max_size,
            hostname,
        }
    }

    /// The directory scanned.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Scans the directory once: every file is checked and its message handed to
    /// `enqueue`, then removed (accepted), set aside (unusable or refused for good) or
    /// kept (any other failure), each with a log line.
    pub fn scan(
        &self,
        log: &Log,
        enqueue: &mut dyn FnMut(&OfflineMessage) -> Enqueued,
    ) -> ScanCounts {
        let mut counts = ScanCounts::default();
        let listed = open_dir(&self.dir).and_then(|d| Ok((d, std::fs::read_dir(&self.dir)?)));
        let (dir, entries) = match listed {
            Ok(found) => found,
            Err(e) => {
                log.warn(&format!("offline: cannot read {}: {e}", self.dir.display()));
                return counts;
            }
        };
        for entry in entries.take(MAX_PER_SCAN) {
            let Ok(entry) = entry else { continue };
            let name = entry.file_name();
            let bytes = name.as_bytes();
            let skip = [TEMP_PREFIX, CORRUPT_PREFIX, REFUSED_PREFIX]
                .iter()
                .any(|p| bytes.starts_with(p.as_bytes()));
            let Ok(c_name) = CString::new(bytes) else {
                continue;
            };
            if skip {
                continue;
            }
            let shown = name.to_string_lossy();
            match self.take(&dir, &c_name, log, &shown) {
                Taken::Gone => {}
                Taken::Keep(reason) => {
                    log.warn(&format!("offline: {shown} kept for later: {reason}"));
                    counts.kept += 1;
                }
                Taken::Aside(reason) => {
                    set_aside(&dir, &name, CORRUPT_PREFIX, &reason, log);
                    counts.set_aside += 1;
                }
                Taken::Ready(ready) => {
                    let user = ready.message.user.clone();
                    match enqueue(&ready.message) {
                        Enqueued::Accepted(reply) => {
                            log.info(&format!(
                                "offline: {shown} of user {user} enqueued: {reply}"
                            ));
                            remove(&dir, &c_name, &ready, log, &shown);
                            counts.enqueued += 1;
                        }
                        Enqueued::Refused(reason) => {
                            set_aside(&dir, &name, REFUSED_PREFIX, &reason, log);
                            counts.set_aside += 1;
                        }
                        Enqueued::Failed(reason) => {
                            log.warn(&format!("offline: {shown} kept for later: {reason}"));
                            counts.kept += 1;
                        }
                    }
                }
            }
        }
        counts
    }

    /// Opens, checks, reads and decodes the file `name` of `dir`.
    fn take(&self, dir: &File, name: &CStr, log: &Log, shown: &str) -> Taken {
        // A look before opening, so that no device or FIFO is ever opened; the checks on
        // the open descriptor below are the ones that count.
        match lstat_at(dir, name).map(|st| st.st_mode & libc::S_IFMT) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Taken::Gone,
            Err(e) => return Taken::Keep(format!("cannot stat: {e}")),
            Ok(kind) if kind == libc::S_IFLNK => {
                return Taken::Aside("a symbolic link (not followed)".to_owned())
            }
            Ok(kind) if kind != libc::S_IFREG => {
                return Taken::Aside("not a regular file".to_owned())
            }
            Ok(_) => {}
        }
        let flags =
            libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
        // SAFETY: openat with an open directory descriptor and a NUL-terminated name.
        let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags) };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOENT) => Taken::Gone,
                Some(libc::ELOOP) => Taken::Aside("a symbolic link (not followed)".to_owned()),
                Some(libc::EACCES) => Taken::Aside(
                    "the daemon may not read it (not mode 0640 in the directory's group)"
                        .to_owned(),
                ),
                _ => Taken::Keep(format!("cannot open: {e}")),
            };
        }
        // SAFETY: the descriptor was just opened and is owned by nothing else.
        let file = unsafe { File::from_raw_fd(fd) };
        let meta = match file.metadata() {
            Ok(m) => m,
            Err(e) => return Taken::Keep(format!("cannot stat: {e}")),
        };
        if !meta.file_type().is_file() {
            return Taken::Aside("not a regular file".to_owned());
        }
        if meta.nlink() != 1 {
            return Taken::Aside(format!("it has {} links", meta.nlink()));
        }
        if meta.size() > self.max_size {
            return Taken::Aside(format!(
                "{} bytes, more than the {} the daemon takes",
                meta.size(),
                self.max_size
            ));
        }
        let owner = match lookup_uid(meta.uid()) {
            UserLookup::Found(account) => account.name,
            UserLookup::NotFound => {
                return Taken::Aside(format!("its owner, uid {}, has no account", meta.uid()))
            }
            UserLookup::TempFail(e) => return Taken::Keep(format!("owner lookup: {e}")),
        };
        let mut bytes = Vec::new();
        if let Err(e) = (&file)
            .take(self.max_size.saturating_add(1))
            .read_to_end(&mut bytes)
        {
            return Taken::Keep(format!("cannot read: {e}"));
        }
        if bytes.len() as u64 > self.max_size {
            return Taken::Aside(format!("more than the {} bytes it takes", self.max_size));
        }
        let mut message = match decode_offline(&bytes) {
            Ok(m) => m,
            Err(e) => return Taken::Aside(e.to_string()),
        };
        if message.user != owner {
            log.warn(&format!(
                "offline: {shown} says it is from {} but belongs to {owner}: enqueued as {owner}",
                message.user
            ));
            if message.sender_is_user {
                message.submission.sender = qualify(&owner, &self.hostname);
            }
            message.user = owner;
        }
        Taken::Ready(Box::new(Ready {
            message,
            dev: meta.dev(),
            ino: meta.ino(),
        }))
    }
}

/// The status of `name` in `dir`, not following a link.
fn lstat_at(dir: &File, name: &CStr) -> io::Result<libc::stat> {
    // SAFETY: a zeroed stat is a valid buffer for fstatat to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstatat within an open directory, not following a link, into our buffer.
    let rc = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc == 0 {
        Ok(st)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Renames `name` to `prefix` + `name` in `dir`, and says why.
fn set_aside(dir: &File, name: &OsStr, prefix: &str, reason: &str, log: &Log) {
    let mut aside = prefix.as_bytes().to_vec();
    aside.extend_from_slice(name.as_bytes());
    let shown = name.to_string_lossy();
    let (Ok(from), Ok(to)) = (CString::new(name.as_bytes()), CString::new(aside)) else {
        return;
    };
    let fd = dir.as_raw_fd();
    // SAFETY: renameat within one open directory, NUL-terminated names.
    let rc = unsafe { libc::renameat(fd, from.as_ptr(), fd, to.as_ptr()) };
    if rc == 0 {
        log.warn(&format!(
            "offline: {shown} set aside as {prefix}{shown}: {reason}"
        ));
    } else {
        log.warn(&format!(
            "offline: {shown} cannot be used ({reason}) nor set aside: {}",
            io::Error::last_os_error()
        ));
    }
}

/// Removes the file `name` once queued, if it is still the file that was read (its
/// owner may have put another in its place since).
fn remove(dir: &File, name: &CStr, ready: &Ready, log: &Log, shown: &str) {
    let same = lstat_at(dir, name).is_ok_and(|st| st.st_dev == ready.dev && st.st_ino == ready.ino);
    if !same {
        log.warn(&format!(
            "offline: {shown} was replaced while it was enqueued; the new file stays"
        ));
        return;
    }
    // SAFETY: unlinkat within an open directory, NUL-terminated name.
    if unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) } != 0 {
        log.warn(&format!(
            "offline: {shown} was enqueued but cannot be removed: {}",
            io::Error::last_os_error()
        ));
    }
}
