//! A descriptor owned elsewhere, registered with smol's reactor: the stop signal's pipe.

use std::os::unix::io::{AsFd, BorrowedFd, RawFd};

/// A descriptor borrowed for the life of the value that owns it (the stop pipe, which
/// lives until the daemon exits).
pub struct RawBorrowed(pub RawFd);

impl AsFd for RawBorrowed {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: callers build this only from a descriptor that stays open longer than
        // the wrapper (see `serve`, where the `StopSignal` outlives the executor).
        unsafe { BorrowedFd::borrow_raw(self.0) }
    }
}
