//! What a TLS handshake negotiated, in the words the `Received:` header and the log use.

use rustls::pki_types::CertificateDer;
use rustls::{ProtocolVersion, SupportedCipherSuite};

use super::subject::subject_of;

/// The outcome of a completed handshake, for the `Received:` header (RFC 5321 §4.4 leaves
/// the comment free; see [`TlsInfo::received_clause`] for OpenSMTPD's form) and the log
/// line ([`TlsInfo::ciphers_text`]).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TlsInfo {
    /// The protocol version, `TLSv1.3` or `TLSv1.2`.
    pub protocol: String,
    /// The cipher suite in rustls's (IANA-like) naming, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher: String,
    /// The server name: on the server side what the client asked for (SNI, RFC 6066 §3),
    /// on the client side the name we asked for.
    pub sni: Option<String>,
    /// The subject of the peer's end-entity certificate (`CN=...`), when it presented one.
    pub peer_cert_subject: Option<String>,
}

impl TlsInfo {
    /// Builds the summary from what a rustls connection reports after its handshake.
    pub(crate) fn from_connection(
        version: Option<ProtocolVersion>,
        suite: Option<SupportedCipherSuite>,
        sni: Option<String>,
        peer_certs: Option<&[CertificateDer<'_>]>,
    ) -> Self {
        let protocol = match version {
            Some(ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
            Some(ProtocolVersion::TLSv1_2) => "TLSv1.2".to_owned(),
            Some(other) => format!("{other:?}"),
            None => "unknown".to_owned(),
        };
        let cipher = suite
            .map(|s| {
                s.suite()
                    .as_str()
                    .map_or_else(|| format!("{:?}", s.suite()), str::to_owned)
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let peer_cert_subject = peer_certs
            .and_then(|certs| certs.first())
            .and_then(|cert| subject_of(cert.as_ref()));
        TlsInfo {
            protocol,
            cipher,
            sni,
            peer_cert_subject,
        }
    }

    /// The cipher suite in OpenSSL's naming (`TLS_AES_256_GCM_SHA384`,
    /// `ECDHE-RSA-AES128-GCM-SHA256`), which OpenSMTPD's logs and headers carry and log
    /// parsers expect; the rustls name for a suite without a known OpenSSL name.
    pub fn openssl_cipher(&self) -> &str {
        suite_facts(&self.cipher).map_or(&self.cipher, |(name, _)| name)
    }

    /// The secret key length of the cipher in bits (128 or 256); 0 when unknown.
    pub fn cipher_bits(&self) -> u16 {
        suite_facts(&self.cipher).map_or(0, |(_, bits)| bits)
    }

    /// `TLSv1.3:TLS_AES_256_GCM_SHA384:256`: version, OpenSSL cipher name and bits, the
    /// text OpenSMTPD logs as `smtp tls ciphers=...`.
    pub fn ciphers_text(&self) -> String {
        format!(
            "{}:{}:{}",
            self.protocol,
            self.openssl_cipher(),
            self.cipher_bits()
        )
    }

    /// The TLS comment of a server's `Received:` header, as OpenSMTPD writes it:
    /// `TLSv1.3:TLS_AES_256_GCM_SHA384:256:NO`, the last field telling whether the
    /// client presented a certificate that was verified (`YES`: our server asks for one
    /// only with `verify`, and the handshake fails when it does not verify).
    pub fn received_clause(&self) -> String {
        let verified = if self.peer_cert_subject.is_some() {
            "YES"
        } else {
            "NO"
        };
        format!("{}:{verified}", self.ciphers_text())
    }
}

/// OpenSSL's name and the key bits of each suite the ring provider offers, by rustls name.
fn suite_facts(rustls_name: &str) -> Option<(&'static str, u16)> {
    Some(match rustls_name {
        "TLS13_AES_256_GCM_SHA384" => ("TLS_AES_256_GCM_SHA384", 256),
        "TLS13_AES_128_GCM_SHA256" => ("TLS_AES_128_GCM_SHA256", 128),
        "TLS13_CHACHA20_POLY1305_SHA256" => ("TLS_CHACHA20_POLY1305_SHA256", 256),
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => ("ECDHE-ECDSA-AES256-GCM-SHA384", 256),
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => ("ECDHE-ECDSA-AES128-GCM-SHA256", 128),
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => ("ECDHE-ECDSA-CHACHA20-POLY1305", 256),
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => ("ECDHE-RSA-AES256-GCM-SHA384", 256),
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => ("ECDHE-RSA-AES128-GCM-SHA256", 128),
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" => ("ECDHE-RSA-CHACHA20-POLY1305", 256),
        _ => return None,
    })
}
