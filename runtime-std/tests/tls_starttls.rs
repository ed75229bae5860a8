//! STARTTLS through the real path: smtp-proto's server session driven over a loopback
//! socket, rustls stacked under it on `Action::StartTls`. A command pipelined after
//! STARTTLS in plaintext is discarded, never run inside TLS (RFC 3207 §4.2, §6;
//! CVE-2011-0411).

mod tls_support;

use runtime_std::tls::{ClientTls, TlsStream};
use smtp_proto::reply::Reply;
use smtp_proto::server::{Action, Answer, Event, Input, Question, ServerConfig, ServerSession};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Instant;
use tls_support::*;

/// What the server saw: questions and events, as text.
type Seen = Vec<String>;

/// Runs one session over `tcp`, switching to TLS when the session asks for it; every
/// question is answered 250. Returns what the session asked and reported.
fn serve(tcp: TcpStream, tls: Arc<rustls::ServerConfig>) -> Seen {
    let config = ServerConfig {
        hostname: "mx.example.org".into(),
        tls_available: true,
        ..ServerConfig::default()
    };
    let mut session = ServerSession::new(Arc::new(config), Instant::now());
    let mut plain = Some(tcp);
    let mut secure: Option<TlsStream> = None;
    let mut seen = Seen::new();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut inputs = Vec::new();
        while let Some(action) = session.poll_action() {
            match action {
                Action::Send(bytes) => out.extend_from_slice(&bytes),
                Action::Ask(id, question) => {
                    let reply = match &question {
                        Question::Helo { .. } => Reply::new(250, None, "mx.example.org Hello"),
                        _ => Reply::new(250, None, "Ok"),
                    };
                    if let Question::MailFrom { path, .. } = &question {
                        seen.push(format!("MAIL FROM {path:?}"));
                    }
                    inputs.push((id, Answer::from(reply)));
                }
                Action::StartTls => {
                    let mut tcp = plain.take().expect("STARTTLS once, over plaintext");
                    tcp.write_all(&out).unwrap();
                    out.clear();
                    let stream = TlsStream::accept(tcp, tls.clone(), TIMEOUT).unwrap();
                    let info = stream.info().clone();
                    secure = Some(stream);
                    session.handle(
                        Input::TlsEstablished {
                            protocol: &info.protocol,
                            cipher: &info.cipher,
                        },
                        Instant::now(),
                    );
                }
                Action::Close(_) => {
                    write_out(&mut plain, &mut secure, &mut out);
                    return seen;
                }
                Action::Event(event) => {
                    if let Event::DiscardedPlaintext { bytes } = event {
                        seen.push(format!("discarded {bytes}"));
                    } else if let Event::TlsEstablished { protocol, .. } = event {
                        seen.push(format!("tls {protocol}"));
                    }
                }
                _ => {}
            }
        }
        if !inputs.is_empty() {
            for (id, answer) in inputs {
                session.handle(Input::Answer(id, answer), Instant::now());
            }
            continue;
        }
        write_out(&mut plain, &mut secure, &mut out);
        if session.is_closed() {
            return seen;
        }
        let cap = session.recv_capacity().min(buf.len());
        let read = match (&mut plain, &mut secure) {
            (Some(tcp), _) => tcp.read(&mut buf[..cap]),
            (None, Some(tls)) => tls.read(&mut buf[..cap]),
            (None, None) => unreachable!(),
        };
        match read {
            Ok(0) | Err(_) => session.handle(Input::PeerClosed, Instant::now()),
            Ok(n) => session.handle(Input::Received(&buf[..n]), Instant::now()),
        }
    }
}

/// Writes what the session sent, over whichever stream is active.
fn write_out(plain: &mut Option<TcpStream>, secure: &mut Option<TlsStream>, out: &mut Vec<u8>) {
    if out.is_empty() {
        return;
    }
    match (plain, secure) {
        (Some(tcp), _) => tcp.write_all(out).unwrap(),
        (None, Some(tls)) => tls.write_all(out).unwrap(),
        (None, None) => unreachable!(),
    }
    out.clear();
}

/// Reads one reply, multi-line or not; returns its last line.
fn reply(stream: &mut impl Read) -> String {
    loop {
        let line = read_line(stream).unwrap();
        assert!(line.len() >= 4, "short reply line {line:?}");
        if line.as_bytes()[3] == b' ' {
            return line;
        }
    }
}

#[test]
fn a_command_pipelined_after_starttls_is_discarded_not_run_inside_tls() {
    let dir = temp_dir("starttls");
    let ca = TestCa::new(&dir);
    let (cert, key) = ca.leaf("mx.example.org");
    let tls = server_config(&format!(
        "pki mx.example.org cert \"{}\"\npki mx.example.org key \"{}\"\n\
         listen on 127.0.0.1 tls pki mx.example.org\n",
        p(&cert),
        p(&key)
    ));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
        serve(tcp, tls)
    });

    let mut tcp = connect(port);
    assert!(reply(&mut tcp).starts_with("220 "));
    tcp.write_all(b"EHLO client.example.net\r\n").unwrap();
    assert!(reply(&mut tcp).starts_with("250 "));
    // The attack: a command injected after STARTTLS in the same packet.
    let injected = b"MAIL FROM:<evil@attacker.example>\r\n";
    let mut packet = b"STARTTLS\r\n".to_vec();
    packet.extend_from_slice(injected);
    tcp.write_all(&packet).unwrap();
    assert!(reply(&mut tcp).starts_with("220 "));

    let client = ClientTls::client_config(true, Some(&p(&ca.ca_file))).unwrap();
    let mut tls = TlsStream::connect(tcp, client, "mx.example.org", TIMEOUT).unwrap();
    // After TLS the session starts over: a MAIL before EHLO is refused, so had the
    // injected command survived, it would not be what answers here.
    tls.write_all(b"EHLO client.example.net\r\n").unwrap();
    let ehlo = reply(&mut tls);
    assert!(ehlo.starts_with("250 "), "{ehlo}");
    tls.write_all(b"MAIL FROM:<good@client.example.net>\r\n")
        .unwrap();
    assert!(reply(&mut tls).starts_with("250 "));
    tls.write_all(b"QUIT\r\n").unwrap();
    assert!(reply(&mut tls).starts_with("221 "));

    let seen = server.join().unwrap();
    assert!(
        seen.contains(&format!("discarded {}", injected.len())),
        "{seen:?}"
    );
    assert!(seen.contains(&"tls TLSv1.3".to_owned()), "{seen:?}");
    let mails: Vec<&String> = seen.iter().filter(|s| s.starts_with("MAIL")).collect();
    assert_eq!(mails.len(), 1, "{seen:?}");
    assert!(mails[0].contains("good@client.example.net"), "{seen:?}");
    assert!(!seen.iter().any(|s| s.contains("evil")), "{seen:?}");
}
