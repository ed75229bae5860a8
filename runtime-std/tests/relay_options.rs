//! The relay action's options on the wire, against scripted servers on loopback: `helo`,
//! `helo-src` with `src` (the peer sees the source address), `mail-from`, `domain
//! <table>`, and `ca` with `pki` over smtps (the server checks our client certificate,
//! we check its certificate against the CA, not the system roots).

mod tls_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mta_core::config::Config;
use mta_core::queue::{
    DeliveryKind, DsnParams, Envelope, EnvelopeFlags, EnvelopeId, EnvelopeState,
};
use mta_core::routing::Destination;
use mta_core::scheduler::Outcome;
use mta_core::time::UnixTime;
use runtime_std::relay::{RelayAgent, RelayJob, ReportFn};
use runtime_std::server::log::Log;
use runtime_std::spool::Spool;
use runtime_std::tls::TlsStream;

fn parse(text: &str) -> Config {
    mta_core::config::parse(text, "relay.conf", &[], &mut |_| Err("no files".into()))
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn envelope(id: u64, sender: Option<&str>, recipient: &str, action: &str) -> Envelope {
    Envelope {
        id: EnvelopeId::new(id).unwrap(),
        sender: sender.map(str::to_owned),
        original_recipient: recipient.into(),
        recipient: recipient.into(),
        delivery: DeliveryKind::Relay {
            action: action.into(),
        },
        dsn: DsnParams::default(),
        created: UnixTime::from_secs(1_800_000_000),
        expires: UnixTime::from_secs(1_800_400_000),
        tries: 0,
        last_try: None,
        last_error: None,
        warnings_sent: 0,
        state: EnvelopeState::Pending,
        flags: EnvelopeFlags::default(),
        listener: String::new(),
        helo: String::new(),
        source: String::new(),
    }
}

/// A spool holding one message for each id.
fn spool_with(dir: &Path, ids: &[u64]) -> Spool {
    let (spool, _) = Spool::open(dir.join("queue")).unwrap();
    for id in ids {
        let id = EnvelopeId::new(*id).unwrap();
        let mut incoming = spool.create_incoming(&id.message_id().to_string()).unwrap();
        incoming.write_chunk(b"Subject: x\n\nbody\n").unwrap();
        incoming.add_envelope(&id.to_string(), b"x").unwrap();
        incoming.commit().unwrap();
    }
    spool
}

fn start(config: &Config, spool: Spool) -> (RelayAgent, Receiver<(EnvelopeId, Outcome)>) {
    let (tx, rx) = channel();
    let tx = Mutex::new(tx);
    let report: ReportFn = Arc::new(move |id, outcome| {
        let _ = tx.lock().unwrap().send((id, outcome));
    });
    let agent = RelayAgent::start(config, "relay.test", spool, Log::quiet(), report).unwrap();
    (agent, rx)
}

fn result(rx: &Receiver<(EnvelopeId, Outcome)>) -> Outcome {
    rx.recv_timeout(Duration::from_secs(20))
        .expect("a result")
        .1
}

/// What a scripted server saw.
#[derive(Default)]
struct Seen {
    commands: Vec<String>,
    peers: Vec<IpAddr>,
    client_certs: Vec<Option<String>>,
}

/// Serves one SMTP session over `stream`: EHLO, MAIL, RCPT, DATA, QUIT, all accepted.
fn smtp<S: Read + Write>(stream: S, seen: &Mutex<Seen>) {
    let mut reader = BufReader::new(stream);
    let _ = reader.get_mut().write_all(b"220 scripted ESMTP\r\n");
    let mut in_data = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if in_data {
            if line == ".\r\n" {
                in_data = false;
                let _ = reader.get_mut().write_all(b"250 2.0.0 queued\r\n");
            }
            continue;
        }
        let command = line.trim_end().to_owned();
        seen.lock().unwrap().commands.push(command.clone());
        let upper = command.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-scripted\r\n250 PIPELINING\r\n"
        } else if upper.starts_with("DATA") {
            in_data = true;
            b"354 go ahead\r\n"
        } else if upper.starts_with("QUIT") {
            let _ = reader.get_mut().write_all(b"221 2.0.0 bye\r\n");
            return;
        } else {
            b"250 2.0.0 ok\r\n"
        };
        let _ = reader.get_mut().write_all(reply);
    }
}

