//! One connection thread: drives smtp-proto's [`ServerSession`] over a blocking TCP
//! stream (STYLE.md §2.3). It drains the session's actions (replies are written in one
//! write per batch, questions go to the engine, body chunks go to the incoming spool
//! file), then the notes the engine left in its [`Mailbox`], then waits in `poll(2)` for
//! the socket (only while the session has room for input), the mailbox or the session's
//! deadline.
//!
//! TLS (RFC 3207): on STARTTLS the `220` is flushed, then the bare socket goes to
//! [`TlsStream::accept`] (plaintext pipelined behind STARTTLS was already discarded by
//! the session, CVE-2011-0411); an `smtps` listener does the handshake before the banner.
//! Decrypted bytes are invisible to `poll(2)`, so the loop reads without polling while
//! the TLS stream holds input.
//!
//! AUTH (RFC 4954 §4): every refused AUTH is answered [`auth::FAILURE_DELAY`] after the
//! command arrived, whether the user exists or not, so a guesser gets the same slow
//! answer for both; a `421` answer from the engine (too many failures) ends the session.
//!
//! Local submission ([`serve_local`]): the same loop over one end of a UNIX socket pair,
//! for a session the engine sees as the local enqueuer (`from local` rules), as OpenSMTPD's
//! enqueuer speaks SMTP to its own daemon.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smtp_proto::reply::{EnhancedStatus, Reply};
use smtp_proto::server::{Action, Answer, Input, Question, ReqId, ServerConfig, ServerSession};

use super::log::Log;
use super::mailbox::{Mailbox, Note};
use super::trace::SmtpTrace;
use crate::auth;
use crate::spool::{GroupCommitter, IncomingMessage, Spool};
use crate::tls::{TlsInfo, TlsStream};
use mta_core::engine::ReceivedCounter;

/// Largest read from the socket at once.
const READ_CHUNK: usize = 64 * 1024;

/// How long a write to a client may block before the connection is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(300);

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// The TLS side of a listener, built once when it is bound.
#[derive(Debug)]
pub struct ListenerTls {
    /// The rustls configuration (certificates by SNI, client verification).
    pub config: Arc<rustls::ServerConfig>,
    /// `smtps`: the handshake comes first, before the banner (RFC 8314 §3.3).
    pub implicit: bool,
}

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
    /// TLS is active on the session: `protocol` (`TLSv1.3`) and `cipher` in the words of
    /// the `Received:` header (`TLS_AES_256_GCM_SHA384:256:NO`).
    fn tls(&self, session: u64, protocol: String, cipher: String);
    /// The session dropped the body after a positive `DataStart`.
    fn body_aborted(&self, session: u64);
    /// The message `msgid` of this session was committed (or failed to be).
    fn committed(&self, session: u64, msgid: &str, result: Result<(), String>);
    /// [`SessionBackend::committed`], with the effects that do not answer the session
    /// (deliveries, log lines) handed back, to be carried out once the session has
    /// written its answer: the client waits for its `250`, not for them.
    fn committed_answer_first(
        &self,
        session: u64,
        msgid: &str,
        result: Result<(), String>,
    ) -> AfterAnswer {
        self.committed(session, msgid, result);
        AfterAnswer::none()
    }
    /// The connection is gone.
    fn closed(&self, session: u64);
}

/// Work left after an answer ([`SessionBackend::committed_answer_first`]): carried out
/// when dropped, so that it is never lost, whichever way the session ends.
pub struct AfterAnswer(Option<Box<dyn FnOnce() + Send>>);

impl AfterAnswer {
    /// Nothing left.
    pub fn none() -> AfterAnswer {
        AfterAnswer(None)
    }

    /// `work`, to be done when this is dropped.
    pub fn new(work: Box<dyn FnOnce() + Send>) -> AfterAnswer {
        AfterAnswer(Some(work))
    }
}

impl Drop for AfterAnswer {
    fn drop(&mut self) {
        if let Some(work) = self.0.take() {
            work();
        }
    }
}

