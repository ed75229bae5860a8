//! A maildir agent: a long-lived child of the fork server that delivers into maildirs as
//! one user, so that a delivery costs no fork.
//!
//! The fork server starts it for one [`AgentKey`] (uid, gid, home) and it drops to that
//! user at once, as a one-shot delivery child does ([`run_as_user`] after
//! [`drop_in_place`]); it never runs as root afterwards and cannot get root back. It
//! receives [`Request::Deliver`] packets over its own socket, each with the message file
//! the root fork server opened for it, and answers each with one reply packet.
//!
//! It takes every request waiting on its socket (up to [`MAX_BATCH`]), writes each
//! message into `tmp/` ([`maildir::write_tmp`]), makes them durable together (one
//! `syncfs` per file system, or each its own fsync: [`batch_flush`]), links each into
//! `new/` ([`maildir::Written::finish`]), then fsyncs each distinct `new/` directory of
//! the batch once, and only then answers: a delivery counts only once its directory
//! entry is durable. It exits when its socket closes (the
//! fork server retired it, or is gone).

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use mta_core::expand::LocalMethod;

use super::agents::AgentKey;
use super::wire::{self, Received};
use crate::delivery::batch_flush::{self, FileFlush, FlushPolicy};
use crate::delivery::maildir::{self, KnownMaildirs, Written};
use crate::delivery::user::{drop_in_place, run_as_user};
use crate::delivery::DeliveryOutcome;
use crate::server::fork_request::{self, Reply, Request, MAX_PACKET};
use crate::spool::QueuedBody;

/// The most requests delivered under one directory fsync.
pub const MAX_BATCH: usize = 32;

/// One request of a batch: its id, the request, and the message file sent with it.
pub type Item = (u64, Request, Option<File>);

/// The agent's life, in the child the fork server just forked (still root, every other
/// descriptor closed): become `key`'s user, serve `socket` until it closes, exit.
pub fn run(socket: RawFd, key: &AgentKey, abandon: &dyn Fn() -> bool) -> ! {
    drop_in_place();
    let mut served = false;
    let refused = run_as_user(key.uid, key.gid, Path::new(&key.home), || {
        served = true;
        serve(socket, key, abandon);
        DeliveryOutcome::Delivered
    });
    if !served {
        // The identity change failed: answer what was sent with that reason, and leave
        // (the fork server starts another agent for the next delivery).
        let reply = match refused {
            DeliveryOutcome::PermFail(text) => Reply::PermFail(text),
            DeliveryOutcome::TempFail(text) => Reply::TempFail(text),
            DeliveryOutcome::Delivered => Reply::TempFail("delivery agent failed".to_owned()),
        };
        let mut buf = vec![0u8; MAX_PACKET];
        if let Some((batch, _)) = receive_batch(socket, &mut buf) {
            for (id, _, _) in batch {
                let _ = wire::send(socket, &fork_request::encode_reply(id, &reply), true);
            }
        }
    }
    // SAFETY: leave without running the fork server's destructors.
    unsafe { libc::_exit(0) }
}

/// Deliver batches until the socket closes.
fn serve(socket: RawFd, key: &AgentKey, abandon: &dyn Fn() -> bool) {
    let mut known = KnownMaildirs::new();
    let mut flush = FlushPolicy::default();
    let mut buf = vec![0u8; MAX_PACKET];
    loop {
        let Some((batch, closed)) = receive_batch(socket, &mut buf) else {
            return;
        };
        for (id, reply) in deliver_batch(&mut known, &mut flush, key, batch, abandon) {
            let packet = fork_request::encode_reply(id, &reply);
            if wire::send(socket, &packet, true).is_err() {
                return;
            }
        }
        if closed {
            return;
        }
    }
}

/// Wait for one request, then take those already waiting, up to [`MAX_BATCH`]; with
/// whether the socket closed behind them. `None` when it closed before any (or failed).
fn receive_batch(socket: RawFd, buf: &mut [u8]) -> Option<(Vec<Item>, bool)> {
    let mut batch = Vec::new();
    let mut wait = true;
    while batch.len() < MAX_BATCH {
        match wire::receive(socket, buf, wait) {
            Ok(Received::Packet(n, file)) => {
                let packet = buf.get(..n).unwrap_or_default();
                if let Some((id, request)) = fork_request::decode_request(packet) {
                    batch.push((id, request, file.map(File::from)));
                }
                wait = batch.is_empty();
            }
            Ok(Received::Empty) => break,
            Ok(Received::Closed) | Err(_) => {
                return (!batch.is_empty()).then_some((batch, true));
            }
        }
    }
    Some((batch, false))
}

/// Deliver a batch as `key`'s user and say how each went: write every message, make
/// them durable together, link them, fsync each `new/` directory touched once, then
/// Delivered for those stored, in order.
pub fn deliver_batch(
    known: &mut KnownMaildirs,
    flush: &mut FlushPolicy,
    key: &AgentKey,
    batch: Vec<Item>,
    abandon: &dyn Fn() -> bool,
) -> Vec<(u64, Reply)> {
    let durability = Durability {
        sync_file_systems: &batch_flush::sync_file_systems,
        sync_dir: &maildir::sync_dir,
    };
    deliver_batch_with(known, flush, key, batch, abandon, &durability)
}

