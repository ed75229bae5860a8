//! A connection's byte stream for the async runtime: the `Async<TcpStream>`, with
//! runtime-std's sans-I/O [`TlsPump`] on top after STARTTLS or on `smtps`.
//!
//! Reads never hold a buffer of the connection: ciphertext and plaintext go through two
//! buffers of the executor thread and reach the session before the next `await`. Only
//! ciphertext rustls did not take yet (it holds enough unread plaintext) is kept, in
//! `leftover`, bounded by one read. Decrypted bytes are invisible to the reactor, so the
//! task asks [`Link::pending_input`] before it waits for the socket.

use std::cell::RefCell;
use std::io::{self, Read};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use futures_lite::{future, AsyncWriteExt};
use runtime_std::server::conn::ListenerTls;
use runtime_std::server::log::Log;
use runtime_std::server::trace::SmtpTrace;
use runtime_std::tls::{TlsInfo, TlsPump};
use smol::{Async, Timer};
use smtp_proto::server::{Input, ServerSession};

/// Largest read from the socket at once (and largest plaintext handed over at once).
pub const READ_CHUNK: usize = 64 * 1024;

/// How long a write to a client may wait before the connection is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(300);

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

thread_local! {
    /// Ciphertext (or plain bytes) read from a socket, shared by the thread's connections.
    static RAW: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_CHUNK]);
    /// Plaintext out of a TLS pump, shared by the thread's connections.
    static PLAIN: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_CHUNK]);
}

/// What a read gave.
enum Got {
    /// Bytes for the session were handed over (or nothing was there yet).
    Data,
    /// The peer closed, or the connection broke.
    Closed,
}

/// Where the bytes a link reads go: the session, and the `smtpctl trace smtp` tracer.
pub struct Inbound<'a> {
    /// The session machine of the connection.
    pub session: &'a mut ServerSession,
    /// The connection's SMTP tracer.
    pub trace: &'a mut SmtpTrace,
    /// The log the trace lines go to.
    pub log: &'a Log,
    /// The engine's id of the session, for the trace lines.
    pub id: u64,
}

impl Inbound<'_> {
    /// Hand bytes the client sent to the tracer and the session.
    fn received(&mut self, data: &[u8]) {
        self.trace.inbound(self.log, self.id, data);
        self.session.handle(Input::Received(data), Instant::now());
    }
}

/// The socket and, once TLS is up, its pump.
pub struct Link {
    socket: Async<TcpStream>,
    pump: Option<Box<TlsPump>>,
    leftover: Vec<u8>,
}

impl Link {
    /// A plaintext link over `socket`.
    pub fn new(socket: Async<TcpStream>) -> Link {
        Link {
            socket,
            pump: None,
            leftover: Vec::new(),
        }
    }

    /// The TCP socket.
    pub fn tcp(&self) -> &TcpStream {
        self.socket.get_ref()
    }

    /// Wait until the socket has bytes (or an error or end of file) to read.
    pub async fn readable(&self) {
        let _ = self.socket.readable().await;
    }

    /// Write `bytes` (encrypted when TLS is up) and any ciphertext the pump has; false
    /// when the client is gone or too slow.
    pub async fn send(&mut self, bytes: &[u8]) -> bool {
        let raw = match &mut self.pump {
            None => bytes.to_vec(),
            Some(pump) => {
                let mut rest = bytes;
                while !rest.is_empty() {
                    match pump.write_plaintext(rest) {
                        Ok(0) | Err(_) => return false,
                        Ok(n) => rest = rest.get(n..).unwrap_or_default(),
                    }
                }
                pump.take_ciphertext()
            }
        };
        self.write_raw(&raw).await
    }

    /// Whether the pump has ciphertext to send (a TLS alert, a session ticket).
    pub fn has_output(&self) -> bool {
        self.pump.as_ref().is_some_and(|p| p.has_ciphertext())
    }

    async fn write_raw(&self, raw: &[u8]) -> bool {
        if raw.is_empty() {
            return true;
        }
        let write = async { (&self.socket).write_all(raw).await.is_ok() };
        future::or(write, async {
            Timer::after(WRITE_TIMEOUT).await;
            false
        })
        .await
    }

    /// TLS only: hand plaintext already decrypted (or decryptable from the leftover
    /// ciphertext) to the session, at most `capacity` bytes; true when something happened.
    pub fn pending_input(&mut self, capacity: usize, rx: &mut Inbound<'_>) -> bool {
        let Some(pump) = &mut self.pump else {
            return false;
        };
        if capacity == 0 {
            return false;
        }
        if !self.leftover.is_empty() {
            match pump.feed_ciphertext(&self.leftover) {
                Ok(n) => {
                    self.leftover.drain(..n.min(self.leftover.len()));
                }
                Err(_) => {
                    rx.session.handle(Input::PeerClosed, Instant::now());
                    return true;
                }
            }
        }
        match plaintext(pump, capacity, rx) {
            Some(Got::Closed) => {
                rx.session.handle(Input::PeerClosed, Instant::now());
                true
            }
            Some(Got::Data) => true,
            None => false,
        }
    }

