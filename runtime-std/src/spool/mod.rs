//! The file-backed queue: incoming bodies, durable commit with group fsync, reload at start.
//!
//! # Layout (version 3)
//!
//! Everything lives under the configured `queue path` directory, created with mode 0700,
//! in one flat directory so that one fsync of it covers every message of a batch:
//!
//! ```text
//! version                 "3": the layout of this spool
//! queue/i.<msgid>         a message being received (discarded at open)
//! queue/m.<msgid>         a queued message: the message, the envelope records it was
//!                         committed with, a footer (see body.rs)
//! queue/e.<msgid>         its envelope records since the first update, all in one file;
//!                         they replace those in m.<msgid>
//! queue/t.<msgid>         the envelope file being written or rewritten (discarded at open)
//! queue/f.<n>             spare files, reused for new ones
//! corrupt/                what recovery or start-up set aside (see below)
//! ```
//!
//! Older layouts are converted by [`Spool::open`] message by message, so nothing queued by
//! an older release is lost: version 2 kept the records only in `e.<msgid>` (its
//! appearance was the commit) and the bare message in `m.<msgid>`; before version 2 there
//! was a directory per message (`queue/<msgid>/message`, `queue/<msgid>/envelopes/<evpid>`,
//! with `incoming/` and `purge/` beside).
//!
//! # Durability
//!
//! A message is committed by appending its envelope records and footer to `i.<msgid>`,
//! fsyncing it, renaming it to `m.<msgid>` and fsyncing `queue/`: one file, one fsync, one
//! rename per message, the directory fsync shared by a batch. The rename is the commit, so
//! a crash never leaves a half-visible message. Only after the commit returns may the
//! server answer 250 (RFC 5321 §4.5.3.1 makes the 250 a promise). [`GroupCommitter`]
//! shares the fsyncs between many concurrent commits. Updates rewrite the envelope file
//! (temporary file, fsync, rename); removing the last envelope removes `m.<msgid>` first,
//! then `e.<msgid>` (an envelope file without its message is a removal's leftover). The
//! directory fsync that makes updates and removals durable is shared by a background
//! syncer.
//!
//! Message and envelope ids are opaque names chosen by the engine; they must match
//! `[A-Za-z0-9._-]{1,64}` and not start with a dot, so no id can escape the spool.
//!
//! # Fault injection
//!
//! [`Spool::with_faults`] installs a [`SpoolFaults`] hook consulted before every effect,
//! so monkey mode can make some spool operations fail temporarily without touching callers.

mod body;
mod commit;
mod incoming;
mod pool;
mod records;
mod recover;
mod shared;
mod syncer;

#[cfg(test)]
pub(crate) use body::file_bytes as message_file_bytes;
pub use body::QueuedBody;
pub use commit::{CommitCompletion, CommitStats, Expected, GroupCommitter};
pub use incoming::IncomingMessage;
pub use shared::BufferedMessage;

use std::ffi::CString;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use pool::FilePool;
use syncer::DirSyncer;

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
    /// The message id (`queue/m.<msgid>`, `queue/e.<msgid>`).
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
    /// Queued messages moved to `corrupt/` because their body was missing or their
    /// envelope file could not be read back.
    pub corrupt: Vec<String>,
}

/// How many locks guard the envelope files (a message's file is guarded by one of them).
const LOCK_STRIPES: usize = 32;

struct SpoolInner {
    root: PathBuf,
    queue: PathBuf,
    faults: Option<Arc<dyn SpoolFaults>>,
    /// Serialise the read-modify-write of one message's envelope file.
    locks: Arc<[Mutex<()>; LOCK_STRIPES]>,
    /// Shares the fsync of `queue/` after updates and removals.
    syncer: Arc<DirSyncer>,
    /// Spent files, reused for new ones.
    pool: Arc<FilePool>,
    /// The process that opened the spool (the daemon; its fork server's children share
    /// this value).
    owner: u32,
    /// The free space last measured, and when ([`Spool::has_room`]).
    room: Arc<Mutex<Option<(Instant, u64)>>>,
}

/// How long free space measured far above the floor (twice it or more) is trusted.
const ROOM_TRUSTED: Duration = Duration::from_secs(1);

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

