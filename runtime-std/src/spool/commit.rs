//! Group commit: many sessions' messages made durable in batches, sharing the journal
//! commits of their fsyncs and the fsync of `queue/` between every message of a batch.
//!
//! A message's own files (body, envelope file) are fsynced by the sender's thread
//! ([`GroupCommitter::commit`], [`GroupCommitter::sync_then_submit`]), so that concurrent
//! senders' fsyncs overlap in the kernel, or else by the leader ([`GroupCommitter::submit`]).
//! The first sender to find no batch in progress becomes the leader and commits every
//! request waiting (up to `max_batch`) on its own thread, so a lone session pays no thread
//! hop; the others only queue theirs. If more requests arrived meanwhile, the leader hands
//! them to the committer thread rather than keep its own session waiting, and that thread
//! leads batch after batch until none is left. A batch: the files not synced yet are, each
//! message file is
//! renamed to its final name (the commit), `queue/` is fsynced once, and then every
//! completion is called. If that last fsync fails, the batch's messages are taken back out
//! of the queue and every sender gets the error.
//!
//! Messages whole in memory ([`GroupCommitter::submit_buffered`], from an async executor
//! that must not block) always go to the committer thread, and the messages of a batch
//! given so share one file ([`super::shared`]): one fdatasync for all of them.
//!
//! A session that starts receiving a message says so ([`GroupCommitter::expect`]). The
//! committer thread, about to take a batch while such messages are on their way, waits
//! for them a little (at most [`GATHER`], a commit delay): one batch then pays one set of
//! flushes for all of them, instead of each arriving just after the previous batch
//! started and paying its own.

use super::incoming::PreparedCommit;
use super::shared::BufferedMessage;
use super::{IncomingMessage, Spool};
use std::io;
use std::mem;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// The longest the committer thread waits for messages being received to join a batch.
pub const GATHER: Duration = Duration::from_millis(2);

/// Called exactly once with the outcome of a commit, on the leader's thread: `Ok(())`
/// means the message is durable and queued, so the session may answer 250. Keep it short
/// (send on a channel, wake a task): the next batch waits for it.
pub type CommitCompletion = Box<dyn FnOnce(io::Result<()>) + Send>;

struct Request {
    message: Staged,
    done: CommitCompletion,
}

/// A message as handed to the committer.
enum Staged {
    /// Still buffered: the leader flushes and syncs it.
    Written(IncomingMessage),
    /// Already flushed and synced by the submitting thread (or failed doing so).
    Synced(io::Result<PreparedCommit>),
    /// Whole in memory: written with the others of its batch into one shared file.
    Buffered(BufferedMessage),
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

/// Requests waiting for the next batch, and who commits them.
#[derive(Default)]
struct Waiting {
    requests: Vec<Request>,
    /// A sender or the committer thread is committing a batch.
    leader: bool,
    /// The committer thread is to take over the leadership.
    handed_off: bool,
    /// Every handle is gone: the committer thread ends.
    closed: bool,
    /// The committer thread waits for the batch to reach this many requests.
    gather_target: Option<usize>,
}

struct Shared {
    spool: Spool,
    max_batch: usize,
    waiting: Mutex<Waiting>,
    hand_off: Condvar,
    counters: Counters,
    /// Messages being received whose commit is to come ([`Expected`]).
    expected: AtomicUsize,
    /// The longest wait for them ([`GATHER`] in a daemon).
    gather: Duration,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Before taking a batch on the committer thread: while messages are being received,
    /// wait until as many more requests as there were such messages have arrived, or
    /// the gather time ([`GATHER`] in a daemon) has passed.
    fn gather<'a>(&'a self, mut waiting: MutexGuard<'a, Waiting>) -> MutexGuard<'a, Waiting> {
        let soon = self.expected.load(Ordering::Relaxed);
        let target = waiting
            .requests
            .len()
            .saturating_add(soon)
            .min(self.max_batch);
        if waiting.requests.len() >= target {
            return waiting;
        }
        let deadline = Instant::now() + self.gather;
        waiting.gather_target = Some(target);
        while waiting.requests.len() < target && !waiting.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            waiting = self
                .hand_off
                .wait_timeout(waiting, left)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        waiting.gather_target = None;
        waiting
    }

    /// Take the next batch out of `waiting`.
    fn next_batch(&self, waiting: &mut Waiting) -> Vec<Request> {
        let take = waiting.requests.len().min(self.max_batch);
        let rest = waiting.requests.split_off(take);
        mem::replace(&mut waiting.requests, rest)
    }
}

/// Ends the committer thread once the last handle is dropped.
struct Owner(Arc<Shared>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.hand_off.notify_all();
    }
}

/// A handle to the spool's group commit; clone it into every session.
///
/// From blocking code call [`GroupCommitter::commit`]. From an async runtime (smol) call
/// [`GroupCommitter::sync_then_submit`] from its blocking pool, or
/// [`GroupCommitter::submit`], with a completion that sends the result on an async
/// channel (or wakes a waker).
#[derive(Clone)]
pub struct GroupCommitter {
    shared: Arc<Shared>,
    _owner: Arc<Owner>,
}

