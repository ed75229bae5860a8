//! `tls-require verify` with `ca`: the handshake demands a client certificate signed by
//! that CA, and the server reports its subject.

mod tls_support;

use runtime_std::tls::{ClientTls, TlsStream};
use std::io::Write;
use tls_support::*;

/// A `tls-require verify` listener whose pki and client CA come from one test CA.
fn verifying_listener(tag: &str) -> (TestCa, std::sync::Arc<rustls::ServerConfig>) {
    let dir = temp_dir(tag);
    let ca = TestCa::new(&dir);
    let (cert, key) = ca.leaf("mx.example.org");
    let text = format!(
        "pki mx.example.org cert \"{}\"\npki mx.example.org key \"{}\"\n\
         ca clients cert \"{}\"\n\
         listen on 127.0.0.1 tls-require verify pki mx.example.org ca clients\n",
        p(&cert),
        p(&key),
        p(&ca.ca_file)
    );
    let server = server_config(&text);
    (ca, server)
}

#[test]
fn a_client_certificate_from_the_ca_is_accepted_and_reported() {
    let (ca, server) = verifying_listener("client-ok");
    let (client_cert, client_key) = ca.leaf("client.example.net");
    let client = ClientTls::client_config_with_cert(
        true,
        Some(&p(&ca.ca_file)),
        &p(&client_cert),
        &p(&client_key),
    )
    .unwrap();
    let (port, handle) = echo_server(server);
    let mut tls = TlsStream::connect(connect(port), client, "mx.example.org", TIMEOUT).unwrap();
    tls.write_all(b"MAIL FROM:<a@client.example.net>\r\n")
        .unwrap();
    assert_eq!(
        read_line(&mut tls).unwrap(),
        "echo: MAIL FROM:<a@client.example.net>\r\n"
    );
    let info = handle.join().unwrap().unwrap();
    assert_eq!(
        info.peer_cert_subject.as_deref(),
        Some("CN=client.example.net")
    );
    assert!(info.received_clause().ends_with(":YES"), "{info:?}");
}

#[test]
fn a_client_without_a_certificate_is_refused() {
    let (ca, server) = verifying_listener("client-none");
    let client = ClientTls::client_config(true, Some(&p(&ca.ca_file))).unwrap();
    let (port, handle) = echo_server(server);
    // In TLS 1.3 the client finishes its side before the server checks the certificate:
    // the refusal reaches it as an alert on its first read.
    let client_side = TlsStream::connect(connect(port), client, "mx.example.org", TIMEOUT)
        .and_then(|mut tls| {
            tls.write_all(b"EHLO x\r\n")?;
            read_line(&mut tls)
        });
    let client_err = client_side.unwrap_err().to_string();
    assert!(client_err.contains("CertificateRequired"), "{client_err}");
    let server_err = handle.join().unwrap().unwrap_err();
    assert!(
        server_err.starts_with("tls handshake failed:"),
        "{server_err}"
    );
    assert!(server_err.contains("certificate"), "{server_err}");
}

#[test]
fn a_client_certificate_from_another_ca_is_refused() {
    let (_ca, server) = verifying_listener("client-foreign");
    let stranger = TestCa::new(&temp_dir("client-foreign-ca"));
    let (client_cert, client_key) = stranger.leaf("stranger.example.net");
    let client =
        ClientTls::client_config_with_cert(false, None, &p(&client_cert), &p(&client_key)).unwrap();
    let (port, handle) = echo_server(server);
    let client_side = TlsStream::connect(connect(port), client, "mx.example.org", TIMEOUT)
        .and_then(|mut tls| {
            tls.write_all(b"EHLO x\r\n")?;
            read_line(&mut tls)
        });
    assert!(client_side.is_err());
    let server_err = handle.join().unwrap().unwrap_err();
    assert!(server_err.contains("UnknownIssuer"), "{server_err}");
}
