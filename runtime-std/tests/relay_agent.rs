//! The relay agent against a scripted SMTP server on loopback: envelopes of one message
//! leave over one session with their DSN parameters, the body as spooled (LF made CRLF,
//! dot-stuffed), a 550 fails its recipient only, a refused connection fails temporarily.

mod tls_support;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mta_core::config::Config;
use mta_core::queue::{
    DeliveryKind, DsnParams, Envelope, EnvelopeFlags, EnvelopeId, EnvelopeState, Notify,
};
use mta_core::routing::Destination;
use mta_core::scheduler::Outcome;
use mta_core::time::UnixTime;
use runtime_std::relay::{RelayAgent, RelayJob, ReportFn};
use runtime_std::server::log::Log;
use runtime_std::spool::Spool;

fn temp_dir(tag: &str) -> PathBuf {
    tls_support::scratch_dir("relay-agent", tag)
}

fn config(port: u16) -> Config {
    let text = format!(
        "action \"out\" relay host smtp://127.0.0.1:{port}\nmatch from any for any action \"out\"\n"
    );
    mta_core::config::parse(&text, "relay.conf", &[], &mut |_| Err("no files".into())).unwrap()
}

fn envelope(id: u64, recipient: &str, dsn: DsnParams) -> Envelope {
    Envelope {
        id: EnvelopeId::new(id).unwrap(),
        sender: Some("sender@origin.test".into()),
        original_recipient: recipient.into(),
        recipient: recipient.into(),
        delivery: DeliveryKind::Relay {
            action: "out".into(),
        },
        dsn,
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

/// A spool holding one message with `body` under the message id of `id`.
fn spool_with(dir: &std::path::Path, id: u64, body: &[u8]) -> Spool {
    let (spool, _) = Spool::open(dir.join("queue")).unwrap();
    let id = EnvelopeId::new(id).unwrap();
    let msgid = id.message_id().to_string();
    let mut incoming = spool.create_incoming(&msgid).unwrap();
    incoming.write_chunk(body).unwrap();
    incoming.add_envelope(&id.to_string(), b"x").unwrap();
    incoming.commit().unwrap();
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

/// What the scripted server saw: command lines and message bodies.
#[derive(Default)]
struct Seen {
    commands: Vec<String>,
    bodies: Vec<Vec<u8>>,
    sessions: usize,
}

/// A minimal ESMTP server advertising DSN, refusing recipients named `refuse*`.
fn scripted_server() -> (u16, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let shared = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let seen = Arc::clone(&shared);
            std::thread::spawn(move || serve(stream, &seen));
        }
    });
    (port, seen)
}

fn serve(stream: TcpStream, seen: &Mutex<Seen>) {
    seen.lock().unwrap().sessions += 1;
    let mut out = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    out.write_all(b"220 scripted ESMTP\r\n").unwrap();
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let command = line.trim_end().to_owned();
        seen.lock().unwrap().commands.push(command.clone());
        let upper = command.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-scripted\r\n250-DSN\r\n250-SIZE 100000000\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("RCPT TO:<REFUSE") {
            b"550 5.1.1 no such user\r\n"
        } else if upper.starts_with("DATA") {
            out.write_all(b"354 go ahead\r\n").unwrap();
            let mut body = Vec::new();
            loop {
                let mut data = Vec::new();
                if reader.read_until(b'\n', &mut data).unwrap_or(0) == 0 {
                    return;
                }
                if data == b".\r\n" {
                    break;
                }
                body.extend_from_slice(&data);
            }
            seen.lock().unwrap().bodies.push(body);
            b"250 2.0.0 queued\r\n"
        } else if upper.starts_with("QUIT") {
            let _ = out.write_all(b"221 2.0.0 bye\r\n");
            return;
        } else {
            b"250 2.0.0 ok\r\n"
        };
        out.write_all(reply).unwrap();
    }
}

fn results(rx: &Receiver<(EnvelopeId, Outcome)>, count: usize) -> Vec<(EnvelopeId, Outcome)> {
    let mut all: Vec<_> = (0..count)
        .map(|_| rx.recv_timeout(Duration::from_secs(20)).expect("a result"))
        .collect();
    all.sort_by_key(|(id, _)| *id);
    all
}

