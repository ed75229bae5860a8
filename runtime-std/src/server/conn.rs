//! One connection thread: drives smtp-proto's [`ServerSession`] over a blocking TCP
//! stream (STYLE.md §2.3). It drains the session's actions (replies are written in one
//! write per batch, questions go to the engine, body chunks go to the incoming spool
//! file), then the notes the engine left in its [`Mailbox`], then waits in `poll(2)` for
//! the socket (only while the session has room for input), the mailbox or the session's
//! deadline.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::io::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smtp_proto::reply::{EnhancedStatus, Reply};
use smtp_proto::server::{Action, Answer, Input, Question, ReqId, ServerConfig, ServerSession};

use super::log::Log;
use super::mailbox::{Mailbox, Note};
use crate::spool::{GroupCommitter, IncomingMessage, Spool};
use mta_core::engine::ReceivedCounter;

/// Largest read from the socket at once.
const READ_CHUNK: usize = 64 * 1024;

/// How long a write to a client may block before the connection is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(300);

/// What a connection thread needs from the engine: the seam between the socket loop and
/// the decisions. The engine host implements it; tests can implement it with a script.
pub trait SessionBackend: Send + Sync {
    /// A connection opened; returns the session's id. Notes for it go to `mailbox`.
    fn open(
        &self,
        peer: SocketAddr,
        local: SocketAddr,
        listener: usize,
        mailbox: Arc<Mailbox>,
    ) -> u64;
    /// The session asked `question`; for `EndOfMessage`, `received_headers` is the number
    /// of `Received:` headers the client's message carries.
    fn question(&self, session: u64, req: ReqId, question: Question, received_headers: usize);
    /// The session dropped the body after a positive `DataStart`.
    fn body_aborted(&self, session: u64);
    /// The message `msgid` of this session was committed (or failed to be).
    fn committed(&self, session: u64, msgid: &str, result: Result<(), String>);
    /// The connection is gone.
    fn closed(&self, session: u64);
}

/// Everything a connection thread shares with the rest of the daemon.
#[derive(Clone)]
pub struct ConnContext {
    /// The engine seam.
    pub backend: Arc<dyn SessionBackend>,
    /// The spool messages are received into.
    pub spool: Spool,
    /// The committer that makes them durable.
    pub committer: GroupCommitter,
    /// Free bytes the spool needs to accept a new transaction (else 452).
    pub min_free_bytes: u64,
    /// The log.
    pub log: Log,
}

/// The message being received on a connection.
enum Receiving {
    /// No message open.
    None,
    /// Open and written so far without error.
    Open(IncomingMessage),
    /// Opening or writing failed; the commit will be refused with this reason.
    Failed(String, String),
}

/// Serve one client until the session closes. Never panics on a peer's behaviour; every
/// error ends the connection.
pub fn serve(
    stream: TcpStream,
    listener: usize,
    config: Arc<ServerConfig>,
    ctx: ConnContext,
    mailbox: Arc<Mailbox>,
) {
    let (Ok(peer), Ok(local)) = (stream.peer_addr(), stream.local_addr()) else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let id = ctx
        .backend
        .open(peer, local, listener, Arc::clone(&mailbox));
    let mut conn = Conn {
        stream,
        session: ServerSession::new(config, Instant::now()),
        ctx: ctx.clone(),
        id,
        mailbox,
        receiving: Receiving::None,
        counter: ReceivedCounter::default(),
        out: Vec::new(),
    };
    conn.run();
    if let Receiving::Open(message) = std::mem::replace(&mut conn.receiving, Receiving::None) {
        let _ = message.abort();
    }
    let _ = conn.stream.shutdown(Shutdown::Both);
    ctx.backend.closed(id);
}

struct Conn {
    stream: TcpStream,
    session: ServerSession,
    ctx: ConnContext,
    id: u64,
    mailbox: Arc<Mailbox>,
    receiving: Receiving,
    counter: ReceivedCounter,
    out: Vec<u8>,
}

