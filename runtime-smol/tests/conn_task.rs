//! The connection task of `smtpd` against a scripted engine over loopback: a message
//! goes through the async path into the spool and is committed by the group committer;
//! a shutdown note gives 421; the session's deadline fires on the executor's timer.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runtime_smol::conn::{serve, Ends};
use runtime_std::server::conn::{ConnContext, SessionBackend};
use runtime_std::server::log::Log;
use runtime_std::server::mailbox::{Mailbox, Note};
use runtime_std::spool::{GroupCommitter, Spool};
use smol::Async;
use smtp_proto::reply::Reply;
use smtp_proto::server::{Answer, Question, ReqId, ServerConfig};

const MSGID: &str = "00000000000000aa";

/// An engine that says yes to everything, opens message [`MSGID`] at DATA and answers
/// the final dot once the commit is reported.
#[derive(Default)]
struct Script {
    mailbox: Mutex<Option<Arc<Mailbox>>>,
    final_dot: Mutex<Option<ReqId>>,
    committed: Mutex<Vec<Result<(), String>>>,
    closed: Mutex<bool>,
    /// Keep the answer to MAIL until the test releases it.
    hold_mail: bool,
    held_mail: Mutex<Option<ReqId>>,
}

impl Script {
    fn push(&self, note: Note) {
        if let Some(mailbox) = &*self.mailbox.lock().unwrap() {
            mailbox.push(note);
        }
    }
}

fn answer(code: u16, text: &str) -> Answer {
    Answer::from(Reply::new(code, None, text.as_bytes().to_vec()))
}

impl SessionBackend for Script {
    fn open(&self, _: SocketAddr, _: SocketAddr, _: usize, mailbox: Arc<Mailbox>) -> u64 {
        *self.mailbox.lock().unwrap() = Some(mailbox);
        7
    }

    fn question(&self, _: u64, req: ReqId, question: Question, _: usize) {
        match question {
            Question::DataStart { .. } => {
                self.push(Note::Open {
                    msgid: MSGID.to_owned(),
                    header: b"Received: by test\r\n".to_vec(),
                });
                self.push(Note::Answer(req, answer(354, "go ahead")));
            }
            Question::EndOfMessage { .. } => {
                *self.final_dot.lock().unwrap() = Some(req);
                self.push(Note::Commit {
                    msgid: MSGID.to_owned(),
                    envelopes: vec![("00000000000000aa01".to_owned(), b"record".to_vec())],
                });
            }
            Question::MailFrom { .. } if self.hold_mail => {
                *self.held_mail.lock().unwrap() = Some(req);
            }
            _ => self.push(Note::Answer(req, answer(250, "ok"))),
        }
    }

    fn tls(&self, _: u64, _: String, _: String) {}

    fn body_aborted(&self, _: u64) {}

    fn committed(&self, _: u64, msgid: &str, result: Result<(), String>) {
        assert_eq!(msgid, MSGID);
        let ok = result.is_ok();
        self.committed.lock().unwrap().push(result);
        if let Some(req) = self.final_dot.lock().unwrap().take() {
            let reply = if ok {
                answer(250, "queued")
            } else {
                answer(451, "no")
            };
            self.push(Note::Answer(req, reply));
        }
    }

    fn closed(&self, _: u64) {
        *self.closed.lock().unwrap() = true;
    }
}

struct Fixture {
    dir: PathBuf,
    script: Arc<Script>,
    client: BufReader<TcpStream>,
    server: std::thread::JoinHandle<()>,
}

fn start(name: &str, config: ServerConfig) -> Fixture {
    start_with(name, config, Script::default())
}

