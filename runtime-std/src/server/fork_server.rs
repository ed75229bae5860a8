//! The delivery fork server, used when the daemon runs as root.
//!
//! A delivery as another user needs its own process (setuid is per process). Forking the
//! daemon itself is slow: it is multi-threaded, so every fork copies its page tables and
//! makes the kernel flush the TLBs of every CPU running one of its threads. So, at start
//! and before any thread exists, the daemon forks this small single-threaded server. For
//! each delivery it receives one request over a `SOCK_SEQPACKET` socket pair and forks a
//! short-lived child (cheap: a small, single-threaded parent), which runs
//! [`deliver_local`] (that drops to the recipient's uid/gid in its own child, as always)
//! and writes the outcome back as one packet. The daemon side ([`ForkServer::deliver`])
//! matches outcomes to waiting delivery threads by request id. The server exits when the
//! daemon's end of the socket closes.

use std::collections::HashMap;
use std::io;
use std::os::unix::io::RawFd;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};

use mta_core::engine::LocalMethodSpec;

use super::delivery_worker::{deliver_local, LocalJob};
use crate::delivery::DeliveryOutcome;
use crate::spool::Spool;

/// Largest request or reply packet.
const MAX_PACKET: usize = 64 * 1024;

/// The daemon's handle on the fork server.
pub struct ForkServer {
    socket: RawFd,
    waiting: Mutex<HashMap<u64, Sender<DeliveryOutcome>>>,
    next_id: Mutex<u64>,
}

impl ForkServer {
    /// Fork the server process. Call it before any thread is started: the server must be
    /// single-threaded. `spool` is used by the server's children to read messages.
    ///
    /// # Errors
    ///
    /// When the socket pair or the fork fails.
    pub fn start(spool: &Spool) -> io::Result<ForkServer> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: socketpair writes two descriptors into the array we own.
        let rc = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        let [ours, theirs] = fds;
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
            serve(theirs, spool);
            // SAFETY: leave without running the daemon's destructors.
            unsafe { libc::_exit(0) };
        }
        // SAFETY: in the daemon: the server's end is not ours.
        unsafe { libc::close(theirs) };
        Ok(ForkServer {
            socket: ours,
            waiting: Mutex::new(HashMap::new()),
            next_id: Mutex::new(0),
        })
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
            if let Some((id, outcome)) = decode_reply(packet) {
                let waiter = self.waiting.lock().ok().and_then(|mut w| w.remove(&id));
                if let Some(tx) = waiter {
                    let _ = tx.send(outcome);
                }
            }
        }
    }

    fn fail_all(&self, reason: &str) {
        if let Ok(mut waiting) = self.waiting.lock() {
            for (_, tx) in waiting.drain() {
                let _ = tx.send(DeliveryOutcome::TempFail(reason.to_owned()));
            }
        }
    }

    /// Run `job` in a child of the fork server and wait for its outcome.
    pub fn deliver(&self, job: &LocalJob) -> DeliveryOutcome {
        let id = match self.next_id.lock() {
            Ok(mut next) => {
                *next = next.wrapping_add(1);
                *next
            }
            Err(_) => return DeliveryOutcome::TempFail("fork server state".to_owned()),
        };
        let (tx, rx) = channel();
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.insert(id, tx);
        }
        let request = encode_request(id, job);
        // SAFETY: sending a buffer we own, of its length.
        let sent = unsafe {
            libc::send(
                self.socket,
                request.as_ptr().cast(),
                request.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if usize::try_from(sent).ok() != Some(request.len()) {
            if let Ok(mut waiting) = self.waiting.lock() {
                waiting.remove(&id);
            }
            return DeliveryOutcome::TempFail(format!(
                "cannot reach the delivery fork server: {}",
                io::Error::last_os_error()
            ));
        }
        rx.recv().unwrap_or_else(|_| {
            DeliveryOutcome::TempFail("the delivery fork server is gone".to_owned())
        })
    }
}

