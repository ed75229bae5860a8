//! The connection loop and the accept loop with a scripted backend instead of the engine:
//! the connection limit (421 4.3.2), a full disk (452 4.3.1 at MAIL), a message streamed
//! into the spool and committed when the backend says so, the stop (421 to sessions),
//! `pause smtp` (421 4.3.2 to new clients), and a local submission over a socket pair.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use smtp_proto::reply::Reply;
use smtp_proto::server::{Answer, Question, ReqId, ServerConfig};

use super::conn::{ConnContext, SessionBackend};
use super::listener::{accept_loop, Bound, Connections, SmtpPause};
use super::log::Log;
use super::mailbox::{Mailbox, Note};
use super::signals::StopSignal;
use crate::spool::{GroupCommitter, Spool};

/// Says yes to everything; opens message `0000000a` at DATA and commits it at the end.
#[derive(Default)]
struct Yes {
    mailboxes: Mutex<Vec<Arc<Mailbox>>>,
    committed: Mutex<Vec<(String, Result<(), String>)>>,
}

impl SessionBackend for Yes {
    fn open(&self, _: SocketAddr, _: SocketAddr, _: usize, mailbox: Arc<Mailbox>) -> u64 {
        let mut all = self.mailboxes.lock().expect("lock");
        all.push(mailbox);
        u64::try_from(all.len() - 1).expect("small")
    }

    fn question(&self, session: u64, req: ReqId, question: Question, _: usize) {
        let mailbox = Arc::clone(&self.mailboxes.lock().expect("lock")[session as usize]);
        match question {
            Question::DataStart { .. } => mailbox.push(Note::Open {
                msgid: "0000000a".into(),
                header: b"Received: test\r\n".to_vec(),
            }),
            Question::EndOfMessage { .. } => mailbox.push(Note::Commit {
                msgid: "0000000a".into(),
                envelopes: vec![("0000000a00000001".into(), b"record".to_vec())],
            }),
            _ => {}
        }
        let reply = Reply::new(250, None, b"ok".to_vec());
        mailbox.push(Note::Answer(req, Answer::from(reply)));
    }

    fn tls(&self, _: u64, _: String, _: String) {}

    fn body_aborted(&self, _: u64) {}

    fn committed(&self, _: u64, msgid: &str, result: Result<(), String>) {
        self.committed
            .lock()
            .expect("lock")
            .push((msgid.to_owned(), result));
    }

    fn closed(&self, _: u64) {}
}

struct Server {
    addr: SocketAddr,
    dir: PathBuf,
    spool: Spool,
    backend: Arc<Yes>,
    paused: Arc<SmtpPause>,
    stop: super::signals::StopTrigger,
    thread: std::thread::JoinHandle<()>,
}

