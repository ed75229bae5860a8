//! A thread accepting on a listening socket until its handle is dropped: the lifecycle
//! the control socket and the metrics endpoint share.

use std::io;
use std::os::unix::io::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// The accept thread of one listener; dropping it stops the thread and waits for it.
pub(crate) struct AcceptThread {
    /// The listening socket's descriptor, owned by the thread; shut down to wake its
    /// `accept`.
    listener_fd: RawFd,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AcceptThread {
    /// Start the thread `name` running `accept_loop`, which owns the listener whose
    /// descriptor is `listener_fd` and must return once the flag it is given is set
    /// (checked after each `accept` returns).
    ///
    /// # Errors
    /// When the thread cannot be started.
    pub(crate) fn spawn<F>(name: &str, listener_fd: RawFd, accept_loop: F) -> io::Result<Self>
    where
        F: FnOnce(&AtomicBool) + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || accept_loop(&flag))?;
        Ok(AcceptThread {
            listener_fd,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for AcceptThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept call: shutting a listening socket down makes a blocked accept
        // return on Linux (also for a UNIX socket whose file was removed).
        // SAFETY: the descriptor stays open until the accept thread, joined below, ends.
        unsafe {
            libc::shutdown(self.listener_fd, libc::SHUT_RDWR);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
