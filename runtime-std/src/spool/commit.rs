//! Group commit: one thread makes many sessions' messages durable in batches, sharing the
//! journal commits of their fsyncs and the fsync of `queue/` between every message of a
//! batch.
//!
//! A message's own files (body, envelope file) are fsynced by the sender's thread
//! ([`GroupCommitter::commit`], [`GroupCommitter::sync_then_submit`]), so that concurrent
//! senders' fsyncs overlap in the kernel, or else by the committer thread
//! ([`GroupCommitter::submit`]). A batch is every request waiting when the committer gets
//! to it (up to `max_batch`): the files not synced yet are, each envelope file is renamed
//! to its final name (the commit), `queue/` is fsynced once, and then every completion is
//! called. If that last fsync fails, the batch's messages are taken back out of the queue
//! and every sender gets the error.

use super::incoming::PreparedCommit;
use super::{IncomingMessage, Spool};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread;

/// Called exactly once with the outcome of a commit, on the committer's thread: `Ok(())`
/// means the message is durable and queued, so the session may answer 250. Keep it short
/// (send on a channel, wake a task): the next batch waits for it.
pub type CommitCompletion = Box<dyn FnOnce(io::Result<()>) + Send>;

struct Request {
    message: Staged,
    done: CommitCompletion,
}

/// A message as handed to the committer thread.
enum Staged {
    /// Still buffered: the committer flushes and syncs it.
    Written(IncomingMessage),
    /// Already flushed and synced by the submitting thread (or failed doing so).
    Synced(io::Result<PreparedCommit>),
}

/// Counters of a [`GroupCommitter`], for statistics and benchmarks.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct CommitStats {
    /// Messages committed successfully.
    pub commits: u64,
    /// Batches processed (each with one fsync of `queue/`).
    pub batches: u64,
    /// Commits that failed.
    pub failures: u64,
}

#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    batches: AtomicU64,
    failures: AtomicU64,
}

/// A handle to the committer thread. Clone it into every session thread; the thread ends
/// once every handle is dropped and the last batch is answered.
///
/// From blocking code call [`GroupCommitter::commit`]. From an async runtime (smol) call
/// [`GroupCommitter::submit`] with a completion that sends the result on an async channel
/// (or wakes a waker); `submit` itself never blocks.
#[derive(Clone)]
pub struct GroupCommitter {
    requests: Sender<Request>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for GroupCommitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommitter")
            .field("stats", &self.stats())
            .finish()
    }
}

impl GroupCommitter {
    /// Start the committer thread for `spool`, committing at most `max_batch` messages
    /// per shared fsync (at least 1).
    pub fn start(spool: Spool, max_batch: usize) -> io::Result<GroupCommitter> {
        let (requests, inbox) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        let max_batch = max_batch.max(1);
        thread::Builder::new()
            .name("spool-commit".into())
            .spawn(move || run(spool, inbox, max_batch, thread_counters))?;
        Ok(GroupCommitter { requests, counters })
    }

    /// Queue `message` (created from this committer's spool, else it fails) for the next
    /// batch; `done` is called once it is durable or failed.
    /// If the committer thread is gone, `done` is called at once with an error.
    pub fn submit(&self, message: IncomingMessage, done: CommitCompletion) {
        self.send(Staged::Written(message), done);
    }

    fn send(&self, message: Staged, done: CommitCompletion) {
        if let Err(mpsc::SendError(request)) = self.requests.send(Request { message, done }) {
            (request.done)(Err(io::Error::other("spool committer stopped")));
        }
    }

    /// Fsync `message`'s files on the calling thread (a blocking one: concurrent callers'
    /// fsyncs share the journal's commits), then queue it for the next batch's rename and
    /// shared fsync of `queue/` without waiting; `done` is called once it is durable or
    /// failed. An async runtime calls this from its blocking pool.
    pub fn sync_then_submit(&self, message: IncomingMessage, done: CommitCompletion) {
        let prepared = message.prepare().and_then(|mut prepared| {
            prepared.start_writeback();
            prepared.sync_contents().map(|()| prepared)
        });
        self.send(Staged::Synced(prepared), done);
    }

