//! The file-backed queue: incoming area, durable commit with group fsync, reload at start.
//!
//! # Layout
//!
//! Everything lives under the configured `queue path` directory, created with mode 0700:
//!
//! ```text
//! incoming/<msgid>/message              message being received (streamed, not yet durable)
//! incoming/<msgid>/envelopes/<evpid>    its envelope records, written before the commit
//! queue/<msgid>/message                 a committed message
//! queue/<msgid>/envelopes/<evpid>       one envelope record per recipient (opaque bytes)
//! queue/<msgid>/envelopes/.<evpid>.tmp  an envelope update in flight (discarded at open)
//! purge/<msgid>/                        a removed message, being deleted
//! corrupt/<msgid>/                      a queued message found without its message file
//! ```
//!
//! # Durability
//!
//! A message is committed by fsyncing its message and envelope files and its directories
//! inside `incoming/`, then renaming `incoming/<msgid>` to `queue/<msgid>` (atomic), then
//! fsyncing `queue/`. The rename is the commit marker: a directory is either wholly under
//! `queue/` or not there at all, so a crash never leaves a half-visible message. Only after
//! the commit returns may the server answer 250 (RFC 5321 §4.5.3.1 makes the 250 a promise).
//! [`GroupCommitter`] shares the `queue/` fsync between many concurrent commits.
//!
//! Message and envelope ids are opaque names chosen by the engine; they must match
//! `[A-Za-z0-9._-]{1,64}` and not start with a dot, so no id can escape the spool.
//!
//! # Fault injection
//!
//! [`Spool::with_faults`] installs a [`SpoolFaults`] hook consulted before every effect,
//! so monkey mode can make some spool operations fail temporarily without touching callers.

mod commit;
mod incoming;

pub use commit::{CommitCompletion, CommitStats, GroupCommitter};
pub use incoming::IncomingMessage;

use std::ffi::CString;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The longest message or envelope id accepted, in bytes.
pub const MAX_ID_LEN: usize = 64;

/// One spool effect, as named to a [`SpoolFaults`] hook.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum SpoolOp {
    /// Creating an incoming message.
    CreateIncoming,
    /// Writing a chunk of an incoming message.
    WriteChunk,
    /// Writing an envelope record into an incoming message.
    AddEnvelope,
    /// Making an incoming message durable and visible.
    Commit,
    /// Rewriting one queued envelope record.
    UpdateEnvelope,
    /// Removing one queued envelope record.
    RemoveEnvelope,
    /// Removing a whole queued message.
    RemoveMessage,
    /// Opening a queued message for reading.
    ReadMessage,
}

/// A hook consulted before each spool effect; returning an error makes that effect fail
/// with it, before anything is touched. Monkey mode implements it to inject temporary faults.
pub trait SpoolFaults: Send + Sync {
    /// Decide whether `op` on message `msgid` fails now.
    fn check(&self, op: SpoolOp, msgid: &str) -> io::Result<()>;
}

/// A queued message found at [`Spool::open`], with its envelope records for the engine.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct QueuedMessage {
    /// The message id (the directory name under `queue/`).
    pub msgid: String,
    /// Every envelope record, as `(evpid, record bytes)`, sorted by evpid.
    pub envelopes: Vec<(String, Vec<u8>)>,
}

/// What [`Spool::open`] found: the queue to reload and what it cleaned up.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Recovered {
    /// Every committed message with at least one envelope, sorted by msgid.
    pub messages: Vec<QueuedMessage>,
    /// Incoming messages that were never committed and were discarded.
    pub discarded_incoming: Vec<String>,
    /// Queued messages moved to `corrupt/` because their message file was missing.
    pub corrupt: Vec<String>,
}

struct SpoolInner {
    root: PathBuf,
    faults: Option<Arc<dyn SpoolFaults>>,
}

/// The file-backed queue. Cheap to clone; clones share the same directory.
#[derive(Clone)]
pub struct Spool {
    inner: Arc<SpoolInner>,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("root", &self.inner.root)
            .finish()
    }
}

/// Refuse ids that could name anything outside their own directory.
pub(crate) fn check_id(id: &str) -> io::Result<()> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid spool id {id:?}"),
        ))
    }
}

/// Create a private directory (0700) if it does not exist yet.
pub(crate) fn make_private_dir(path: &Path) -> io::Result<()> {
    match DirBuilder::new().mode(0o700).create(path) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        other => other,
    }
}

/// Flush a directory's entries to disk.
pub(crate) fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// Create a new private file (0600) for writing; fails if it exists.
pub(crate) fn create_private_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

