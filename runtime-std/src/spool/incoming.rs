//! A message being received: kept in memory while it fits in [`WRITE_BUFFER`], else
//! streamed into `queue/i.<msgid>`; its envelope records kept in memory and appended at
//! the commit (see [`super::body`]), then committed by the rename to `queue/m.<msgid>`,
//! or, still whole in memory, in a file shared with its batch ([`super::shared`]).

use super::shared::BufferedMessage;
use super::{body, records, Spool, SpoolOp};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::io::AsRawFd;
use std::path::PathBuf;

/// Size of the write buffer in front of the message file.
const WRITE_BUFFER: usize = 64 * 1024;

/// Where a message's bytes are so far.
#[derive(Debug)]
enum Content {
    /// All in memory: no file of its own yet.
    Memory(Vec<u8>),
    /// In `i.<msgid>`, behind a write buffer.
    File(BufWriter<File>),
    /// Given up or handed on.
    Closed,
}

/// A message being received. Write the body with [`IncomingMessage::write_chunk`], add
/// one record per recipient with [`IncomingMessage::add_envelope`], then commit it
/// through a [`super::GroupCommitter`] (or [`IncomingMessage::commit`] alone). Dropping
/// it without committing removes it.
#[derive(Debug)]
pub struct IncomingMessage {
    spool: Spool,
    msgid: String,
    content: Content,
    envelopes: Vec<(String, Vec<u8>)>,
    bytes_written: u64,
    done: bool,
}

impl IncomingMessage {
    pub(super) fn create(spool: Spool, msgid: &str) -> io::Result<IncomingMessage> {
        Ok(IncomingMessage {
            spool,
            msgid: msgid.to_owned(),
            content: Content::Memory(Vec::new()),
            envelopes: Vec::new(),
            bytes_written: 0,
            done: false,
        })
    }

    /// Take the message's own file, `i.<msgid>`, and write what memory held into it.
    fn open_file(&mut self) -> io::Result<&mut BufWriter<File>> {
        if let Content::Memory(_) = self.content {
            // An incoming file is never committed: a leftover there is replaced.
            let path = self.spool.incoming_path(&self.msgid);
            let file = self.spool.pool().take_replacing(&path)?;
            // From here on the file is ours: dropped, the message removes it.
            let writer = BufWriter::with_capacity(WRITE_BUFFER, file);
            if let Content::Memory(held) =
                std::mem::replace(&mut self.content, Content::File(writer))
            {
                if let Content::File(writer) = &mut self.content {
                    writer.write_all(&held)?;
                }
            }
        }
        match &mut self.content {
            Content::File(writer) => Ok(writer),
            _ => Err(closed()),
        }
    }

    /// The message whole in memory with its envelope records, to be committed in a file
    /// shared with its batch; the message itself when it has a file of its own already.
    ///
    /// # Errors
    /// The message, when it is not (only) in memory.
    pub fn into_buffered(mut self) -> Result<BufferedMessage, IncomingMessage> {
        match std::mem::replace(&mut self.content, Content::Closed) {
            Content::Memory(content) => {
                self.done = true;
                Ok(BufferedMessage {
                    msgid: std::mem::take(&mut self.msgid),
                    content,
                    envelopes: std::mem::take(&mut self.envelopes),
                })
            }
            other => {
                self.content = other;
                Err(self)
            }
        }
    }

    /// Whether this message was created from a spool at `root`.
    pub(super) fn is_of(&self, root: &std::path::Path) -> bool {
        self.spool.root() == root
    }

    /// The message id.
    pub fn msgid(&self) -> &str {
        &self.msgid
    }

    /// How many message bytes were written so far.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// Whether appending `len` bytes stays in the write buffer (no system call), so an
    /// async runtime may do it on its executor rather than on a blocking thread.
    pub fn fits_in_buffer(&self, len: usize) -> bool {
        match &self.content {
            Content::Memory(held) => held.len().saturating_add(len) <= WRITE_BUFFER,
            Content::File(w) => w.capacity().saturating_sub(w.buffer().len()) >= len,
            Content::Closed => false,
        }
    }

    /// Append message bytes (buffered; nothing is durable before the commit).
    pub fn write_chunk(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.spool.fault(SpoolOp::WriteChunk, &self.msgid)?;
        match &mut self.content {
            Content::Memory(held) if held.len().saturating_add(chunk.len()) <= WRITE_BUFFER => {
                held.extend_from_slice(chunk);
            }
            _ => self.open_file()?.write_all(chunk)?,
        }
        self.bytes_written = self.bytes_written.saturating_add(chunk.len() as u64);
        Ok(())
    }

