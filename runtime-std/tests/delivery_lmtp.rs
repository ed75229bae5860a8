//! LMTP delivery against a tiny scripted LMTP server on loopback and on a UNIX socket.

use runtime_std::delivery::lmtp::{self, LmtpDestination, LmtpRequest};
use runtime_std::delivery::DeliveryOutcome;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What the server saw: the commands and the un-stuffed body.
#[derive(Debug, Default)]
struct Seen {
    commands: Vec<String>,
    body: Vec<u8>,
}

/// Serve one LMTP session: `bad*` recipients are refused at RCPT, `later*` get 452 after
/// DATA, everyone else 250.
fn serve(stream: impl std::io::Read + Write, seen: mpsc::Sender<Seen>) {
    let mut reader = BufReader::new(stream);
    let mut result = Seen::default();
    let mut accepted = Vec::new();
    reader
        .get_mut()
        .write_all(b"220 lmtp.test LMTP ready\r\n")
        .unwrap();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        let line = line.trim_end_matches("\r\n").to_owned();
        result.commands.push(line.clone());
        let upper = line.to_ascii_uppercase();
        let reply: Vec<u8> = if upper.starts_with("LHLO") {
            b"250-lmtp.test\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n".to_vec()
        } else if upper.starts_with("MAIL FROM:") {
            b"250 2.1.0 ok\r\n".to_vec()
        } else if let Some(rcpt) = line.strip_prefix("RCPT TO:<") {
            let rcpt = rcpt.trim_end_matches('>').to_owned();
            if rcpt.starts_with("bad") {
                b"550 5.1.1 no such user\r\n".to_vec()
            } else {
                accepted.push(rcpt);
                b"250 2.1.5 ok\r\n".to_vec()
            }
        } else if upper == "DATA" {
            reader.get_mut().write_all(b"354 go ahead\r\n").unwrap();
            loop {
                let mut data = Vec::new();
                reader.read_until(b'\n', &mut data).unwrap();
                if data == b".\r\n" {
                    break;
                }
                let unstuffed = if data.starts_with(b".") {
                    &data[1..]
                } else {
                    &data[..]
                };
                result.body.extend_from_slice(unstuffed);
            }
            let mut replies = Vec::new();
            for rcpt in &accepted {
                if rcpt.starts_with("later") {
                    replies
                        .extend_from_slice(format!("452 4.2.2 {rcpt} over quota\r\n").as_bytes());
                } else {
                    replies.extend_from_slice(format!("250 2.0.0 {rcpt} delivered\r\n").as_bytes());
                }
            }
            replies
        } else if upper == "QUIT" {
            reader.get_mut().write_all(b"221 bye\r\n").unwrap();
            break;
        } else {
            b"500 what\r\n".to_vec()
        };
        reader.get_mut().write_all(&reply).unwrap();
    }
    seen.send(result).unwrap();
}

fn request(destination: LmtpDestination, recipients: &[&str]) -> LmtpRequest {
    LmtpRequest {
        destination,
        lhlo_name: "mx.example.org".into(),
        sender: "bob@example.net".into(),
        recipients: recipients.iter().map(|r| r.to_string()).collect(),
        timeout: Duration::from_secs(5),
    }
}

#[test]
fn per_recipient_replies_over_tcp() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    let server = std::thread::spawn(move || serve(listener.accept().unwrap().0, tx));
    let destination = LmtpDestination::parse(&format!("127.0.0.1:{port}")).unwrap();
    let message = b"Subject: t\n\n.leading dot\nFrom x\r\n..two\nlast line without newline";
    let outcomes = lmtp::deliver(
        &request(destination, &["alice", "bad-user", "later", "carol"]),
        &mut &message[..],
    );
    assert_eq!(outcomes.len(), 4);
    assert_eq!(outcomes[0], DeliveryOutcome::Delivered);
    assert!(
        matches!(&outcomes[1], DeliveryOutcome::PermFail(t) if t.contains("550 5.1.1 no such user")),
        "{:?}",
        outcomes[1]
    );
    assert!(
        matches!(&outcomes[2], DeliveryOutcome::TempFail(t) if t.contains("452 4.2.2")),
        "{:?}",
        outcomes[2]
    );
    assert_eq!(outcomes[3], DeliveryOutcome::Delivered);
    let seen = rx.recv().unwrap();
    server.join().unwrap();
    assert_eq!(
        seen.commands,
        [
            "LHLO mx.example.org",
            "MAIL FROM:<bob@example.net>",
            "RCPT TO:<alice>",
            "RCPT TO:<bad-user>",
            "RCPT TO:<later>",
            "RCPT TO:<carol>",
            "DATA",
            "QUIT"
        ]
    );
    assert_eq!(
        seen.body,
        b"Subject: t\r\n\r\n.leading dot\r\nFrom x\r\n..two\r\nlast line without newline\r\n"
    );
}

#[test]
fn unix_socket_and_all_refused() {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let path = std::env::temp_dir().join(format!("lmtp-test-{}-{nanos}.sock", std::process::id()));
    let listener = UnixListener::bind(&path).unwrap();
    let (tx, rx) = mpsc::channel();
    let server = std::thread::spawn(move || serve(listener.accept().unwrap().0, tx));
    let destination = LmtpDestination::parse(path.to_str().unwrap()).unwrap();
    assert_eq!(destination, LmtpDestination::Unix(PathBuf::from(&path)));
    let outcomes = lmtp::deliver(&request(destination, &["bad1", "bad2"]), &mut &b"x\n"[..]);
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, DeliveryOutcome::PermFail(_))),
        "{outcomes:?}"
    );
    let seen = rx.recv().unwrap();
    server.join().unwrap();
    assert!(!seen.commands.contains(&"DATA".to_string()));
    let _ = std::fs::remove_file(&path);
}

#[test]
fn unreachable_or_silent_server_is_a_temporary_failure() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let destination = LmtpDestination::Inet {
        host: "127.0.0.1".into(),
        port,
    };
    let outcomes = lmtp::deliver(&request(destination, &["a", "b"]), &mut &b"x\n"[..]);
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, DeliveryOutcome::TempFail(_))),
        "{outcomes:?}"
    );

    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let mut req = request(
        LmtpDestination::Inet {
            host: "127.0.0.1".into(),
            port,
        },
        &["a"],
    );
    req.timeout = Duration::from_millis(300);
    let start = Instant::now();
    let outcomes = lmtp::deliver(&req, &mut &b"x\n"[..]);
    assert!(start.elapsed() < Duration::from_secs(3));
    assert!(
        matches!(&outcomes[0], DeliveryOutcome::TempFail(_)),
        "{outcomes:?}"
    );
    drop(silent);
}

#[test]
fn destinations_parse_like_smtpd_conf() {
    assert_eq!(
        LmtpDestination::parse("localhost:24").unwrap(),
        LmtpDestination::Inet {
            host: "localhost".into(),
            port: 24
        }
    );
    assert_eq!(
        LmtpDestination::parse("[::1]:2424").unwrap(),
        LmtpDestination::Inet {
            host: "::1".into(),
            port: 2424
        }
    );
    assert_eq!(
        LmtpDestination::parse("[::1]:2424").unwrap().to_string(),
        "[::1]:2424"
    );
    assert!(LmtpDestination::parse("localhost").is_err());
    assert!(LmtpDestination::parse(":24").is_err());
    assert!(LmtpDestination::parse("host:99999").is_err());
}
