//! One connection task: drives smtp-proto's [`ServerSession`] over an `Async<TcpStream>`,
//! as `runtime_std::server::conn` does over a blocking stream, without a thread.
//!
//! The loop: perform the session's actions (replies gathered into one write per batch,
//! questions to the engine, body chunks to the incoming spool file), then the notes the
//! engine left in the session's [`Mailbox`], then wait for the first of: the mailbox's
//! eventfd, the socket (only while the session has room for input, which is the
//! backpressure), the session's deadline. An idle connection holds no read buffer: bytes
//! are read into a buffer of the executor thread and handed to the session at once.
//! Everything that may block (engine calls, which run lookups; spool writes) runs on
//! smol's blocking pool; commits go to the group committer with a completion that wakes
//! the task.

use std::cell::RefCell;
use std::io::{self, Read};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::future;
use futures_lite::AsyncWriteExt;
use mta_core::engine::ReceivedCounter;
use runtime_std::server::conn::ConnContext;
use runtime_std::server::mailbox::{Mailbox, Note};
use runtime_std::spool::IncomingMessage;
use smol::{unblock, Async, Timer};
use smtp_proto::reply::{EnhancedStatus, Reply};
use smtp_proto::server::{Action, Answer, Input, Question, ReqId, ServerConfig, ServerSession};

use crate::fd::MailboxFd;

/// Largest read from the socket at once.
const READ_CHUNK: usize = 64 * 1024;

/// How long a write to a client may wait before the connection is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(300);

/// The reply buffer kept between batches; a bigger one is given back after a write.
const KEEP_OUT: usize = 4096;

thread_local! {
    /// The read buffer of an executor thread, shared by all its connections.
    static READ_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_CHUNK]);
}

/// The message being received on a connection.
enum Receiving {
    None,
    Open(IncomingMessage),
    /// Opening or writing failed; the commit will be refused with this reason.
    Failed(String, String),
}

/// What woke a waiting connection.
enum Wake {
    Mailbox,
    Socket,
    Deadline,
}

/// Serve one client until the session closes. Never panics on a peer's behaviour; every
/// error ends the connection.
pub async fn serve(
    stream: Async<TcpStream>,
    listener: usize,
    config: Arc<ServerConfig>,
    ctx: ConnContext,
    mailbox: Arc<Mailbox>,
) {
    let (Ok(peer), Ok(local)) = (stream.get_ref().peer_addr(), stream.get_ref().local_addr())
    else {
        return;
    };
    let _ = stream.get_ref().set_nodelay(true);
    let Ok(wake) = Async::new(MailboxFd(Arc::clone(&mailbox))) else {
        return;
    };
    let backend = Arc::clone(&ctx.backend);
    let box_for_open = Arc::clone(&mailbox);
    let id = unblock(move || backend.open(peer, local, listener, box_for_open)).await;
    let mut conn = Conn {
        stream,
        session: ServerSession::new(config, Instant::now()),
        ctx,
        id,
        mailbox,
        wake,
        receiving: Receiving::None,
        counter: ReceivedCounter::default(),
        out: Vec::new(),
    };
    conn.run().await;
    if let Receiving::Open(message) = std::mem::replace(&mut conn.receiving, Receiving::None) {
        let _ = unblock(move || message.abort()).await;
    }
    let _ = conn.stream.get_ref().shutdown(Shutdown::Both);
    let backend = Arc::clone(&conn.ctx.backend);
    unblock(move || backend.closed(id)).await;
}

struct Conn {
    stream: Async<TcpStream>,
    session: ServerSession,
    ctx: ConnContext,
    id: u64,
    mailbox: Arc<Mailbox>,
    wake: Async<MailboxFd>,
    receiving: Receiving,
    counter: ReceivedCounter,
    out: Vec<u8>,
}

impl Conn {
    async fn run(&mut self) {
        loop {
            if self.drain_actions().await {
                return;
            }
            if !self.flush().await {
                self.session.handle(Input::PeerClosed, Instant::now());
                continue;
            }
            let notes = self.mailbox.take();
            if !notes.is_empty() {
                for note in notes {
                    self.handle_note(note).await;
                }
                continue;
            }
            if self.session.is_closed() {
                return;
            }
            self.wait_and_read().await;
        }
    }

