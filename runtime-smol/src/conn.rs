//! One connection task: drives smtp-proto's [`ServerSession`] over an `Async<TcpStream>`,
//! as `runtime_std::server::conn` does over a blocking stream, without a thread.
//!
//! The loop: perform the session's actions (replies gathered into one write per batch,
//! questions to the engine, body chunks to the incoming spool file), then the notes the
//! engine left in the session's [`Mailbox`], then wait for the first of: a note in the
//! mailbox (it wakes the task's waker), the socket (only while the session has room for input, which is the
//! backpressure), the session's deadline. An idle connection holds no read buffer: bytes
//! are read into a buffer of the executor thread and handed to the session at once.
//! What may block runs on smol's blocking pool: creating the spool file (once a message
//! outgrows what it may keep in memory, [`crate::budget`]), body writes that do not fit in its buffer, and the
//! fsyncs of a commit, after which the group committer renames and completes through a
//! channel that wakes the task. The questions (a recipient's lookups are answered at
//! once only when known from the last seconds, else on the engine host's lookup threads),
//! the commit report, opening and closing a session, TLS news and an aborted body only
//! take the engine's lock briefly (their effects go to other threads) and are called here.
//!
//! TLS (RFC 3207) goes through [`Link`]: on STARTTLS the `220` is written, then the
//! handshake runs on the bare socket (plaintext pipelined behind STARTTLS was already
//! discarded by the session, CVE-2011-0411); an `smtps` listener does the handshake before
//! the banner. AUTH (RFC 4954): a refused AUTH is answered
//! [`FAILURE_DELAY`] after the command arrived, on the
//! task's timer; a `421` answer from the engine ends the session once written.

use std::net::TcpStream;
use std::sync::Arc;
use std::time::Instant;

use futures_lite::future;
use mta_core::engine::ReceivedCounter;
use runtime_std::auth::FAILURE_DELAY;
use runtime_std::server::conn::{
    announce_tls, storage_refusal, AfterAnswer, ConnContext, ListenerTls,
};
use runtime_std::server::mailbox::{Mailbox, Note};
use runtime_std::server::trace::SmtpTrace;
use runtime_std::spool::{BufferedMessage, Expected, IncomingMessage};
use runtime_std::tls::TlsInfo;
use smol::{unblock, Async, Timer};
use smtp_proto::server::{Action, Answer, Input, Question, ReqId, ServerConfig, ServerSession};

use crate::budget::Held;
use crate::link::{Inbound, Link, READ_CHUNK};

/// The reply buffer kept between batches; a bigger one is given back after a write.
const KEEP_OUT: usize = 4096;

/// The message being received on a connection.
enum Receiving {
    None,
    /// Its header and what came so far, in memory within the [`crate::budget`] (which
    /// `Held` accounts for): a spool file of its own is created with the first chunk
    /// that does not fit, else the committer writes it with its batch.
    Buffered(String, Vec<u8>, Held),
    Open(IncomingMessage),
    /// Opening or writing failed; the commit will be refused with this reason.
    Failed(String, String),
}

/// A message handed to the blocking pool for its commit.
enum Staged {
    Buffered(String, Vec<u8>, Held),
    Open(IncomingMessage),
}

/// Create the spool file of `msgid` and write `parts` into it (blocking).
fn open_with(
    spool: &runtime_std::spool::Spool,
    msgid: &str,
    parts: &[&[u8]],
) -> Result<IncomingMessage, String> {
    let mut message = spool
        .create_incoming(msgid)
        .map_err(|e| format!("spool create: {e}"))?;
    for part in parts {
        if let Err(e) = message.write_chunk(part) {
            let _ = message.abort();
            return Err(format!("spool write: {e}"));
        }
    }
    Ok(message)
}

/// What woke a waiting connection.
enum Wake {
    Mailbox,
    Socket,
    Deadline,
}

/// The two ends of an accepted connection, as far as the accept already knows them.
#[derive(Clone, Copy, Debug)]
pub struct Ends {
    /// The client's address, from the accept.
    pub peer: std::net::SocketAddr,
    /// Ours, when the listener is bound to one address (else asked of the socket).
    pub bound: Option<std::net::SocketAddr>,
}