impl std::fmt::Debug for GroupCommitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommitter")
            .field("stats", &self.stats())
            .finish()
    }
}

impl GroupCommitter {
    /// A committer for `spool`, committing at most `max_batch` messages per shared fsync
    /// (at least 1).
    ///
    /// # Errors
    ///
    /// When the committer thread cannot be started.
    pub fn start(spool: Spool, max_batch: usize) -> io::Result<GroupCommitter> {
        GroupCommitter::with_gather(spool, max_batch, GATHER)
    }

    /// [`GroupCommitter::start`] waiting at most `gather` for expected messages (tests).
    ///
    /// # Errors
    ///
    /// When the committer thread cannot be started.
    pub fn with_gather(
        spool: Spool,
        max_batch: usize,
        gather: Duration,
    ) -> io::Result<GroupCommitter> {
        let shared = Arc::new(Shared {
            spool,
            max_batch: max_batch.max(1),
            waiting: Mutex::new(Waiting::default()),
            hand_off: Condvar::new(),
            counters: Counters::default(),
            expected: AtomicUsize::new(0),
            gather,
        });
        let thread_shared = Arc::clone(&shared);
        thread::Builder::new()
            .name("spool-commit".into())
            .spawn(move || run(&thread_shared))?;
        Ok(GroupCommitter {
            _owner: Arc::new(Owner(Arc::clone(&shared))),
            shared,
        })
    }

    /// Commit `message` (created from this committer's spool, else it fails) in a batch;
    /// `done` is called once it is durable or failed, perhaps on this thread before the
    /// call returns (when it leads the batch), perhaps on another's.
    pub fn submit(&self, message: IncomingMessage, done: CommitCompletion) {
        self.send(Staged::Written(message), done);
    }

    /// Queue the request; when no one is committing, lead one batch (with it) here and
    /// hand whatever arrived meanwhile to the committer thread.
    fn send(&self, message: Staged, done: CommitCompletion) {
        let shared = &self.shared;
        let mut waiting = shared.lock();
        waiting.requests.push(Request { message, done });
        if waiting.leader {
            return;
        }
        waiting.leader = true;
        let batch = shared.next_batch(&mut waiting);
        drop(waiting);
        let leading = Leading(shared);
        commit_batch(&shared.spool, batch, &shared.counters);
        drop(leading);
    }

    /// Commit `message`, whole in memory, without blocking the caller (an async
    /// executor): it joins the next batch on the committer thread, where the messages of a
    /// batch given this way are written into one file, fsynced once and linked under each
    /// message's name. `done` is called on the committer thread.
    pub fn submit_buffered(&self, message: BufferedMessage, done: CommitCompletion) {
        let shared = &self.shared;
        let mut waiting = shared.lock();
        waiting.requests.push(Request {
            message: Staged::Buffered(message),
            done,
        });
        if waiting.leader {
            // The leader, or the committer thread it hands over to, takes it; a committer
            // thread waiting for this batch to fill is told when it has.
            if waiting
                .gather_target
                .is_some_and(|target| waiting.requests.len() >= target)
            {
                drop(waiting);
                shared.hand_off.notify_one();
            }
            return;
        }
        waiting.leader = true;
        waiting.handed_off = true;
        drop(waiting);
        shared.hand_off.notify_one();
    }

    /// A session has started receiving a message it will commit with
    /// [`GroupCommitter::submit_buffered`]: until the returned guard is dropped (just
    /// before that submit, or when the message is abandoned), the committer thread may
    /// wait a little for it before it starts a batch.
    pub fn expect(&self) -> Expected {
        self.shared.expected.fetch_add(1, Ordering::Relaxed);
        Expected(Arc::clone(&self.shared))
    }

    /// Fsync `message`'s files on the calling thread (a blocking one: concurrent callers'
    /// fsyncs share the journal's commits), then commit it in a batch; `done` is called
    /// once it is durable or failed. An async runtime calls this from its blocking pool.
    pub fn sync_then_submit(&self, message: IncomingMessage, done: CommitCompletion) {
        let prepared = message.prepare().and_then(|mut prepared| {
            prepared.start_writeback();
            prepared.sync_contents().map(|()| prepared)
        });
        self.send(Staged::Synced(prepared), done);
    }

    /// Commit `message` and wait until it is durable (or failed). A message still whole
    /// in memory joins its batch's shared file; one with a file of its own is fsynced on
    /// the calling thread, so that concurrent callers' fsyncs overlap in the kernel, and
    /// the batch then renames it and shares the `queue/` fsync.
    pub fn commit(&self, message: IncomingMessage) -> io::Result<()> {
        let (tx, rx) = mpsc::sync_channel(1);
        let done: CommitCompletion = Box::new(move |result| {
            let _ = tx.send(result);
        });
        if !message.is_of(self.shared.spool.root()) {
            // Refused by the batch, as a message of another spool.
            self.sync_then_submit(message, done);
        } else {
            match message.into_buffered() {
                // Whole in memory: it shares its batch's file (led here when no batch runs).
                Ok(buffered) => self.send(Staged::Buffered(buffered), done),
                Err(message) => self.sync_then_submit(message, done),
            }
        }
        rx.recv()
            .unwrap_or_else(|_| Err(io::Error::other("spool committer stopped")))
    }