    /// Perform the session's actions; true when the connection must close now.
    async fn drain_actions(&mut self) -> bool {
        while let Some(action) = self.session.poll_action() {
            match action {
                Action::Send(bytes) => self.out.extend_from_slice(&bytes),
                Action::StartTls => {
                    // Listeners with TLS are refused at startup; a StartTls cannot occur.
                    let _ = self.flush().await;
                    return true;
                }
                Action::Ask(req, question) => self.ask(req, question).await,
                Action::Body { chunk } => self.body(chunk).await,
                Action::BodyAborted { .. } => {
                    self.drop_message().await;
                    let backend = Arc::clone(&self.ctx.backend);
                    let id = self.id;
                    unblock(move || backend.body_aborted(id)).await;
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
        let backend = Arc::clone(&self.ctx.backend);
        let id = self.id;
        unblock(move || backend.question(id, req, question, received)).await;
    }

    async fn body(&mut self, chunk: bytes::Bytes) {
        self.counter.feed(&chunk);
        if let Receiving::Open(mut message) =
            std::mem::replace(&mut self.receiving, Receiving::None)
        {
            let (message, result) = unblock(move || {
                let result = message.write_chunk(&chunk);
                (message, result)
            })
            .await;
            let msgid = message.msgid().to_owned();
            self.receiving = Receiving::Open(message);
            if let Err(e) = result {
                self.fail(msgid, format!("spool write: {e}")).await;
            }
        }
    }

    /// Remove the open message's files, if one is open.
    async fn drop_message(&mut self) {
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
            Note::Answer(req, answer) => self
                .session
                .handle(Input::Answer(req, answer), Instant::now()),
            Note::Open { msgid, header } => {
                self.drop_message().await;
                let spool = self.ctx.spool.clone();
                let id = msgid.clone();
                let opened = unblock(move || {
                    let mut message = spool
                        .create_incoming(&id)
                        .map_err(|e| format!("spool create: {e}"))?;
                    match message.write_chunk(&header) {
                        Ok(()) => Ok(message),
                        Err(e) => {
                            let _ = message.abort();
                            Err(format!("spool write: {e}"))
                        }
                    }
                })
                .await;
                match opened {
                    Ok(message) => self.receiving = Receiving::Open(message),
                    Err(reason) => self.fail(msgid, reason).await,
                }
            }
            Note::Commit { msgid, envelopes } => {
                let result = self.commit(&msgid, envelopes).await;
                if let Err(reason) = &result {
                    self.ctx
                        .log
                        .warn(&format!("smtp-in: message {msgid} not committed: {reason}"));
                }
                let backend = Arc::clone(&self.ctx.backend);
                let id = self.id;
                unblock(move || backend.committed(id, &msgid, result)).await;
            }
            Note::Abort { msgid } => {
                let matches = match &self.receiving {
                    Receiving::Open(m) => m.msgid() == msgid,
                    Receiving::Failed(id, _) => *id == msgid,
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
        match std::mem::replace(&mut self.receiving, Receiving::None) {
            Receiving::Open(mut message) if message.msgid() == msgid => {
                let staged = unblock(move || {
                    for (evpid, record) in &envelopes {
                        if let Err(e) = message.add_envelope(evpid, record) {
                            let _ = message.abort();
                            return Err(format!("envelope {evpid}: {e}"));
                        }
                    }
                    Ok(message)
                })
                .await?;
                let (tx, rx) = async_channel::bounded(1);
                self.ctx.committer.submit(
                    staged,
                    Box::new(move |result| {
                        let _ = tx.try_send(result);
                    }),
                );
                match rx.recv().await {
                    Ok(result) => result.map_err(|e| format!("commit: {e}")),
                    Err(_) => Err("commit: the spool committer stopped".to_owned()),
                }
            }
            Receiving::Open(other) => {
                let _ = unblock(move || other.abort()).await;
                Err(format!("message {msgid} is not the one open"))
            }
            Receiving::Failed(_, reason) => Err(reason),
            Receiving::None => Err(format!("message {msgid} was never opened")),
        }
    }

    /// Write what the session sent; false when the client is gone or too slow.
    async fn flush(&mut self) -> bool {
        if self.out.is_empty() {
            return true;
        }
        let write = async { self.stream.write_all(&self.out).await.is_ok() };
        let ok = future::or(write, async {
            Timer::after(WRITE_TIMEOUT).await;
            false
        })
        .await;
        self.out.clear();
        if self.out.capacity() > KEEP_OUT {
            self.out.shrink_to(KEEP_OUT);
        }
        ok
    }

    async fn wait_and_read(&mut self) {
        let capacity = self.session.recv_capacity().min(READ_CHUNK);
        let deadline = self.session.poll_timeout();
        let mailbox = async {
            let _ = self.wake.readable().await;
            Wake::Mailbox
        };
        let socket = async {
            if capacity == 0 {
                future::pending::<()>().await;
            }
            let _ = self.stream.readable().await;
            Wake::Socket
        };
        let timer = async {
            match deadline {
                Some(at) => {
                    Timer::at(at).await;
                }
                None => future::pending::<()>().await,
            }
            Wake::Deadline
        };
        let woke = future::or(mailbox, future::or(socket, timer)).await;
        match woke {
            Wake::Mailbox => {}
            Wake::Socket => self.read_once(capacity),
            Wake::Deadline => {
                // Re-read the clock: the session decides whether its deadline passed.
                let now = Instant::now();
                if self.session.poll_timeout().is_some_and(|at| at <= now) {
                    self.session.handle_timeout(now);
                }
            }
        }
    }

    /// Read what the socket has (non-blocking) into the thread's buffer and give it to
    /// the session at once.
    fn read_once(&mut self, capacity: usize) {
        let session = &mut self.session;
        let mut stream = self.stream.get_ref();
        READ_BUF.with(|buf| {
            let Ok(mut buf) = buf.try_borrow_mut() else {
                return;
            };
            let target = buf.get_mut(..capacity).unwrap_or_default();
            match stream.read(target) {
                Ok(0) => session.handle(Input::PeerClosed, Instant::now()),
                Ok(n) => {
                    let data = target.get(..n).unwrap_or_default();
                    session.handle(Input::Received(data), Instant::now());
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                    ) => {}
                Err(_) => session.handle(Input::PeerClosed, Instant::now()),
            }
        });
    }
}