/// Serve one client until the session closes. Never panics on a peer's behaviour; every
/// error ends the connection. `tls` is the listener's TLS side, if it offers TLS.
pub async fn serve(
    stream: Async<TcpStream>,
    ends: Ends,
    listener: usize,
    config: Arc<ServerConfig>,
    tls: Option<Arc<ListenerTls>>,
    ctx: ConnContext,
    mailbox: Arc<Mailbox>,
) {
    let peer = ends.peer;
    let Some(local) = ends.bound.or_else(|| stream.get_ref().local_addr().ok()) else {
        return;
    };
    let _ = stream.get_ref().set_nodelay(true);
    let mut link = Link::new(stream);
    let mut implicit = None;
    if let Some(setup) = tls.as_ref().filter(|t| t.implicit) {
        match Box::pin(link.start_tls(setup)).await {
            Ok(info) => implicit = Some(info),
            Err(reason) => {
                ctx.log.info(&format!(
                    "smtp-in: smtps from {peer}: tls handshake failed: {reason}"
                ));
                link.close().await;
                return;
            }
        }
    }
    // Opening and closing only take the engine's lock briefly (no lookups): called here,
    // they cost no thread of the blocking pool when thousands of clients connect at once.
    let id = ctx
        .backend
        .open(peer, local, listener, Arc::clone(&mailbox));
    let mut conn = Conn {
        link,
        tls,
        peer: peer.to_string(),
        session: ServerSession::new(config, Instant::now()),
        ctx,
        id,
        mailbox,
        receiving: Receiving::None,
        expected: None,
        after_answer: None,
        counter: ReceivedCounter::default(),
        out: Vec::new(),
        auth_asked: None,
        held: None,
        trace: SmtpTrace::default(),
        closing: false,
        timer: Timer::never(),
        timer_at: None,
    };
    if let Some(info) = implicit {
        conn.tls_active(&info).await;
    }
    conn.run().await;
    drop(conn.after_answer.take());
    if let Receiving::Open(message) = std::mem::replace(&mut conn.receiving, Receiving::None) {
        let _ = unblock(move || message.abort()).await;
    }
    conn.link.close().await;
    conn.ctx.backend.closed(id);
}

struct Conn {
    link: Link,
    tls: Option<Arc<ListenerTls>>,
    peer: String,
    session: ServerSession,
    ctx: ConnContext,
    id: u64,
    mailbox: Arc<Mailbox>,
    receiving: Receiving,
    /// Held while a message is received: the group commit may wait for it a little.
    expected: Option<Expected>,
    /// What the engine left to do after a commit's answer (its deliveries): done once
    /// the answer is written, before the task waits for the client again.
    after_answer: Option<AfterAnswer>,
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
    /// The session's deadline timer, and when it is set to fire.
    timer: Timer,
    timer_at: Option<Instant>,
}

impl Conn {
    async fn run(&mut self) {
        loop {
            // The rarer steps are boxed so that the task of an idle connection stays small
            // (its future is as big as its biggest await).
            if Box::pin(self.drain_actions()).await {
                return;
            }
            if !Box::pin(self.flush()).await {
                self.session.handle(Input::PeerClosed, Instant::now());
                continue;
            }
            if self.closing {
                return;
            }
            if self.release_held() {
                continue;
            }
            let notes = self.mailbox.take_quietly();
            if !notes.is_empty() {
                for note in notes {
                    Box::pin(self.handle_note(note)).await;
                }
                continue;
            }
            if self.session.is_closed() {
                return;
            }
            // The answer is written: now what the engine left for after it.
            drop(self.after_answer.take());
            self.wait_and_read().await;
        }
    }

