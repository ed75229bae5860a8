//! The client side, for relaying: a rustls `ClientConfig` that verifies servers against
//! the system roots or a configured CA, or, for `tls no-verify`, verifies nothing.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;

use super::pem::{load_certs, load_key};
use super::{ring_provider, roots_from_file, system_roots, TlsConfigError};

/// Builds the TLS configuration of outbound sessions.
#[derive(Debug)]
pub struct ClientTls;

impl ClientTls {
    /// A client configuration: with `verify`, the server's certificate must chain to `ca`
    /// (a PEM file, from `relay ... ca NAME`) or, without one, to the system's roots
    /// (rustls-native-certs) and name the host; without `verify` (`tls no-verify`), any
    /// certificate is accepted and only the handshake signatures are checked.
    ///
    /// Loading the system roots reads many files: build this once (per relay option set)
    /// and share the `Arc`.
    ///
    /// # Errors
    /// The CA file is missing or holds no certificate, or the system has no usable root.
    pub fn client_config(
        verify: bool,
        ca: Option<&str>,
    ) -> Result<Arc<ClientConfig>, TlsConfigError> {
        Self::build(verify, ca, None)
    }

    /// As [`ClientTls::client_config`], presenting a client certificate (`relay ...
    /// pki NAME`): `cert` and `key` are the pki's PEM files.
    ///
    /// # Errors
    /// As [`ClientTls::client_config`], plus an unreadable certificate or key, or a key
    /// that does not match its certificate.
    pub fn client_config_with_cert(
        verify: bool,
        ca: Option<&str>,
        cert: &str,
        key: &str,
    ) -> Result<Arc<ClientConfig>, TlsConfigError> {
        Self::build(verify, ca, Some((cert, key)))
    }

    /// Builds the configuration, with an optional (certificate, key) pair of files.
    fn build(
        verify: bool,
        ca: Option<&str>,
        identity: Option<(&str, &str)>,
    ) -> Result<Arc<ClientConfig>, TlsConfigError> {
        let provider = ring_provider();
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()?;
        let builder = if verify {
            let roots = match ca {
                Some(path) => roots_from_file(path)?,
                None => system_roots()?,
            };
            builder.with_root_certificates(roots)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert { provider }))
        };
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => builder
                .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
                .map_err(|e| TlsConfigError::Key {
                    pki: cert.to_owned(),
                    reason: match e {
                        rustls::Error::InconsistentKeys(_) => {
                            format!("the key in {key} does not match the certificate in {cert}")
                        }
                        other => format!("unusable key in {key}: {other}"),
                    },
                })?,
        };
        Ok(Arc::new(config))
    }
}

/// `tls no-verify`: accepts whatever certificate the server shows (self-signed, expired,
/// for another name). The handshake signatures are still checked, so the session is
/// encrypted to whoever holds the key of that certificate, just not authenticated.
#[derive(Debug)]
struct AcceptAnyServerCert {
    /// Supplies the signature algorithms for the handshake checks.
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
