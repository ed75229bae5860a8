//! The daemon side of the control socket over a real engine: `EngineControl` with a
//! daemon that holds an `Engine` in a mutex, `show message` from a spool, and a local
//! submission spoken as SMTP to a scripted server.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mta_core::config;
use mta_core::control::{Agent, Effect, Request, Response, Submission};
use mta_core::engine::{Action, Engine, EngineFacts, Input};
use mta_core::queue::{
    DeliveryKind, DsnParams, Envelope, EnvelopeFlags, EnvelopeId, EnvelopeState,
};
use mta_core::scheduler::Target;
use mta_core::time::UnixTime;
use runtime_std::control::submit::{data_bytes, submit_over_smtp};
use runtime_std::control::{
    show_message, ControlClient, ControlServer, ControlTarget, DaemonAccess, EngineControl,
};
use runtime_std::spool::Spool;

const START: UnixTime = UnixTime::from_secs(1_800_000_000);

/// A daemon reduced to an engine under a lock, a clock, and a record of effects.
struct Daemon {
    engine: Mutex<Engine>,
    now: Mutex<UnixTime>,
    actions: Mutex<Vec<Action>>,
    effects: Mutex<Vec<Effect>>,
}

impl DaemonAccess for Daemon {
    fn read_engine(&self, f: &mut dyn FnMut(&Engine, UnixTime)) {
        f(&self.engine.lock().unwrap(), *self.now.lock().unwrap());
    }

    fn feed(&self, input: Input) {
        let mut engine = self.engine.lock().unwrap();
        engine.handle(input, *self.now.lock().unwrap());
        while let Some(a) = engine.poll_action() {
            self.actions.lock().unwrap().push(a);
        }
    }

    fn perform(&self, effect: Effect) -> Response {
        self.effects.lock().unwrap().push(effect);
        Response::Ok
    }
}

fn envelope() -> Envelope {
    Envelope {
        id: EnvelopeId::new(0x1234_5678_0000_0001).unwrap(),
        sender: Some("bob@example.com".to_owned()),
        original_recipient: "alice@mx.example.org".to_owned(),
        recipient: "alice@mx.example.org".to_owned(),
        delivery: DeliveryKind::Local {
            user: "alice".to_owned(),
            method: "maildir".to_owned(),
        },
        dsn: DsnParams::default(),
        created: START,
        expires: START + Duration::from_secs(4 * 86_400),
        tries: 1,
        last_try: Some(START),
        last_error: None,
        warnings_sent: 0,
        state: EnvelopeState::Deferred {
            next: START + Duration::from_secs(3600),
        },
        flags: EnvelopeFlags::default(),
        listener: "lo".to_owned(),
        helo: "client".to_owned(),
        source: "local".to_owned(),
    }
}

fn daemon() -> Arc<Daemon> {
    let conf = "action \"mbox\" maildir\nmatch for local action \"mbox\"\n";
    let config =
        config::parse(conf, "smtpd.conf", &[], &mut |_| Err("no files".to_owned())).unwrap();
    let mut engine = Engine::new(
        Arc::new(config),
        EngineFacts::new("mx.example.org", 1),
        START,
    )
    .unwrap();
    engine.handle(Input::Reload(vec![envelope()]), START);
    while engine.poll_action().is_some() {}
    Arc::new(Daemon {
        engine: Mutex::new(engine),
        now: Mutex::new(START + Duration::from_secs(60)),
        actions: Mutex::new(Vec::new()),
        effects: Mutex::new(Vec::new()),
    })
}