impl std::fmt::Debug for AfterAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "AfterAnswer(pending)"
        } else {
            "AfterAnswer(none)"
        })
    }
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

/// The `452 4.3.1` a MAIL gets while the queue's file system has less free space than
/// the daemon keeps (logged), or `None` when `question` may go to the engine.
pub fn storage_refusal(ctx: &ConnContext, question: &Question) -> Option<Reply> {
    if !matches!(question, Question::MailFrom { .. })
        || ctx.spool.has_room(ctx.min_free_bytes).unwrap_or(true)
    {
        return None;
    }
    ctx.log
        .warn("smtp-in: queue file system is nearly full, refusing mail");
    Some(Reply::new(
        452,
        Some(EnhancedStatus::new(4, 3, 1)),
        b"Insufficient system storage".to_vec(),
    ))
}

/// TLS is up on session `id`: log what was negotiated, tell the session machine when
/// it came by STARTTLS (`session`; `smtps` had TLS before the banner), and the engine
/// (for the `Received:` header).
pub fn announce_tls(
    ctx: &ConnContext,
    id: u64,
    peer: &str,
    session: Option<&mut ServerSession>,
    info: &TlsInfo,
) {
    ctx.log.info(&format!(
        "smtp-in: session {id:016x}: tls ciphers={} peer={peer}",
        info.ciphers_text()
    ));
    if let Some(session) = session {
        session.handle(
            Input::TlsEstablished {
                protocol: &info.protocol,
                cipher: info.openssl_cipher(),
            },
            Instant::now(),
        );
    }
    let clause = info.received_clause();
    let cipher = clause
        .strip_prefix(&format!("{}:", info.protocol))
        .unwrap_or(&clause)
        .to_owned();
    ctx.backend.tls(id, info.protocol.clone(), cipher);
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
/// error ends the connection. `tls` is the listener's TLS side, if it offers TLS.
pub fn serve(
    stream: TcpStream,
    listener: usize,
    config: Arc<ServerConfig>,
    tls: Option<Arc<ListenerTls>>,
    ctx: ConnContext,
    mailbox: Arc<Mailbox>,
) {
    let (Ok(peer), Ok(local)) = (stream.peer_addr(), stream.local_addr()) else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let (stream, implicit) = match &tls {
        Some(setup) if setup.implicit => {
            match TlsStream::accept(stream, Arc::clone(&setup.config), HANDSHAKE_TIMEOUT) {
                Ok(tls) => (Stream::Tls(Box::new(tls)), true),
                Err(e) => {
                    ctx.log.info(&format!(
                        "smtp-in: smtps from {peer}: tls handshake failed: {}",
                        handshake_reason(&e)
                    ));
                    return;
                }
            }
        }
        _ => (Stream::Plain(stream), false),
    };
    let id = ctx
        .backend
        .open(peer, local, listener, Arc::clone(&mailbox));
    let mut conn = Conn::new(stream, tls, peer.to_string(), config, ctx, id, mailbox);
    if implicit {
        conn.tls_active();
    }
    conn.serve();
}

/// Serve a local submission on `stream` (one end of a socket pair) until the session
/// closes. `open` registers the session with the engine as the local enqueuer and
/// returns its id; everything else goes through `ctx` as for a network client.
pub fn serve_local(
    stream: UnixStream,
    config: Arc<ServerConfig>,
    ctx: ConnContext,
    mailbox: Arc<Mailbox>,
    open: impl FnOnce(Arc<Mailbox>) -> u64,
) {
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let id = open(Arc::clone(&mailbox));
    let conn = Conn::new(
        Stream::Local(stream),
        None,
        "local".to_owned(),
        config,
        ctx,
        id,
        mailbox,
    );
    conn.serve();
}

/// Why a handshake failed, without the prefix the TLS stream may already have put.
fn handshake_reason(error: &io::Error) -> String {
    let text = error.to_string();
    text.strip_prefix("tls handshake failed: ")
        .map_or_else(|| text.clone(), str::to_owned)
}

/// The connection's byte stream: plaintext, or TLS after STARTTLS or on `smtps`.
enum Stream {
    /// The bare socket.
    Plain(TcpStream),
    /// TLS over the socket.
    Tls(Box<TlsStream>),
    /// A local submission's end of a socket pair.
    Local(UnixStream),
    /// Taken away by a handshake that failed.
    Gone,
}

impl Stream {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Stream::Plain(tcp) => tcp.write_all(bytes),
            Stream::Tls(tls) => tls.write_all(bytes),
            Stream::Local(local) => local.write_all(bytes),
            Stream::Gone => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// The socket to poll (-1, which poll(2) ignores, when gone).
    fn raw_fd(&self) -> i32 {
        match self {
            Stream::Plain(tcp) => tcp.as_raw_fd(),
            Stream::Tls(tls) => tls.get_ref().as_raw_fd(),
            Stream::Local(local) => local.as_raw_fd(),
            Stream::Gone => -1,
        }
    }

    /// Input already inside the stream, which poll(2) cannot see.
    fn has_pending_input(&self) -> bool {
        matches!(self, Stream::Tls(tls) if tls.has_pending_input())
    }

    /// One read after poll said the socket is readable (or input is pending).
    fn read_once(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.read(buf),
            Stream::Tls(tls) => tls.read_once(buf),
            Stream::Local(local) => local.read(buf),
            Stream::Gone => Ok(0),
        }
    }

    /// Ends the connection: close_notify for TLS (RFC 8446 §6.1), then both directions.
    fn close(&mut self) {
        match self {
            Stream::Plain(tcp) => {
                let _ = tcp.shutdown(Shutdown::Both);
            }
            Stream::Tls(tls) => {
                let _ = tls.close();
                let _ = tls.get_ref().shutdown(Shutdown::Both);
            }
            Stream::Local(local) => {
                let _ = local.shutdown(Shutdown::Both);
            }
            Stream::Gone => {}
        }
    }
}