    /// Commit `message` and wait until it is durable (or failed). The message's own
    /// files are fsynced on the calling thread, so that concurrent callers' fsyncs overlap
    /// in the kernel; the committer thread then renames and shares the `queue/` fsync.
    pub fn commit(&self, message: IncomingMessage) -> io::Result<()> {
        let prepared = message.prepare().and_then(|mut prepared| {
            prepared.start_writeback();
            prepared.sync_contents().map(|()| prepared)
        });
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(
            Staged::Synced(prepared),
            Box::new(move |result| {
                let _ = tx.send(result);
            }),
        );
        rx.recv()
            .unwrap_or_else(|_| Err(io::Error::other("spool committer stopped")))
    }

    /// The counters so far.
    pub fn stats(&self) -> CommitStats {
        CommitStats {
            commits: self.counters.commits.load(Ordering::Relaxed),
            batches: self.counters.batches.load(Ordering::Relaxed),
            failures: self.counters.failures.load(Ordering::Relaxed),
        }
    }
}

fn run(spool: Spool, inbox: Receiver<Request>, max_batch: usize, counters: Arc<Counters>) {
    while let Ok(first) = inbox.recv() {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match inbox.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        commit_batch(&spool, batch, &counters);
    }
}

/// A staged commit: the prepared message (if preparing worked), its result so far, and
/// whom to tell.
type StagedCommit = (Option<PreparedCommit>, io::Result<()>, CommitCompletion);

/// Sync and publish every message of the batch, fsync `queue/` once, then answer each.
fn commit_batch(spool: &Spool, batch: Vec<Request>, counters: &Counters) {
    let mut staged: Vec<StagedCommit> = Vec::with_capacity(batch.len());
    for Request { message, done } in batch {
        let prepared = match message {
            Staged::Written(message) => message.prepare().map(|mut prepared| {
                prepared.start_writeback();
                prepared
            }),
            Staged::Synced(prepared) => prepared,
        };
        match prepared {
            Ok(prepared) if prepared.spool_root() != spool.root() => {
                let e = io::Error::new(io::ErrorKind::InvalidInput, "message of another spool");
                staged.push((None, Err(e), done));
            }
            Ok(prepared) => staged.push((Some(prepared), Ok(()), done)),
            Err(e) => staged.push((None, Err(e), done)),
        }
    }
    // Every fsync first, then every rename: a rename between two fsyncs would put a
    // directory change into the transaction the next fsync waits for.
    for (prepared, result, _) in &mut staged {
        if let (Some(prepared), Ok(())) = (prepared, &result) {
            if let Err(e) = prepared.sync_contents() {
                *result = Err(e);
            }
        }
    }
    for (prepared, result, _) in &mut staged {
        if let (Some(prepared), Ok(())) = (prepared, &result) {
            if let Err(e) = prepared.sync_and_publish() {
                *result = Err(e);
            }
        }
    }
    let queue_synced = spool.sync();
    counters.batches.fetch_add(1, Ordering::Relaxed);
    for (prepared, mut result, done) in staged {
        if let (Err(e), Some(prepared), Ok(())) = (&queue_synced, &prepared, &result) {
            // The rename may not survive a crash: take the message back out so that the
            // client, told to retry, does not get it delivered twice.
            let _ = spool.purge(prepared.msgid());
            result = Err(io::Error::new(e.kind(), e.to_string()));
        }
        drop(prepared);
        match &result {
            Ok(()) => counters.commits.fetch_add(1, Ordering::Relaxed),
            Err(_) => counters.failures.fetch_add(1, Ordering::Relaxed),
        };
        done(result);
    }
}