/// The two steps that make a batch durable; tests make them fail.
pub struct Durability<'a> {
    /// [`batch_flush::sync_file_systems`].
    pub sync_file_systems: &'a dyn Fn(&[&File]) -> std::io::Result<()>,
    /// [`maildir::sync_dir`].
    pub sync_dir: &'a dyn Fn(&Path) -> std::io::Result<()>,
}

/// [`deliver_batch`] with `durability` standing for the file system and directory
/// syncs.
pub fn deliver_batch_with(
    known: &mut KnownMaildirs,
    flush: &mut FlushPolicy,
    key: &AgentKey,
    batch: Vec<Item>,
    abandon: &dyn Fn() -> bool,
    durability: &Durability<'_>,
) -> Vec<(u64, Reply)> {
    let written: Vec<(u64, WriteResult<'_>)> = batch
        .iter()
        .map(|(id, request, file)| (*id, write_one(known, key, request, file.as_ref())))
        .collect();
    let flushed = flush_together(&written, flush, durability);
    let stored: Vec<(u64, Result<PathBuf, Reply>)> = written
        .into_iter()
        .map(|(id, result)| {
            let finished = result.and_then(|(written, maildir)| {
                let linked = if flushed {
                    written.finish_flushed(abandon)
                } else {
                    written.finish(abandon)
                };
                linked.map_err(|e| reply_of(maildir::failure(maildir, &e)))
            });
            (id, finished)
        })
        .collect();
    let mut synced: HashMap<&Path, Result<(), String>> = HashMap::new();
    for dir in stored.iter().filter_map(|(_, s)| s.as_ref().ok()) {
        synced
            .entry(dir.as_path())
            .or_insert_with(|| (durability.sync_dir)(dir).map_err(|e| e.to_string()));
    }
    stored
        .iter()
        .map(|(id, result)| {
            let reply = match result {
                Ok(dir) => match synced.get(dir.as_path()) {
                    Some(Ok(())) => Reply::Delivered,
                    // The files stay in new/ (their entries may or may not survive a
                    // crash): the retry this asks for may deliver a duplicate, never
                    // lose the message.
                    Some(Err(e)) => {
                        Reply::TempFail(format!("maildir {}: directory fsync: {e}", dir.display()))
                    }
                    None => Reply::TempFail("maildir: directory not synced".to_owned()),
                },
                Err(reply) => reply.clone(),
            };
            (*id, reply)
        })
        .collect()
}

/// Make the written files of a batch durable with one `syncfs` per file system when
/// `flush` says so: true when that succeeded. Otherwise each file gets its own fsync as
/// it is finished; their write-back is started here so that those fsyncs overlap.
fn flush_together(
    written: &[(u64, WriteResult<'_>)],
    flush: &mut FlushPolicy,
    durability: &Durability<'_>,
) -> bool {
    let written_ok: Vec<&(Written, &Path)> = written
        .iter()
        .filter_map(|(_, w)| w.as_ref().ok())
        .collect();
    let started = Instant::now();
    if flush.choose(written_ok.len(), started) == FileFlush::FileSystem {
        // One file per maildir is enough to name its file system.
        let mut maildirs = HashMap::new();
        for (message, maildir) in &written_ok {
            if let Some(file) = message.file() {
                maildirs.entry(*maildir).or_insert(file);
            }
        }
        let files: Vec<&File> = maildirs.into_values().collect();
        let synced = (durability.sync_file_systems)(&files);
        flush.record(started.elapsed(), Instant::now());
        if synced.is_ok() {
            return true;
        }
    }
    if written_ok.len() > 1 {
        for (message, _) in written_ok {
            message.start_writeback();
        }
    }
    false
}

/// A message written into `tmp/` with its maildir, or the reply that fails it.
type WriteResult<'a> = Result<(Written, &'a Path), Reply>;

/// Write one message into its maildir's `tmp/`: the message and its maildir, or the
/// reply that fails it.
fn write_one<'a>(
    known: &mut KnownMaildirs,
    key: &AgentKey,
    request: &'a Request,
    file: Option<&File>,
) -> WriteResult<'a> {
    let Request::Deliver(job) = request else {
        return Err(Reply::TempFail("not a delivery".to_owned()));
    };
    // The fork server routes by key; checked again so that a routing mistake can never
    // make an agent write for someone else.
    if !job.user.as_ref().is_some_and(|user| key.is(user)) {
        return Err(Reply::TempFail(
            "delivery sent to another user's agent".to_owned(),
        ));
    }
    let LocalMethod::Maildir { path, junk } = &job.method else {
        return Err(Reply::TempFail("not a maildir delivery".to_owned()));
    };
    let Some(file) = file else {
        return Err(Reply::TempFail("the message was not passed".to_owned()));
    };
    let mut message = file
        .try_clone()
        .and_then(|file| QueuedBody::open(file, &job.msgid))
        .map_err(|e| Reply::TempFail(format!("spool read: {e}")))?;
    let path = Path::new(path);
    let fail = |e: &std::io::Error| reply_of(maildir::failure(path, e));
    known.ensure(path).map_err(|e| fail(&e))?;
    let written = maildir::write_tmp(path, *junk, &mut message).map_err(|e| fail(&e))?;
    Ok((written, path))
}

fn reply_of(outcome: DeliveryOutcome) -> Reply {
    match outcome {
        DeliveryOutcome::Delivered => Reply::Delivered,
        DeliveryOutcome::TempFail(text) => Reply::TempFail(text),
        DeliveryOutcome::PermFail(text) => Reply::PermFail(text),
    }
}

#[cfg(test)]
mod tests;
