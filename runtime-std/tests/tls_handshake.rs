//! The TLS pump over real loopback sockets: server and client `TlsStream` in two threads,
//! certificates from a test CA made with rcgen.

mod tls_support;

use runtime_std::tls::{ClientTls, TlsStream};
use std::io::{Read, Write};
use std::time::{Duration, Instant};
use tls_support::*;

/// A config with one pki `name` signed by a fresh CA, on a `tls` listener.
fn one_pki(tag: &str, name: &str) -> (TestCa, String) {
    let dir = temp_dir(tag);
    let ca = TestCa::new(&dir);
    let (cert, key) = ca.leaf(name);
    let text = format!(
        "pki {name} cert \"{}\"\npki {name} key \"{}\"\nlisten on 127.0.0.1 tls pki {name}\n",
        p(&cert),
        p(&key)
    );
    (ca, text)
}

#[test]
fn handshake_carries_bytes_both_ways_and_reports_what_was_negotiated() {
    let (ca, text) = one_pki("both-ways", "mx.example.org");
    let (port, server) = echo_server(server_config(&text));
    let client = ClientTls::client_config(true, Some(&p(&ca.ca_file))).unwrap();
    let mut tls = TlsStream::connect(connect(port), client, "mx.example.org", TIMEOUT).unwrap();
    tls.write_all(b"EHLO client.example.org\r\n").unwrap();
    assert_eq!(
        read_line(&mut tls).unwrap(),
        "echo: EHLO client.example.org\r\n"
    );
    let mut rest = Vec::new();
    tls.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "close_notify ends the stream cleanly");

    let client_info = tls.info().clone();
    assert_eq!(client_info.protocol, "TLSv1.3");
    assert!(client_info.cipher.starts_with("TLS13_"), "{client_info:?}");
    assert_eq!(
        client_info.peer_cert_subject.as_deref(),
        Some("CN=mx.example.org")
    );
    assert_eq!(client_info.sni.as_deref(), Some("mx.example.org"));

    let server_info = server.join().unwrap().unwrap();
    assert_eq!(server_info.protocol, "TLSv1.3");
    assert_eq!(server_info.cipher, client_info.cipher);
    assert_eq!(server_info.sni.as_deref(), Some("mx.example.org"));
    assert_eq!(
        server_info.peer_cert_subject, None,
        "no client certificate was asked"
    );
    let clause = server_info.received_clause();
    assert!(clause.starts_with("TLSv1.3:TLS_AES_"), "{clause}");
    assert!(clause.ends_with(":NO"), "{clause}");
    assert_eq!(server_info.ciphers_text() + ":NO", clause);
}

#[test]
fn sni_picks_the_pki_named_like_the_requested_host() {
    let dir = temp_dir("sni");
    let ca = TestCa::new(&dir);
    let (cert_a, key_a) = ca.leaf("a.example.org");
    let (cert_b, key_b) = ca.leaf("b.example.org");
    let text = format!(
        "pki a.example.org cert \"{}\"\npki a.example.org key \"{}\"\n\
         pki b.example.org cert \"{}\"\npki b.example.org key \"{}\"\n\
         listen on 127.0.0.1 tls pki a.example.org\n",
        p(&cert_a),
        p(&key_a),
        p(&cert_b),
        p(&key_b)
    );
    let server = server_config(&text);
    let client = ClientTls::client_config(true, Some(&p(&ca.ca_file))).unwrap();
    for name in ["a.example.org", "B.Example.ORG"] {
        let (port, handle) = echo_server(server.clone());
        let mut tls = TlsStream::connect(connect(port), client.clone(), name, TIMEOUT).unwrap();
        tls.write_all(b"x\n").unwrap();
        assert_eq!(read_line(&mut tls).unwrap(), "echo: x\n");
        let subject = tls.info().peer_cert_subject.clone().unwrap();
        assert_eq!(
            subject.to_ascii_lowercase(),
            format!("cn={}", name.to_ascii_lowercase())
        );
        handle.join().unwrap().unwrap();
    }

    // An IP address sends no SNI: the listener's own pki answers (verification off, as
    // the certificate does not name the address).
    let (port, handle) = echo_server(server);
    let loose = ClientTls::client_config(false, None).unwrap();
    let tls = TlsStream::connect(connect(port), loose, "127.0.0.1", TIMEOUT).unwrap();
    assert_eq!(
        tls.info().peer_cert_subject.as_deref(),
        Some("CN=a.example.org")
    );
    drop(tls);
    let _ = handle.join().unwrap();
}

