//! A session's mailbox: what the engine (driven from any thread) has for one connection,
//! and how the connection is woken when something arrives: an eventfd that wakes its
//! thread out of `poll(2)`, or, for an async task ([`Mailbox::for_task`]), the task's
//! waker (no descriptor to create, register and re-arm for every wait).
//!
//! Engine actions addressed to a session are pushed here in the order the engine emitted
//! them; the connection thread drains them before it reads from its socket again.

use std::collections::VecDeque;
use std::io;
use std::os::unix::io::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread::ThreadId;

use smtp_proto::server::{Answer, ReqId};

/// One thing the engine has for a session.
#[derive(Debug)]
pub enum Note {
    /// The answer to a question the session asked.
    Answer(ReqId, Answer),
    /// A message begins: create it in the spool's incoming area and write `header` (the
    /// `Received:` line the engine composed) before the body.
    Open {
        /// The message id chosen by the engine.
        msgid: String,
        /// Bytes that go before the body.
        header: Vec<u8>,
    },
    /// The body is complete: add these envelope records and make the message durable,
    /// then report the result to the engine.
    Commit {
        /// The message id.
        msgid: String,
        /// `(envelope id, record)` for every envelope.
        envelopes: Vec<(String, Vec<u8>)>,
    },
    /// The message will not be committed: remove what was written.
    Abort {
        /// The message id.
        msgid: String,
    },
    /// The server is stopping: tell the client 421 and close.
    Shutdown,
}

/// The notes waiting for one connection thread, with its wake-up descriptor.
///
/// By default every note writes the descriptor. A reader that drains the notes while it
/// runs anyway may [`Mailbox::disarm`] the wake-up when it wakes and
/// [`Mailbox::arm`] it before it waits again: the notes left meanwhile then cost no
/// system call on either side.
#[derive(Debug)]
pub struct Mailbox {
    notes: Mutex<VecDeque<Note>>,
    /// The eventfd a thread polls; -1 for a task's mailbox, woken through `waker`.
    event_fd: RawFd,
    /// The waker of the task reading a [`Mailbox::for_task`] mailbox, while it waits.
    waker: Mutex<Option<Waker>>,
    /// Whether a push must write the descriptor (the reader is, or may be, waiting).
    armed: AtomicBool,
    /// The descriptor was written since the last reset.
    signalled: AtomicBool,
    /// The thread that reads with [`Mailbox::take`]: its own pushes need no wake-up, since
    /// it takes the notes before it waits.
    reader: OnceLock<ThreadId>,
}

impl Mailbox {
    /// A new, empty mailbox with its eventfd.
    ///
    /// # Errors
    ///
    /// When the kernel refuses an eventfd (descriptor limit).
    pub fn new() -> io::Result<Mailbox> {
        // SAFETY: eventfd takes plain integers and returns a descriptor or -1.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Mailbox::with_fd(fd))
    }

    /// A mailbox read by an async task, which waits with [`Mailbox::poll_ready`]: a push
    /// wakes the task's waker instead of writing a descriptor.
    pub fn for_task() -> Mailbox {
        Mailbox::with_fd(-1)
    }

    /// An empty mailbox woken through `event_fd` (-1: through the waker only).
    fn with_fd(event_fd: RawFd) -> Mailbox {
        Mailbox {
            notes: Mutex::new(VecDeque::new()),
            event_fd,
            waker: Mutex::new(None),
            armed: AtomicBool::new(true),
            signalled: AtomicBool::new(false),
            reader: OnceLock::new(),
        }
    }

