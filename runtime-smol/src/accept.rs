//! The live connections and the accept task of each listening socket: a task per
//! connection up to a limit (the next client gets `421 4.3.2` and is closed). While
//! `smtpctl pause smtp` holds ([`SmtpPause`]), a new client is told `421 4.3.2 HOST
//! Service temporarily paused` and closed, as in `smtpd-std`.

use std::collections::HashMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runtime_std::server::conn::{ConnContext, ListenerTls};
use runtime_std::server::listener::SmtpPause;
use runtime_std::server::mailbox::{Mailbox, Note};
use smol::{Async, LocalExecutor, Timer};
use smtp_proto::server::ServerConfig;

/// The live connections: their mailboxes, for `Shutdown` and for the limit.
#[derive(Default)]
pub struct Connections {
    live: Mutex<HashMap<u64, Arc<Mailbox>>>,
    next_id: AtomicU64,
}

impl Connections {
    /// How many connections are open.
    pub fn count(&self) -> usize {
        self.live.lock().map(|l| l.len()).unwrap_or(0)
    }

    /// Tell every session the server is stopping (they answer 421 and close).
    pub fn shutdown_all(&self) {
        if let Ok(live) = self.live.lock() {
            for mailbox in live.values() {
                mailbox.push(Note::Shutdown);
            }
        }
    }

    /// Wait until every connection ended or `limit` passed; true when all ended.
    pub async fn wait_empty(&self, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        while self.count() > 0 {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            Timer::after(Duration::from_millis(20)).await;
        }
        true
    }

    fn insert(&self, mailbox: Arc<Mailbox>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut live) = self.live.lock() {
            live.insert(id, mailbox);
        }
        id
    }

    fn remove(&self, id: u64) {
        if let Ok(mut live) = self.live.lock() {
            live.remove(&id);
        }
    }
}

/// What an accept task needs besides its socket.
#[derive(Clone)]
pub struct AcceptContext {
    /// The executor (of this thread) connection tasks are spawned on.
    pub executor: Rc<LocalExecutor<'static>>,
    /// Shared with every connection.
    pub conn: ConnContext,
    /// The live connections.
    pub connections: Arc<Connections>,
    /// Connections served at once.
    pub max_connections: usize,
    /// `smtpctl pause smtp`.
    pub paused: Arc<SmtpPause>,
}

/// Accept clients on `socket` (line `index` of the configuration, with its TLS side if
/// it offers TLS) forever, spawning one task per connection. Cancel the task to stop
/// accepting.
pub async fn accept_loop(
    socket: Async<TcpListener>,
    index: usize,
    config: Arc<ServerConfig>,
    tls: Option<Arc<ListenerTls>>,
    ctx: AcceptContext,
) {
    // A listener bound to one address accepts every connection on it: no need to ask
    // each connection its local address (a wildcard listener must).
    let bound = socket
        .get_ref()
        .local_addr()
        .ok()
        .filter(|addr| !addr.ip().is_unspecified());
    loop {
        let (stream, peer) = match socket.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors or memory: wait a little rather than spin.
                ctx.conn.log.warn(&format!("smtp-in: accept: {e}"));
                Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        if ctx.paused.is_paused() {
            ctx.conn.log.info(&format!(
                "smtp-in: refusing connection from {peer}: smtp is paused"
            ));
            send_refusal(
                stream.into_inner().ok(),
                &SmtpPause::refusal(&config.hostname),
            );
            continue;
        }
        if ctx.connections.count() >= ctx.max_connections {
            ctx.conn.log.info(&format!(
                "smtp-in: refusing connection from {peer}: too many connections"
            ));
            refuse(stream.into_inner().ok(), &config.hostname);
            continue;
        }
        let mailbox = Arc::new(Mailbox::for_task());
        let id = ctx.connections.insert(Arc::clone(&mailbox));
        let connections = Arc::clone(&ctx.connections);
        let conn = ctx.conn.clone();
        let config = Arc::clone(&config);
        let tls = tls.clone();
        ctx.executor
            .spawn(async move {
                let ends = crate::conn::Ends { peer, bound };
                crate::conn::serve(stream, ends, index, config, tls, conn, mailbox).await;
                connections.remove(id);
            })
            .detach();
    }
}

/// Best effort `421` to a client we cannot serve (the socket is non-blocking; a full
/// buffer just loses the line).
fn refuse(stream: Option<TcpStream>, hostname: &str) {
    send_refusal(
        stream,
        &format!("421 4.3.2 {hostname} Too many connections, try again later\r\n"),
    );
}

/// Best effort `reply` to a client we do not serve, then close.
fn send_refusal(stream: Option<TcpStream>, reply: &str) {
    if let Some(mut s) = stream {
        let _ = s.write_all(reply.as_bytes());
    }
}