#[test]
fn one_message_two_recipients_one_refused() {
    let dir = temp_dir("send");
    let (port, seen) = scripted_server();
    let config = config(port);
    let body = b"Subject: hi\n\nfirst line\n.dot line\nlast\n";
    let spool = spool_with(&dir, 0x1111_2222_0000_0001, body);
    let (agent, rx) = start(&config, spool);
    let dsn = DsnParams {
        notify: Some(Notify {
            success: false,
            failure: true,
            delay: false,
        }),
        orcpt: Some("rfc822;ok@dest.test".into()),
        ret: None,
        envid: None,
    };
    for (id, rcpt) in [
        (0x1111_2222_0000_0001, "ok@dest.test"),
        (0x1111_2222_0000_0002, "refuse@dest.test"),
    ] {
        let job = RelayJob::for_envelope(&envelope(id, rcpt, dsn.clone()), &config, "relay.test")
            .unwrap();
        agent.submit(job);
    }
    let got = results(&rx, 2);
    assert_eq!(got[0].1, Outcome::Delivered);
    match &got[1].1 {
        Outcome::PermFail(failure) => {
            assert!(failure.text.contains("550"), "{failure:?}");
            assert_eq!(failure.remote_mta.as_deref(), Some("127.0.0.1"));
        }
        other => panic!("refused recipient: {other:?}"),
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.bodies.len(), 1, "one message for both envelopes");
    assert_eq!(
        seen.bodies[0],
        b"Subject: hi\r\n\r\nfirst line\r\n..dot line\r\nlast\r\n".to_vec()
    );
    assert!(
        seen.commands
            .iter()
            .any(|c| c.starts_with("EHLO relay.test")),
        "{:?}",
        seen.commands
    );
    assert!(
        seen.commands
            .iter()
            .any(|c| c.starts_with("RCPT TO:<ok@dest.test>")
                && c.contains("NOTIFY=FAILURE")
                && c.contains("ORCPT=rfc822;ok@dest.test")),
        "{:?}",
        seen.commands
    );
    assert!(seen
        .commands
        .iter()
        .any(|c| c.starts_with("MAIL FROM:<sender@origin.test>")));
}

#[test]
fn refused_connection_fails_temporarily() {
    let dir = temp_dir("refused");
    let port = {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let config = config(port);
    let spool = spool_with(&dir, 0x3333_4444_0000_0001, b"Subject: x\n\nbody\n");
    let (agent, rx) = start(&config, spool);
    let env = envelope(0x3333_4444_0000_0001, "a@dest.test", DsnParams::default());
    agent.submit(RelayJob::for_envelope(&env, &config, "relay.test").unwrap());
    let got = results(&rx, 1);
    assert!(matches!(got[0].1, Outcome::TempFail(_)), "{:?}", got[0].1);
}

#[test]
fn job_route_comes_from_the_action() {
    let config = config(2525);
    let env = envelope(0x5555_6666_0000_0001, "a@dest.test", DsnParams::default());
    let job = RelayJob::for_envelope(&env, &config, "relay.test").unwrap();
    assert_eq!(
        job.route.destination,
        Destination::Relay {
            host: "127.0.0.1".into(),
            port: 2525
        }
    );
    let mut gone = env.clone();
    gone.delivery = DeliveryKind::Relay {
        action: "removed".into(),
    };
    assert!(matches!(
        RelayJob::for_envelope(&gone, &config, "relay.test"),
        Err(Outcome::TempFail(_))
    ));
}

#[test]
fn a_large_body_leaves_whole_in_many_chunks() {
    let dir = temp_dir("large");
    let (port, seen) = scripted_server();
    let config = config(port);
    let mut body = b"Subject: large\n\n".to_vec();
    let mut expected = b"Subject: large\r\n\r\n".to_vec();
    for n in 0..100_000 {
        body.extend_from_slice(format!("line {n} \u{e9}\n").as_bytes());
        expected.extend_from_slice(format!("line {n} \u{e9}\r\n").as_bytes());
    }
    let spool = spool_with(&dir, 0x7777_8888_0000_0001, &body);
    let (agent, rx) = start(&config, spool);
    let env = envelope(0x7777_8888_0000_0001, "a@dest.test", DsnParams::default());
    agent.submit(RelayJob::for_envelope(&env, &config, "relay.test").unwrap());
    let got = results(&rx, 1);
    assert_eq!(got[0].1, Outcome::Delivered);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.bodies.len(), 1);
    assert!(seen.bodies[0] == expected, "body differs");
    assert!(
        seen.commands
            .iter()
            .any(|c| c.contains("BODY=8BITMIME") && c.contains(&format!("SIZE={}", expected.len()))),
        "{:?}",
        seen.commands
    );
}

#[test]
fn credentials_come_from_the_table_of_the_action() {
    let text = "table secrets { \"lbl\" = \"user:pass\" }\n\
        action \"out\" relay host smtp+tls://lbl@smarthost.test auth <secrets>\n\
        action \"nolabel\" relay host smtp+tls://other@smarthost.test auth <secrets>\n\
        match from any for any action \"out\"\n";
    let config =
        mta_core::config::parse(text, "auth.conf", &[], &mut |_| Err("no files".into())).unwrap();
    let env = envelope(0x9999_0000_0000_0001, "a@dest.test", DsnParams::default());
    let job = RelayJob::for_envelope(&env, &config, "relay.test").unwrap();
    let found = job.credentials.clone().expect("credentials");
    assert_eq!(
        (found.user.as_str(), found.password.as_str()),
        ("user", "pass")
    );
    assert!(
        !format!("{job:?}").contains("pass"),
        "Debug shows the password"
    );
    let mut other = env.clone();
    other.delivery = DeliveryKind::Relay {
        action: "nolabel".into(),
    };
    assert!(matches!(
        RelayJob::for_envelope(&other, &config, "relay.test"),
        Err(Outcome::TempFail(_))
    ));
}

