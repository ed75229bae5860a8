//! The engine behind real server sessions (smtp-proto's `ServerSession`), in memory:
//! client bytes in, reply bytes and stored messages out, as a runtime wires them.

#[path = "engine_harness.rs"]
mod harness;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use harness::{lookup_answer, parse_config, CONF, START};
use mta_core::engine::{
    Action, Engine, EngineFacts, Input, PeerAddr, ReceivedCounter, SessionId, SessionInfo,
};
use mta_core::queue::MessageId;
use mta_core::scheduler::Outcome;
use smtp_proto::server::{self, Question, ServerConfig, ServerSession};

/// The origin of the sessions' virtual clock. `ServerSession` counts time in `Instant`s,
/// which only a clock reading can produce; it is read once and never advanced, so the
/// run does not depend on it (as smtp-proto's own harness does).
#[allow(clippy::disallowed_methods)]
fn epoch() -> Instant {
    Instant::now()
}

/// One connection: its session machine, what the client has read, the body being stored.
struct Conn {
    session: ServerSession,
    sent: Vec<u8>,
    message: Option<(MessageId, Vec<u8>)>,
    counter: ReceivedCounter,
}

/// A runtime in miniature: sessions, one engine, a spool of committed messages.
struct Wire {
    engine: Engine,
    now: Instant,
    conns: BTreeMap<SessionId, Conn>,
    spool: BTreeMap<MessageId, Vec<u8>>,
    delivered: Vec<(String, MessageId)>,
}

impl Wire {
    fn new(conf: &str) -> Wire {
        let config = Arc::new(parse_config(conf));
        let engine = Engine::new(config, EngineFacts::new("mx.example.org", 3), START).unwrap();
        Wire {
            engine,
            now: epoch(),
            conns: BTreeMap::new(),
            spool: BTreeMap::new(),
            delivered: Vec::new(),
        }
    }

    fn connect(&mut self) -> SessionId {
        let info = SessionInfo {
            listener: Some(0),
            peer: PeerAddr::Inet("198.51.100.7:50000".parse().unwrap()),
            local: None,
            rdns: None,
            tls: false,
        };
        let sid = self.engine.open_session(info, START);
        let config = ServerConfig {
            hostname: "mx.example.org".into(),
            ..ServerConfig::default()
        };
        let conn = Conn {
            session: ServerSession::new(Arc::new(config), self.now),
            sent: Vec::new(),
            message: None,
            counter: ReceivedCounter::new(),
        };
        self.conns.insert(sid, conn);
        self.pump();
        sid
    }

    fn send(&mut self, sid: SessionId, bytes: &[u8]) {
        let conn = self.conns.get_mut(&sid).unwrap();
        conn.session
            .handle(server::Input::Received(bytes), self.now);
        self.pump();
    }

    /// Runs every machine until nothing moves: the runtime's loop.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            let ids: Vec<SessionId> = self.conns.keys().copied().collect();
            for sid in ids {
                while let Some(action) = self.conns.get_mut(&sid).unwrap().session.poll_action() {
                    moved = true;
                    self.session_action(sid, action);
                }
            }
            while let Some(action) = self.engine.poll_action() {
                moved = true;
                self.engine_action(action);
            }
            if !moved {
                return;
            }
        }
    }

    fn session_action(&mut self, sid: SessionId, action: server::Action) {
        let conn = self.conns.get_mut(&sid).unwrap();
        match action {
            server::Action::Send(bytes) => conn.sent.extend_from_slice(&bytes),
            server::Action::Ask(req, Question::EndOfMessage { size }) => {
                let received_headers = conn.counter.count();
                conn.counter = ReceivedCounter::new();
                self.engine.handle(
                    Input::EndOfMessage {
                        session: sid,
                        req,
                        size,
                        received_headers,
                    },
                    START,
                );
            }
            server::Action::Ask(req, question) => self.engine.handle(
                Input::Question {
                    session: sid,
                    req,
                    question,
                },
                START,
            ),
            server::Action::Body { chunk } => {
                conn.counter.feed(&chunk);
                if let Some((_, body)) = conn.message.as_mut() {
                    body.extend_from_slice(&chunk);
                }
            }
            server::Action::BodyAborted { .. } => {
                conn.counter = ReceivedCounter::new();
                self.engine
                    .handle(Input::BodyAborted { session: sid }, START);
            }
            server::Action::Close(_) => {
                self.engine
                    .handle(Input::SessionClosed { session: sid }, START);
            }
            server::Action::StartTls | server::Action::Event(_) => {}
        }
    }

    fn engine_action(&mut self, action: Action) {
        match action {
            Action::Answer {
                session,
                req,
                answer,
            } => {
                if let Some(conn) = self.conns.get_mut(&session) {
                    conn.session
                        .handle(server::Input::Answer(req, answer), self.now);
                }
            }
            Action::Lookup { id, question, .. } => {
                let answer = lookup_answer(&question, &["bob", "carol"]);
                self.engine
                    .handle(Input::LookupAnswer { id, answer }, START);
            }
            Action::OpenMessage {
                session,
                msgid,
                header,
            } => {
                if let Some(conn) = self.conns.get_mut(&session) {
                    conn.message = Some((msgid, header.to_vec()));
                }
            }
            Action::AbortMessage { session, .. } => {
                if let Some(conn) = self.conns.get_mut(&session) {
                    conn.message = None;
                }
            }
            Action::CommitMessage { session, msgid, .. } => {
                let conn = self.conns.get_mut(&session).unwrap();
                let (id, bytes) = conn.message.take().unwrap();
                assert_eq!(id, msgid);
                self.spool.insert(msgid, bytes);
                self.engine.handle(
                    Input::Committed {
                        msgid,
                        result: Ok(()),
                    },
                    START,
                );
            }
            Action::Deliver(envelope) => {
                self.delivered
                    .push((envelope.recipient.clone(), envelope.message_id()));
                self.engine.handle(
                    Input::DeliveryResult {
                        id: envelope.id,
                        outcome: Outcome::Delivered,
                    },
                    START,
                );
            }
            Action::CheckPassword { id, .. } => {
                self.engine
                    .handle(Input::PasswordChecked { id, ok: false }, START);
            }
            Action::QueueBounce { .. }
            | Action::UpdateEnvelope(_)
            | Action::RemoveEnvelope(_)
            | Action::Log(_) => {}
        }
    }

    fn sent(&self, sid: SessionId) -> String {
        String::from_utf8_lossy(&self.conns[&sid].sent).into_owned()
    }
}