/// Write what `content` holds into the private file `path` (0600, replacing one there)
/// and fsync it: a copy set aside in `corrupt/`.
pub(crate) fn write_aside(path: &Path, content: &mut dyn io::Read) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    io::copy(content, &mut file)?;
    file.sync_data()
}

fn not_found_is_ok(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn no_message(msgid: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("no queued message {msgid}"),
    )
}

fn no_envelope(msgid: &str, evpid: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("no queued envelope {evpid} of message {msgid}"),
    )
}

impl Spool {
    /// Open (creating it if needed) the spool at `path`: discard uncommitted messages and
    /// half-written envelope files, convert messages queued in the previous layout, set
    /// aside messages without a body in `corrupt/`, and return the queue to reload.
    pub fn open(path: impl AsRef<Path>) -> io::Result<(Spool, Recovered)> {
        let root = path.as_ref().to_path_buf();
        make_private_dir(&root)?;
        for sub in ["queue", "corrupt"] {
            make_private_dir(&root.join(sub))?;
        }
        let queue = root.join("queue");
        let spool = Spool {
            inner: Arc::new(SpoolInner {
                syncer: DirSyncer::start(queue.clone()),
                pool: Arc::new(FilePool::new(queue.clone())),
                owner: std::process::id(),
                root,
                queue,
                faults: None,
                locks: Arc::new(std::array::from_fn(|_| Mutex::new(()))),
                room: Arc::new(Mutex::new(None)),
            }),
        };
        let recovered = recover::recover(&spool)?;
        Ok((spool, recovered))
    }

    /// The same spool with a fault hook consulted before every effect (monkey mode).
    pub fn with_faults(self, faults: Arc<dyn SpoolFaults>) -> Spool {
        Spool {
            inner: Arc::new(SpoolInner {
                root: self.inner.root.clone(),
                queue: self.inner.queue.clone(),
                faults: Some(faults),
                locks: Arc::clone(&self.inner.locks),
                syncer: Arc::clone(&self.inner.syncer),
                pool: Arc::clone(&self.inner.pool),
                owner: self.inner.owner,
                room: Arc::clone(&self.inner.room),
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

    pub(crate) fn queue_root(&self) -> PathBuf {
        self.inner.queue.clone()
    }

    /// `queue/i.<msgid>`: a message being received.
    pub(crate) fn incoming_path(&self, msgid: &str) -> PathBuf {
        self.inner.queue.join(format!("i.{msgid}"))
    }

    /// `queue/m.<msgid>`: the queued message (see [`body`]).
    pub(crate) fn body_path(&self, msgid: &str) -> PathBuf {
        self.inner.queue.join(format!("m.{msgid}"))
    }

    /// `queue/e.<msgid>`: the envelope records since the first update.
    pub(crate) fn envelopes_path(&self, msgid: &str) -> PathBuf {
        self.inner.queue.join(format!("e.{msgid}"))
    }

    /// `queue/t.<msgid>`: the envelope file being (re)written.
    pub(crate) fn rewrite_path(&self, msgid: &str) -> PathBuf {
        self.inner.queue.join(format!("t.{msgid}"))
    }

    /// The spare files.
    fn pool(&self) -> &FilePool {
        &self.inner.pool
    }

    /// The lock guarding message `msgid`'s envelope file.
    fn lock(&self, msgid: &str) -> std::sync::MutexGuard<'_, ()> {
        let hash = msgid.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let stripe = usize::try_from(hash).unwrap_or(0) % LOCK_STRIPES;
        self.inner.locks[stripe]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The envelope records of committed message `msgid`: its envelope file's, else
    /// those it was committed with.
    fn read_envelopes(&self, msgid: &str) -> io::Result<Vec<(String, Vec<u8>)>> {
        let bytes = match fs::read(self.envelopes_path(msgid)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match File::open(self.body_path(msgid)) {
                    Ok(file) => QueuedBody::open(file, msgid)?.committed_records()?,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(no_message(msgid)),
                    Err(e) => return Err(e),
                }
            }
            other => other?,
        };
        records::decode(&bytes)
    }

    /// Replace message `msgid`'s envelope records with `envelopes`: temporary file, fsync,
    /// rename to `e.<msgid>` (so a crash leaves the old or the new records whole), then a
    /// shared fsync of `queue/`. With no envelope left the message is removed instead, its
    /// file before its envelope file (whose records would otherwise bring it back).
    fn write_envelopes(&self, msgid: &str, envelopes: &[(String, Vec<u8>)]) -> io::Result<()> {
        if envelopes.is_empty() {
            let body_gone = self.inner.pool.recycle(&self.body_path(msgid))?;
            let envelopes_gone = self.inner.pool.recycle(&self.envelopes_path(msgid))?;
            if envelopes_gone || body_gone {
                self.inner.syncer.dirty();
            }
            return Ok(());
        }
        let tmp = self.rewrite_path(msgid);
        let mut file = self.inner.pool.take_replacing(&tmp)?;
        let records = records::encode(envelopes);
        let written = file
            .write_all(&records)
            .and_then(|()| pool::trim(&file, records.len() as u64))
            .and_then(|()| file.sync_data());
        if let Err(e) = written {
            let _ = self.inner.pool.recycle(&tmp);
            return Err(e);
        }
        fs::rename(&tmp, self.envelopes_path(msgid))?;
        self.inner.syncer.dirty();
        Ok(())
    }

    /// Refuse envelope `evpid` of message `msgid` where the spool would: an invalid id,
    /// an injected fault, or an id among the message's envelopes `before`.
    pub(crate) fn check_new_envelope(
        &self,
        msgid: &str,
        evpid: &str,
        before: &[(String, Vec<u8>)],
    ) -> io::Result<()> {
        check_id(evpid)?;
        self.fault(SpoolOp::AddEnvelope, msgid)?;
        if before.iter().any(|(id, _)| id == evpid) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("envelope {evpid} added twice"),
            ));
        }
        Ok(())
    }