/// The server's loop: one child per request; children are reaped by the kernel.
fn serve(socket: RawFd, spool: &Spool) {
    // SAFETY: ignoring SIGCHLD makes the kernel reap the children; no preconditions.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    let mut buf = vec![0u8; MAX_PACKET];
    loop {
        // SAFETY: receiving into a buffer we own, of its length.
        let n = unsafe { libc::recv(socket, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        if n <= 0 {
            return;
        }
        let packet = buf
            .get(..usize::try_from(n).unwrap_or(0))
            .unwrap_or_default();
        let Some((id, job)) = decode_request(packet) else {
            continue;
        };
        // SAFETY: the server is single-threaded; the child runs one delivery and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: the child waits for its own privilege-dropped child: restore SIGCHLD.
            unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
            let outcome = deliver_local(spool, &job);
            let reply = encode_reply(id, &outcome);
            // SAFETY: sending a buffer we own, then leaving at once.
            unsafe {
                libc::send(
                    socket,
                    reply.as_ptr().cast(),
                    reply.len(),
                    libc::MSG_NOSIGNAL,
                );
                libc::_exit(0);
            }
        }
        if pid < 0 {
            let outcome = DeliveryOutcome::TempFail(format!(
                "cannot fork a delivery process: {}",
                io::Error::last_os_error()
            ));
            let reply = encode_reply(id, &outcome);
            // SAFETY: sending a buffer we own.
            unsafe {
                libc::send(
                    socket,
                    reply.as_ptr().cast(),
                    reply.len(),
                    libc::MSG_NOSIGNAL,
                )
            };
        }
    }
}

/// `id NUL msgid NUL sender NUL recipient NUL user NUL method NUL hostname`; no field
/// holds a NUL (they are C strings for the system anyway).
fn encode_request(id: u64, job: &LocalJob) -> Vec<u8> {
    let (user, method) = LocalMethodSpec {
        user: job.user.clone(),
        method: job.method.clone(),
    }
    .format();
    let fields = [
        id.to_string(),
        job.msgid.clone(),
        job.sender.clone(),
        job.recipient.clone(),
        user,
        method,
        job.hostname.clone(),
    ];
    fields.join("\0").into_bytes()
}

fn decode_request(packet: &[u8]) -> Option<(u64, LocalJob)> {
    let text = std::str::from_utf8(packet).ok()?;
    let mut f = text.split('\0');
    let id = f.next()?.parse().ok()?;
    let (msgid, sender, recipient, user, method, hostname) = (
        f.next()?,
        f.next()?,
        f.next()?,
        f.next()?,
        f.next()?,
        f.next()?,
    );
    let spec = LocalMethodSpec::parse(user, method).ok()?;
    Some((
        id,
        LocalJob {
            msgid: msgid.to_owned(),
            sender: sender.to_owned(),
            recipient: recipient.to_owned(),
            user: spec.user,
            method: spec.method,
            hostname: hostname.to_owned(),
        },
    ))
}

/// `id NUL kind NUL text`, kind `D`, `T` or `P`.
fn encode_reply(id: u64, outcome: &DeliveryOutcome) -> Vec<u8> {
    let (kind, text) = match outcome {
        DeliveryOutcome::Delivered => ("D", ""),
        DeliveryOutcome::TempFail(t) => ("T", t.as_str()),
        DeliveryOutcome::PermFail(t) => ("P", t.as_str()),
    };
    let mut text = text.to_owned();
    text.truncate(4096);
    format!("{id}\0{kind}\0{text}").into_bytes()
}

fn decode_reply(packet: &[u8]) -> Option<(u64, DeliveryOutcome)> {
    let text = String::from_utf8_lossy(packet);
    let mut f = text.splitn(3, '\0');
    let id = f.next()?.parse().ok()?;
    let kind = f.next()?;
    let text = f.next().unwrap_or_default().to_owned();
    let outcome = match kind {
        "D" => DeliveryOutcome::Delivered,
        "T" => DeliveryOutcome::TempFail(text),
        "P" => DeliveryOutcome::PermFail(text),
        _ => return None,
    };
    Some((id, outcome))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mta_core::expand::{LocalMethod, LocalUser};

    #[test]
    fn requests_and_replies_round_trip() {
        let job = LocalJob {
            msgid: "0a1b2c3d".into(),
            sender: String::new(),
            recipient: "a+tag@example.org".into(),
            user: Some(LocalUser {
                name: "a".into(),
                uid: 1000,
                gid: 1000,
                directory: "/home/a:b".into(),
            }),
            method: LocalMethod::Lmtp {
                dest: "/run/lmtp".into(),
                rcpt: "a".into(),
            },
            hostname: "mx.example.org".into(),
        };
        assert_eq!(decode_request(&encode_request(7, &job)), Some((7, job)));
        for outcome in [
            DeliveryOutcome::Delivered,
            DeliveryOutcome::TempFail("later".into()),
            DeliveryOutcome::PermFail("no: never".into()),
        ] {
            assert_eq!(decode_reply(&encode_reply(9, &outcome)), Some((9, outcome)));
        }
    }
}