struct Conn {
    stream: Stream,
    tls: Option<Arc<ListenerTls>>,
    /// The client, for log lines.
    peer: String,
    session: ServerSession,
    ctx: ConnContext,
    id: u64,
    mailbox: Arc<Mailbox>,
    receiving: Receiving,
    counter: ReceivedCounter,
    out: Vec<u8>,
    /// The AUTH question in flight and when it was asked.
    auth_asked: Option<(ReqId, Instant)>,
    /// A refused AUTH answer waiting for its time (see the module docs).
    held: Option<(Instant, ReqId, Answer)>,
    /// The engine ended the session (a `421` answer): close once it is written.
    closing: bool,
    /// `smtpctl trace smtp`.
    trace: SmtpTrace,
}

impl Conn {
    fn new(
        stream: Stream,
        tls: Option<Arc<ListenerTls>>,
        peer: String,
        config: Arc<ServerConfig>,
        ctx: ConnContext,
        id: u64,
        mailbox: Arc<Mailbox>,
    ) -> Conn {
        Conn {
            stream,
            tls,
            peer,
            session: ServerSession::new(config, Instant::now()),
            ctx,
            id,
            mailbox,
            receiving: Receiving::None,
            counter: ReceivedCounter::default(),
            out: Vec::new(),
            auth_asked: None,
            held: None,
            closing: false,
            trace: SmtpTrace::default(),
        }
    }