fn not_found_is_ok(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

impl Spool {
    /// Open (creating it if needed) the spool at `path`: discard uncommitted incoming
    /// messages and half-written envelope updates, finish interrupted removals, move
    /// messages without a message file to `corrupt/`, and return the queue to reload.
    pub fn open(path: impl AsRef<Path>) -> io::Result<(Spool, Recovered)> {
        let root = path.as_ref().to_path_buf();
        make_private_dir(&root)?;
        for sub in ["incoming", "queue", "purge", "corrupt"] {
            make_private_dir(&root.join(sub))?;
        }
        let spool = Spool {
            inner: Arc::new(SpoolInner { root, faults: None }),
        };
        let recovered = spool.recover()?;
        Ok((spool, recovered))
    }

    /// The same spool with a fault hook consulted before every effect (monkey mode).
    pub fn with_faults(self, faults: Arc<dyn SpoolFaults>) -> Spool {
        Spool {
            inner: Arc::new(SpoolInner {
                root: self.inner.root.clone(),
                faults: Some(faults),
            }),
        }
    }

    /// The spool's root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    pub(crate) fn fault(&self, op: SpoolOp, msgid: &str) -> io::Result<()> {
        match &self.inner.faults {
            Some(hook) => hook.check(op, msgid),
            None => Ok(()),
        }
    }

    pub(crate) fn incoming_dir(&self, msgid: &str) -> PathBuf {
        self.inner.root.join("incoming").join(msgid)
    }

    pub(crate) fn queue_root(&self) -> PathBuf {
        self.inner.root.join("queue")
    }

    fn message_dir(&self, msgid: &str) -> PathBuf {
        self.queue_root().join(msgid)
    }

    fn recover(&self) -> io::Result<Recovered> {
        let mut recovered = Recovered::default();
        for (name, path) in list_dir(&self.inner.root.join("incoming"))? {
            fs::remove_dir_all(&path).or_else(|_| fs::remove_file(&path))?;
            recovered.discarded_incoming.push(name);
        }
        for (_, path) in list_dir(&self.inner.root.join("purge"))? {
            fs::remove_dir_all(&path).or_else(|_| fs::remove_file(&path))?;
        }
        for (msgid, dir) in list_dir(&self.queue_root())? {
            if check_id(&msgid).is_err() || !dir.join("message").is_file() {
                let mut target = self.inner.root.join("corrupt").join(&msgid);
                let mut attempt = 0u32;
                while target.exists() {
                    attempt = attempt.saturating_add(1);
                    target = self
                        .inner
                        .root
                        .join("corrupt")
                        .join(format!("{msgid}.{attempt}"));
                }
                fs::rename(&dir, &target)?;
                recovered.corrupt.push(msgid);
                continue;
            }
            let envelopes = self.load_envelopes(&dir.join("envelopes"))?;
            if envelopes.is_empty() {
                self.purge(&msgid)?;
            } else {
                recovered.messages.push(QueuedMessage { msgid, envelopes });
            }
        }
        sync_dir(&self.queue_root())?;
        Ok(recovered)
    }

    fn load_envelopes(&self, dir: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
        let mut envelopes = Vec::new();
        let entries = match list_dir(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(envelopes),
            other => other?,
        };
        for (evpid, path) in entries {
            if check_id(&evpid).is_err() {
                not_found_is_ok(fs::remove_file(&path))?;
                continue;
            }
            envelopes.push((evpid, fs::read(&path)?));
        }
        Ok(envelopes)
    }

    /// Start receiving message `msgid` into `incoming/`; nothing is visible in the queue
    /// until it is committed.
    pub fn create_incoming(&self, msgid: &str) -> io::Result<IncomingMessage> {
        check_id(msgid)?;
        self.fault(SpoolOp::CreateIncoming, msgid)?;
        IncomingMessage::create(self.clone(), msgid)
    }

    /// Replace envelope `evpid` of queued message `msgid` durably: write a temporary file,
    /// fsync it, rename it over the old record, fsync the directory.
    pub fn update_envelope(&self, msgid: &str, evpid: &str, record: &[u8]) -> io::Result<()> {
        check_id(msgid)?;
        check_id(evpid)?;
        self.fault(SpoolOp::UpdateEnvelope, msgid)?;
        let dir = self.message_dir(msgid).join("envelopes");
        if !dir.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no queued message {msgid}"),
            ));
        }
        let tmp = dir.join(format!(".{evpid}.tmp"));
        not_found_is_ok(fs::remove_file(&tmp))?;
        let mut file = create_private_file(&tmp)?;
        let written = file.write_all(record).and_then(|()| file.sync_data());
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        fs::rename(&tmp, dir.join(evpid))?;
        sync_dir(&dir)
    }

    /// Remove envelope `evpid` of message `msgid` durably; returns how many envelopes the
    /// message still has. The caller removes the message with [`Spool::remove_message`]
    /// when that reaches zero.
    pub fn remove_envelope(&self, msgid: &str, evpid: &str) -> io::Result<usize> {
        check_id(msgid)?;
        check_id(evpid)?;
        self.fault(SpoolOp::RemoveEnvelope, msgid)?;
        let dir = self.message_dir(msgid).join("envelopes");
        not_found_is_ok(fs::remove_file(dir.join(evpid)))?;
        sync_dir(&dir)?;
        let left = list_dir(&dir)?
            .into_iter()
            .filter(|(name, _)| check_id(name).is_ok())
            .count();
        Ok(left)
    }

    /// Move envelope `evpid` of queued message `msgid` out of the queue into `corrupt/`
    /// (for a record that cannot be decoded): the record becomes
    /// `corrupt/<msgid>.<evpid>.envelope`, the message stays readable for inspection as
    /// `corrupt/<msgid>.message` (a hard link, made once), and the envelope is removed
    /// from the queue durably. When it was the message's last envelope the queued message
    /// is removed too. Fails with `NotFound` when the envelope is not queued.
    pub fn set_aside_envelope(&self, msgid: &str, evpid: &str) -> io::Result<()> {
        check_id(msgid)?;
        check_id(evpid)?;
        self.fault(SpoolOp::RemoveEnvelope, msgid)?;
        let corrupt = self.inner.root.join("corrupt");
        let dir = self.message_dir(msgid);
        let envelopes = dir.join("envelopes");
        let record = envelopes.join(evpid);
        if !record.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no queued envelope {evpid} of message {msgid}"),
            ));
        }
        match fs::hard_link(
            dir.join("message"),
            corrupt.join(format!("{msgid}.message")),
        ) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        fs::rename(&record, corrupt.join(format!("{msgid}.{evpid}.envelope")))?;
        sync_dir(&corrupt)?;
        sync_dir(&envelopes)?;
        let left = list_dir(&envelopes)?
            .into_iter()
            .filter(|(name, _)| check_id(name).is_ok())
            .count();
        if left == 0 {
            self.purge(msgid)?;
        }
        Ok(())
    }

    /// Remove queued message `msgid` with all its envelopes: an atomic rename to `purge/`
    /// (durable), then the deletion, which [`Spool::open`] finishes after a crash.
    pub fn remove_message(&self, msgid: &str) -> io::Result<()> {
        check_id(msgid)?;
        self.fault(SpoolOp::RemoveMessage, msgid)?;
        self.purge(msgid)
    }

    fn purge(&self, msgid: &str) -> io::Result<()> {
        let target = self.inner.root.join("purge").join(msgid);
        if target.exists() {
            fs::remove_dir_all(&target)?;
        }
        match fs::rename(self.message_dir(msgid), &target) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            other => other?,
        }
        sync_dir(&self.queue_root())?;
        fs::remove_dir_all(&target)
    }

    /// Open committed message `msgid` for reading from its first byte.
    pub fn read_message(&self, msgid: &str) -> io::Result<File> {
        check_id(msgid)?;
        self.fault(SpoolOp::ReadMessage, msgid)?;
        File::open(self.message_dir(msgid).join("message"))
    }

    /// Whether the spool's file system has at least `min_free_bytes` available to
    /// unprivileged users, so the engine can answer 452 (RFC 5321 §4.5.3.1.10) when not.
    pub fn has_room(&self, min_free_bytes: u64) -> io::Result<bool> {
        Ok(free_bytes(&self.inner.root)? >= min_free_bytes)
    }
}

/// Bytes available to unprivileged users on the file system holding `path` (statvfs).
pub fn free_bytes(path: &Path) -> io::Result<u64> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    // SAFETY: statvfs only writes into the zeroed struct we own; the path is NUL-terminated.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the duration of the call.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut stats) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
}

/// The entries of a directory as `(name, path)`, sorted by name, skipping non-UTF-8 names.
fn list_dir(dir: &Path) -> io::Result<Vec<(String, PathBuf)>> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if let Ok(name) = entry.file_name().into_string() {
            entries.push((name, entry.path()));
        }
    }
    entries.sort();
    Ok(entries)
}