#[test]
fn show_routes_and_hosts_render_the_router_state() {
    let dir = temp_dir("show");
    let (port, _seen) = scripted_server();
    let config = config(port);
    let spool = spool_with(&dir, 0x1212_3434_0000_0001, b"Subject: x\n\nbody\n");
    let (agent, rx) = start(&config, spool);
    assert!(agent.show_routes().is_empty());
    assert!(agent.show_hosts().is_empty());
    let env = envelope(0x1212_3434_0000_0001, "a@dest.test", DsnParams::default());
    agent.submit(RelayJob::for_envelope(&env, &config, "relay.test").unwrap());
    assert_eq!(results(&rx, 1)[0].1, Outcome::Delivered);
    // The session stays open for the next message of the route.
    assert_eq!(
        agent.show_routes(),
        [format!(
            "1. * -> 127.0.0.1:{port} smtp ---K nconn=1 queued=0 penalty=0 timeout=-"
        )]
    );
    let hosts = agent.show_hosts();
    assert_eq!(hosts.len(), 1, "{hosts:?}");
    assert!(
        hosts[0].starts_with(&format!(
            "127.0.0.1:{port} 127.0.0.1 refcount=1 nconn=1 lastconn="
        )) && hosts[0].ends_with("failures=0"),
        "{hosts:?}"
    );
}

#[test]
fn show_marks_a_refusing_host_broken_and_its_route_disabled() {
    let dir = temp_dir("show-refused");
    let port = {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let config = config(port);
    let spool = spool_with(&dir, 0x5656_7878_0000_0001, b"Subject: x\n\nbody\n");
    let (agent, rx) = start(&config, spool);
    let env = envelope(0x5656_7878_0000_0001, "a@dest.test", DsnParams::default());
    agent.submit(RelayJob::for_envelope(&env, &config, "relay.test").unwrap());
    assert!(matches!(results(&rx, 1)[0].1, Outcome::TempFail(_)));
    let routes = agent.show_routes();
    assert_eq!(routes.len(), 1, "{routes:?}");
    assert!(
        routes[0].starts_with(&format!(
            "1. * -> 127.0.0.1:{port} smtp ND-- nconn=0 queued=0 penalty=1 timeout="
        )),
        "{routes:?}"
    );
    let hosts = agent.show_hosts();
    assert_eq!(hosts.len(), 1, "{hosts:?}");
    assert!(
        hosts[0].contains("nconn=0") && hosts[0].contains(" broken until "),
        "{hosts:?}"
    );
    assert!(hosts[0].contains("error=\""), "{hosts:?}");
}

#[test]
fn jobs_carry_the_action_options_and_a_message_keeps_one_source() {
    let text = "table sources { \"192.0.2.1\", \"192.0.2.2\" }\n\
        table names { \"192.0.2.1\" = \"one.example\", \"192.0.2.2\" = \"two.example\" }\n\
        table broken { \"not-an-address\" }\n\
        action \"out\" relay host smtp+tls://smarthost.test src <sources> helo-src <names> \
        mail-from \"bounces@relay.test\" tls no-verify\n\
        action \"bad\" relay src <broken>\n\
        match from any for any action \"out\"\n";
    let config =
        mta_core::config::parse(text, "opts.conf", &[], &mut |_| Err("no files".into())).unwrap();
    let job = |id: u64, action: &str| {
        let mut env = envelope(id, "a@dest.test", DsnParams::default());
        env.delivery = DeliveryKind::Relay {
            action: action.into(),
        };
        RelayJob::for_envelope(&env, &config, "relay.test")
    };
    let first = job(0x0000_0001_0000_0001, "out").unwrap();
    let same_message = job(0x0000_0001_0000_0002, "out").unwrap();
    let next_message = job(0x0000_0002_0000_0001, "out").unwrap();
    assert_eq!(first.route, same_message.route, "one message, one route");
    assert_ne!(
        first.route.src, next_message.route.src,
        "messages take turns"
    );
    for job in [&first, &next_message] {
        let expected = match job.route.src.map(|ip| ip.to_string()).as_deref() {
            Some("192.0.2.1") => "one.example",
            Some("192.0.2.2") => "two.example",
            other => panic!("source {other:?}"),
        };
        assert_eq!(job.route.helo.as_deref(), Some(expected));
        assert_eq!(job.route.mail_from.as_deref(), Some("bounces@relay.test"));
        assert_eq!(
            job.route.tls,
            mta_core::routing::TlsPolicy::Required { verify: false }
        );
    }
    match job(0x0000_0003_0000_0001, "bad") {
        Err(Outcome::TempFail(failure)) => {
            assert!(failure.text.contains("not-an-address"), "{failure:?}")
        }
        other => panic!("an unusable src table defers: {other:?}"),
    }
}
