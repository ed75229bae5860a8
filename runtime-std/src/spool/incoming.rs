//! A message being received: streamed into `incoming/<msgid>/`, then committed to `queue/`.

use super::{check_id, create_private_file, make_private_dir, sync_dir, Spool, SpoolOp};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::io::AsRawFd;
use std::path::PathBuf;

/// Size of the write buffer in front of the message file.
const WRITE_BUFFER: usize = 64 * 1024;

/// A message being received into `incoming/<msgid>/`. Write the body with
/// [`IncomingMessage::write_chunk`], add one record per recipient with
/// [`IncomingMessage::add_envelope`], then commit it through a [`super::GroupCommitter`]
/// (or [`IncomingMessage::commit`] alone). Dropping it without committing removes it.
#[derive(Debug)]
pub struct IncomingMessage {
    spool: Spool,
    msgid: String,
    dir: PathBuf,
    message: Option<BufWriter<File>>,
    envelopes: Vec<File>,
    bytes_written: u64,
    done: bool,
}

impl IncomingMessage {
    pub(super) fn create(spool: Spool, msgid: &str) -> io::Result<IncomingMessage> {
        let dir = spool.incoming_dir(msgid);
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        make_private_dir(&dir)?;
        let mut incoming = IncomingMessage {
            spool,
            msgid: msgid.to_owned(),
            dir,
            message: None,
            envelopes: Vec::new(),
            bytes_written: 0,
            done: false,
        };
        make_private_dir(&incoming.dir.join("envelopes"))?;
        let file = create_private_file(&incoming.dir.join("message"))?;
        incoming.message = Some(BufWriter::with_capacity(WRITE_BUFFER, file));
        Ok(incoming)
    }

    /// The message id.
    pub fn msgid(&self) -> &str {
        &self.msgid
    }

    /// How many message bytes were written so far.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// Append message bytes (buffered; nothing is durable before the commit).
    pub fn write_chunk(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.spool.fault(SpoolOp::WriteChunk, &self.msgid)?;
        let writer = self.message.as_mut().ok_or_else(closed)?;
        writer.write_all(chunk)?;
        self.bytes_written = self.bytes_written.saturating_add(chunk.len() as u64);
        Ok(())
    }

    /// Store the record of envelope `evpid` (opaque bytes, e.g. the queue record format),
    /// to become visible with the message at the commit.
    pub fn add_envelope(&mut self, evpid: &str, record: &[u8]) -> io::Result<()> {
        check_id(evpid)?;
        self.spool.fault(SpoolOp::AddEnvelope, &self.msgid)?;
        let mut file = create_private_file(&self.dir.join("envelopes").join(evpid))?;
        file.write_all(record)?;
        self.envelopes.push(file);
        Ok(())
    }

    /// Give the message up and remove what was written.
    pub fn abort(mut self) -> io::Result<()> {
        self.done = true;
        self.message = None;
        fs::remove_dir_all(&self.dir)
    }

    /// Commit this message alone (one fsync of `queue/` for it): prefer a
    /// [`super::GroupCommitter`] when many sessions commit at once.
    pub fn commit(self) -> io::Result<()> {
        let spool = self.spool.clone();
        let mut prepared = self.prepare()?;
        prepared.start_writeback();
        prepared.sync_and_publish()?;
        sync_dir(&spool.queue_root())
    }

    /// Flush the buffer so the files can be synced; the caller then syncs and publishes.
    pub(super) fn prepare(mut self) -> io::Result<PreparedCommit> {
        self.spool.fault(SpoolOp::Commit, &self.msgid)?;
        let writer = self.message.take().ok_or_else(closed)?;
        let message = writer.into_inner().map_err(|e| e.into_error())?;
        let mut files = std::mem::take(&mut self.envelopes);
        files.push(message);
        self.done = true;
        Ok(PreparedCommit {
            spool: self.spool.clone(),
            msgid: std::mem::take(&mut self.msgid),
            dir: std::mem::take(&mut self.dir),
            files,
            synced: false,
            published: false,
        })
    }
}

impl Drop for IncomingMessage {
    fn drop(&mut self) {
        if !self.done {
            self.message = None;
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn closed() -> io::Error {
    io::Error::other("incoming message already closed")
}

/// An incoming message whose bytes are all written, waiting for its fsyncs and rename.
/// Dropped before publication, it removes its incoming directory.
#[derive(Debug)]
pub(super) struct PreparedCommit {
    spool: Spool,
    msgid: String,
    dir: PathBuf,
    files: Vec<File>,
    synced: bool,
    published: bool,
}

impl PreparedCommit {
    /// The message id.
    pub(super) fn msgid(&self) -> &str {
        &self.msgid
    }

    /// The root of the spool the message belongs to.
    pub(super) fn spool_root(&self) -> &std::path::Path {
        self.spool.root()
    }

    /// Ask the kernel to start writing the files back, so the fsyncs of a batch overlap.
    pub(super) fn start_writeback(&mut self) {
        for file in &self.files {
            // SAFETY: the descriptor is open for the whole call; the call only hints the kernel.
            unsafe {
                libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
            }
        }
    }

    /// Whether the contents are already fsynced.
    pub(super) fn is_synced(&self) -> bool {
        self.synced
    }

    /// Fsync the files and directories (once; later calls do nothing).
    pub(super) fn sync_contents(&mut self) -> io::Result<()> {
        if self.synced {
            return Ok(());
        }
        for file in &self.files {
            file.sync_data()?;
        }
        sync_dir(&self.dir.join("envelopes"))?;
        sync_dir(&self.dir)?;
        self.synced = true;
        Ok(())
    }

    /// Fsync the contents if not done yet, then rename `incoming/<msgid>` into `queue/`.
    /// The caller fsyncs `queue/` afterwards (once for a whole batch).
    pub(super) fn sync_and_publish(&mut self) -> io::Result<()> {
        self.sync_contents()?;
        let target = self.spool.queue_root().join(&self.msgid);
        if target.exists() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("message {} is already queued", self.msgid),
            ));
        }
        fs::rename(&self.dir, &target)?;
        self.published = true;
        Ok(())
    }
}

impl Drop for PreparedCommit {
    fn drop(&mut self) {
        if !self.published {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