/// A plain scripted server; returns its port and what it saw.
fn plain_server() -> (u16, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let shared = Arc::clone(&seen);
    std::thread::spawn(move || {
        for (stream, peer) in std::iter::from_fn(|| listener.accept().ok()) {
            shared.lock().unwrap().peers.push(peer.ip());
            let seen = Arc::clone(&shared);
            std::thread::spawn(move || smtp(stream, &seen));
        }
    });
    (port, seen)
}

/// An smtps scripted server with this rustls configuration.
fn tls_server(config: Arc<rustls::ServerConfig>) -> (u16, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let shared = Arc::clone(&seen);
    std::thread::spawn(move || {
        for (stream, _) in std::iter::from_fn(|| listener.accept().ok()) {
            let seen = Arc::clone(&shared);
            let config = Arc::clone(&config);
            std::thread::spawn(move || {
                let Ok(tls) = TlsStream::accept(stream, config, Duration::from_secs(5)) else {
                    return;
                };
                let subject = tls.info().peer_cert_subject.clone();
                seen.lock().unwrap().client_certs.push(subject);
                smtp(tls, &seen);
            });
        }
    });
    (port, seen)
}

fn has(seen: &Mutex<Seen>, prefix: &str) -> bool {
    seen.lock()
        .unwrap()
        .commands
        .iter()
        .any(|c| c.starts_with(prefix))
}

#[test]
fn src_helo_src_and_mail_from_show_on_the_wire() {
    let dir = tls_support::temp_dir("relay-src");
    let (port, seen) = plain_server();
    let config = parse(&format!(
        "table names {{ \"127.0.0.2\" = \"two.example\" }}\n\
         action \"out\" relay host smtp://127.0.0.1:{port} src \"127.0.0.2\" \
         helo-src <names> mail-from \"bounces@relay.test\"\n\
         match from any for any action \"out\"\n"
    ));
    let (agent, rx) = start(&config, spool_with(&dir, &[0x0101_0000_0000_0001]));
    let env = envelope(
        0x0101_0000_0000_0001,
        Some("a@origin.test"),
        "b@dest.test",
        "out",
    );
    agent.submit(RelayJob::for_envelope(&env, &config, "relay.test").unwrap());
    assert_eq!(result(&rx), Outcome::Delivered);
    assert_eq!(
        seen.lock().unwrap().peers,
        vec!["127.0.0.2".parse::<IpAddr>().unwrap()]
    );
    assert!(
        has(&seen, "EHLO two.example"),
        "{:?}",
        seen.lock().unwrap().commands
    );
    assert!(has(&seen, "MAIL FROM:<bounces@relay.test>"));
    assert!(!has(&seen, "MAIL FROM:<a@origin.test>"));
}

#[test]
fn helo_names_the_session_and_a_bounce_keeps_its_null_sender() {
    let dir = tls_support::temp_dir("relay-helo");
    let (port, seen) = plain_server();
    let config = parse(&format!(
        "action \"out\" relay host smtp://127.0.0.1:{port} helo \"out.example\" \
         mail-from \"bounces@relay.test\"\n\
         match from any for any action \"out\"\n"
    ));
    let (agent, rx) = start(&config, spool_with(&dir, &[0x0202_0000_0000_0001]));
    let env = envelope(0x0202_0000_0000_0001, None, "b@dest.test", "out");
    agent.submit(RelayJob::for_envelope(&env, &config, "relay.test").unwrap());
    assert_eq!(result(&rx), Outcome::Delivered);
    assert!(
        has(&seen, "EHLO out.example"),
        "{:?}",
        seen.lock().unwrap().commands
    );
    assert!(
        has(&seen, "MAIL FROM:<>"),
        "{:?}",
        seen.lock().unwrap().commands
    );
}