    /// The counters so far.
    pub fn stats(&self) -> CommitStats {
        let counters = &self.shared.counters;
        CommitStats {
            commits: counters.commits.load(Ordering::Relaxed),
            batches: counters.batches.load(Ordering::Relaxed),
            failures: counters.failures.load(Ordering::Relaxed),
        }
    }
}

/// A message being received whose commit is to come ([`GroupCommitter::expect`]).
pub struct Expected(Arc<Shared>);

impl Drop for Expected {
    fn drop(&mut self) {
        self.0.expected.fetch_sub(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Expected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Expected")
    }
}

/// The leadership of a sender: given up, or handed to the committer thread when requests
/// arrived meanwhile, as the sender's batch ends (even by a panic).
struct Leading<'a>(&'a Shared);

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        let mut waiting = self.0.lock();
        if waiting.requests.is_empty() {
            waiting.leader = false;
        } else {
            waiting.handed_off = true;
            drop(waiting);
            self.0.hand_off.notify_one();
        }
    }
}

/// The committer thread: leads batches from a hand-off until none is waiting.
fn run(shared: &Shared) {
    let mut waiting = shared.lock();
    loop {
        while !waiting.handed_off && !waiting.closed {
            waiting = shared
                .hand_off
                .wait(waiting)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if !waiting.handed_off {
            return;
        }
        while !waiting.requests.is_empty() {
            waiting = shared.gather(waiting);
            let batch = shared.next_batch(&mut waiting);
            drop(waiting);
            commit_batch(&shared.spool, batch, &shared.counters);
            waiting = shared.lock();
        }
        waiting.handed_off = false;
        waiting.leader = false;
    }
}

/// A staged commit: the prepared message (if preparing worked), its result so far, and
/// whom to tell.
type StagedCommit = (Option<PreparedCommit>, io::Result<()>, CommitCompletion);

/// Sync and publish every message of the batch, fsync `queue/` once, then answer each.
fn commit_batch(spool: &Spool, batch: Vec<Request>, counters: &Counters) {
    let mut staged: Vec<StagedCommit> = Vec::with_capacity(batch.len());
    let mut buffered: Vec<(BufferedMessage, CommitCompletion)> = Vec::new();
    for Request { message, done } in batch {
        let prepared = match message {
            Staged::Written(message) => message.prepare().map(|mut prepared| {
                prepared.start_writeback();
                prepared
            }),
            Staged::Synced(prepared) => prepared,
            Staged::Buffered(message) => {
                buffered.push((message, done));
                continue;
            }
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
    // From here a commit is its message id (none when it failed before it had one).
    let mut outcomes: Vec<(Option<String>, io::Result<()>, CommitCompletion)> = staged
        .into_iter()
        .map(|(prepared, result, done)| (prepared.map(|p| p.msgid().to_owned()), result, done))
        .collect();
    outcomes.extend(
        commit_shared(spool, buffered)
            .into_iter()
            .map(|(msgid, result, done)| (Some(msgid), result, done)),
    );
    let queue_synced = spool.sync();
    counters.batches.fetch_add(1, Ordering::Relaxed);
    for (msgid, mut result, done) in outcomes {
        if let (Err(e), Some(msgid), Ok(())) = (&queue_synced, &msgid, &result) {
            // The rename or link may not survive a crash: take the message back out so
            // that the client, told to retry, does not get it delivered twice.
            let _ = spool.purge(msgid);
            result = Err(io::Error::new(e.kind(), e.to_string()));
        }
        match &result {
            Ok(()) => counters.commits.fetch_add(1, Ordering::Relaxed),
            Err(_) => counters.failures.fetch_add(1, Ordering::Relaxed),
        };
        done(result);
    }
}

/// Write the batch's messages whole in memory into one shared file, fsync it and link it
/// under each name: the outcome of each (not durable before the caller's fsync of
/// `queue/`), with whom to tell.
fn commit_shared(
    spool: &Spool,
    buffered: Vec<(BufferedMessage, CommitCompletion)>,
) -> Vec<(String, io::Result<()>, CommitCompletion)> {
    let mut outcomes = Vec::with_capacity(buffered.len());
    let mut accepted = Vec::with_capacity(buffered.len());
    for (message, done) in buffered {
        match message.check(spool) {
            Ok(()) => accepted.push((message, done)),
            Err(e) => outcomes.push((message.msgid, Err(e), done)),
        }
    }
    if accepted.is_empty() {
        return outcomes;
    }
    let messages: Vec<&BufferedMessage> = accepted.iter().map(|(m, _)| m).collect();
    match spool.write_shared(&messages) {
        Ok(file) => {
            let linked = file.publish();
            for ((message, done), (_, result)) in accepted.into_iter().zip(linked) {
                outcomes.push((message.msgid, result, done));
            }
        }
        Err(e) => {
            for (message, done) in accepted {
                let e = io::Error::new(e.kind(), e.to_string());
                outcomes.push((message.msgid, Err(e), done));
            }
        }
    }
    outcomes
}
