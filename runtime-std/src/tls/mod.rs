//! TLS for both runtimes, with rustls and its `ring` provider.
//!
//! - [`ServerTls::from_config`]: the `ServerConfig` of a listener from the `pki` and `ca`
//!   blocks (certificate chosen by SNI, client certificates with `tls-require verify`).
//! - [`ClientTls::client_config`]: the `ClientConfig` for relaying (system roots or `ca`,
//!   or no verification for `tls no-verify`).
//! - [`TlsPump`]: the sans-I/O byte pump (ciphertext in and out, plaintext in and out)
//!   that both the blocking [`TlsStream`] and the smol runtime drive.
//! - [`TlsStream`]: the blocking stream, `accept` (server) and `connect` (client), with a
//!   bounded handshake and [`TlsInfo`] for the `Received:` header and the log. A loop
//!   that waits with `poll(2)` on the socket skips the poll while
//!   [`TlsStream::has_pending_input`] holds and reads with [`TlsStream::read_once`],
//!   which never blocks on half a record; `Read::read` is for loops that block on the
//!   socket with a read timeout.
//!
//! STARTTLS (RFC 3207 §4.2, CVE-2011-0411): the SMTP machine discards any plaintext
//! buffered after the STARTTLS line; the runtime writes `220`, then hands the bare socket
//! to [`TlsStream::accept`], which reads nothing before the ClientHello.
//!
//! ```no_run
//! # fn demo(config: &mta_core::config::Config, tcp: std::net::TcpStream)
//! #     -> Result<(), Box<dyn std::error::Error>> {
//! use runtime_std::tls::{ServerTls, TlsStream};
//! use std::io::Write;
//! let listener = &config.listeners[0];
//! if let Some(server) = ServerTls::from_config(config, listener)? {
//!     let mut tls = TlsStream::accept(tcp, server, std::time::Duration::from_secs(30))?;
//!     let info = tls.info();
//!     eprintln!("tls: {} {}", info.protocol, info.cipher);
//!     tls.write_all(b"220 mx.example.org ESMTP\r\n")?;
//! }
//! # Ok(()) }
//! ```

mod client;
mod error;
mod info;
mod pem;
mod pump;
mod server;
mod stream;
mod subject;

pub use client::ClientTls;
pub use error::TlsConfigError;
pub use info::TlsInfo;
pub use pem::{load_certs, load_key};
pub use pump::TlsPump;
pub use server::ServerTls;
pub use stream::{TimeoutSocket, TlsStream};

use rustls::crypto::CryptoProvider;
use rustls::RootCertStore;
use std::sync::{Arc, OnceLock};

/// The crypto provider every configuration of this crate uses: rustls's `ring` one,
/// chosen explicitly so that no process-wide default is needed.
fn ring_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Trust anchors from a PEM file of CA certificates (`ca NAME cert FILE`).
fn roots_from_file(path: &str) -> Result<Arc<RootCertStore>, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(load_certs(path)?);
    if added == 0 {
        return Err(TlsConfigError::NoRoots(format!(
            "{path}: no certificate usable as a trust anchor"
        )));
    }
    Ok(Arc::new(roots))
}

/// The system's trust anchors (rustls-native-certs: the distribution's bundle, or the
/// files named by `SSL_CERT_FILE` / `SSL_CERT_DIR`), read once per process: reading them
/// parses a few hundred certificates, too slow to repeat for every outbound route.
fn system_roots() -> Result<Arc<RootCertStore>, TlsConfigError> {
    static SYSTEM_ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    SYSTEM_ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(found
                    .errors
                    .first()
                    .map_or_else(|| "the system has none".to_owned(), ToString::to_string));
            }
            Ok(Arc::new(roots))
        })
        .clone()
        .map_err(TlsConfigError::NoRoots)
}