    /// After [`Link::readable`]: read once (non-blocking) and hand what it gives, at most
    /// `capacity` bytes of plaintext, to the session.
    pub fn read_into(&mut self, capacity: usize, rx: &mut Inbound<'_>) {
        let got = RAW.with(|raw| {
            let Ok(mut raw) = raw.try_borrow_mut() else {
                return Got::Data;
            };
            let limit = if self.pump.is_some() {
                raw.len()
            } else {
                capacity
            };
            let target = raw.get_mut(..limit).unwrap_or_default();
            let n = match self.socket.get_ref().read(target) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                    ) =>
                {
                    return Got::Data
                }
                Err(_) => return Got::Closed,
            };
            let data = target.get(..n).unwrap_or_default();
            let Some(pump) = &mut self.pump else {
                if n == 0 {
                    return Got::Closed;
                }
                rx.received(data);
                return Got::Data;
            };
            let fed = if n == 0 {
                pump.feed_eof().map(|()| 0)
            } else {
                pump.feed_ciphertext(data)
            };
            match fed {
                Ok(taken) => {
                    self.leftover
                        .extend_from_slice(data.get(taken..).unwrap_or_default());
                }
                Err(_) => return Got::Closed,
            }
            plaintext(pump, capacity, rx).unwrap_or(Got::Data)
        });
        if matches!(got, Got::Closed) {
            rx.session.handle(Input::PeerClosed, Instant::now());
        }
    }

    /// Run the server side of a TLS handshake on the bare socket (after `220 Ready to
    /// start TLS`, or first thing on `smtps`), within a minute.
    ///
    /// # Errors
    ///
    /// Why it failed, for the log.
    pub async fn start_tls(&mut self, setup: &ListenerTls) -> Result<TlsInfo, String> {
        let mut pump = TlsPump::server(setup.config.clone()).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
        loop {
            let out = pump.take_ciphertext();
            if !self.write_raw(&out).await {
                return Err("the client went away".to_owned());
            }
            if !pump.is_handshaking() {
                break;
            }
            let timed_out = future::or(
                async {
                    self.readable().await;
                    false
                },
                async {
                    Timer::at(deadline).await;
                    true
                },
            )
            .await;
            if timed_out {
                return Err("timed out".to_owned());
            }
            let fed = RAW.with(|raw| {
                let Ok(mut raw) = raw.try_borrow_mut() else {
                    return Ok(());
                };
                match self.socket.get_ref().read(&mut raw) {
                    Ok(0) => Err("the client closed the connection".to_owned()),
                    Ok(n) => {
                        let data = raw.get(..n).unwrap_or_default();
                        let taken = pump.feed_ciphertext(data).map_err(|e| e.to_string())?;
                        self.leftover
                            .extend_from_slice(data.get(taken..).unwrap_or_default());
                        Ok(())
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                        ) =>
                    {
                        Ok(())
                    }
                    Err(e) => Err(e.to_string()),
                }
            });
            if let Err(reason) = fed {
                // Let the client see the alert rustls queued, if any.
                let alert = pump.take_ciphertext();
                let _ = self.write_raw(&alert).await;
                return Err(reason);
            }
        }
        let info = pump.info().ok_or_else(|| "no TLS parameters".to_owned())?;
        self.pump = Some(Box::new(pump));
        Ok(info)
    }

    /// End the connection: close_notify for TLS (RFC 8446 §6.1), then both directions.
    pub async fn close(&mut self) {
        if let Some(pump) = &mut self.pump {
            pump.send_close_notify();
            let out = pump.take_ciphertext();
            let _ = future::or(self.write_raw(&out), async {
                Timer::after(Duration::from_secs(5)).await;
                false
            })
            .await;
        }
        let _ = self.socket.get_ref().shutdown(Shutdown::Both);
    }
}

/// Read plaintext the pump holds into the thread's buffer and hand it to the session:
/// `None` when it has none (more ciphertext is needed).
fn plaintext(pump: &mut TlsPump, capacity: usize, rx: &mut Inbound<'_>) -> Option<Got> {
    PLAIN.with(|plain| {
        let mut plain = plain.try_borrow_mut().ok()?;
        let target = plain
            .get_mut(..capacity.min(READ_CHUNK))
            .unwrap_or_default();
        match pump.read_plaintext(target) {
            Ok(0) => Some(Got::Closed),
            Ok(n) => {
                let data = target.get(..n).unwrap_or_default();
                rx.received(data);
                Some(Got::Data)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
            Err(_) => Some(Got::Closed),
        }
    })
}