    /// Ready once a note waits; else the task's waker is kept, to be woken by the next
    /// push (any mailbox; one made with [`Mailbox::for_task`] has no descriptor besides).
    pub fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        {
            let mut waker = self.waker.lock().unwrap_or_else(PoisonError::into_inner);
            match waker.as_ref() {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *waker = Some(cx.waker().clone()),
            }
        }
        // Looked at after the waker is kept: a push from now on wakes it.
        let waiting = self.notes.lock().map(|n| !n.is_empty()).unwrap_or(false);
        if waiting {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Leave a note and wake the connection thread (unless it disarmed the wake-up).
    pub fn push(&self, note: Note) {
        if let Ok(mut notes) = self.notes.lock() {
            notes.push_back(note);
        }
        if !self.armed.load(Ordering::SeqCst)
            || self.reader.get() == Some(&std::thread::current().id())
        {
            return;
        }
        let waker = self
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(waker) = waker {
            waker.wake();
        }
        if self.event_fd < 0 {
            return;
        }
        let one: u64 = 1;
        // SAFETY: writing 8 bytes we own to our own eventfd.
        unsafe {
            libc::write(self.event_fd, (&one as *const u64).cast(), 8);
        }
        // Only after the write: a reader that saw the flag must find the descriptor set.
        self.signalled.store(true, Ordering::SeqCst);
    }

    /// Take every waiting note, oldest first, and reset the wake-up descriptor. The first
    /// thread to call it is the mailbox's reader: it must call it again before each wait
    /// (its own pushes do not write the descriptor).
    pub fn take(&self) -> VecDeque<Note> {
        let _ = self.reader.get_or_init(|| std::thread::current().id());
        if self.signalled.swap(false, Ordering::SeqCst) {
            self.reset();
        }
        match self.notes.lock() {
            Ok(mut notes) => std::mem::take(&mut *notes),
            Err(_) => VecDeque::new(),
        }
    }

    /// Take every waiting note without touching the descriptor (for a reader that
    /// disarmed it, or resets it itself).
    pub fn take_quietly(&self) -> VecDeque<Note> {
        match self.notes.lock() {
            Ok(mut notes) => std::mem::take(&mut *notes),
            Err(_) => VecDeque::new(),
        }
    }

    /// The reader is running and will look at the notes before it waits: pushes need not
    /// write the descriptor.
    pub fn disarm(&self) {
        self.armed.store(false, Ordering::SeqCst);
    }

    /// The reader is about to wait: pushes write the descriptor again. Returns true when
    /// notes are already waiting, so the reader must not wait.
    pub fn arm(&self) -> bool {
        self.armed.store(true, Ordering::SeqCst);
        // A push that saw the mailbox disarmed queued its note before this check.
        self.notes.lock().map(|n| !n.is_empty()).unwrap_or(false)
    }

    /// Reset the descriptor after it woke the reader.
    pub fn reset(&self) {
        self.signalled.store(false, Ordering::SeqCst);
        if self.event_fd < 0 {
            return;
        }
        let mut counter: u64 = 0;
        // SAFETY: reading 8 bytes into a u64 we own from our own eventfd (non-blocking).
        unsafe {
            libc::read(self.event_fd, (&mut counter as *mut u64).cast(), 8);
        }
    }

    /// The descriptor that becomes readable when a note is pushed (-1 for a
    /// [`Mailbox::for_task`] mailbox).
    pub fn fd(&self) -> RawFd {
        self.event_fd
    }
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        if self.event_fd >= 0 {
            // SAFETY: the descriptor is ours and closed once.
            unsafe {
                libc::close(self.event_fd);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_mailbox_wakes_the_waiting_task() {
        use std::sync::atomic::AtomicUsize;
        use std::sync::Arc;
        use std::task::Wake;
        struct Count(AtomicUsize);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let mailbox = Mailbox::for_task();
        assert_eq!(mailbox.fd(), -1);
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        let mut cx = Context::from_waker(&waker);
        assert!(mailbox.poll_ready(&mut cx).is_pending());
        std::thread::scope(|s| {
            s.spawn(|| mailbox.push(Note::Shutdown));
        });
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "woken once");
        assert!(mailbox.poll_ready(&mut cx).is_ready());
        mailbox.disarm();
        assert_eq!(mailbox.take_quietly().len(), 1);
        // Disarmed while the task runs: a push costs no wake-up.
        mailbox.push(Note::Shutdown);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(
            mailbox.arm(),
            "the note pushed meanwhile is seen before waiting"
        );
    }

    fn readable(fd: RawFd) -> bool {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, no wait.
        unsafe { libc::poll(&mut p, 1, 0) == 1 }
    }

    #[test]
    fn notes_keep_their_order_and_wake_the_reader() {
        let mailbox = Mailbox::new().expect("eventfd");
        assert!(!readable(mailbox.fd()));
        mailbox.push(Note::Abort { msgid: "a".into() });
        mailbox.push(Note::Shutdown);
        assert!(readable(mailbox.fd()));
        let notes: Vec<Note> = mailbox.take().into_iter().collect();
        assert!(matches!(
            notes.as_slice(),
            [Note::Abort { .. }, Note::Shutdown]
        ));
        assert!(!readable(mailbox.fd()), "taking resets the wake-up");
        assert!(mailbox.take().is_empty());
    }

    #[test]
    fn the_readers_own_pushes_do_not_wake_it() {
        let mailbox = std::sync::Arc::new(Mailbox::new().expect("eventfd"));
        assert!(mailbox.take().is_empty());
        mailbox.push(Note::Shutdown);
        assert!(!readable(mailbox.fd()), "the reader takes its own notes");
        assert_eq!(mailbox.take().len(), 1);
        let other = std::sync::Arc::clone(&mailbox);
        std::thread::spawn(move || other.push(Note::Shutdown))
            .join()
            .expect("pusher");
        assert!(
            readable(mailbox.fd()),
            "another thread's push wakes the reader"
        );
        assert_eq!(mailbox.take().len(), 1);
        assert!(!readable(mailbox.fd()));
    }

    #[test]
    fn a_disarmed_mailbox_keeps_notes_without_waking() {
        let mailbox = Mailbox::new().expect("eventfd");
        mailbox.disarm();
        mailbox.push(Note::Shutdown);
        assert!(!readable(mailbox.fd()), "no wake-up while disarmed");
        assert!(mailbox.arm(), "arming reports the waiting note");
        assert_eq!(mailbox.take_quietly().len(), 1);
        assert!(!mailbox.arm());
        mailbox.push(Note::Shutdown);
        assert!(readable(mailbox.fd()), "armed again: a push wakes");
        mailbox.reset();
        assert!(!readable(mailbox.fd()));
    }
}
