//! The sans-I/O TLS byte pump: one rustls connection, fed ciphertext from the socket and
//! drained of ciphertext for the socket, with plaintext on the other side. The blocking
//! [`super::TlsStream`] drives it; an async runtime drives the very same calls.
//!
//! # Driving it
//!
//! ```text
//! loop {
//!     while pump.has_ciphertext()       { write_all(socket, &pump.take_ciphertext()) }
//!     match pump.read_plaintext(&mut buf) {
//!         Ok(0)                          => peer closed TLS (close_notify)
//!         Ok(n)                          => hand buf[..n] to the SMTP machine
//!         Err(WouldBlock)                => n = read(socket); if n == 0 { pump.feed_eof() }
//!                                           else { consumed = pump.feed_ciphertext(&data[..n])?;
//!                                                  keep data[consumed..] for the next feed }
//!         Err(e)                         => the TLS session is broken: flush, then close
//!     }
//! }
//! ```
//!
//! Plaintext to send goes through [`TlsPump::write_plaintext`], followed by draining
//! [`TlsPump::take_ciphertext`] to the socket. Each rustls error is sticky: once
//! [`TlsPump::feed_ciphertext`] failed, flush the alert rustls queued and close.

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};
use std::io::{self, Read, Write};
use std::sync::Arc;

use super::info::TlsInfo;

/// One TLS connection without I/O: ciphertext in and out as byte slices, plaintext in and
/// out as byte slices (wraps `rustls::Connection`, client or server side).
#[derive(Debug)]
pub struct TlsPump {
    /// The rustls connection state.
    conn: Connection,
    /// On the client side, the server name asked for (sent as SNI when it is a DNS name).
    asked_name: Option<String>,
}

impl TlsPump {
    /// A server-side pump waiting for the peer's ClientHello (smtps, or after
    /// `220 Ready to start TLS`).
    ///
    /// # Errors
    /// rustls refuses the configuration.
    pub fn server(config: Arc<ServerConfig>) -> Result<Self, rustls::Error> {
        Ok(TlsPump {
            conn: ServerConnection::new(config)?.into(),
            asked_name: None,
        })
    }

    /// A client-side pump for `server_name` (a DNS name, or an IP address text); its
    /// ClientHello is ready at once in [`TlsPump::take_ciphertext`].
    ///
    /// # Errors
    /// `server_name` is neither a DNS name nor an IP address, or rustls refuses the
    /// configuration.
    pub fn client(config: Arc<ClientConfig>, server_name: &str) -> Result<Self, rustls::Error> {
        let name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| rustls::Error::General(format!("invalid server name {server_name:?}")))?;
        Ok(TlsPump {
            conn: ClientConnection::new(config, name)?.into(),
            asked_name: Some(server_name.to_owned()),
        })
    }

    /// Feeds ciphertext read from the socket and processes the records it completes.
    /// Returns how many bytes were taken: fewer than given when rustls holds enough
    /// unread plaintext already (read it, then feed the rest again), so memory stays bounded.
    ///
    /// # Errors
    /// The peer broke the protocol (not TLS at all, a bad certificate, a failed check);
    /// the error is sticky and the text names the reason. Flush [`TlsPump::take_ciphertext`]
    /// afterwards so the peer gets the alert.
    pub fn feed_ciphertext(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let total = data.len();
        while !data.is_empty() && self.conn.wants_read() {
            let read = self.conn.read_tls(&mut data)?;
            self.process()?;
            if read == 0 {
                break;
            }
        }
        Ok(total.saturating_sub(data.len()))
    }

    /// Tells the pump that the socket reached end of file: reads then report a clean close
    /// (after a close_notify) or an `UnexpectedEof` error (without one, or mid-handshake).
    ///
    /// # Errors
    /// Processing what was buffered failed.
    pub fn feed_eof(&mut self) -> io::Result<()> {
        let mut empty: &[u8] = &[];
        self.conn.read_tls(&mut empty)?;
        self.process()
    }

    /// Processes the records read so far, mapping a rustls error to an I/O error that
    /// names the reason.
    fn process(&mut self) -> io::Result<()> {
        match self.conn.process_new_packets() {
            Ok(_) => Ok(()),
            Err(e) => Err(io::Error::new(io::ErrorKind::InvalidData, e)),
        }
    }

    /// Whether ciphertext waits to be written to the socket.
    pub fn has_ciphertext(&self) -> bool {
        self.conn.wants_write()
    }

    /// Takes every byte of ciphertext waiting for the socket (handshake messages, alerts,
    /// encrypted records), in order. Empty when there is nothing to send.
    pub fn take_ciphertext(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while self.conn.wants_write() {
            // Writing into a Vec cannot fail; stop rather than spin if rustls says otherwise.
            match self.conn.write_tls(&mut out) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        out
    }

    /// Whether the pump wants more ciphertext from the socket before it can progress.
    pub fn wants_ciphertext(&self) -> bool {
        self.conn.wants_read()
    }

    /// Whether the handshake is still running.
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Copies decrypted plaintext into `buf`.
    ///
    /// # Errors
    /// `WouldBlock` when no plaintext is buffered and more ciphertext is needed;
    /// `UnexpectedEof` when the socket closed without a close_notify. `Ok(0)` is a clean
    /// TLS close by the peer.
    pub fn read_plaintext(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.conn.reader().read(buf)
    }

    /// Queues plaintext for encryption (buffered until the handshake completes); the
    /// records appear in [`TlsPump::take_ciphertext`].
    ///
    /// # Errors
    /// The connection was closed for writing.
    pub fn write_plaintext(&mut self, data: &[u8]) -> io::Result<usize> {
        self.conn.writer().write(data)
    }

    /// Queues a close_notify alert (RFC 8446 §6.1): the clean end of the TLS session.
    pub fn send_close_notify(&mut self) {
        self.conn.send_close_notify();
    }

    /// What was negotiated, once the handshake completed; `None` before.
    pub fn info(&self) -> Option<TlsInfo> {
        if self.conn.is_handshaking() {
            return None;
        }
        let sni = match &self.conn {
            Connection::Server(server) => server.server_name().map(str::to_owned),
            Connection::Client(_) => self.asked_name.clone(),
        };
        Some(TlsInfo::from_connection(
            self.conn.protocol_version(),
            self.conn.negotiated_cipher_suite(),
            sni,
            self.conn.peer_certificates(),
        ))
    }
}
