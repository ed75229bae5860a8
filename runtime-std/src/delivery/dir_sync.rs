//! Group commit of directory fsyncs for the deliveries of one process.
//!
//! A maildir delivery is durable once the `new/` directory holding its entry is fsynced
//! (see [`super::maildir::store`]). When many threads deliver into one maildir at once
//! (a daemon that is not root delivers in-process on its delivery threads), each fsync
//! of the same directory waits for the others on the directory's inode lock, so they run
//! one after another anyway. Here they share them: a thread that renamed its file waits
//! for an fsync of that directory that STARTED after its rename (one already running may
//! have missed it), and one fsync serves every thread waiting for it.
//!
//! Each directory has a chain of generations. A thread takes the generation that will
//! start next; if no fsync of the directory is running it starts that generation itself,
//! else it waits. When a run ends, its generation's result is published to all of its
//! waiters, and one of the threads that arrived meanwhile starts the next generation.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

/// The result of one fsync, shared by its waiters (an `io::Error` cannot be cloned).
type Shared = Result<(), (io::ErrorKind, String)>;

/// One fsync of one directory, run or to be run.
#[derive(Default)]
struct Generation {
    /// Set once the fsync has run.
    result: Mutex<Option<Shared>>,
}

impl Generation {
    fn result(&self) -> Option<Shared> {
        self.result
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The fsyncs of one directory.
struct Directory {
    /// An fsync of it is running.
    running: bool,
    /// The generation the next thread to arrive waits for: it starts after that arrival.
    next: Arc<Generation>,
}

/// Shares fsyncs of directories between the threads that need them (see the module
/// documentation).
#[derive(Default)]
pub struct DirSync {
    dirs: Mutex<HashMap<PathBuf, Directory>>,
    finished: Condvar,
}

/// The process-wide [`DirSync`] of in-process deliveries.
pub fn shared() -> &'static DirSync {
    static SHARED: OnceLock<DirSync> = OnceLock::new();
    SHARED.get_or_init(DirSync::new)
}

impl DirSync {
    /// No directory known yet.
    pub fn new() -> DirSync {
        DirSync::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<PathBuf, Directory>> {
        self.dirs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Make the entries renamed into `dir` before this call durable: return once an
    /// fsync of `dir` that started after the call has finished, with its result.
    ///
    /// # Errors
    /// The error of that fsync (or of opening the directory for it): every thread it
    /// served gets it.
    pub fn sync(&self, dir: &Path) -> io::Result<()> {
        self.sync_with(dir, super::maildir::sync_dir)
    }

    /// [`DirSync::sync`] with `fsync` standing for the directory fsync (tests count and
    /// slow it down).
    ///
    /// # Errors
    /// As [`DirSync::sync`].
    pub fn sync_with(&self, dir: &Path, fsync: impl Fn(&Path) -> io::Result<()>) -> io::Result<()> {
        let mut dirs = self.lock();
        let entry = dirs.entry(dir.to_path_buf()).or_insert_with(|| Directory {
            running: false,
            next: Arc::new(Generation::default()),
        });
        let mine = Arc::clone(&entry.next);
        loop {
            if let Some(result) = mine.result() {
                return result.map_err(|(kind, text)| io::Error::new(kind, text));
            }
            let Some(entry) = dirs.get_mut(dir) else {
                // Entries leave only when no thread holds their next generation.
                return Err(io::Error::other("directory sync state lost"));
            };
            if !entry.running {
                // Nothing runs, so `mine` has not started: it is the directory's next
                // generation (earlier ones all ran), and this thread runs it.
                entry.running = true;
                entry.next = Arc::new(Generation::default());
                drop(dirs);
                let result = fsync(dir).map_err(|e| (e.kind(), e.to_string()));
                *mine.result.lock().unwrap_or_else(PoisonError::into_inner) = Some(result.clone());
                dirs = self.lock();
                if let Some(entry) = dirs.get_mut(dir) {
                    entry.running = false;
                    if Arc::strong_count(&entry.next) == 1 {
                        dirs.remove(dir);
                    }
                }
                drop(dirs);
                self.finished.notify_all();
                return result.map_err(|(kind, text)| io::Error::new(kind, text));
            }
            dirs = self
                .finished
                .wait(dirs)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// How many directories have an fsync running or waited for (tests: the state is
    /// dropped once nobody needs it).
    pub fn directories(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn one_thread_alone_runs_its_own_fsync() {
        let sync = DirSync::new();
        let runs = AtomicUsize::new(0);
        for _ in 0..3 {
            sync.sync_with(Path::new("/d"), |_| {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
            .expect("synced");
        }
        assert_eq!(
            runs.load(Ordering::SeqCst),
            3,
            "each call needs a new fsync"
        );
        assert_eq!(sync.directories(), 0);
    }

    #[test]
    fn a_failed_fsync_fails_every_thread_it_served() {
        let sync = DirSync::new();
        let err = sync
            .sync_with(Path::new("/d"), |_| Err(io::Error::other("disk gone")))
            .expect_err("failed");
        assert!(err.to_string().contains("disk gone"));
        sync.sync_with(Path::new("/d"), |_| Ok(()))
            .expect("next one runs again");
    }

    #[test]
    fn concurrent_threads_share_fsyncs_that_start_after_their_call() {
        let sync = Arc::new(DirSync::new());
        // How many fsyncs have started; each fsync reports the number it started with
        // through its (error) result, so a thread can check that the fsync it was given
        // started after its call.
        let started = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (sync, started) = (Arc::clone(&sync), Arc::clone(&started));
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        let before = started.load(Ordering::SeqCst);
                        let err = sync
                            .sync_with(Path::new("/d"), |_| {
                                let number = started.fetch_add(1, Ordering::SeqCst);
                                std::thread::sleep(Duration::from_millis(2));
                                Err(io::Error::other(number.to_string()))
                            })
                            .expect_err("every fsync reports its number");
                        let number: usize = err.to_string().parse().expect("a number");
                        assert!(number >= before, "fsync {number} started before the call");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        let runs = started.load(Ordering::SeqCst);
        assert!(runs < 16 * 20, "fsyncs were shared: {runs}");
        assert!(runs >= 20, "each thread needed its own 20");
        assert_eq!(sync.directories(), 0);
    }
}