impl Conn {
    fn run(&mut self) {
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            if self.drain_actions() {
                return;
            }
            if !self.flush() {
                self.session.handle(Input::PeerClosed, Instant::now());
                continue;
            }
            let notes = self.mailbox.take();
            if !notes.is_empty() {
                for note in notes {
                    self.handle_note(note);
                }
                continue;
            }
            if self.session.is_closed() {
                return;
            }
            self.wait_and_read(&mut buf);
        }
    }

    /// Perform the session's actions; true when the connection must close now.
    fn drain_actions(&mut self) -> bool {
        while let Some(action) = self.session.poll_action() {
            match action {
                Action::Send(bytes) => self.out.extend_from_slice(&bytes),
                Action::StartTls => {
                    // TLS is never advertised by this runtime yet; a StartTls cannot occur.
                    let _ = self.flush();
                    return true;
                }
                Action::Ask(req, question) => self.ask(req, question),
                Action::Body { chunk } => self.body(&chunk),
                Action::BodyAborted { .. } => {
                    if let Receiving::Open(message) =
                        std::mem::replace(&mut self.receiving, Receiving::None)
                    {
                        let _ = message.abort();
                    }
                    self.receiving = Receiving::None;
                    self.ctx.backend.body_aborted(self.id);
                }
                Action::Close(reason) => {
                    let _ = self.flush();
                    self.ctx.log.debug(&format!(
                        "smtp-in: session {:016x} closing: {reason:?}",
                        self.id
                    ));
                    return true;
                }
                Action::Event(event) => self
                    .ctx
                    .log
                    .debug(&format!("smtp-in: session {:016x} {event:?}", self.id)),
            }
        }
        false
    }

    fn ask(&mut self, req: ReqId, question: Question) {
        if matches!(question, Question::MailFrom { .. })
            && !self
                .ctx
                .spool
                .has_room(self.ctx.min_free_bytes)
                .unwrap_or(true)
        {
            self.ctx
                .log
                .warn("smtp-in: queue file system is nearly full, refusing mail");
            let reply = Reply::new(
                452,
                Some(EnhancedStatus::new(4, 3, 1)),
                b"Insufficient system storage".to_vec(),
            );
            self.session
                .handle(Input::Answer(req, Answer::from(reply)), Instant::now());
            return;
        }
        if matches!(question, Question::DataStart { .. }) {
            self.counter = ReceivedCounter::default();
        }
        let received = self.counter.count();
        self.ctx.backend.question(self.id, req, question, received);
    }

    fn body(&mut self, chunk: &[u8]) {
        self.counter.feed(chunk);
        if let Receiving::Open(message) = &mut self.receiving {
            if let Err(e) = message.write_chunk(chunk) {
                let msgid = message.msgid().to_owned();
                self.fail(msgid, format!("spool write: {e}"));
            }
        }
    }

    /// Abandon the open message; the commit will report `reason`.
    fn fail(&mut self, msgid: String, reason: String) {
        if let Receiving::Open(message) = std::mem::replace(&mut self.receiving, Receiving::None) {
            let _ = message.abort();
        }
        self.ctx
            .log
            .warn(&format!("smtp-in: message {msgid}: {reason}"));
        self.receiving = Receiving::Failed(msgid, reason);
    }

    fn handle_note(&mut self, note: Note) {
        match note {
            Note::Answer(req, answer) => self
                .session
                .handle(Input::Answer(req, answer), Instant::now()),
            Note::Open { msgid, header } => {
                if let Receiving::Open(old) =
                    std::mem::replace(&mut self.receiving, Receiving::None)
                {
                    let _ = old.abort();
                }
                match self.ctx.spool.create_incoming(&msgid) {
                    Ok(mut message) => match message.write_chunk(&header) {
                        Ok(()) => self.receiving = Receiving::Open(message),
                        Err(e) => {
                            let _ = message.abort();
                            self.fail(msgid, format!("spool write: {e}"));
                        }
                    },
                    Err(e) => self.fail(msgid, format!("spool create: {e}")),
                }
            }
            Note::Commit { msgid, envelopes } => {
                let result = self.commit(&msgid, envelopes);
                if let Err(reason) = &result {
                    self.ctx
                        .log
                        .warn(&format!("smtp-in: message {msgid} not committed: {reason}"));
                }
                self.ctx.backend.committed(self.id, &msgid, result);
            }
            Note::Abort { msgid } => {
                let matches = match &self.receiving {
                    Receiving::Open(m) => m.msgid() == msgid,
                    Receiving::Failed(id, _) => *id == msgid,
                    Receiving::None => false,
                };
                if matches {
                    if let Receiving::Open(message) =
                        std::mem::replace(&mut self.receiving, Receiving::None)
                    {
                        let _ = message.abort();
                    }
                }
            }
            Note::Shutdown => self.session.handle(Input::Shutdown, Instant::now()),
        }
    }

    fn commit(&mut self, msgid: &str, envelopes: Vec<(String, Vec<u8>)>) -> Result<(), String> {
        match std::mem::replace(&mut self.receiving, Receiving::None) {
            Receiving::Open(mut message) if message.msgid() == msgid => {
                for (evpid, record) in &envelopes {
                    if let Err(e) = message.add_envelope(evpid, record) {
                        let _ = message.abort();
                        return Err(format!("envelope {evpid}: {e}"));
                    }
                }
                self.ctx
                    .committer
                    .commit(message)
                    .map_err(|e| format!("commit: {e}"))
            }
            Receiving::Open(other) => {
                let _ = other.abort();
                Err(format!("message {msgid} is not the one open"))
            }
            Receiving::Failed(_, reason) => Err(reason),
            Receiving::None => Err(format!("message {msgid} was never opened")),
        }
    }

    /// Write what the session sent; false when the client is gone.
    fn flush(&mut self) -> bool {
        if self.out.is_empty() {
            return true;
        }
        let ok = self.stream.write_all(&self.out).is_ok();
        self.out.clear();
        ok
    }

    fn wait_and_read(&mut self, buf: &mut [u8]) {
        let now = Instant::now();
        let timeout_ms: i32 = match self.session.poll_timeout() {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(now);
                i32::try_from(left.as_millis().saturating_add(1)).unwrap_or(i32::MAX)
            }
            None => -1,
        };
        let capacity = self.session.recv_capacity().min(buf.len());
        let mut fds = [
            libc::pollfd {
                fd: self.mailbox.fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.stream.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let count: libc::nfds_t = if capacity > 0 { 2 } else { 1 };
        // SAFETY: `fds` is a valid array of at least `count` pollfd structs we own.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), count, timeout_ms) };
        if ready < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                self.session.handle(Input::PeerClosed, Instant::now());
            }
            return;
        }
        if ready == 0 {
            self.session.handle_timeout(Instant::now());
            return;
        }
        let [_, socket] = fds;
        if capacity > 0 && socket.revents != 0 {
            let target = buf.get_mut(..capacity).unwrap_or_default();
            match self.stream.read(target) {
                Ok(0) => self.session.handle(Input::PeerClosed, Instant::now()),
                Ok(n) => {
                    let data = target.get(..n).unwrap_or_default();
                    self.session.handle(Input::Received(data), Instant::now());
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                    ) => {}
                Err(_) => self.session.handle(Input::PeerClosed, Instant::now()),
            }
        } else if self
            .session
            .poll_timeout()
            .is_some_and(|deadline| deadline <= Instant::now())
        {
            self.session.handle_timeout(Instant::now());
        }
    }
}
