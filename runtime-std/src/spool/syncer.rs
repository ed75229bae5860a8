//! The background fsync of `queue/` after envelope updates and removals: whoever changes
//! the directory marks it dirty, one thread fsyncs it while it is, so a burst of
//! removals shares one fsync (and a crash loses at most the last few, which only ever
//! means a delivery made again, never a message lost).

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::time::Duration;

#[derive(Default)]
struct State {
    /// Changes not yet covered by a finished fsync.
    dirty: bool,
    /// An fsync is running.
    running: bool,
}

/// Shares the fsync of one directory between everyone who changed it.
pub(super) struct DirSyncer {
    dir: PathBuf,
    state: Mutex<State>,
    wake: Condvar,
    finished: Condvar,
}

impl DirSyncer {
    /// The syncer of `dir`, with its thread (which ends when the syncer is dropped). If
    /// the thread cannot be started, changes are made durable by the next
    /// [`DirSyncer::sync_now`] or commit instead.
    pub(super) fn start(dir: PathBuf) -> Arc<DirSyncer> {
        let syncer = Arc::new(DirSyncer {
            dir,
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            finished: Condvar::new(),
        });
        let weak = Arc::downgrade(&syncer);
        let _ = std::thread::Builder::new()
            .name("spool-sync".to_owned())
            .spawn(move || run(&weak));
        syncer
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The directory changed: fsync it soon.
    pub(super) fn dirty(&self) {
        self.lock().dirty = true;
        self.wake.notify_one();
    }

    /// Fsync the directory now (sharing a run that starts after this call) and wait.
    pub(super) fn sync_now(&self) -> std::io::Result<()> {
        {
            let mut state = self.lock();
            // A run already going may have missed our change: wait for it to end.
            while state.running {
                state = self
                    .finished
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            state.dirty = false;
            state.running = true;
        }
        let result = super::sync_dir(&self.dir);
        let mut state = self.lock();
        state.running = false;
        self.finished.notify_all();
        result
    }
}

/// How long a change may wait for an fsync that someone else (a commit) makes anyway,
/// before the syncer makes one of its own.
const LAZY: Duration = Duration::from_millis(50);

fn run(syncer: &Weak<DirSyncer>) {
    loop {
        let Some(syncer) = syncer.upgrade() else {
            return;
        };
        {
            let mut state = syncer.lock();
            if !state.dirty {
                // Wake up now and then to notice the spool was dropped.
                state = syncer
                    .wake
                    .wait_timeout(state, Duration::from_secs(1))
                    .map(|(guard, _)| guard)
                    .unwrap_or_else(|e| e.into_inner().0);
                if !state.dirty {
                    continue;
                }
            }
            // Dirty: give a commit's fsync (which clears the flag) a chance to cover it.
            let (state, _) = syncer
                .finished
                .wait_timeout_while(state, LAZY, |state| state.dirty)
                .unwrap_or_else(|e| e.into_inner());
            if !state.dirty {
                continue;
            }
        }
        // An error here is reported by the next sync_now or commit of the same directory.
        let _ = syncer.sync_now();
    }
}
