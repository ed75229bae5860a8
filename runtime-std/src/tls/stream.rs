//! The blocking TLS stream of runtime-std: a [`TlsPump`] over a socket, with `Read` and
//! `Write` for the connection loop and a bounded handshake.

use rustls::{ClientConfig, ServerConfig};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::info::TlsInfo;
use super::pump::TlsPump;

/// Largest TLS record on the wire (2^14 plaintext + header and expansion, RFC 8446 §5.2),
/// so one socket read can bring a whole record.
const READ_CHUNK: usize = 16 * 1024 + 512;

/// A socket whose reads can time out: what the handshake deadline and the caller's
/// `set_read_timeout` need beyond `Read + Write`.
pub trait TimeoutSocket: Read + Write {
    /// Sets the read timeout, as `TcpStream::set_read_timeout`.
    ///
    /// # Errors
    /// The operating system refused it.
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
    /// The current read timeout, as `TcpStream::read_timeout`.
    ///
    /// # Errors
    /// The operating system refused to tell.
    fn read_timeout(&self) -> io::Result<Option<Duration>>;
}

impl TimeoutSocket for TcpStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
    fn read_timeout(&self) -> io::Result<Option<Duration>> {
        TcpStream::read_timeout(self)
    }
}

impl TimeoutSocket for UnixStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        UnixStream::set_read_timeout(self, timeout)
    }
    fn read_timeout(&self) -> io::Result<Option<Duration>> {
        UnixStream::read_timeout(self)
    }
}

/// A TLS session over a blocking socket, after a completed handshake.
///
/// `Read` returns decrypted bytes (0 on a clean close_notify; a socket read timeout comes
/// back as the socket's `WouldBlock`/`TimedOut` error and the stream stays usable);
/// `Write` encrypts and writes through at once.
#[derive(Debug)]
pub struct TlsStream<S: TimeoutSocket = TcpStream> {
    /// The socket carrying the ciphertext.
    socket: S,
    /// The TLS connection.
    pump: TlsPump,
    /// Ciphertext read from the socket that the pump could not take yet.
    pending: Vec<u8>,
    /// What the handshake negotiated.
    info: TlsInfo,
}

impl<S: TimeoutSocket> TlsStream<S> {
    /// Runs the server side of the handshake on `socket` (smtps at once; STARTTLS after
    /// the `220` reply was written) within `timeout`.
    ///
    /// The first byte read from `socket` here must be the client's ClientHello: the
    /// caller hands over the socket without any buffered plaintext, which the SMTP machine
    /// discards (CVE-2011-0411), and this function never reads before the handshake.
    ///
    /// # Errors
    /// The handshake failed (the text says why, e.g. "received corrupt message" for a
    /// plaintext client, or a certificate problem), timed out, or the peer closed; the
    /// caller logs it with the peer's address.
    pub fn accept(socket: S, config: Arc<ServerConfig>, timeout: Duration) -> io::Result<Self> {
        Self::accept_after(socket, config, Vec::new(), timeout)
    }

    /// As [`TlsStream::accept`], for a caller that already read the first bytes of the
    /// TLS stream itself: `already_read` is handed to rustls before the socket is read.
    /// Meant for smtps behind `proxy-v2`, where the read that took the PROXY header may
    /// have taken the start of the ClientHello too. Never pass plaintext that followed a
    /// STARTTLS command: that must be discarded (RFC 3207 §4.2, CVE-2011-0411).
    ///
    /// # Errors
    /// As [`TlsStream::accept`].
    pub fn accept_after(
        socket: S,
        config: Arc<ServerConfig>,
        already_read: Vec<u8>,
        timeout: Duration,
    ) -> io::Result<Self> {
        let pump = TlsPump::server(config).map_err(handshake_error)?;
        Self::handshake(socket, pump, already_read, timeout)
    }

    /// Runs the client side of the handshake for `server_name` (the MX or relay host name,
    /// checked against its certificate unless the config is `no-verify`) within `timeout`.
    ///
    /// # Errors
    /// As [`TlsStream::accept`], plus an invalid `server_name`.
    pub fn connect(
        socket: S,
        config: Arc<ClientConfig>,
        server_name: &str,
        timeout: Duration,
    ) -> io::Result<Self> {
        let pump = TlsPump::client(config, server_name).map_err(handshake_error)?;
        Self::handshake(socket, pump, Vec::new(), timeout)
    }

