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

/// SplitMix64: a small seeded generator, so that a failing case can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn arbitrary_bytes_never_panic_and_never_pile_up() {
    let dir = temp_dir("pump-arbitrary");
    let ca = TestCa::new(&dir);
    let (cert, key) = ca.leaf("mx.example.org");
    let config = server_config(&format!(
        "pki a cert \"{}\"\npki a key \"{}\"\nlisten on 127.0.0.1 tls pki a\n",
        p(&cert),
        p(&key)
    ));
    let mut rng = Rng(0x5eed);
    for case in 0..500 {
        let mut server = TlsPump::server(config.clone()).unwrap();
        // Half the cases start like a TLS handshake record, so that parsing goes deeper.
        let mut input: Vec<u8> = if case % 2 == 0 {
            vec![
                0x16,
                0x03,
                0x01,
                rng.below(0x41) as u8,
                rng.below(256) as u8,
                0x01,
            ]
        } else {
            Vec::new()
        };
        let len = rng.below(3000);
        input.extend((0..len).map(|_| rng.next() as u8));
        let mut rest: &[u8] = &input;
        while !rest.is_empty() {
            let chunk = 1 + rng.below(rest.len());
            match server.feed_ciphertext(&rest[..chunk]) {
                Ok(used) => {
                    assert!(used <= chunk, "case {case}");
                    rest = &rest[used..];
                    if used == 0 {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        assert!(server.take_ciphertext().len() < 64 * 1024, "case {case}");
        let _ = server.feed_eof();
        assert!(
            server.info().is_none(),
            "no handshake from noise, case {case}"
        );
    }
}
