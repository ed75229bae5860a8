//! The sans-I/O `TlsPump` alone: a client and a server pump wired together in memory,
//! ciphertext moved in chunks of every size, as an async runtime would drive them.

mod tls_support;

use runtime_std::tls::{ClientTls, TlsPump};
use std::io::ErrorKind;
use tls_support::*;

/// Moves the ciphertext one pump holds into the other, `chunk` bytes per feed, keeping
/// what the receiver does not take yet. Returns whether anything moved.
fn transfer(from: &mut TlsPump, to: &mut TlsPump, backlog: &mut Vec<u8>, chunk: usize) -> bool {
    backlog.extend(from.take_ciphertext());
    let mut moved = false;
    while !backlog.is_empty() {
        let end = chunk.min(backlog.len());
        let used = to.feed_ciphertext(&backlog[..end]).unwrap();
        if used == 0 {
            break;
        }
        backlog.drain(..used);
        moved = true;
    }
    moved
}

/// Reads every plaintext byte a pump holds now.
fn drain_plaintext(pump: &mut TlsPump) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match pump.read_plaintext(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => panic!("{e}"),
        }
    }
    out
}

#[test]
fn pumps_in_memory_handshake_and_carry_data_for_any_chunk_size() {
    let dir = temp_dir("pump");
    let ca = TestCa::new(&dir);
    let (cert, key) = ca.leaf("mx.example.org");
    let server_config = server_config(&format!(
        "pki mx.example.org cert \"{}\"\npki mx.example.org key \"{}\"\n\
         listen on 127.0.0.1 smtps pki mx.example.org\n",
        p(&cert),
        p(&key)
    ));
    let client_config = ClientTls::client_config(true, Some(&p(&ca.ca_file))).unwrap();
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();

    for chunk in [1, 7, 512, 5000, 1 << 20] {
        let mut server = TlsPump::server(server_config.clone()).unwrap();
        let mut client = TlsPump::client(client_config.clone(), "mx.example.org").unwrap();
        assert!(client.has_ciphertext(), "the ClientHello is ready at once");
        assert!(server.info().is_none());
        let (mut to_server, mut to_client) = (Vec::new(), Vec::new());
        while client.is_handshaking() || server.is_handshaking() {
            let a = transfer(&mut client, &mut server, &mut to_server, chunk);
            let b = transfer(&mut server, &mut client, &mut to_client, chunk);
            assert!(a || b, "handshake stalled at chunk {chunk}");
        }
        let info = server.info().unwrap();
        assert_eq!(info.protocol, "TLSv1.3");
        assert_eq!(info.sni.as_deref(), Some("mx.example.org"));

        // A large body from client to server, read as it arrives (bounded buffering).
        let mut sent = 0;
        let mut received = Vec::new();
        while received.len() < body.len() {
            if sent < body.len() {
                sent += client.write_plaintext(&body[sent..]).unwrap();
            }
            transfer(&mut client, &mut server, &mut to_server, chunk);
            received.extend(drain_plaintext(&mut server));
        }
        assert_eq!(received, body, "chunk {chunk}");

        // A reply, then a clean close.
        server.write_plaintext(b"250 2.0.0 queued\r\n").unwrap();
        server.send_close_notify();
        transfer(&mut server, &mut client, &mut to_client, chunk);
        let mut buf = [0u8; 64];
        let n = client
            .read_plaintext(&mut buf)
            .unwrap_or_else(|e| panic!("chunk {chunk}: {e}, backlog {}", to_client.len()));
        assert_eq!(&buf[..n], b"250 2.0.0 queued\r\n");
        // The pump took nothing more while plaintext waited (back-pressure): feed the rest.
        transfer(&mut server, &mut client, &mut to_client, chunk);
        assert!(to_client.is_empty());
        let end = client.read_plaintext(&mut buf);
        assert_eq!(
            end.ok(),
            Some(0),
            "close_notify, chunk {chunk}, backlog {}",
            to_client.len()
        );
    }
}

#[test]
fn garbage_fed_to_a_server_pump_is_an_error_with_an_alert_to_send() {
    let dir = temp_dir("pump-garbage");
    let ca = TestCa::new(&dir);
    let (cert, key) = ca.leaf("mx.example.org");
    let config = server_config(&format!(
        "pki a cert \"{}\"\npki a key \"{}\"\nlisten on 127.0.0.1 tls pki a\n",
        p(&cert),
        p(&key)
    ));
    let mut server = TlsPump::server(config).unwrap();
    let err = server
        .feed_ciphertext(b"EHLO plain.example.org\r\n")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData);
    assert!(err.to_string().contains("corrupt message"), "{err}");
    let alert = server.take_ciphertext();
    assert_eq!(alert.first(), Some(&0x15), "a TLS alert record");
    // The error is sticky.
    assert!(server.feed_ciphertext(&[0x16, 3, 1, 0, 1, 0]).is_err());
}

#[test]
fn end_of_file_mid_session_is_an_unexpected_eof_not_a_clean_close() {
    let dir = temp_dir("pump-eof");
    let ca = TestCa::new(&dir);
    let (cert, key) = ca.leaf("mx.example.org");
    let config = server_config(&format!(
        "pki a cert \"{}\"\npki a key \"{}\"\nlisten on 127.0.0.1 tls pki a\n",
        p(&cert),
        p(&key)
    ));
    let client_config = ClientTls::client_config(true, Some(&p(&ca.ca_file))).unwrap();
    let mut server = TlsPump::server(config).unwrap();
    let mut client = TlsPump::client(client_config, "mx.example.org").unwrap();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    while client.is_handshaking() || server.is_handshaking() {
        transfer(&mut client, &mut server, &mut a, 4096);
        transfer(&mut server, &mut client, &mut b, 4096);
    }
    server.feed_eof().unwrap();
    let err = server.read_plaintext(&mut [0u8; 16]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
}