#[test]
fn schedule_pause_and_show_through_engine_control() {
    let d = daemon();
    let control = EngineControl::new(Arc::clone(&d), START);
    let Response::Envelopes(rows) = control.control(Request::ShowQueue, 0) else {
        panic!("show queue");
    };
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].delay, 3540);
    assert_eq!(control.control(Request::Pause(Agent::Mda), 0), Response::Ok);
    assert_eq!(
        control.control(Request::Schedule(Target::All), 0),
        Response::Ok
    );
    assert!(
        !d.actions
            .lock()
            .unwrap()
            .iter()
            .any(|a| matches!(a, Action::Deliver(_))),
        "paused: nothing delivered"
    );
    assert_eq!(
        control.control(Request::Resume(Agent::Mda), 0),
        Response::Ok
    );
    assert!(d
        .actions
        .lock()
        .unwrap()
        .iter()
        .any(|a| matches!(a, Action::Deliver(_))));
    assert_eq!(
        control.control(Request::Pause(Agent::Smtp), 0),
        Response::Ok
    );
    assert_eq!(*d.effects.lock().unwrap(), [Effect::PauseSmtp]);
    let Response::Stats(stats) = control.control(Request::ShowStats, 0) else {
        panic!("stats");
    };
    assert!(stats.contains(&("uptime".to_owned(), 60)), "{stats:?}");
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "control-engine-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn engine_control_behind_the_socket() {
    let d = daemon();
    let dir = temp_dir("socket");
    let path = dir.join("smtpd.sock");
    let server = ControlServer::start(&path, Arc::new(EngineControl::new(d, START))).unwrap();
    let mut client = ControlClient::connect(&path).unwrap();
    let id = envelope().id;
    assert_eq!(
        client
            .request(&Request::Remove(Target::Envelope(id)))
            .unwrap(),
        Response::Ok
    );
    assert_eq!(
        client.request(&Request::ShowQueue).unwrap(),
        Response::Envelopes(Vec::new())
    );
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn show_message_reads_the_spool() {
    let dir = temp_dir("spool");
    let (spool, _) = Spool::open(&dir).unwrap();
    let msgid = envelope().id.message_id();
    let mut incoming = spool.create_incoming(&msgid.to_string()).unwrap();
    incoming
        .write_chunk(b"Subject: hi\r\n\r\nhello\r\n")
        .unwrap();
    incoming.commit().unwrap();
    assert_eq!(
        show_message(&spool, msgid),
        Response::Text(vec![
            "Subject: hi".to_owned(),
            String::new(),
            "hello".to_owned()
        ])
    );
    let other = "87654321".parse().unwrap();
    assert!(matches!(show_message(&spool, other), Response::Error(_)));
    let _ = std::fs::remove_dir_all(dir);
}

/// A scripted SMTP server on one end of a socket pair: answers each command with the
/// reply the script gives for its verb, and records what it received.
fn scripted_server(
    stream: UnixStream,
    rcpt_reply: &'static str,
) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut out = stream.try_clone().unwrap();
        let mut lines = BufReader::new(stream);
        let mut seen = Vec::new();
        out.write_all(b"220 mx.example.org ESMTP\r\n").unwrap();
        let mut in_data = false;
        loop {
            let mut line = String::new();
            if lines.read_line(&mut line).unwrap() == 0 {
                return seen;
            }
            seen.push(line.clone());
            let reply: &str = if in_data {
                if line != ".\r\n" {
                    continue;
                }
                in_data = false;
                "250 2.0.0 abcdef12 Message accepted for delivery\r\n"
            } else if line.starts_with("EHLO") {
                "250-mx.example.org\r\n250-8BITMIME\r\n250 PIPELINING\r\n"
            } else if line.starts_with("RCPT") {
                rcpt_reply
            } else if line.starts_with("DATA") {
                in_data = true;
                "354 go ahead\r\n"
            } else if line.starts_with("QUIT") {
                out.write_all(b"221 bye\r\n").unwrap();
                return seen;
            } else {
                "250 ok\r\n"
            };
            out.write_all(reply.as_bytes()).unwrap();
        }
    })
}

fn submission() -> Submission {
    Submission {
        sender: "alice@mx.example.org".to_owned(),
        recipients: vec!["bob@example.com".to_owned(), "carol@example.net".to_owned()],
        message: "Subject: caf\u{e9}\n\n.leading dot\nend"
            .as_bytes()
            .to_vec(),
    }
}

