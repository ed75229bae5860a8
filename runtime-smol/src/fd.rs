//! Descriptors owned elsewhere, registered with smol's reactor: a session's mailbox
//! eventfd and the stop signal's pipe. The wrapper keeps the owner alive, so the
//! descriptor outlives its registration.

use std::os::unix::io::{AsFd, BorrowedFd, RawFd};
use std::sync::Arc;

use runtime_std::server::mailbox::Mailbox;

/// A session's mailbox, awaitable through its eventfd (`Async::<MailboxFd>::readable`).
pub struct MailboxFd(pub Arc<Mailbox>);

impl AsFd for MailboxFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the mailbox owns the eventfd and closes it only when dropped; we hold an
        // Arc to it for as long as this borrow can live.
        unsafe { BorrowedFd::borrow_raw(self.0.fd()) }
    }
}

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
