//! What can be wrong with the TLS part of a configuration, named so that an administrator
//! can fix it: the file, and the reason.

use std::io;

/// A TLS setting that cannot be turned into a rustls configuration.
///
/// Every variant names the file or the configuration name at fault; the daemon prints the
/// message and refuses to start, as OpenSMTPD does for a broken `pki`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// A certificate, key or CA file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file, as written in the configuration.
        path: String,
        /// Why it could not be read (missing, permission denied, ...).
        source: io::Error,
    },
    /// A PEM file holds no usable section of the expected kind, or a broken one.
    #[error("{path}: {reason}")]
    Pem {
        /// The file, as written in the configuration.
        path: String,
        /// What was expected and what went wrong, e.g. "no private key found".
        reason: String,
    },
    /// The key of a pki cannot be used, or does not belong to its certificate.
    #[error("pki {pki}: {reason}")]
    Key {
        /// The pki name (`pki NAME ...`).
        pki: String,
        /// Why, e.g. "the key does not match the certificate".
        reason: String,
    },
    /// A listener or relay names a pki or CA the configuration lacks, or a pki misses its
    /// `cert` or `key` line.
    #[error("{0}")]
    Incomplete(String),
    /// Neither the given CA nor the system offered a single usable root certificate.
    #[error("no usable root certificate: {0}")]
    NoRoots(String),
    /// rustls refused the assembled configuration.
    #[error("tls configuration: {0}")]
    Rustls(#[from] rustls::Error),
}
