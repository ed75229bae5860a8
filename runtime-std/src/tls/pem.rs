//! Reading certificates and private keys from PEM files, with errors that name the file.

use super::TlsConfigError;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Reads every certificate of a PEM file, in order (end-entity first for a chain).
///
/// # Errors
/// The file cannot be read, a section is malformed, or it holds no certificate.
pub fn load_certs(path: &str) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, e, "certificate"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e, "certificate"))?;
    if certs.is_empty() {
        return Err(TlsConfigError::Pem {
            path: path.to_owned(),
            reason: "no certificate found (expected a BEGIN CERTIFICATE section)".into(),
        });
    }
    Ok(certs)
}

/// Reads the first private key of a PEM file (PKCS#8, PKCS#1 RSA or SEC1 EC).
///
/// # Errors
/// The file cannot be read, a section is malformed, or it holds no private key.
pub fn load_key(path: &str) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| pem_error(path, e, "private key"))
}

/// Turns a PEM parsing failure into an error naming the file and what was looked for.
fn pem_error(path: &str, err: pem::Error, what: &str) -> TlsConfigError {
    match err {
        pem::Error::Io(source) => TlsConfigError::Read {
            path: path.to_owned(),
            source,
        },
        pem::Error::NoItemsFound => TlsConfigError::Pem {
            path: path.to_owned(),
            reason: format!("no {what} found in this PEM file"),
        },
        other => TlsConfigError::Pem {
            path: path.to_owned(),
            reason: format!("malformed PEM while looking for a {what}: {other}"),
        },
    }
}