#[test]
fn a_submission_is_spoken_as_smtp() {
    let (mut ours, theirs) = UnixStream::pair().unwrap();
    let server = scripted_server(theirs, "250 ok\r\n");
    let response = submit_over_smtp(&mut ours, &submission(), "localhost");
    assert_eq!(
        response,
        Response::Text(vec![
            "250 2.0.0 abcdef12 Message accepted for delivery".to_owned()
        ])
    );
    let seen = server.join().unwrap();
    assert_eq!(
        seen,
        [
            "EHLO localhost\r\n",
            "MAIL FROM:<alice@mx.example.org> BODY=8BITMIME\r\n",
            "RCPT TO:<bob@example.com>\r\n",
            "RCPT TO:<carol@example.net>\r\n",
            "DATA\r\n",
            "Subject: caf\u{e9}\r\n",
            "\r\n",
            "..leading dot\r\n",
            "end\r\n",
            ".\r\n",
            "QUIT\r\n",
        ]
    );
}

#[test]
fn a_refused_recipient_refuses_the_submission() {
    let (mut ours, theirs) = UnixStream::pair().unwrap();
    let server = scripted_server(theirs, "550 5.1.1 no such user\r\n");
    let response = submit_over_smtp(&mut ours, &submission(), "localhost");
    assert_eq!(
        response,
        Response::Error("recipient refused: 550 5.1.1 no such user".to_owned())
    );
    let seen = server.join().unwrap();
    assert_eq!(seen.last().map(String::as_str), Some("QUIT\r\n"));
    assert!(!seen.iter().any(|l| l == "DATA\r\n"));
}

#[test]
fn data_is_crlf_and_dot_stuffed() {
    assert_eq!(data_bytes(b"a\n.b\r\n.\n"), b"a\r\n..b\r\n..\r\n.\r\n");
    assert_eq!(data_bytes(b""), b".\r\n");
}

