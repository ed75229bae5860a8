//! What a TLS handshake negotiated, in the words the `Received:` header and the log use.

use rustls::pki_types::CertificateDer;
use rustls::{ProtocolVersion, SupportedCipherSuite};

use super::subject::subject_of;

/// The outcome of a completed handshake, for the `Received:` header (RFC 5321 §4.4 leaves
/// the comment free; OpenSMTPD writes `using TLSv1.3 with cipher ...`) and the log line.
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

    /// The clause for a `Received:` header comment: `TLSv1.3 with cipher TLS13_AES_...`.
    pub fn received_clause(&self) -> String {
        format!("{} with cipher {}", self.protocol, self.cipher)
    }
}
