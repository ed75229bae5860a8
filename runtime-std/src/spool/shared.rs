//! Messages committed from memory share one file: each is a unit of it (see [`super::body`])
//! and the file is linked under each of their names. A batch of such messages costs one
//! file, one fdatasync and one directory fsync, however many messages it holds: per
//! message, only a directory entry.
//!
//! The file is written as `i.<msgid>` (the batch's first message), fsynced, linked as
//! `m.<msgid>` for every message (a message whose name exists already fails alone), and
//! its scratch name removed. A crash before the directory fsync leaves either nothing or
//! names of a complete, fsynced file; the scratch name, if it survives, is removed at open.

use super::{body, check_id, records, Spool, SpoolOp};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

/// Write buffer in front of the shared file.
const WRITE_BUFFER: usize = 256 * 1024;

/// A message whole in memory, with its envelope records, to be committed with others
/// ([`super::GroupCommitter::submit_buffered`]).
#[derive(Debug)]
pub struct BufferedMessage {
    /// The message id (a spool id).
    pub msgid: String,
    /// The whole message, as it is to be delivered.
    pub content: Vec<u8>,
    /// Its envelope records, `(evpid, record)`.
    pub envelopes: Vec<(String, Vec<u8>)>,
}

impl BufferedMessage {
    /// Refuse what the spool would refuse of it: ids, duplicate envelopes, injected faults.
    pub(super) fn check(&self, spool: &Spool) -> io::Result<()> {
        check_id(&self.msgid)?;
        spool.fault(SpoolOp::CreateIncoming, &self.msgid)?;
        for (n, (evpid, _)) in self.envelopes.iter().enumerate() {
            let before = self.envelopes.get(..n).unwrap_or_default();
            spool.check_new_envelope(&self.msgid, evpid, before)?;
        }
        spool.fault(SpoolOp::Commit, &self.msgid)
    }
}

/// The shared file of a batch, written and fsynced, waiting to be linked.
#[derive(Debug)]
pub(super) struct SharedFile {
    spool: Spool,
    /// Its scratch name, `i.<msgid>` of its first message.
    scratch: PathBuf,
    /// The messages it holds, in order.
    members: Vec<String>,
    published: bool,
}

impl Spool {
    /// Write `messages` (at least one, already checked) into one file as units and fsync
    /// it.
    ///
    /// # Errors
    /// Any file system error; nothing is left behind then.
    pub(super) fn write_shared(&self, messages: &[&BufferedMessage]) -> io::Result<SharedFile> {
        let first = messages
            .first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "an empty batch"))?;
        // A scratch file is never committed: a leftover there is replaced.
        let scratch = self.incoming_path(&first.msgid);
        let file = self.pool().take_replacing(&scratch)?;
        let shared = SharedFile {
            spool: self.clone(),
            scratch,
            members: messages.iter().map(|m| m.msgid.clone()).collect(),
            published: false,
        };
        let file = write_units(file, messages)?;
        file.sync_data()?;
        Ok(shared)
    }
}

/// Write every message's unit into `file` from its start and cut it to what was written.
fn write_units(file: File, messages: &[&BufferedMessage]) -> io::Result<File> {
    let mut out = BufWriter::with_capacity(WRITE_BUFFER, file);
    let mut len: u64 = 0;
    for message in messages {
        out.write_all(&message.content)?;
        let message_len = message.content.len() as u64;
        let records = records::encode(&message.envelopes);
        let tail = body::close_unit(&mut out, &message.msgid, message_len, &records)?;
        len = len.saturating_add(message_len).saturating_add(tail);
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    super::pool::trim(&file, len)?;
    Ok(file)
}

impl SharedFile {
    /// Link the file as `m.<msgid>` of every member, the commit of each (the caller then
    /// fsyncs `queue/`); the outcome of each, in order: `AlreadyExists` for a message
    /// already queued under that id.
    pub(super) fn publish(mut self) -> Vec<(String, io::Result<()>)> {
        let members = std::mem::take(&mut self.members);
        let outcomes: Vec<(String, io::Result<()>)> = members
            .into_iter()
            .map(|msgid| {
                let linked = fs::hard_link(&self.scratch, self.spool.body_path(&msgid));
                (msgid, linked)
            })
            .collect();
        if outcomes.iter().any(|(_, linked)| linked.is_ok()) {
            // The file lives on under the names just made; a scratch name left by a crash
            // is removed at open.
            self.published = true;
            let _ = fs::remove_file(&self.scratch);
        }
        outcomes
    }
}

impl Drop for SharedFile {
    fn drop(&mut self) {
        if !self.published {
            let _ = self.spool.pool().recycle(&self.scratch);
        }
    }
}