#[test]
fn pipelined_transaction_is_stored_byte_exact_behind_the_received_header() {
    let mut w = Wire::new(CONF);
    let s = w.connect();
    assert!(w.sent(s).starts_with("220 mx.example.org"));
    w.send(
        s,
        b"EHLO client.example.net\r\nMAIL FROM:<alice@remote.test>\r\nRCPT TO:<bob@example.org>\r\nRCPT TO:<nobody@example.org>\r\nRCPT TO:<carol@example.org>\r\nDATA\r\n",
    );
    let body = b"Subject: hi\r\n\r\n..dot-stuffed line\r\n8-bit \xc3\xa9\r\n";
    w.send(s, body);
    w.send(s, b".\r\nQUIT\r\n");
    let sent = w.sent(s);
    assert!(
        sent.contains("250-mx.example.org Hello client.example.net [198.51.100.7]"),
        "{sent}"
    );
    assert!(
        sent.contains("250 2.1.5 Recipient ok\r\n550 5.1.1 "),
        "{sent}"
    );
    assert!(sent.contains("354 "), "{sent}");
    let (&msgid, stored) = w.spool.iter().next().expect("committed");
    assert!(
        sent.contains(&format!(
            "250 2.0.0 {msgid} Message accepted for delivery\r\n221"
        )),
        "{sent}"
    );
    assert!(stored.starts_with(b"Received: from client.example.net ([198.51.100.7])"));
    // The body follows the header unchanged, apart from the dot-unstuffing.
    let received_len = stored.len() - (body.len() - 1);
    assert!(stored[..received_len].ends_with(b" +0000\r\n"));
    assert_eq!(
        &stored[received_len..],
        b"Subject: hi\r\n\r\n.dot-stuffed line\r\n8-bit \xc3\xa9\r\n"
    );
    let mut to: Vec<&str> = w.delivered.iter().map(|(r, _)| r.as_str()).collect();
    to.sort();
    assert_eq!(to, ["bob@example.org", "carol@example.org"]);
    assert_eq!(w.engine.stats().get("smtp.session"), Some(&0));
}

#[test]
fn a_looping_message_is_refused_with_554() {
    let mut w = Wire::new(CONF);
    let s = w.connect();
    w.send(s, b"EHLO client.example.net\r\nMAIL FROM:<alice@remote.test>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n");
    let mut body = Vec::new();
    for hop in 0..=mta_core::bounce::MAX_RECEIVED_HEADERS {
        body.extend_from_slice(format!("Received: from hop{hop} by hop{hop}\r\n").as_bytes());
    }
    body.extend_from_slice(b"\r\nbody\r\n.\r\n");
    w.send(s, &body);
    let sent = w.sent(s);
    assert!(
        sent.ends_with("554 5.4.6 Too many hops, mail loop detected\r\n"),
        "{sent}"
    );
    assert!(w.spool.is_empty());
    assert!(w.delivered.is_empty());
}

#[test]
fn many_sessions_interleaved_each_get_their_own_message() {
    let mut w = Wire::new(CONF);
    let sessions: Vec<SessionId> = (0..5).map(|_| w.connect()).collect();
    for &s in &sessions {
        w.send(
            s,
            b"EHLO c.example.net\r\nMAIL FROM:<alice@remote.test>\r\n",
        );
    }
    for &s in sessions.iter().rev() {
        w.send(s, b"RCPT TO:<bob@example.org>\r\nDATA\r\n");
    }
    for (i, &s) in sessions.iter().enumerate() {
        w.send(
            s,
            format!("Subject: {i}\r\n\r\nmessage {i}\r\n.\r\n").as_bytes(),
        );
    }
    assert_eq!(w.spool.len(), 5);
    for (i, &s) in sessions.iter().enumerate() {
        let sent = w.sent(s);
        let msgid = sent
            .lines()
            .filter(|l| l.ends_with("Message accepted for delivery"))
            .find_map(|l| l.strip_prefix("250 2.0.0 "))
            .and_then(|l| l.split(' ').next())
            .unwrap_or_else(|| panic!("{sent}"));
        let stored = &w.spool[&msgid.parse::<MessageId>().unwrap()];
        assert!(stored.ends_with(format!("message {i}\r\n").as_bytes()));
    }
    assert_eq!(w.delivered.len(), 5);
}
