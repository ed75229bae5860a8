//! SIGTERM and SIGINT: a self-pipe that the accept loop polls beside its listeners, so a
//! signal stops the daemon cleanly (no new connections, 421 to every session, in-flight
//! deliveries finish). SIGPIPE is ignored: a client that hangs up is an error on write.

use std::io;
use std::os::unix::io::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};

/// The write end of the self-pipe, read by the signal handler.
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

/// The read end of the stop pipe: readable once SIGTERM or SIGINT arrived.
#[derive(Debug)]
pub struct StopSignal {
    read_fd: RawFd,
}

extern "C" fn on_signal(_signal: libc::c_int) {
    let fd = WAKE_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = 1u8;
        // SAFETY: write(2) is async-signal-safe; the buffer is one valid byte.
        unsafe {
            libc::write(fd, (&byte as *const u8).cast(), 1);
        }
    }
}

impl StopSignal {
    /// Install the handlers for SIGTERM and SIGINT and ignore SIGPIPE.
    ///
    /// # Errors
    ///
    /// When the pipe cannot be created or a handler cannot be installed.
    pub fn install() -> io::Result<StopSignal> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: pipe2 writes two descriptors into the array we own.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let [read_fd, write_fd] = fds;
        WAKE_FD.store(write_fd, Ordering::Relaxed);
        for signal in [libc::SIGTERM, libc::SIGINT] {
            // SAFETY: a zeroed sigaction is valid; we set the handler and an empty mask.
            let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            action.sa_flags = libc::SA_RESTART;
            // SAFETY: the mask belongs to the struct; the handler only calls write(2).
            let rc = unsafe {
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(signal, &action, std::ptr::null_mut())
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        // SAFETY: ignoring SIGPIPE has no preconditions.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        }
        Ok(StopSignal { read_fd })
    }

    /// A stop pipe without signal handlers, stopped by [`StopSignal::trigger`] (tests, or
    /// an embedding program that stops the server itself).
    ///
    /// # Errors
    ///
    /// When the pipe cannot be created.
    pub fn manual() -> io::Result<(StopSignal, StopTrigger)> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: pipe2 writes two descriptors into the array we own.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let [read_fd, write_fd] = fds;
        Ok((StopSignal { read_fd }, StopTrigger { write_fd }))
    }

    /// The descriptor to poll for readability.
    pub fn fd(&self) -> RawFd {
        self.read_fd
    }

    /// Whether a stop signal arrived (consumes the pending bytes).
    pub fn fired(&self) -> bool {
        let mut buf = [0u8; 16];
        // SAFETY: reading into a buffer we own, of its length, from our own descriptor.
        let n = unsafe { libc::read(self.read_fd, buf.as_mut_ptr().cast(), buf.len()) };
        n > 0
    }
}

/// The write end of a [`StopSignal::manual`] pipe.
#[derive(Debug)]
pub struct StopTrigger {
    write_fd: RawFd,
}

impl StopTrigger {
    /// Stop the server, as SIGTERM would.
    pub fn trigger(&self) {
        let byte = 1u8;
        // SAFETY: writing one byte we own to our own pipe.
        unsafe {
            libc::write(self.write_fd, (&byte as *const u8).cast(), 1);
        }
    }
}