    /// Run the session to its end, then drop an unfinished message and tell the engine.
    fn serve(mut self) {
        self.run();
        if let Receiving::Open(message) = std::mem::replace(&mut self.receiving, Receiving::None) {
            let _ = message.abort();
        }
        self.stream.close();
        self.ctx.backend.closed(self.id);
    }

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
            if self.closing {
                return;
            }
            if self.release_held() {
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
                    if !self.flush() || !self.start_tls() {
                        return true;
                    }
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
        if let Some(reply) = storage_refusal(&self.ctx, &question) {
            self.session
                .handle(Input::Answer(req, Answer::from(reply)), Instant::now());
            return;
        }
        if matches!(question, Question::DataStart { .. }) {
            self.counter = ReceivedCounter::default();
        }
        if matches!(question, Question::Auth { .. }) {
            self.auth_asked = Some((req, Instant::now()));
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
            Note::Answer(req, answer) => match self.auth_asked {
                Some((asked, at)) if asked == req && !answer.reply.is_positive() => {
                    self.auth_asked = None;
                    let due = at.checked_add(auth::FAILURE_DELAY).unwrap_or(at);
                    self.held = Some((due, req, answer));
                }
                _ => self.answer(req, answer),
            },
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

    /// Hand an engine answer to the session; a `421` ends the session once written.
    fn answer(&mut self, req: ReqId, answer: Answer) {
        if answer.reply.code == 421 {
            self.closing = true;
        }
        self.session
            .handle(Input::Answer(req, answer), Instant::now());
    }

    /// Give the held AUTH refusal to the session once its time came; true when it did.
    fn release_held(&mut self) -> bool {
        match self.held.take() {
            Some((due, req, answer)) if due <= Instant::now() => {
                self.answer(req, answer);
                true
            }
            other => {
                self.held = other;
                false
            }
        }
    }

    /// Runs the STARTTLS handshake on the bare socket (the `220` is written); false when
    /// it failed and the connection must close.
    fn start_tls(&mut self) -> bool {
        let Some(setup) = self.tls.clone() else {
            return false;
        };
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            return false;
        };
        match TlsStream::accept(tcp, Arc::clone(&setup.config), HANDSHAKE_TIMEOUT) {
            Ok(tls) => {
                self.stream = Stream::Tls(Box::new(tls));
                self.tls_active();
                true
            }
            Err(e) => {
                self.ctx.log.info(&format!(
                    "smtp-in: session {:016x}: STARTTLS from {}: tls handshake failed: {}",
                    self.id,
                    self.peer,
                    handshake_reason(&e)
                ));
                false
            }
        }
    }

    /// TLS is up: tell the session (STARTTLS) and the engine, log what was negotiated.
    fn tls_active(&mut self) {
        let Stream::Tls(tls) = &self.stream else {
            return;
        };
        let info = tls.info().clone();
        let starttls = self.tls.as_ref().is_some_and(|t| !t.implicit);
        announce_tls(
            &self.ctx,
            self.id,
            &self.peer,
            starttls.then_some(&mut self.session),
            &info,
        );
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
        self.trace.outbound(&self.ctx.log, self.id, &self.out);
        let ok = self.stream.write_all(&self.out).is_ok();
        self.out.clear();
        ok
    }

    fn wait_and_read(&mut self, buf: &mut [u8]) {
        let now = Instant::now();
        let deadline = match (self.session.poll_timeout(), self.held.as_ref()) {
            (Some(a), Some((b, _, _))) => Some(a.min(*b)),
            (a, b) => a.or(b.map(|(due, _, _)| *due)),
        };
        let timeout_ms: i32 = match deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(now);
                i32::try_from(left.as_millis().saturating_add(1)).unwrap_or(i32::MAX)
            }
            None => -1,
        };
        let capacity = self.session.recv_capacity().min(buf.len());
        let readable = if capacity > 0 && self.stream.has_pending_input() {
            true
        } else {
            let mut fds = [
                libc::pollfd {
                    fd: self.mailbox.fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.stream.raw_fd(),
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
            let [_, socket] = fds;
            ready > 0 && capacity > 0 && socket.revents != 0
        };
        if readable {
            let target = buf.get_mut(..capacity).unwrap_or_default();
            match self.stream.read_once(target) {
                Ok(0) => self.session.handle(Input::PeerClosed, Instant::now()),
                Ok(n) => {
                    let data = target.get(..n).unwrap_or_default();
                    self.trace.inbound(&self.ctx.log, self.id, data);
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

#[cfg(test)]
mod after_answer_tests {
    use super::AfterAnswer;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn the_work_runs_once_when_dropped_and_none_is_nothing() {
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&runs);
        let after = AfterAnswer::new(Box::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
        }));
        assert_eq!(runs.load(Ordering::SeqCst), 0, "not before the drop");
        drop(after);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        drop(AfterAnswer::none());
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}
