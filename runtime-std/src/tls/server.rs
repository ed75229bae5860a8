//! The server side: a rustls `ServerConfig` for a listener, from the `pki` and `ca` blocks
//! of `smtpd.conf`, with the certificate chosen by the name the client asks for (SNI).

use mta_core::config::{Config, Listener, ListenerTls};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use std::sync::Arc;

use super::pem::{load_certs, load_key};
use super::{ring_provider, system_roots, TlsConfigError};

/// Builds the TLS configuration of server listeners.
#[derive(Debug)]
pub struct ServerTls;

impl ServerTls {
    /// The rustls configuration for `listener`, or `None` when it offers no TLS.
    ///
    /// Every `pki` block of the configuration is loaded, so that a client asking for one
    /// of their names by SNI gets that certificate (OpenSMTPD picks the pki whose name
    /// equals the server name); without SNI, or for an unknown name, the listener's own
    /// `pki` answers, or the first pki by name when the listener names none. With
    /// `tls-require verify`, a client certificate signed by the listener's `ca` (system
    /// roots without one) is required during the handshake.
    ///
    /// `pki NAME dhe ...` is accepted and has no effect: rustls offers only ECDHE key
    /// exchanges, which need no parameters.
    ///
    /// Build it once per listener at start (and on reload), not per connection.
    ///
    /// # Errors
    /// A file is missing or unreadable, a pki lacks its cert or key, a key does not match
    /// its certificate, or the listener wants TLS and no pki is configured; the message
    /// names the file or pki.
    pub fn from_config(
        config: &Config,
        listener: &Listener,
    ) -> Result<Option<Arc<ServerConfig>>, TlsConfigError> {
        let verify = match listener.tls {
            ListenerTls::None => return Ok(None),
            ListenerTls::StartTls | ListenerTls::Smtps => false,
            ListenerTls::TlsRequire { verify } => verify,
        };
        let provider = ring_provider();
        let mut by_name = Vec::new();
        for name in config.pki.keys() {
            by_name.push((
                name.to_ascii_lowercase(),
                load_pki(config, name, &provider)?,
            ));
        }
        let default_name = match &listener.pki {
            Some(name) => name.clone(),
            None => config.pki.keys().next().cloned().ok_or_else(|| {
                TlsConfigError::Incomplete(
                    "a listener offers tls but no pki is configured".to_owned(),
                )
            })?,
        };
        let default = by_name
            .iter()
            .find(|(name, _)| *name == default_name.to_ascii_lowercase())
            .map(|(_, key)| Arc::clone(key))
            .ok_or_else(|| {
                TlsConfigError::Incomplete(format!("pki {default_name} is not defined"))
            })?;
        let resolver = Arc::new(SniResolver { by_name, default });

        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()?;
        let server = if verify {
            let roots = match &listener.ca {
                Some(ca) => ca_roots(config, ca)?,
                None => system_roots()?,
            };
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| TlsConfigError::NoRoots(e.to_string()))?;
            builder
                .with_client_cert_verifier(verifier)
                .with_cert_resolver(resolver)
        } else {
            builder.with_no_client_auth().with_cert_resolver(resolver)
        };
        Ok(Some(Arc::new(server)))
    }
}

/// Loads the certificate chain and key of `pki NAME`, checking that they belong together.
fn load_pki(
    config: &Config,
    name: &str,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsConfigError> {
    let pki = config
        .pki
        .get(name)
        .ok_or_else(|| TlsConfigError::Incomplete(format!("pki {name} is not defined")))?;
    let cert_path = pki
        .cert
        .as_deref()
        .ok_or_else(|| TlsConfigError::Incomplete(format!("pki {name} has no cert file")))?;
    let key_path = pki
        .key
        .as_deref()
        .ok_or_else(|| TlsConfigError::Incomplete(format!("pki {name} has no key file")))?;
    let certs = load_certs(cert_path)?;
    let key = load_key(key_path)?;
    CertifiedKey::from_der(certs, key, provider)
        .map(Arc::new)
        .map_err(|e| TlsConfigError::Key {
            pki: name.to_owned(),
            reason: match e {
                rustls::Error::InconsistentKeys(_) => {
                    format!("the key in {key_path} does not match the certificate in {cert_path}")
                }
                other => format!("unusable key in {key_path}: {other}"),
            },
        })
}

/// The roots of `ca NAME` (its file holds one or more PEM certificates).
fn ca_roots(config: &Config, name: &str) -> Result<Arc<RootCertStore>, TlsConfigError> {
    let path = config
        .ca
        .get(name)
        .ok_or_else(|| TlsConfigError::Incomplete(format!("ca {name} is not defined")))?;
    super::roots_from_file(path)
}

/// Picks the certificate for a handshake by the requested server name.
#[derive(Debug)]
struct SniResolver {
    /// Every pki by lower-case name.
    by_name: Vec<(String, Arc<CertifiedKey>)>,
    /// The answer without SNI or for a name no pki carries.
    default: Arc<CertifiedKey>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let chosen = hello.server_name().and_then(|asked| {
            self.by_name
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(asked))
                .map(|(_, key)| Arc::clone(key))
        });
        Some(chosen.unwrap_or_else(|| Arc::clone(&self.default)))
    }
}