#[test]
fn the_domain_table_sends_each_domain_to_its_relay_host() {
    let dir = tls_support::temp_dir("relay-domain");
    let (port, seen) = plain_server();
    let config = parse(&format!(
        "table relays {{ \"dest.test\" = \"smtp://127.0.0.1:{port}\" }}\n\
         action \"out\" relay domain <relays>\n\
         match from any for any action \"out\"\n"
    ));
    let (agent, rx) = start(&config, spool_with(&dir, &[0x0303_0000_0000_0001]));
    let env = envelope(
        0x0303_0000_0000_0001,
        Some("a@origin.test"),
        "b@DEST.test",
        "out",
    );
    let job = RelayJob::for_envelope(&env, &config, "relay.test").unwrap();
    assert_eq!(
        job.route.destination,
        Destination::Relay {
            host: "127.0.0.1".into(),
            port
        }
    );
    agent.submit(job);
    assert_eq!(result(&rx), Outcome::Delivered);
    assert!(has(&seen, "RCPT TO:<b@DEST.test>"));
}

/// A test CA, the server's rustls configuration (its certificate for 127.0.0.1 from the
/// CA, client certificates from the CA required), and a client certificate and key.
fn tls_setup(
    tag: &str,
) -> (
    tls_support::TestCa,
    Arc<rustls::ServerConfig>,
    PathBuf,
    PathBuf,
) {
    let dir = tls_support::temp_dir(tag);
    let ca = tls_support::TestCa::new(&dir);
    let (cert, key) = ca.leaf("127.0.0.1");
    let server = tls_support::server_config(&format!(
        "pki srv cert \"{}\"\npki srv key \"{}\"\nca clients cert \"{}\"\n\
         listen on 127.0.0.1 tls-require verify pki srv ca clients\n",
        tls_support::p(&cert),
        tls_support::p(&key),
        tls_support::p(&ca.ca_file)
    ));
    let (client_cert, client_key) = ca.leaf("client.relay.test");
    (ca, server, client_cert, client_key)
}

#[test]
fn ca_verifies_the_server_and_pki_presents_our_certificate() {
    let (ca, server, client_cert, client_key) = tls_setup("relay-ca");
    let (port, seen) = tls_server(server);
    let config = parse(&format!(
        "pki client cert \"{}\"\npki client key \"{}\"\nca relayca cert \"{}\"\n\
         action \"out\" relay host smtps://127.0.0.1:{port} ca relayca pki client\n\
         match from any for any action \"out\"\n",
        tls_support::p(&client_cert),
        tls_support::p(&client_key),
        tls_support::p(&ca.ca_file)
    ));
    let (agent, rx) = start(&config, spool_with(&ca.dir, &[0x0404_0000_0000_0001]));
    let env = envelope(
        0x0404_0000_0000_0001,
        Some("a@origin.test"),
        "b@dest.test",
        "out",
    );
    agent.submit(RelayJob::for_envelope(&env, &config, "relay.test").unwrap());
    assert_eq!(result(&rx), Outcome::Delivered);
    assert_eq!(
        seen.lock().unwrap().client_certs,
        vec![Some("CN=client.relay.test".to_owned())]
    );
}

#[test]
fn without_ca_the_system_roots_refuse_the_test_certificate() {
    let (ca, server, client_cert, client_key) = tls_setup("relay-noca");
    let (port, seen) = tls_server(server);
    let config = parse(&format!(
        "pki client cert \"{}\"\npki client key \"{}\"\n\
         action \"out\" relay host smtps://127.0.0.1:{port} pki client\n\
         match from any for any action \"out\"\n",
        tls_support::p(&client_cert),
        tls_support::p(&client_key),
    ));
    let (agent, rx) = start(&config, spool_with(&ca.dir, &[0x0505_0000_0000_0001]));
    let env = envelope(
        0x0505_0000_0000_0001,
        Some("a@origin.test"),
        "b@dest.test",
        "out",
    );
    agent.submit(RelayJob::for_envelope(&env, &config, "relay.test").unwrap());
    assert!(matches!(result(&rx), Outcome::TempFail(_)));
    assert!(
        seen.lock().unwrap().commands.is_empty(),
        "no SMTP over an unverified link"
    );
}