    /// Drives the pump until the handshake completes, restoring the socket's read timeout.
    /// `pending` is ciphertext the caller already read.
    fn handshake(
        socket: S,
        pump: TlsPump,
        pending: Vec<u8>,
        timeout: Duration,
    ) -> io::Result<Self> {
        let saved_timeout = socket.read_timeout()?;
        let start = Instant::now();
        // A timeout too large to add is as good as none: a day stands in for it.
        let deadline = start
            .checked_add(timeout)
            .unwrap_or_else(|| start + Duration::from_secs(86_400));
        let mut stream = TlsStream {
            socket,
            pump,
            pending,
            info: TlsInfo::from_connection(None, None, None, None),
        };
        loop {
            stream.flush_ciphertext().map_err(|e| {
                io::Error::new(e.kind(), format!("tls handshake failed: cannot write: {e}"))
            })?;
            if !stream.pump.is_handshaking() {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "tls handshake timed out",
                ));
            }
            stream
                .socket
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
            match stream.fill() {
                Ok(true) => {}
                Ok(false) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "peer closed the connection during the tls handshake",
                    ))
                }
                Err(e) if is_timeout(&e) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "tls handshake timed out",
                    ))
                }
                Err(e) => return Err(e),
            }
        }
        stream.socket.set_read_timeout(saved_timeout)?;
        if let Some(info) = stream.pump.info() {
            stream.info = info;
        }
        Ok(stream)
    }

    /// What the handshake negotiated (protocol, cipher, SNI, peer certificate subject).
    pub fn info(&self) -> &TlsInfo {
        &self.info
    }

    /// Whether input waits inside the stream: decrypted plaintext not read yet, a close
    /// from the peer, or ciphertext already taken from the socket. A loop that waits with
    /// `poll(2)` on the socket must call [`TlsStream::read_once`] without polling while
    /// this holds: the socket will not become readable for bytes that already left it.
    pub fn has_pending_input(&self) -> bool {
        !self.pending.is_empty() || !self.pump.wants_ciphertext()
    }

    /// A read for loops driven by `poll(2)`: returns buffered plaintext, or else reads the
    /// socket at most once (call it when poll reported the socket readable, or when
    /// [`TlsStream::has_pending_input`] holds) and returns what that decrypted.
    ///
    /// # Errors
    /// `WouldBlock` when that read brought only part of a record or only handshake
    /// traffic (a session ticket): poll again. `Ok(0)` is the peer's clean close; other
    /// errors end the session, as with [`Read::read`].
    pub fn read_once(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        match self.pump.read_plaintext(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            other => return other,
        }
        self.flush_ciphertext()?;
        let open = self.fill()?;
        self.flush_ciphertext()?;
        match self.pump.read_plaintext(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && !open => Ok(0),
            other => other,
        }
    }

    /// Sets the read timeout of the underlying socket (see [`Read`] for what a timeout
    /// returns).
    ///
    /// # Errors
    /// The operating system refused it.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.socket.set_read_timeout(timeout)
    }

    /// The underlying socket (for its addresses, or `set_nodelay`).
    pub fn get_ref(&self) -> &S {
        &self.socket
    }

    /// Ends the TLS session cleanly: sends close_notify (RFC 8446 §6.1). The socket stays
    /// open until the stream is dropped.
    ///
    /// # Errors
    /// Writing the alert failed.
    pub fn close(&mut self) -> io::Result<()> {
        self.pump.send_close_notify();
        self.flush_ciphertext()
    }

    /// Writes every byte of ciphertext the pump holds.
    fn flush_ciphertext(&mut self) -> io::Result<()> {
        while self.pump.has_ciphertext() {
            let bytes = self.pump.take_ciphertext();
            if bytes.is_empty() {
                break;
            }
            self.socket.write_all(&bytes)?;
        }
        Ok(())
    }

    /// Gives the pump more ciphertext: what is pending, else one socket read. Returns
    /// `false` at end of file. A TLS error is returned after the alert was sent (best
    /// effort), so the peer learns why too.
    fn fill(&mut self) -> io::Result<bool> {
        if !self.pending.is_empty() {
            let used = self.feed(None)?;
            self.pending.drain(..used);
            if used > 0 {
                return Ok(true);
            }
            // rustls refuses input only while plaintext or a close waits, and callers
            // read those first: reading more here would only pile bytes up.
            return Err(io::Error::other("tls: the connection takes no more input"));
        }
        let mut chunk = [0u8; READ_CHUNK];
        let read = self.socket.read(&mut chunk)?;
        let Some(data) = chunk.get(..read).filter(|d| !d.is_empty()) else {
            if let Err(e) = self.pump.feed_eof() {
                return Err(self.after_tls_error(e));
            }
            return Ok(false);
        };
        let used = self.feed(Some(data))?;
        if let Some(rest) = data.get(used..) {
            self.pending.extend_from_slice(rest);
        }
        Ok(true)
    }

    /// Feeds `data`, or the pending bytes when `None`, mapping a TLS error.
    fn feed(&mut self, data: Option<&[u8]>) -> io::Result<usize> {
        let result = match data {
            Some(data) => self.pump.feed_ciphertext(data),
            None => self.pump.feed_ciphertext(&self.pending),
        };
        result.map_err(|e| self.after_tls_error(e))
    }

    /// Sends the alert rustls queued for a failure (ignoring write errors: the session is
    /// over anyway) and words the error.
    fn after_tls_error(&mut self, err: io::Error) -> io::Error {
        let alert = self.pump.take_ciphertext();
        let _ = self.socket.write_all(&alert);
        if self.pump.is_handshaking() {
            io::Error::new(err.kind(), format!("tls handshake failed: {err}"))
        } else {
            io::Error::new(err.kind(), format!("tls error: {err}"))
        }
    }
}

impl<S: TimeoutSocket> Read for TlsStream<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.pump.read_plaintext(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                other => return other,
            }
            self.flush_ciphertext()?;
            if !self.fill()? {
                // End of file was fed: rustls now answers Ok(0) or UnexpectedEof; this
                // guards against waiting for bytes that cannot come.
                return match self.pump.read_plaintext(buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
                    other => other,
                };
            }
        }
    }
}

impl<S: TimeoutSocket> Write for TlsStream<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.pump.write_plaintext(buf)?;
        self.flush_ciphertext()?;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_ciphertext()?;
        self.socket.flush()
    }
}

/// Whether a socket error is a read timeout (`WouldBlock` on Unix, `TimedOut` elsewhere).
fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Words a rustls setup error as an I/O error.
fn handshake_error(err: rustls::Error) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("tls setup failed: {err}"),
    )
}