fn start_with(name: &str, config: ServerConfig, script: Script) -> Fixture {
    let dir = std::env::temp_dir().join(format!("smol-conn-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (spool, _) = Spool::open(&dir).expect("spool");
    let committer = GroupCommitter::start(spool.clone(), 8).expect("committer");
    let script = Arc::new(script);
    let ctx = ConnContext {
        backend: Arc::clone(&script) as Arc<dyn SessionBackend>,
        spool,
        committer,
        min_free_bytes: 0,
        log: Log::quiet(),
    };
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let config = Arc::new(config);
    let server = std::thread::spawn(move || {
        smol::block_on(async {
            let listener = Async::new(listener).expect("async listener");
            let (stream, peer) = listener.accept().await.expect("accept");
            let mailbox = Arc::new(Mailbox::for_task());
            let ends = Ends {
                peer,
                bound: Some(addr),
            };
            serve(stream, ends, 0, config, None, ctx, mailbox).await;
        });
    });
    let client = TcpStream::connect(addr).expect("connect");
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    Fixture {
        dir,
        script,
        client: BufReader::new(client),
        server,
    }
}

impl Fixture {
    /// Read one reply (all its lines); returns its last line.
    fn reply(&mut self) -> String {
        loop {
            let mut line = String::new();
            self.client.read_line(&mut line).expect("reply line");
            if line.as_bytes().get(3) != Some(&b'-') {
                return line;
            }
        }
    }

    fn send(&mut self, bytes: &str) {
        self.client
            .get_mut()
            .write_all(bytes.as_bytes())
            .expect("send");
    }

    fn finish(self) -> Arc<Script> {
        self.server.join().expect("server thread");
        let _ = std::fs::remove_dir_all(&self.dir);
        self.script
    }
}

fn config() -> ServerConfig {
    ServerConfig {
        hostname: "mx.test".to_owned(),
        ..ServerConfig::default()
    }
}

#[test]
fn a_message_is_spooled_and_committed_through_the_task() {
    let mut f = start("message", config());
    assert!(f.reply().starts_with("220 "));
    f.send("EHLO client.test\r\n");
    assert!(f.reply().starts_with("250 "));
    f.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n");
    assert!(f.reply().starts_with("250"));
    assert!(f.reply().starts_with("250"));
    assert!(f.reply().starts_with("354"));
    let line = "x".repeat(990);
    let mut body = String::new();
    for _ in 0..300 {
        body.push_str(&line);
        body.push_str("\r\n");
    }
    f.send(&body);
    f.send("..dot\r\n.\r\n");
    let last = f.reply();
    assert!(last.starts_with("250 "), "{last}");
    let (_, recovered) = Spool::open(&f.dir).expect("reopen");
    let queued: HashMap<_, _> = recovered
        .messages
        .iter()
        .map(|m| (m.msgid.clone(), m.envelopes.len()))
        .collect();
    assert_eq!(queued.get(MSGID), Some(&1), "{queued:?}");
    let spool = Spool::open(&f.dir).expect("reopen").0;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut spool.read_message(MSGID).expect("message"), &mut text)
        .expect("read");
    assert!(text.starts_with("Received: by test\r\nxxx"));
    assert!(text.ends_with(&format!("{line}\r\n.dot\r\n")));
    assert_eq!(text.len(), 19 + 300 * 992 + 6);
    f.send("QUIT\r\n");
    assert!(f.reply().starts_with("221"));
    let script = f.finish();
    assert_eq!(*script.committed.lock().unwrap(), vec![Ok(())]);
    assert!(*script.closed.lock().unwrap());
}

#[test]
fn a_shutdown_note_gives_421() {
    let mut f = start("shutdown", config());
    assert!(f.reply().starts_with("220 "));
    f.script.push(Note::Shutdown);
    let last = f.reply();
    assert!(last.starts_with("421"), "{last}");
    assert!(*f.finish().closed.lock().unwrap());
}

#[test]
fn the_session_deadline_fires_on_the_timer() {
    let mut cfg = config();
    cfg.timeouts.server_idle = Duration::from_millis(300);
    cfg.timeouts.initial = Duration::from_millis(300);
    let mut f = start("deadline", cfg);
    assert!(f.reply().starts_with("220 "));
    let started = std::time::Instant::now();
    let last = f.reply();
    assert!(last.starts_with("421"), "{last}");
    assert!(started.elapsed() < Duration::from_secs(8));
    assert!(*f.finish().closed.lock().unwrap());
}

#[test]
fn the_task_stops_reading_while_an_answer_is_pending() {
    let script = Script {
        hold_mail: true,
        ..Script::default()
    };
    let mut f = start_with("backpressure", config(), script);
    assert!(f.reply().starts_with("220 "));
    f.send("EHLO client.test\r\n");
    assert!(f.reply().starts_with("250 "));
    // Far more pipelined input than the session's 64 KiB receive buffer: read while the
    // engine has not answered MAIL, it would overflow and end the session with 421.
    let noops = 200_000;
    let mut flood = String::from("MAIL FROM:<a@example.org>\r\n");
    flood.push_str(&"NOOP\r\n".repeat(noops));
    let mut writer = f.client.get_ref().try_clone().expect("clone");
    let sender = std::thread::spawn(move || writer.write_all(flood.as_bytes()));
    std::thread::sleep(Duration::from_millis(300));
    let req = f
        .script
        .held_mail
        .lock()
        .unwrap()
        .take()
        .expect("MAIL asked");
    f.script.push(Note::Answer(req, answer(250, "sender ok")));
    let first = f.reply();
    assert!(first.starts_with("250"), "{first}");
    for n in 0..noops {
        let line = f.reply();
        assert!(line.starts_with("250"), "NOOP {n}: {line}");
    }
    sender.join().expect("writer").expect("flood written");
    f.send("QUIT\r\n");
    assert!(f.reply().starts_with("221"));
    f.finish();
}