    /// Start receiving message `msgid`; nothing is visible in the queue until it is
    /// committed.
    pub fn create_incoming(&self, msgid: &str) -> io::Result<IncomingMessage> {
        check_id(msgid)?;
        self.fault(SpoolOp::CreateIncoming, msgid)?;
        IncomingMessage::create(self.clone(), msgid)
    }

    /// Replace the record of envelope `evpid` of queued message `msgid` durably. An
    /// envelope no longer queued is never brought back: that is `NotFound`.
    pub fn update_envelope(&self, msgid: &str, evpid: &str, record: &[u8]) -> io::Result<()> {
        check_id(msgid)?;
        check_id(evpid)?;
        self.fault(SpoolOp::UpdateEnvelope, msgid)?;
        let _guard = self.lock(msgid);
        let mut envelopes = self.read_envelopes(msgid)?;
        let slot = envelopes
            .iter_mut()
            .find(|(id, _)| id == evpid)
            .ok_or_else(|| no_envelope(msgid, evpid))?;
        slot.1 = record.to_vec();
        self.write_envelopes(msgid, &envelopes)
    }

    /// Remove envelope `evpid` of message `msgid`; returns how many envelopes the message
    /// still has (an envelope or message already gone counts as removed). With none left
    /// the message goes with its last envelope; [`Spool::remove_message`] is then a no-op.
    pub fn remove_envelope(&self, msgid: &str, evpid: &str) -> io::Result<usize> {
        check_id(msgid)?;
        check_id(evpid)?;
        self.fault(SpoolOp::RemoveEnvelope, msgid)?;
        let _guard = self.lock(msgid);
        let mut envelopes = match self.read_envelopes(msgid) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            other => other?,
        };
        let before = envelopes.len();
        envelopes.retain(|(id, _)| id != evpid);
        if envelopes.len() != before {
            self.write_envelopes(msgid, &envelopes)?;
        }
        Ok(envelopes.len())
    }

    /// Move envelope `evpid` of queued message `msgid` out of the queue into `corrupt/`
    /// (for a record that cannot be decoded): the record becomes
    /// `corrupt/<msgid>.<evpid>.envelope`, the message stays readable for inspection as
    /// `corrupt/<msgid>.message` (a copy, made once), and the envelope is removed
    /// from the queue durably. When it was the message's last envelope the queued message
    /// is removed too. Fails with `NotFound` when the envelope is not queued.
    pub fn set_aside_envelope(&self, msgid: &str, evpid: &str) -> io::Result<()> {
        check_id(msgid)?;
        check_id(evpid)?;
        self.fault(SpoolOp::RemoveEnvelope, msgid)?;
        let _guard = self.lock(msgid);
        let mut envelopes = self.read_envelopes(msgid)?;
        let at = envelopes
            .iter()
            .position(|(id, _)| id == evpid)
            .ok_or_else(|| no_envelope(msgid, evpid))?;
        let (_, record) = envelopes.remove(at);
        let corrupt = self.inner.root.join("corrupt");
        let kept = corrupt.join(format!("{msgid}.message"));
        if !kept.exists() {
            let mut message = QueuedBody::open(File::open(self.body_path(msgid))?, msgid)?;
            write_aside(&kept, &mut message)?;
        }
        let aside = corrupt.join(format!("{msgid}.{evpid}.envelope"));
        write_aside(&aside, &mut record.as_slice())?;
        sync_dir(&corrupt)?;
        self.write_envelopes(msgid, &envelopes)?;
        self.inner.syncer.sync_now()
    }

    /// Remove queued message `msgid` with all its envelopes (the envelope file first, so
    /// a crash between the two leaves a body that [`Spool::open`] removes).
    pub fn remove_message(&self, msgid: &str) -> io::Result<()> {
        check_id(msgid)?;
        self.fault(SpoolOp::RemoveMessage, msgid)?;
        self.purge(msgid)
    }

    pub(crate) fn purge(&self, msgid: &str) -> io::Result<()> {
        let _guard = self.lock(msgid);
        self.write_envelopes(msgid, &[])
    }

    /// Open committed message `msgid` for reading from its first byte.
    pub fn read_message(&self, msgid: &str) -> io::Result<QueuedBody> {
        QueuedBody::open(self.message_file(msgid)?, msgid)
    }

    /// The file of committed message `msgid`, unchecked: for a caller that passes it on
    /// to a process that opens it as a [`QueuedBody`] (which checks it) itself.
    pub fn message_file(&self, msgid: &str) -> io::Result<File> {
        check_id(msgid)?;
        self.fault(SpoolOp::ReadMessage, msgid)?;
        File::open(self.body_path(msgid))
    }

    /// Make every update and removal so far durable now (one fsync of `queue/`), rather
    /// than when the background syncer gets to it.
    pub fn sync(&self) -> io::Result<()> {
        self.inner.syncer.sync_now()
    }

    /// Whether the process that opened the spool (the daemon) still runs. A delivery made
    /// in another process (the fork server's children) checks it before it makes its
    /// result visible: if the daemon was killed, the envelope stays queued and will be
    /// delivered again after the restart, so finishing now would only deliver it twice.
    pub fn owner_alive(&self) -> bool {
        let Ok(pid) = libc::pid_t::try_from(self.inner.owner) else {
            return true;
        };
        if u32::try_from(pid).ok() == Some(std::process::id()) {
            return true;
        }
        // SAFETY: signal 0 only checks that the process exists; no signal is sent.
        let rc = unsafe { libc::kill(pid, 0) };
        rc == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }

    /// Whether the spool's file system has at least `min_free_bytes` available to
    /// unprivileged users, so the engine can answer 452 (RFC 5321 §4.5.3.1.10) when not.
    ///
    /// Free space measured at twice the floor or more is trusted for [`ROOM_TRUSTED`]:
    /// a busy server then asks the file system once a second, not at every MAIL; near
    /// the floor it asks every time.
    pub fn has_room(&self, min_free_bytes: u64) -> io::Result<bool> {
        let now = Instant::now();
        let mut room = self
            .inner
            .room
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((at, free)) = *room {
            let fresh = now.saturating_duration_since(at) < ROOM_TRUSTED;
            if fresh && free / 2 >= min_free_bytes {
                return Ok(true);
            }
        }
        let free = free_bytes(&self.inner.root)?;
        *room = Some((now, free));
        Ok(free >= min_free_bytes)
    }
}

/// `path` as the C string a system call takes.
pub(crate) fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// Bytes available to unprivileged users on the file system holding `path` (statvfs).
pub fn free_bytes(path: &Path) -> io::Result<u64> {
    let c_path = c_path(path)?;
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
