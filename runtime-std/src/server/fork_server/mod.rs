//! The delivery fork server, used when the daemon runs as root.
//!
//! A delivery as another user needs its own process (setuid is per process). Forking the
//! daemon itself is slow: it is multi-threaded, so every fork copies its page tables and
//! makes the kernel flush the TLBs of every CPU running one of its threads. So, at start
//! and before any thread exists, the daemon forks this small single-threaded server. It
//! receives requests over a `SOCK_SEQPACKET` socket pair ([`serve`]):
//!
//! - a maildir delivery to a user goes to a long-lived maildir agent of that user
//!   ([`agent`]: it became the user once, at its start, and delivers batches of messages
//!   under one directory fsync), up to [`agents::LIMITS`] agents per user;
//! - every other request forks a short-lived child (cheap: a small, single-threaded
//!   parent), which runs [`deliver_local`] as the recipient (or stays root for the two
//!   questions below) and writes the outcome back as one packet.
//!
//! [`deliver_local`]: super::delivery_worker::deliver_local
//!
//! The daemon side matches outcomes to requests by id: a thread waiting in
//! [`ForkServer::deliver`], or a completion the reply reader runs
//! ([`ForkServer::try_deliver_then`], for maildir deliveries: no thread waits for them).
//! The server exits when the daemon's end of the socket closes, and its
//! agents when theirs do.
//!
//! The server stays root when the daemon drops its privileges after start-up
//! ([`super::privdrop`]), so it also answers the two other questions that need root:
//! a system account's password against the shadow file
//! ([`ForkServer::check_system_password`]) and a user's `.forward` in a home directory
//! the daemon's account cannot read ([`ForkServer::read_forward`]), each in a child too.

pub mod agent;
pub mod agents;
pub mod serve;
pub mod wire;

use std::collections::HashMap;
use std::io;
use std::os::unix::io::RawFd;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex, OnceLock};

use mta_core::expand::{FileLookup, LocalUser};

use super::delivery_worker::LocalJob;
use super::fork_request::{self, Reply, Request, MAX_PACKET};
use crate::delivery::DeliveryOutcome;
use crate::spool::Spool;

/// What the outcome of a delivery sent with [`ForkServer::try_deliver_then`] is given to.
pub type DeliveryDone = Box<dyn FnOnce(DeliveryOutcome) + Send>;

/// The most deliveries sent by [`ForkServer::try_deliver_then`] and not answered yet;
/// past it, deliveries wait on a delivery thread again.
pub const MAX_DETACHED: usize = 256;

/// Who waits for a reply.
enum Waiter {
    /// A thread blocked in [`ForkServer::ask`].
    Thread(Sender<Reply>),
    /// A completion, run on the reply reader's thread.
    Then(DeliveryDone),
}

/// The daemon's handle on the fork server.
pub struct ForkServer {
    socket: RawFd,
    pid: libc::pid_t,
    waiting: Mutex<HashMap<u64, Waiter>>,
    next_id: Mutex<u64>,
    /// Requests waiting as [`Waiter::Then`].
    detached: AtomicUsize,
}

/// The fork server of this process, once [`ForkServer::install`]ed.
static INSTALLED: OnceLock<Arc<ForkServer>> = OnceLock::new();

/// The fork server the daemon installed at start (root only), for the callers that hold
/// no handle on it: system-account AUTH ([`crate::auth::check`]) and `.forward` lookups.
pub fn installed() -> Option<Arc<ForkServer>> {
    INSTALLED.get().cloned()
}

