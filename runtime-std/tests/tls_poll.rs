//! `TlsStream` under a `poll(2)` loop, as the std connection loop drives sockets: input
//! already inside the stream is announced, and a partial record never blocks a read.

mod tls_support;

use runtime_std::tls::{ClientTls, TlsPump, TlsStream};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::thread;
use std::time::{Duration, Instant};
use tls_support::*;

/// Waits up to `ms` for the socket to become readable.
fn readable(socket: &TcpStream, ms: i32) -> bool {
    let mut fd = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd that we own.
    unsafe { libc::poll(&mut fd, 1, ms) == 1 }
}

/// A server on loopback: returns its TLS config, the client config and a listener.
fn setup(
    tag: &str,
) -> (
    std::sync::Arc<rustls::ServerConfig>,
    std::sync::Arc<rustls::ClientConfig>,
    TcpListener,
) {
    let dir = temp_dir(tag);
    let ca = TestCa::new(&dir);
    let (cert, key) = ca.leaf("mx.example.org");
    let server = server_config(&format!(
        "pki mx.example.org cert \"{}\"\npki mx.example.org key \"{}\"\n\
         listen on 127.0.0.1 smtps pki mx.example.org\n",
        p(&cert),
        p(&key)
    ));
    let client = ClientTls::client_config(true, Some(&p(&ca.ca_file))).unwrap();
    (server, client, TcpListener::bind("127.0.0.1:0").unwrap())
}

#[test]
fn plaintext_left_inside_the_stream_is_announced_without_the_socket() {
    let (server, client, listener) = setup("poll-buffered");
    let port = listener.local_addr().unwrap().port();
    let peer = thread::spawn(move || {
        let mut tls = TlsStream::connect(connect(port), client, "mx.example.org", TIMEOUT).unwrap();
        tls.write_all(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n")
            .unwrap();
        read_line(&mut tls).unwrap()
    });
    let (tcp, _) = listener.accept().unwrap();
    let mut tls = TlsStream::accept(tcp, server, TIMEOUT).unwrap();
    // The data may have come with the client's Finished, read during the handshake.
    assert!(tls.has_pending_input() || readable(tls.get_ref(), 5000));
    let mut got = Vec::new();
    let mut small = [0u8; 8];
    let n = tls.read_once(&mut small).unwrap();
    got.extend_from_slice(&small[..n]);
    // The rest is decrypted and inside the stream: poll would not see it.
    let expected = b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n";
    while got.len() < expected.len() {
        assert!(tls.has_pending_input(), "after {} bytes", got.len());
        let n = tls.read_once(&mut small).unwrap();
        got.extend_from_slice(&small[..n]);
    }
    assert_eq!(got, expected);
    assert!(!tls.has_pending_input());
    tls.write_all(b"250 ok\r\n").unwrap();
    assert_eq!(peer.join().unwrap(), "250 ok\r\n");
}

#[test]
fn half_a_record_gives_would_block_instead_of_blocking() {
    let (server, client, listener) = setup("poll-partial");
    let port = listener.local_addr().unwrap().port();
    let (record_tx, record_rx) = std::sync::mpsc::channel::<()>();
    let peer = thread::spawn(move || {
        // The client pump over a raw socket, to control how its records are cut.
        let mut tcp = connect(port);
        let mut pump = TlsPump::client(client, "mx.example.org").unwrap();
        let mut buf = vec![0u8; 32 * 1024];
        while pump.is_handshaking() {
            tcp.write_all(&pump.take_ciphertext()).unwrap();
            if !pump.is_handshaking() {
                break;
            }
            let n = tcp.read(&mut buf).unwrap();
            assert!(n > 0);
            pump.feed_ciphertext(&buf[..n]).unwrap();
        }
        tcp.write_all(&pump.take_ciphertext()).unwrap();
        pump.write_plaintext(b"QUIT\r\n").unwrap();
        let record = pump.take_ciphertext();
        tcp.write_all(&record[..3]).unwrap();
        record_rx.recv().unwrap();
        tcp.write_all(&record[3..]).unwrap();
        // Keep the socket open until the server is done.
        let _ = tcp.read(&mut buf);
    });
    let (tcp, _) = listener.accept().unwrap();
    let mut tls = TlsStream::accept(tcp, server, TIMEOUT).unwrap();
    tls.set_read_timeout(None).unwrap();
    let mut buf = [0u8; 64];
    let mut line = Vec::new();
    let mut saw_would_block = false;
    let started = Instant::now();
    while !line.ends_with(b"\r\n") {
        assert!(started.elapsed() < TIMEOUT, "stalled");
        if !tls.has_pending_input() && !readable(tls.get_ref(), 100) {
            continue;
        }
        let before = Instant::now();
        match tls.read_once(&mut buf) {
            Ok(n) => {
                assert!(n > 0);
                line.extend_from_slice(&buf[..n]);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                assert!(before.elapsed() < Duration::from_millis(500), "it blocked");
                if line.is_empty() && !saw_would_block {
                    saw_would_block = true;
                    record_tx.send(()).unwrap();
                }
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(saw_would_block, "the partial record was seen on its own");
    assert_eq!(line, b"QUIT\r\n");
    drop(tls);
    peer.join().unwrap();
}