#[test]
fn verification_passes_with_the_test_ca_and_fails_without_it() {
    let (ca, text) = one_pki("verify", "mx.example.org");
    let server = server_config(&text);

    let (port, handle) = echo_server(server.clone());
    let with_ca = ClientTls::client_config(true, Some(&p(&ca.ca_file))).unwrap();
    TlsStream::connect(connect(port), with_ca.clone(), "mx.example.org", TIMEOUT).unwrap();
    let _ = handle.join().unwrap();

    // The right CA, the wrong name.
    let (port, handle) = echo_server(server.clone());
    let err = TlsStream::connect(connect(port), with_ca, "other.example.org", TIMEOUT).unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
    assert!(handle.join().unwrap().is_err());

    // The system roots do not know the test CA (a CA file of another CA stands in for
    // them where the machine has no system roots at all).
    let other = TestCa::new(&temp_dir("verify-other"));
    let (port, handle) = echo_server(server);
    let roots = match ClientTls::client_config(true, None) {
        Ok(system) => system,
        Err(_) => ClientTls::client_config(true, Some(&p(&other.ca_file))).unwrap(),
    };
    let err = TlsStream::connect(connect(port), roots, "mx.example.org", TIMEOUT).unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("tls handshake failed:"), "{text}");
    assert!(
        text.contains("UnknownIssuer") || text.contains("unknown"),
        "{text}"
    );
    let server_err = handle.join().unwrap().unwrap_err();
    assert!(server_err.contains("tls handshake failed"), "{server_err}");
}

#[test]
fn no_verify_accepts_a_self_signed_certificate() {
    let dir = temp_dir("self-signed");
    let (cert, key) = self_signed(&dir, "self.example.org");
    let text = format!(
        "pki self cert \"{}\"\npki self key \"{}\"\nlisten on 127.0.0.1 smtps pki self\n",
        p(&cert),
        p(&key)
    );
    let (port, handle) = echo_server(server_config(&text));
    let client = ClientTls::client_config(false, None).unwrap();
    let mut tls = TlsStream::connect(connect(port), client, "whatever.example", TIMEOUT).unwrap();
    tls.write_all(b"hello\n").unwrap();
    assert_eq!(read_line(&mut tls).unwrap(), "echo: hello\n");
    assert_eq!(
        tls.info().peer_cert_subject.as_deref(),
        Some("CN=rcgen self signed cert")
    );
    handle.join().unwrap().unwrap();
}

