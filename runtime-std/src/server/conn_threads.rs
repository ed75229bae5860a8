//! Connection threads kept for the next client: still one thread per connection, but a
//! thread whose session ended waits a while for the next one instead of exiting, so a
//! client that connects once per message does not pay a thread's creation and teardown
//! (stack mapping, guard page, TLS set-up, the first scheduling on a new thread) each time.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

/// How long an idle connection thread waits for a new connection before it exits.
const IDLE_LIFETIME: Duration = Duration::from_secs(10);
/// Most idle threads kept; one more exits at once.
const MAX_IDLE: usize = 64;
/// Stack of a connection thread.
const STACK_SIZE: usize = 256 * 1024;

type Session = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Waiting {
    sessions: VecDeque<Session>,
    idle: usize,
}

#[derive(Default)]
struct Shared {
    waiting: Mutex<Waiting>,
    ready: Condvar,
}

/// The set of connection threads. Cheap to clone.
#[derive(Clone, Default)]
pub struct ConnThreads {
    shared: Arc<Shared>,
}

impl ConnThreads {
    /// Run `session` on an idle connection thread, or on a new one when none is idle.
    ///
    /// # Errors
    ///
    /// When no thread was idle and a new one cannot be started; `session` is dropped.
    pub fn run(&self, session: impl FnOnce() + Send + 'static) -> io::Result<()> {
        let mut waiting = self
            .shared
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if waiting.idle > waiting.sessions.len() {
            waiting.sessions.push_back(Box::new(session));
            drop(waiting);
            self.shared.ready.notify_one();
            return Ok(());
        }
        drop(waiting);
        let shared = Arc::clone(&self.shared);
        std::thread::Builder::new()
            .name("smtp-in".to_owned())
            .stack_size(STACK_SIZE)
            .spawn(move || {
                session();
                serve_more(&shared);
            })
            .map(|_| ())
    }

    /// How many threads wait for a connection now.
    #[cfg(test)]
    fn idle(&self) -> usize {
        self.shared
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .idle
    }
}

/// After a session: wait for the next one, up to [`IDLE_LIFETIME`], while fewer than
/// [`MAX_IDLE`] threads wait.
fn serve_more(shared: &Shared) {
    let mut waiting = shared
        .waiting
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    loop {
        if waiting.idle >= MAX_IDLE {
            return;
        }
        waiting.idle += 1;
        let mut timed_out = false;
        while waiting.sessions.is_empty() && !timed_out {
            let (guard, wait) = shared
                .ready
                .wait_timeout(waiting, IDLE_LIFETIME)
                .unwrap_or_else(PoisonError::into_inner);
            waiting = guard;
            timed_out = wait.timed_out();
        }
        waiting.idle -= 1;
        let Some(session) = waiting.sessions.pop_front() else {
            return;
        };
        drop(waiting);
        session();
        waiting = shared
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Instant;

    fn wait_idle(threads: &ConnThreads, n: usize) {
        let start = Instant::now();
        while threads.idle() != n {
            assert!(start.elapsed() < Duration::from_secs(5), "never {n} idle");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn an_idle_thread_serves_the_next_session() {
        let threads = ConnThreads::default();
        let (tx, rx) = mpsc::channel();
        let first = tx.clone();
        threads
            .run(move || first.send(std::thread::current().id()).unwrap())
            .unwrap();
        let id = rx.recv().unwrap();
        wait_idle(&threads, 1);
        threads
            .run(move || tx.send(std::thread::current().id()).unwrap())
            .unwrap();
        assert_eq!(rx.recv().unwrap(), id, "the same thread, reused");
    }

    #[test]
    fn busy_threads_make_a_new_one_start() {
        let threads = ConnThreads::default();
        let (started_tx, started_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        for _ in 0..3 {
            let started = started_tx.clone();
            let release = Arc::clone(&release_rx);
            threads
                .run(move || {
                    started.send(std::thread::current().id()).unwrap();
                    let _ = release.lock().unwrap().recv();
                })
                .unwrap();
        }
        let ids: std::collections::HashSet<_> =
            (0..3).map(|_| started_rx.recv().unwrap()).collect();
        assert_eq!(ids.len(), 3, "three sessions at once, three threads");
        for _ in 0..3 {
            release_tx.send(()).unwrap();
        }
        wait_idle(&threads, 3);
    }
}