    /// Keep the record of envelope `evpid` (opaque bytes, e.g. the queue record format),
    /// to become visible with the message at the commit.
    pub fn add_envelope(&mut self, evpid: &str, record: &[u8]) -> io::Result<()> {
        self.spool
            .check_new_envelope(&self.msgid, evpid, &self.envelopes)?;
        self.envelopes.push((evpid.to_owned(), record.to_vec()));
        Ok(())
    }

    /// Give the message up and remove what was written.
    pub fn abort(mut self) -> io::Result<()> {
        self.done = true;
        match std::mem::replace(&mut self.content, Content::Closed) {
            Content::File(_) => self
                .spool
                .pool()
                .recycle(&self.spool.incoming_path(&self.msgid))
                .map(|_| ()),
            Content::Memory(_) | Content::Closed => Ok(()),
        }
    }

    /// Commit this message alone (one fsync of `queue/` for it): prefer a
    /// [`super::GroupCommitter`] when many sessions commit at once.
    pub fn commit(self) -> io::Result<()> {
        let spool = self.spool.clone();
        let mut prepared = self.prepare()?;
        prepared.start_writeback();
        prepared.sync_and_publish()?;
        spool.sync()
    }

    /// Append the envelope records and the footer and flush the file; the caller then
    /// syncs and publishes.
    pub(super) fn prepare(mut self) -> io::Result<PreparedCommit> {
        self.spool.fault(SpoolOp::Commit, &self.msgid)?;
        self.open_file()?;
        // From here on the prepared commit removes the file if it is dropped unpublished.
        self.done = true;
        let mut prepared = PreparedCommit {
            spool: self.spool.clone(),
            msgid: std::mem::take(&mut self.msgid),
            file: None,
            synced: false,
            published: false,
        };
        let Content::File(mut writer) = std::mem::replace(&mut self.content, Content::Closed)
        else {
            return Err(closed());
        };
        let records = records::encode(&self.envelopes);
        let tail = body::close_unit(&mut writer, &prepared.msgid, self.bytes_written, &records)?;
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        let len = self.bytes_written.saturating_add(tail);
        super::pool::trim(&file, len)?;
        prepared.file = Some(file);
        Ok(prepared)
    }
}

impl Drop for IncomingMessage {
    fn drop(&mut self) {
        if !self.done {
            if let Content::File(_) = std::mem::replace(&mut self.content, Content::Closed) {
                let _ = self
                    .spool
                    .pool()
                    .recycle(&self.spool.incoming_path(&self.msgid));
            }
        }
    }
}

fn closed() -> io::Error {
    io::Error::other("incoming message already closed")
}

/// An incoming message whose bytes are all written (message, records, footer), waiting
/// for its fsync and the rename that commits it. Dropped before publication, it removes
/// its file.
#[derive(Debug)]
pub(super) struct PreparedCommit {
    spool: Spool,
    msgid: String,
    /// The written file (absent only if preparing failed half way).
    file: Option<File>,
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

    /// Ask the kernel to start writing the file back, so that concurrent commits' writes
    /// reach the disk together.
    pub(super) fn start_writeback(&mut self) {
        if let Some(file) = &self.file {
            // SAFETY: the descriptor is open for the whole call; the call only hints the kernel.
            unsafe {
                libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
            }
        }
    }

    /// Fsync the file (once; later calls do nothing).
    pub(super) fn sync_contents(&mut self) -> io::Result<()> {
        if self.synced {
            return Ok(());
        }
        self.file.as_ref().ok_or_else(closed)?.sync_data()?;
        self.synced = true;
        Ok(())
    }

    /// Fsync the file if not done yet, then rename it to its queued name: the commit. The
    /// caller fsyncs `queue/` afterwards (once for a whole batch).
    pub(super) fn sync_and_publish(&mut self) -> io::Result<()> {
        self.sync_contents()?;
        let target: PathBuf = self.spool.body_path(&self.msgid);
        if target.exists() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("message {} is already queued", self.msgid),
            ));
        }
        fs::rename(self.spool.incoming_path(&self.msgid), &target)?;
        self.published = true;
        Ok(())
    }
}

impl Drop for PreparedCommit {
    fn drop(&mut self) {
        if !self.published {
            self.file = None;
            let _ = self
                .spool
                .pool()
                .recycle(&self.spool.incoming_path(&self.msgid));
        }
    }
}