fn start(tag: &str, max_connections: usize, min_free_bytes: u64) -> Server {
    let dir = std::env::temp_dir().join(format!("smtpd-server-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (spool, _) = Spool::open(&dir).expect("spool");
    let committer = GroupCommitter::start(spool.clone(), 8).expect("committer");
    let backend = Arc::new(Yes::default());
    let ctx = ConnContext {
        backend: Arc::clone(&backend) as Arc<dyn SessionBackend>,
        spool: spool.clone(),
        committer,
        min_free_bytes,
        log: Log::quiet(),
    };
    let socket = TcpListener::bind("127.0.0.1:0").expect("bind");
    socket.set_nonblocking(true).expect("nonblocking");
    let addr = socket.local_addr().expect("addr");
    let bound = vec![Bound {
        socket,
        index: 0,
        session_config: Arc::new(ServerConfig::default()),
        tls: None,
    }];
    let (signal, stop) = StopSignal::manual().expect("pipe");
    let paused = Arc::new(SmtpPause::default());
    let switch = Arc::clone(&paused);
    let thread = std::thread::spawn(move || {
        let connections = Arc::new(Connections::default());
        accept_loop(
            &bound,
            &signal,
            &ctx,
            &connections,
            max_connections,
            &switch,
        );
        assert!(connections.wait_empty(Duration::from_secs(10)));
    });
    Server {
        addr,
        dir,
        spool,
        backend,
        paused,
        stop,
        thread,
    }
}

/// The committed body of `msgid`.
fn queued(spool: &Spool, msgid: &str) -> Vec<u8> {
    use std::io::Read;
    let mut body = Vec::new();
    spool
        .read_message(msgid)
        .and_then(|mut f| f.read_to_end(&mut body))
        .expect("queued");
    body
}

struct Client {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let reader = BufReader::new(stream.try_clone().expect("clone"));
        Client { stream, reader }
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read");
        line
    }

    /// The last line of the next reply.
    fn reply(&mut self) -> String {
        loop {
            let line = self.line();
            if line.as_bytes().get(3) != Some(&b'-') {
                return line;
            }
        }
    }

    fn send(&mut self, text: &str) {
        self.stream.write_all(text.as_bytes()).expect("write");
    }
}

#[test]
fn the_limit_a_commit_and_the_stop() {
    let server = start("limit", 1, 0);
    let mut first = Client::connect(server.addr);
    assert!(first.reply().starts_with("220 "));
    let mut second = Client::connect(server.addr);
    assert!(second.reply().starts_with("421 4.3.2 "), "the limit holds");

    first.send("EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n");
    for code in ["250", "250", "250", "354"] {
        assert!(first.reply().starts_with(code));
    }
    first.send("Subject: x\r\n\r\n..dot\r\n.\r\n");
    assert!(first.reply().starts_with("250"));
    let committed = server.backend.committed.lock().expect("lock").clone();
    assert_eq!(committed, vec![("0000000a".to_owned(), Ok(()))]);
    let stored = queued(&server.spool, "0000000a");
    assert_eq!(stored, b"Received: test\r\nSubject: x\r\n\r\n.dot\r\n");

    server.stop.trigger();
    assert!(
        first.reply().starts_with("421 "),
        "shutdown reaches the session"
    );
    server.thread.join().expect("accept loop ends");
    let _ = std::fs::remove_dir_all(&server.dir);
}

#[test]
fn a_full_disk_refuses_mail_with_452() {
    let server = start("full", 4, u64::MAX);
    let mut client = Client::connect(server.addr);
    assert!(client.reply().starts_with("220 "));
    client.send("HELO c\r\nMAIL FROM:<a@b>\r\n");
    assert!(client.reply().starts_with("250"));
    assert!(client.reply().starts_with("452 4.3.1 "));
    client.send("QUIT\r\n");
    assert!(client.reply().starts_with("221"));
    server.stop.trigger();
    server.thread.join().expect("accept loop ends");
    let _ = std::fs::remove_dir_all(&server.dir);
}

#[test]
fn listeners_offer_starttls_and_auth_only_as_configured() {
    let text = "pki host1 cert \"/c\"\npki host1 key \"/k\"\ntable creds { alice = \"$6$x$y\" }\n\
        listen on 127.0.0.1 port 25 tls pki host1 auth <creds>\n\
        listen on 127.0.0.1 port 26 tls-require pki host1 auth-optional <creds>\n\
        listen on 127.0.0.1 port 465 smtps pki host1 auth <creds>\n\
        listen on 127.0.0.1 port 27\n\
        action \"a\" maildir\nmatch from any for any action \"a\"\n";
    let config = mta_core::config::parse(text, "test.conf", &[], &mut |_| Err("none".into()))
        .expect("parses");
    let session = |n: usize| super::session_config(&config, &config.listeners[n], "mx");
    let starttls = session(0);
    assert!(starttls.tls_available && !starttls.tls_required);
    assert!(starttls.auth && starttls.auth_required && !starttls.auth_plaintext);
    let required = session(1);
    assert!(required.tls_available && required.tls_required);
    assert!(required.auth && !required.auth_required);
    let smtps = session(2);
    assert!(!smtps.tls_available, "no STARTTLS inside implicit TLS");
    assert!(
        smtps.auth && smtps.auth_plaintext,
        "smtps is TLS from the first byte"
    );
    let plain = session(3);
    assert!(!plain.tls_available && !plain.auth && !plain.auth_required);
}

#[test]
fn pause_smtp_refuses_new_clients_only() {
    let server = start("pause", 4, 0);
    let mut open = Client::connect(server.addr);
    assert!(open.reply().starts_with("220 "));
    server.paused.pause();
    let mut refused = Client::connect(server.addr);
    let line = refused.reply();
    assert!(
        line.starts_with("421 4.3.2 ") && line.contains("Service temporarily paused"),
        "{line}"
    );
    open.send("NOOP\r\n");
    assert!(open.reply().starts_with("250"), "open sessions go on");
    server.paused.resume();
    let mut again = Client::connect(server.addr);
    assert!(again.reply().starts_with("220 "));
    server.stop.trigger();
    server.thread.join().expect("accept loop ends");
    let _ = std::fs::remove_dir_all(&server.dir);
}

#[test]
fn a_local_submission_is_an_ordinary_session_over_a_socket_pair() {
    use crate::control::submit::submit_over_smtp;
    use mta_core::control::{Response, Submission};
    let dir = std::env::temp_dir().join(format!("smtpd-server-local-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (spool, _) = Spool::open(&dir).expect("spool");
    let committer = GroupCommitter::start(spool.clone(), 8).expect("committer");
    let backend = Arc::new(Yes::default());
    let log = Log::quiet();
    log.set_traces(super::trace::Subsystem::ALL);
    let ctx = ConnContext {
        backend: Arc::clone(&backend) as Arc<dyn SessionBackend>,
        spool: spool.clone(),
        committer,
        min_free_bytes: 0,
        log,
    };
    let (mut ours, theirs) = std::os::unix::net::UnixStream::pair().expect("pair");
    ours.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mailbox = Arc::new(Mailbox::new().expect("mailbox"));
    let opener = Arc::clone(&backend);
    let opened = Arc::new(Mutex::new(false));
    let flag = Arc::clone(&opened);
    let server = std::thread::spawn(move || {
        super::conn::serve_local(
            theirs,
            Arc::new(ServerConfig::default()),
            ctx,
            mailbox,
            move |m| {
                *flag.lock().expect("lock") = true;
                let mut all = opener.mailboxes.lock().expect("lock");
                all.push(m);
                u64::try_from(all.len() - 1).expect("small")
            },
        );
    });
    let submission = Submission {
        sender: "alice@here".to_owned(),
        recipients: vec!["bob@there".to_owned()],
        message: b"Subject: hi\n\n.leading dot\n".to_vec(),
    };
    let response = submit_over_smtp(&mut ours, &submission, "localhost");
    assert!(
        matches!(&response, Response::Text(lines) if lines[0].starts_with("250")),
        "{response:?}"
    );
    server.join().expect("session ends after QUIT");
    assert!(*opened.lock().expect("lock"), "opened as a local session");
    let stored = queued(&spool, "0000000a");
    assert_eq!(
        stored,
        b"Received: test\r\nSubject: hi\r\n\r\n.leading dot\r\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_control_socket_comes_from_the_flag_then_the_configuration() {
    let text = "control socket \"/run/from-config.sock\"\nlisten on 127.0.0.1\naction \"d\" maildir\nmatch from any for local action \"d\"\n";
    let config = mta_core::config::parse(text, "t.conf", &[], &mut |p| Err(p.to_owned())).unwrap();
    let loaded = crate::config_load::Loaded {
        config,
        file_name: "t.conf".to_owned(),
        state_dir: PathBuf::from("/var/tmp/state"),
        builtin: false,
    };
    let mut options = crate::cli::Options::default();
    let opts = super::ServeOptions::for_command(&loaded, &options);
    assert_eq!(opts.control_socket, PathBuf::from("/run/from-config.sock"));
    options.socket = Some(PathBuf::from("/tmp/flag.sock"));
    options.verbose = true;
    let opts = super::ServeOptions::for_command(&loaded, &options);
    assert_eq!(opts.control_socket, PathBuf::from("/tmp/flag.sock"));
    assert!(opts.verbose);
}