#[test]
fn a_plaintext_client_gets_a_clean_error_at_once() {
    let (_ca, text) = one_pki("plaintext", "mx.example.org");
    let (port, handle) = echo_server(server_config(&text));
    let mut tcp = connect(port);
    let started = Instant::now();
    tcp.write_all(b"EHLO plain.example.org\r\n").unwrap();
    let err = handle.join().unwrap().unwrap_err();
    assert!(err.starts_with("tls handshake failed:"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no wait for a timeout"
    );
    // The server answered with an alert, then closed: the client sees an end, not a hang.
    let mut reply = Vec::new();
    let _ = tcp.read_to_end(&mut reply);
    assert!(
        reply.first() == Some(&0x15) || reply.is_empty(),
        "{reply:?}"
    );
}

#[test]
fn a_silent_client_times_out_the_handshake() {
    let (_ca, text) = one_pki("silent", "mx.example.org");
    let server = server_config(&text);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let _client = connect(port);
    let (tcp, _) = listener.accept().unwrap();
    let started = Instant::now();
    let err = TlsStream::accept(tcp, server, Duration::from_millis(300)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    assert_eq!(err.to_string(), "tls handshake timed out");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(300) && waited < Duration::from_secs(3));
}

#[test]
fn a_client_that_hangs_up_mid_handshake_is_reported() {
    let (_ca, text) = one_pki("hangup", "mx.example.org");
    let (port, handle) = echo_server(server_config(&text));
    drop(connect(port));
    let err = handle.join().unwrap().unwrap_err();
    assert!(
        err.contains("closed the connection during the tls handshake"),
        "{err}"
    );
}

#[test]
fn bytes_the_caller_already_read_start_the_handshake() {
    // As after a PROXY v2 header: the runtime's read took the start of the ClientHello.
    let (ca, text) = one_pki("already-read", "mx.example.org");
    let server = server_config(&text);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (mut tcp, _) = listener.accept().unwrap();
        let mut head = [0u8; 7];
        tcp.read_exact(&mut head).unwrap();
        assert_eq!(head[0], 0x16, "a handshake record");
        let mut tls = TlsStream::accept_after(tcp, server, head.to_vec(), TIMEOUT).unwrap();
        tls.write_all(b"220 ready\r\n").unwrap();
        tls.info().clone()
    });
    let client = ClientTls::client_config(true, Some(&p(&ca.ca_file))).unwrap();
    let mut tls = TlsStream::connect(connect(port), client, "mx.example.org", TIMEOUT).unwrap();
    assert_eq!(read_line(&mut tls).unwrap(), "220 ready\r\n");
    assert_eq!(handle.join().unwrap().protocol, "TLSv1.3");
}

#[test]
fn a_read_timeout_leaves_the_stream_usable_and_a_megabyte_arrives_intact() {
    let (ca, text) = one_pki("timeout-bulk", "mx.example.org");
    let server = server_config(&text);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let body: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
    let expected = body.clone();
    let handle = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let mut tls = TlsStream::accept(tcp, server, TIMEOUT).unwrap();
        tls.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut buf = [0u8; 64];
        // Nothing sent yet: the timeout comes back as the socket's error kind.
        let err = tls.read(&mut buf).unwrap_err();
        assert!(
            matches!(
                err.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{err:?}"
        );
        tls.write_all(b"go\n").unwrap();
        tls.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut received = Vec::new();
        let mut chunk = [0u8; 3000];
        while received.len() < expected.len() {
            let n = tls.read(&mut chunk).unwrap();
            assert!(n > 0, "early end after {}", received.len());
            received.extend_from_slice(&chunk[..n]);
        }
        assert!(received == expected, "the body arrived altered");
        tls.write_all(b"250 ok\n").unwrap();
    });
    let client = ClientTls::client_config(true, Some(&p(&ca.ca_file))).unwrap();
    let mut tls = TlsStream::connect(connect(port), client, "mx.example.org", TIMEOUT).unwrap();
    assert_eq!(read_line(&mut tls).unwrap(), "go\n");
    for piece in body.chunks(70_000) {
        tls.write_all(piece).unwrap();
    }
    assert_eq!(read_line(&mut tls).unwrap(), "250 ok\n");
    handle.join().unwrap();
}

#[test]
fn a_silent_server_times_out_the_client_handshake() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let tcp = connect(port);
    let (_accepted, _) = listener.accept().unwrap();
    let client = ClientTls::client_config(false, None).unwrap();
    let started = Instant::now();
    let err =
        TlsStream::connect(tcp, client, "mx.example.org", Duration::from_millis(300)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    assert!(started.elapsed() < Duration::from_secs(3));
}