    /// Perform the session's actions; true when the connection must close now.
    async fn drain_actions(&mut self) -> bool {
        while let Some(action) = self.session.poll_action() {
            match action {
                Action::Send(bytes) => self.out.extend_from_slice(&bytes),
                Action::StartTls => {
                    if !self.flush().await || !self.start_tls().await {
                        return true;
                    }
                }
                Action::Ask(req, question) => self.ask(req, question).await,
                Action::Body { chunk } => self.body(chunk).await,
                Action::BodyAborted { .. } => {
                    self.drop_message().await;
                    self.ctx.backend.body_aborted(self.id);
                }
                Action::Close(reason) => {
                    let _ = self.flush().await;
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

    async fn ask(&mut self, req: ReqId, question: Question) {
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

    async fn body(&mut self, chunk: bytes::Bytes) {
        self.counter.feed(&chunk);
        let (msgid, result) = match std::mem::replace(&mut self.receiving, Receiving::None) {
            Receiving::Buffered(msgid, mut data, mut held) => {
                if held.try_grow(chunk.len()) {
                    data.extend_from_slice(&chunk);
                    self.receiving = Receiving::Buffered(msgid, data, held);
                    return;
                }
                // The message goes to its own file: its memory is given back below.
                let spool = self.ctx.spool.clone();
                let id = msgid.clone();
                match unblock(move || open_with(&spool, &id, &[&data, &chunk])).await {
                    Ok(message) => {
                        self.receiving = Receiving::Open(message);
                        return;
                    }
                    Err(reason) => (msgid, Err(reason)),
                }
            }
            Receiving::Open(mut message) if message.fits_in_buffer(chunk.len()) => {
                // Only a copy into the spool file's buffer: no system call, no thread hop.
                let result = message.write_chunk(&chunk);
                let msgid = message.msgid().to_owned();
                self.receiving = Receiving::Open(message);
                (msgid, result.map_err(|e| format!("spool write: {e}")))
            }
            Receiving::Open(mut message) => {
                let (message, result) = unblock(move || {
                    let result = message.write_chunk(&chunk);
                    (message, result)
                })
                .await;
                let msgid = message.msgid().to_owned();
                self.receiving = Receiving::Open(message);
                (msgid, result.map_err(|e| format!("spool write: {e}")))
            }
            other => {
                self.receiving = other;
                return;
            }
        };
        if let Err(reason) = result {
            self.fail(msgid, reason).await;
        }
    }

    /// Remove the open message's files, if one is open.
    async fn drop_message(&mut self) {
        self.expected = None;
        if let Receiving::Open(message) = std::mem::replace(&mut self.receiving, Receiving::None) {
            let _ = unblock(move || message.abort()).await;
        }
    }

    /// Abandon the open message; the commit will report `reason`.
    async fn fail(&mut self, msgid: String, reason: String) {
        self.drop_message().await;
        self.ctx
            .log
            .warn(&format!("smtp-in: message {msgid}: {reason}"));
        self.receiving = Receiving::Failed(msgid, reason);
    }

    async fn handle_note(&mut self, note: Note) {
        match note {
            Note::Answer(req, answer) => match self.auth_asked {
                Some((asked, at)) if asked == req && !answer.reply.is_positive() => {
                    self.auth_asked = None;
                    let due = at.checked_add(FAILURE_DELAY).unwrap_or(at);
                    self.held = Some((due, req, answer));
                }
                _ => self.answer(req, answer),
            },
            Note::Open { msgid, header } => {
                self.drop_message().await;
                let mut data = Vec::with_capacity(header.len().max(4096));
                data.extend_from_slice(&header);
                let mut held = Held::default();
                held.grow(data.len());
                self.receiving = Receiving::Buffered(msgid, data, held);
                self.expected = Some(self.ctx.committer.expect());
            }
            Note::Commit { msgid, envelopes } => {
                let result = self.commit(&msgid, envelopes).await;
                if let Err(reason) = &result {
                    self.ctx
                        .log
                        .warn(&format!("smtp-in: message {msgid} not committed: {reason}"));
                }
                // The engine answers at once; its deliveries are sent once that answer
                // is written (an earlier commit's, if any, go now).
                self.after_answer = Some(
                    self.ctx
                        .backend
                        .committed_answer_first(self.id, &msgid, result),
                );
            }
            Note::Abort { msgid } => {
                let matches = match &self.receiving {
                    Receiving::Open(m) => m.msgid() == msgid,
                    Receiving::Buffered(id, ..) | Receiving::Failed(id, _) => *id == msgid,
                    Receiving::None => false,
                };
                if matches {
                    self.drop_message().await;
                }
            }
            Note::Shutdown => self.session.handle(Input::Shutdown, Instant::now()),
        }
    }

    /// Add the envelopes and make the message durable through the group committer.
    async fn commit(
        &mut self,
        msgid: &str,
        envelopes: Vec<(String, Vec<u8>)>,
    ) -> Result<(), String> {
        self.expected = None;
        let staged = match std::mem::replace(&mut self.receiving, Receiving::None) {
            Receiving::Buffered(id, data, held) if id == msgid => Staged::Buffered(id, data, held),
            Receiving::Open(message) if message.msgid() == msgid => Staged::Open(message),
            Receiving::Buffered(..) => return Err(format!("message {msgid} is not the one open")),
            Receiving::Open(other) => {
                let _ = unblock(move || other.abort()).await;
                return Err(format!("message {msgid} is not the one open"));
            }
            Receiving::Failed(_, reason) => return Err(reason),
            Receiving::None => return Err(format!("message {msgid} was never opened")),
        };
        let (tx, rx) = async_channel::bounded(1);
        let committer = self.ctx.committer.clone();
        let message = match staged {
            // Whole in memory: it joins the committer thread's next batch, whose messages
            // share one file and one fsync; nothing blocks here.
            Staged::Buffered(msgid, content, held) => {
                committer.submit_buffered(
                    BufferedMessage {
                        msgid,
                        content,
                        envelopes,
                    },
                    Box::new(move |result| {
                        // The content stays in memory until the commit is done.
                        drop(held);
                        let _ = tx.try_send(result);
                    }),
                );
                return match rx.recv().await {
                    Ok(result) => result.map_err(|e| format!("commit: {e}")),
                    Err(_) => Err("commit: the spool committer stopped".to_owned()),
                };
            }
            Staged::Open(message) => message,
        };
        // One hop to the blocking pool: the rest of the spool file is written and fsynced
        // there (concurrently with other sessions' commits), then the group commit renames
        // it and shares `queue/`'s fsync, on that thread when no other commit is in
        // progress.
        unblock(move || {
            let mut message = message;
            for (evpid, record) in &envelopes {
                if let Err(e) = message.add_envelope(evpid, record) {
                    let _ = message.abort();
                    let _ = tx.try_send(Err(e));
                    return;
                }
            }
            committer.sync_then_submit(
                message,
                Box::new(move |result| {
                    let _ = tx.try_send(result);
                }),
            );
        })
        .await;
        match rx.recv().await {
            Ok(result) => result.map_err(|e| format!("commit: {e}")),
            Err(_) => Err("commit: the spool committer stopped".to_owned()),
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

    /// Run the STARTTLS handshake (the `220` is written); false when it failed and the
    /// connection must close.
    async fn start_tls(&mut self) -> bool {
        let Some(setup) = self.tls.clone() else {
            return false;
        };
        match Box::pin(self.link.start_tls(&setup)).await {
            Ok(info) => {
                self.tls_active(&info).await;
                true
            }
            Err(reason) => {
                self.ctx.log.info(&format!(
                    "smtp-in: session {:016x}: STARTTLS from {}: tls handshake failed: {reason}",
                    self.id, self.peer
                ));
                false
            }
        }
    }

    /// TLS is up: tell the session (STARTTLS) and the engine, log what was negotiated.
    async fn tls_active(&mut self, info: &TlsInfo) {
        let starttls = self.tls.as_ref().is_some_and(|t| !t.implicit);
        announce_tls(
            &self.ctx,
            self.id,
            &self.peer,
            starttls.then_some(&mut self.session),
            info,
        );
    }

    /// Write what the session sent (and what TLS has to send); false when the client is
    /// gone or too slow.
    async fn flush(&mut self) -> bool {
        if self.out.is_empty() && !self.link.has_output() {
            return true;
        }
        self.trace.outbound(&self.ctx.log, self.id, &self.out);
        let ok = self.link.send(&self.out).await;
        self.out.clear();
        if self.out.capacity() > KEEP_OUT {
            self.out.shrink_to(KEEP_OUT);
        }
        ok
    }

    async fn wait_and_read(&mut self) {
        let capacity = self.session.recv_capacity().min(READ_CHUNK);
        if self.link.pending_input(
            capacity,
            &mut Inbound {
                session: &mut self.session,
                trace: &mut self.trace,
                log: &self.ctx.log,
                id: self.id,
            },
        ) {
            return;
        }
        // While the task runs it looks at its mailbox anyway: the engine wakes the task
        // only while it waits (notes pushed meanwhile are taken now).
        if self.mailbox.arm() {
            self.mailbox.disarm();
            return;
        }
        let deadline = match (self.session.poll_timeout(), self.held.as_ref()) {
            (Some(a), Some((b, _, _))) => Some(a.min(*b)),
            (a, b) => a.or(b.map(|(due, _, _)| *due)),
        };
        let notes = &self.mailbox;
        let mailbox = async {
            future::poll_fn(|cx| notes.poll_ready(cx)).await;
            Wake::Mailbox
        };
        let link = &self.link;
        let socket = async {
            if capacity == 0 {
                future::pending::<()>().await;
            }
            link.readable().await;
            Wake::Socket
        };
        // The timer is kept between waits and only moved earlier: a deadline that moved
        // later (each command pushes the idle timeout back) lets it fire early once, and
        // the session is asked again. A new timer per wait cost the reactor a wake-up
        // (eventfd write, epoll re-arm, timerfd reset) for every command.
        if let Some(at) = deadline {
            if self.timer_at.is_none_or(|armed| at < armed) {
                self.timer.set_at(at);
                self.timer_at = Some(at);
            }
        }
        let armed_timer = &mut self.timer;
        let timer = async {
            armed_timer.await;
            Wake::Deadline
        };
        let woke = future::or(mailbox, future::or(socket, timer)).await;
        self.mailbox.disarm();
        match woke {
            Wake::Mailbox => self.mailbox.reset(),
            Wake::Socket => self.link.read_into(
                capacity,
                &mut Inbound {
                    session: &mut self.session,
                    trace: &mut self.trace,
                    log: &self.ctx.log,
                    id: self.id,
                },
            ),
            Wake::Deadline => {
                self.timer_at = None;
                // Re-read the clock: the session decides whether its deadline passed (a
                // held AUTH answer is released by the loop).
                let now = Instant::now();
                if self.session.poll_timeout().is_some_and(|at| at <= now) {
                    self.session.handle_timeout(now);
                }
            }
        }
    }
}