impl ForkServer {
    /// Fork the server process. Call it before any thread is started: the server must be
    /// single-threaded. `spool` is used by the server's children to read messages;
    /// `control_socket` is the only file [`ForkServer::remove_control_socket`] removes.
    ///
    /// # Errors
    ///
    /// When the socket pair or the fork fails.
    pub fn start(spool: &Spool, control_socket: &Path) -> io::Result<ForkServer> {
        let [ours, theirs] = wire::socket_pair()?;
        // SAFETY: the caller guarantees no other thread exists, so the child may run Rust.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            let e = io::Error::last_os_error();
            // SAFETY: both descriptors are ours.
            unsafe {
                libc::close(ours);
                libc::close(theirs);
            }
            return Err(e);
        }
        if pid == 0 {
            // SAFETY: in the server: the daemon's end is not ours.
            unsafe { libc::close(ours) };
            serve::serve(theirs, spool, control_socket);
            // SAFETY: leave without running the daemon's destructors.
            unsafe { libc::_exit(0) };
        }
        // SAFETY: in the daemon: the server's end is not ours.
        unsafe { libc::close(theirs) };
        Ok(ForkServer {
            socket: ours,
            pid,
            waiting: Mutex::new(HashMap::new()),
            next_id: Mutex::new(0),
            detached: AtomicUsize::new(0),
        })
    }

    /// The server's process id (its agents and children are its children).
    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// Make this the process's fork server for [`installed`]; only the first call counts.
    pub fn install(self: &Arc<Self>) {
        let _ = INSTALLED.set(Arc::clone(self));
    }

    /// Start the thread that hands outcomes to the delivery threads waiting for them.
    ///
    /// # Errors
    ///
    /// When the thread cannot be started.
    pub fn start_reader(self: &Arc<Self>) -> io::Result<()> {
        let me = Arc::clone(self);
        std::thread::Builder::new()
            .name("fork-server-replies".to_owned())
            .spawn(move || me.read_replies())?;
        Ok(())
    }

    fn read_replies(&self) {
        let mut buf = vec![0u8; MAX_PACKET];
        loop {
            // SAFETY: receiving into a buffer we own, of its length.
            let n = unsafe { libc::recv(self.socket, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n <= 0 {
                if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                self.fail_all("the delivery fork server is gone");
                return;
            }
            let packet = buf
                .get(..usize::try_from(n).unwrap_or(0))
                .unwrap_or_default();
            if let Some((id, reply)) = fork_request::decode_reply(packet) {
                let waiter = self.waiting.lock().ok().and_then(|mut w| w.remove(&id));
                if let Some(waiter) = waiter {
                    self.answer(waiter, reply);
                }
            }
        }
    }

    fn answer(&self, waiter: Waiter, reply: Reply) {
        match waiter {
            Waiter::Thread(tx) => {
                let _ = tx.send(reply);
            }
            Waiter::Then(done) => {
                self.detached.fetch_sub(1, Ordering::Relaxed);
                done(delivery_outcome(reply));
            }
        }
    }

    fn fail_all(&self, reason: &str) {
        let waiters: Vec<Waiter> = match self.waiting.lock() {
            Ok(mut waiting) => waiting.drain().map(|(_, w)| w).collect(),
            Err(_) => Vec::new(),
        };
        for waiter in waiters {
            self.answer(waiter, Reply::TempFail(reason.to_owned()));
        }
    }

    /// The next request id.
    fn next_id(&self) -> Option<u64> {
        let mut next = self.next_id.lock().ok()?;
        *next = next.wrapping_add(1);
        Some(*next)
    }

    /// Send `job` without waiting for it: `done` gets its outcome on the reply reader's
    /// thread. Only when the socket takes the request at once (the caller may be an async
    /// executor) and fewer than [`MAX_DETACHED`] are outstanding; otherwise `done` comes
    /// back, for the caller to deliver on a thread of its own ([`ForkServer::deliver`]).
    ///
    /// # Errors
    /// `done`, when the request was not sent.
    pub fn try_deliver_then(&self, job: &LocalJob, done: DeliveryDone) -> Result<(), DeliveryDone> {
        if self.detached.load(Ordering::Relaxed) >= MAX_DETACHED {
            return Err(done);
        }
        let Some(id) = self.next_id() else {
            return Err(done);
        };
        let Some(packet) = fork_request::encode_request(id, &Request::Deliver(job.clone())) else {
            return Err(done);
        };
        match self.waiting.lock() {
            Ok(mut waiting) => {
                waiting.insert(id, Waiter::Then(done));
            }
            Err(_) => return Err(done),
        }
        self.detached.fetch_add(1, Ordering::Relaxed);
        // SAFETY: sending a buffer we own, of its length.
        let sent = unsafe {
            libc::send(
                self.socket,
                packet.as_ptr().cast(),
                packet.len(),
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        if usize::try_from(sent).ok() == Some(packet.len()) {
            return Ok(());
        }
        // Not sent: take the completion back, unless the reader already failed it.
        match self.waiting.lock().ok().and_then(|mut w| w.remove(&id)) {
            Some(Waiter::Then(done)) => {
                self.detached.fetch_sub(1, Ordering::Relaxed);
                Err(done)
            }
            Some(Waiter::Thread(_)) | None => Ok(()),
        }
    }

    /// Run `job` as its user (in a maildir agent or a one-shot child of the fork server)
    /// and wait for its outcome.
    pub fn deliver(&self, job: &LocalJob) -> DeliveryOutcome {
        delivery_outcome(self.ask(&Request::Deliver(job.clone())))
    }

    /// Check `password` for the system account `user` against the shadow file, which
    /// only the (root) fork server can read: `Ok(false)` for an unknown user, a locked
    /// account or a wrong password.
    ///
    /// # Errors
    /// Why it could not be checked (the shadow file, the hash, the fork server).
    pub fn check_system_password(&self, user: &str, password: &[u8]) -> Result<bool, String> {
        let request = Request::CheckPassword {
            user: user.to_owned(),
            password: password.to_vec(),
        };
        match self.ask(&request) {
            Reply::Yes => Ok(true),
            Reply::No => Ok(false),
            Reply::TempFail(text) => Err(text),
            other => Err(format!("unexpected fork server reply {other:?}")),
        }
    }

    /// Read `user`'s `~/.forward` as that user, in a child of the fork server: a file
    /// not owned by the user, writable by group or others, or not a regular file is
    /// [`FileLookup::Absent`] (forward(5)); at most [`fork_request::MAX_FORWARD`] bytes
    /// are read.
    pub fn read_forward(&self, user: &LocalUser) -> FileLookup {
        let request = Request::ReadForward {
            uid: user.uid,
            gid: user.gid,
            directory: user.directory.clone(),
        };
        match self.ask(&request) {
            Reply::Content(text) => FileLookup::Content(text),
            Reply::Absent => FileLookup::Absent,
            _ => FileLookup::TempFail,
        }
    }

    /// Remove the control socket the server was started with, if it is still a socket
    /// there: at a clean exit, once the control server is closed.
    ///
    /// # Errors
    /// Why it could not be removed.
    pub fn remove_control_socket(&self) -> Result<(), String> {
        match self.ask(&Request::RemoveControlSocket) {
            Reply::Yes | Reply::No => Ok(()),
            Reply::TempFail(text) => Err(text),
            other => Err(format!("unexpected fork server reply {other:?}")),
        }
    }

    /// Send `request` and wait for its reply; a [`Reply::TempFail`] when the server
    /// cannot be reached.
    fn ask(&self, request: &Request) -> Reply {
        let Some(id) = self.next_id() else {
            return Reply::TempFail("fork server state".to_owned());
        };
        let Some(packet) = fork_request::encode_request(id, request) else {
            return Reply::TempFail("request too large for the fork server".to_owned());
        };
        let (tx, rx) = channel();
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.insert(id, Waiter::Thread(tx));
        }
        // SAFETY: sending a buffer we own, of its length.
        let sent = unsafe {
            libc::send(
                self.socket,
                packet.as_ptr().cast(),
                packet.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if usize::try_from(sent).ok() != Some(packet.len()) {
            if let Ok(mut waiting) = self.waiting.lock() {
                waiting.remove(&id);
            }
            return Reply::TempFail(format!(
                "cannot reach the delivery fork server: {}",
                io::Error::last_os_error()
            ));
        }
        rx.recv()
            .unwrap_or_else(|_| Reply::TempFail("the delivery fork server is gone".to_owned()))
    }
}

/// What a delivery's reply means.
fn delivery_outcome(reply: Reply) -> DeliveryOutcome {
    match reply {
        Reply::Delivered => DeliveryOutcome::Delivered,
        Reply::PermFail(text) => DeliveryOutcome::PermFail(text),
        Reply::TempFail(text) => DeliveryOutcome::TempFail(text),
        other => DeliveryOutcome::TempFail(format!("unexpected fork server reply {other:?}")),
    }
}

/// `user`'s `~/.forward` (forward(5), see [`fork_request::read_forward`]) for the
/// expander: read here when this process may, else, in a home directory closed to the
/// daemon's account after a root daemon's privilege drop, through the root fork server as
/// the user; [`FileLookup::Absent`] when neither can read it.
pub fn forward_file(user: &LocalUser) -> FileLookup {
    let path = Path::new(&user.directory).join(".forward");
    match fork_request::read_unless_denied(&path, user.uid) {
        Some(found) => found,
        None => installed().map_or(FileLookup::Absent, |forker| forker.read_forward(user)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_checks_passwords_and_reads_forward_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("smtpd-forker-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let (spool, _) = Spool::open(dir.join("queue")).expect("spool");
        let control = dir.join("control.sock");
        let forker = Arc::new(ForkServer::start(&spool, &control).expect("fork server"));
        forker.start_reader().expect("reader");
        // SAFETY: the get*id calls have no preconditions.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let forward = dir.join(".forward");
        std::fs::write(&forward, "carol@example.org\n").expect("write");
        std::fs::set_permissions(&forward, std::fs::Permissions::from_mode(0o600)).expect("mode");
        let user = LocalUser {
            name: "t".into(),
            uid,
            gid,
            directory: dir.to_string_lossy().into_owned(),
        };
        assert_eq!(
            forker.read_forward(&user),
            FileLookup::Content("carol@example.org\n".into())
        );
        assert_eq!(forward_file(&user), forker.read_forward(&user));
        let homeless = LocalUser {
            directory: dir.join("none").to_string_lossy().into_owned(),
            ..user
        };
        assert_eq!(forker.read_forward(&homeless), FileLookup::Absent);
        match forker.check_system_password("no-such-user-smtpd-test", b"x") {
            Ok(ok) => assert!(uid == 0 && !ok, "unknown users never log in"),
            Err(e) => assert!(uid != 0 && e.contains("shadow"), "{e}"),
        }
        std::fs::write(&control, b"").expect("a plain file");
        forker.remove_control_socket().expect("answered");
        assert!(control.exists(), "only a socket is removed");
        std::fs::remove_file(&control).expect("remove");
        let _listener = std::os::unix::net::UnixListener::bind(&control).expect("bind");
        forker.remove_control_socket().expect("removed");
        assert!(!control.exists(), "the socket is gone");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