/// The daemon's own `DaemonAccess` ([`DaemonControl`]) over a real engine host, spool and
/// local sessions, behind the socket: local submissions match `from local` rules,
/// `update table` re-reads a file table, and the runtime switches follow the requests.
#[test]
fn a_daemon_behind_the_socket() {
    use runtime_std::server::conn::{ConnContext, SessionBackend};
    use runtime_std::server::daemon_control::DaemonControl;
    use runtime_std::server::delivery_worker::DeliveryPool;
    use runtime_std::server::engine_host::{unix_now, EngineHost};
    use runtime_std::server::listener::SmtpPause;
    use runtime_std::server::log::Log;
    use runtime_std::server::trace::Subsystem;
    use runtime_std::spool::GroupCommitter;

    let dir = temp_dir("daemon");
    let users = dir.join("users.txt");
    std::fs::write(&users, "bob@localhost\n").unwrap();
    let conf = format!(
        "table users file:{}\ntable inline {{ \"x@y\" }}\n\
         action \"box\" maildir \"{}/mail/%{{rcpt:lowercase}}\" virtual {{ \"@\" = \"nobody\" }}\n\
         match from local rcpt-to <users> for any action \"box\"\n",
        users.display(),
        dir.display()
    );
    let config = config::parse(&conf, "smtpd.conf", &[], &mut |p| {
        std::fs::read_to_string(p).map_err(|e| e.to_string())
    })
    .unwrap();
    let config = Arc::new(config);
    let engine = Engine::new(
        Arc::clone(&config),
        EngineFacts::new("mx.example.org", 7),
        unix_now(),
    )
    .unwrap();
    let (spool, _) = Spool::open(dir.join("queue")).unwrap();
    let committer = GroupCommitter::start(spool.clone(), 8).unwrap();
    let pool = DeliveryPool::start(1).unwrap();
    let log = Log::quiet();
    let host = EngineHost::start(
        engine,
        spool.clone(),
        committer.clone(),
        pool,
        None,
        log.clone(),
        "mx.example.org".to_owned(),
    )
    .unwrap();
    let conn = ConnContext {
        backend: Arc::clone(&host) as Arc<dyn SessionBackend>,
        spool,
        committer,
        min_free_bytes: 0,
        log: log.clone(),
    };
    let paused = Arc::new(SmtpPause::default());
    let local = runtime_std::server::local_session_config(&config, "mx.example.org");
    let daemon = DaemonControl::new(host, conn, local, Arc::clone(&paused), Subsystem::ALL);
    let path = dir.join("smtpd.sock");
    let target = EngineControl::new(Arc::new(daemon), unix_now());
    let server = ControlServer::start(&path, Arc::new(target)).unwrap();
    let mut client = ControlClient::connect(&path).unwrap();
    let mut ask = |r: Request| client.request(&r).unwrap();

    assert_eq!(ask(Request::Pause(Agent::Mda)), Response::Ok);
    let to = |rcpt: &str| {
        Request::Enqueue(Submission {
            sender: "alice@mx.example.org".to_owned(),
            recipients: vec![rcpt.to_owned()],
            message: b"Subject: local\n\nhello\n".to_vec(),
        })
    };
    let accepted = ask(to("bob@localhost"));
    assert!(
        matches!(&accepted, Response::Text(l) if l[0].starts_with("250 ")),
        "{accepted:?}"
    );
    let refused = ask(to("carol@localhost"));
    assert!(
        matches!(&refused, Response::Error(e) if e.starts_with("recipient refused: 5")),
        "{refused:?}"
    );
    std::fs::write(&users, "bob@localhost\ncarol@localhost\n").unwrap();
    assert_eq!(ask(Request::UpdateTable("users".to_owned())), Response::Ok);
    let now_accepted = ask(to("carol@localhost"));
    assert!(
        matches!(&now_accepted, Response::Text(l) if l[0].starts_with("250 ")),
        "{now_accepted:?}"
    );
    let inline = ask(Request::UpdateTable("inline".to_owned()));
    assert!(
        matches!(&inline, Response::Error(e) if e.contains("not backed by a file")),
        "{inline:?}"
    );

    let Response::Envelopes(rows) = ask(Request::ShowQueue) else {
        panic!("show queue");
    };
    assert_eq!(rows.len(), 2, "{rows:?}");
    let Response::Text(text) = ask(Request::ShowMessage(EnvelopeId::new(rows[0].id).unwrap()))
    else {
        panic!("show message");
    };
    assert!(text.iter().any(|l| l == "hello"), "{text:?}");
    let Response::Stats(stats) = ask(Request::ShowStats) else {
        panic!("stats");
    };
    assert!(
        stats.contains(&("smtp.session.new".to_owned(), 3)),
        "{stats:?}"
    );

    assert_eq!(ask(Request::LogVerbose), Response::Ok);
    assert!(log.is_verbose());
    assert_eq!(ask(Request::LogBrief), Response::Ok);
    assert!(!log.is_verbose());
    assert_eq!(ask(Request::Trace("smtp".to_owned())), Response::Ok);
    assert!(log.traces(Subsystem::Smtp));
    let imsg = ask(Request::Trace("imsg".to_owned()));
    assert!(
        matches!(&imsg, Response::Error(e) if e.starts_with("no trace output for imsg in")),
        "{imsg:?}"
    );
    assert_eq!(
        ask(Request::Untrace("smtp".to_owned())),
        Response::Ok,
        "only newly named subsystems are refused"
    );
    assert!(!log.traces(Subsystem::Smtp));
    assert_eq!(ask(Request::Trace("all".to_owned())), Response::Ok);
    assert!(log.traces(Subsystem::Smtp));

    assert_eq!(ask(Request::Pause(Agent::Smtp)), Response::Ok);
    assert!(paused.is_paused());
    assert_eq!(ask(Request::Resume(Agent::Smtp)), Response::Ok);
    assert!(!paused.is_paused());
    assert_eq!(ask(Request::ShowRoutes), Response::Text(Vec::new()));
    assert_eq!(ask(Request::ShowHosts), Response::Text(Vec::new()));

    drop(client);
    drop(server);
    assert!(!path.exists(), "the socket is removed");
    let _ = std::fs::remove_dir_all(dir);
}
