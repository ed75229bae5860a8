//! A scripted runtime around the engine, shared by the `engine_*` tests (included with
//! `#[path]`; compiled alone it holds no test).
#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use mta_core::config;
use mta_core::engine::{
    Action, Engine, EngineFacts, Input, LookupId, PeerAddr, SessionId, SessionInfo,
};
use mta_core::expand::{Answer as LookupAnswer, FileLookup, Question as Lookup, UserLookup};
use mta_core::queue::{Envelope, EnvelopeId, MessageId};
use mta_core::time::UnixTime;
use smtp_proto::params::{MailParams, RcptParams};
use smtp_proto::reply::Reply;
use smtp_proto::server::{Question, ReqId};
use smtp_proto::types::{ForwardPath, Host, ReversePath};

/// Envelope records of a commit.
pub type Records = Vec<(EnvelopeId, Vec<u8>)>;

/// The engine plus everything it asked for and has not been answered yet.
pub struct Harness {
    pub engine: Engine,
    pub now: UnixTime,
    next_req: u64,
    /// Answers given to sessions, in order.
    pub answers: Vec<(SessionId, ReqId, Reply)>,
    /// Lookups not answered yet.
    pub lookups: VecDeque<(LookupId, SessionId, Lookup)>,
    /// Messages opened, with their header.
    pub opened: BTreeMap<MessageId, Bytes>,
    /// Messages aborted.
    pub aborted: Vec<MessageId>,
    /// Commits not answered yet.
    pub commits: VecDeque<(MessageId, Records)>,
    /// Deliveries not answered yet.
    pub deliveries: VecDeque<Envelope>,
    /// Every envelope handed out for delivery, in order.
    pub delivered_log: Vec<EnvelopeId>,
    /// Reports not answered yet.
    pub bounces: VecDeque<(MessageId, Vec<Envelope>)>,
    /// Every report asked for.
    pub bounce_log: Vec<(MessageId, mta_core::bounce::Report)>,
    pub updates: Vec<Envelope>,
    pub removed: Vec<EnvelopeId>,
    pub logs: Vec<String>,
    pub password_checks: VecDeque<(LookupId, Option<String>)>,
}

pub fn parse_config(text: &str) -> config::Config {
    config::parse(
        text,
        "smtpd.conf",
        &[],
        &mut |_| Err("no files".to_string()),
    )
    .unwrap_or_else(|e| panic!("{e:?}"))
}

pub const START: UnixTime = UnixTime::from_secs(1_800_000_000);

impl Harness {
    pub fn new(conf: &str) -> Harness {
        let config = Arc::new(parse_config(conf));
        let facts = EngineFacts::new("mx.example.org", 7);
        let engine = Engine::new(config, facts, START).unwrap();
        Harness {
            engine,
            now: START,
            next_req: 1,
            answers: Vec::new(),
            lookups: VecDeque::new(),
            opened: BTreeMap::new(),
            aborted: Vec::new(),
            commits: VecDeque::new(),
            deliveries: VecDeque::new(),
            delivered_log: Vec::new(),
            bounces: VecDeque::new(),
            bounce_log: Vec::new(),
            updates: Vec::new(),
            removed: Vec::new(),
            logs: Vec::new(),
            password_checks: VecDeque::new(),
        }
    }

    /// A network session from 192.0.2.1 on the first listener.
    pub fn open(&mut self) -> SessionId {
        let peer: SocketAddr = "192.0.2.1:40000".parse().unwrap();
        let info = SessionInfo {
            listener: Some(0),
            peer: PeerAddr::Inet(peer),
            local: None,
            rdns: Some("client.example.net".into()),
            tls: false,
        };
        let sid = self.engine.open_session(info, self.now);
        self.drain();
        sid
    }

    pub fn input(&mut self, input: Input) {
        self.engine.handle(input, self.now);
        self.drain();
    }

    pub fn ask(&mut self, session: SessionId, question: Question) -> ReqId {
        let req = ReqId(self.next_req);
        self.next_req += 1;
        self.input(Input::Question {
            session,
            req,
            question,
        });
        req
    }

    pub fn helo(&mut self, sid: SessionId) -> ReqId {
        let identity = Host::parse(Bytes::from_static(b"client.example.net"), false).unwrap();
        self.ask(
            sid,
            Question::Helo {
                esmtp: true,
                identity,
            },
        )
    }

    pub fn mail(&mut self, sid: SessionId, sender: &str) -> ReqId {
        let path = ReversePath::parse(Bytes::from(format!("<{sender}>")), false).unwrap();
        self.ask(
            sid,
            Question::MailFrom {
                path,
                params: MailParams::default(),
            },
        )
    }

    pub fn rcpt(&mut self, sid: SessionId, recipient: &str) -> ReqId {
        let path = ForwardPath::parse(Bytes::from(format!("<{recipient}>")), false).unwrap();
        self.ask(
            sid,
            Question::RcptTo {
                path,
                params: RcptParams::default(),
            },
        )
    }

    pub fn data(&mut self, sid: SessionId) -> ReqId {
        self.ask(sid, Question::DataStart { chunking: false })
    }

    pub fn end(&mut self, sid: SessionId, size: u64, received_headers: usize) -> ReqId {
        let req = ReqId(self.next_req);
        self.next_req += 1;
        self.input(Input::EndOfMessage {
            session: sid,
            req,
            size,
            received_headers,
        });
        req
    }

    /// The answers given to this question so far.
    pub fn answers_to(&self, sid: SessionId, req: ReqId) -> Vec<Reply> {
        self.answers
            .iter()
            .filter(|(s, r, _)| *s == sid && *r == req)
            .map(|(_, _, a)| a.clone())
            .collect()
    }

    /// The one answer to this question (panics when there is none or more than one).
    pub fn answer(&self, sid: SessionId, req: ReqId) -> Reply {
        let all = self.answers_to(sid, req);
        assert_eq!(all.len(), 1, "answers to {req:?}: {all:?}");
        all.into_iter().next().unwrap()
    }

    pub fn code(&self, sid: SessionId, req: ReqId) -> u16 {
        self.answer(sid, req).code
    }

    pub fn drain(&mut self) {
        while let Some(action) = self.engine.poll_action() {
            match action {
                Action::Answer {
                    session,
                    req,
                    answer,
                } => self.answers.push((session, req, answer.reply)),
                Action::Lookup {
                    id,
                    session,
                    question,
                } => self.lookups.push_back((id, session, question)),
                Action::CheckPassword { id, hash, .. } => {
                    self.password_checks.push_back((id, hash))
                }
                Action::OpenMessage { msgid, header, .. } => {
                    self.opened.insert(msgid, header);
                }
                Action::AbortMessage { msgid, .. } => self.aborted.push(msgid),
                Action::CommitMessage {
                    msgid, envelopes, ..
                } => self.commits.push_back((msgid, envelopes)),
                Action::Deliver(e) => {
                    self.delivered_log.push(e.id);
                    self.deliveries.push_back(e);
                }
                Action::UpdateEnvelope(e) => self.updates.push(e),
                Action::RemoveEnvelope(id) => self.removed.push(id),
                Action::QueueBounce {
                    report,
                    msgid,
                    envelopes,
                } => {
                    self.bounce_log.push((msgid, report));
                    self.bounces.push_back((msgid, envelopes));
                }
                Action::Log(line) => self.logs.push(line),
            }
        }
    }

    /// Answers every pending lookup: `users` exist (home `/home/NAME`), no `.forward`.
    pub fn answer_lookups(&mut self, users: &[&str]) {
        while let Some((id, _, question)) = self.lookups.pop_front() {
            let answer = lookup_answer(&question, users);
            self.input(Input::LookupAnswer { id, answer });
        }
    }

    /// Confirms every pending commit.
    pub fn commit_all(&mut self) {
        while let Some((msgid, _)) = self.commits.pop_front() {
            self.input(Input::Committed {
                msgid,
                result: Ok(()),
            });
        }
    }

    /// Moves the clock to the engine's next deadline and ticks; false when it has none.
    pub fn advance(&mut self) -> bool {
        let Some(t) = self.engine.poll_timeout() else {
            return false;
        };
        if t > self.now {
            self.now = t;
        }
        self.input(Input::Tick);
        true
    }
}

pub fn lookup_answer(question: &Lookup, users: &[&str]) -> LookupAnswer {
    match question {
        Lookup::User { name } => LookupAnswer::User(if users.contains(&name.as_str()) {
            UserLookup::Found {
                uid: 1000,
                gid: 1000,
                directory: format!("/home/{name}"),
            }
        } else {
            UserLookup::NotFound
        }),
        Lookup::Forward { .. } | Lookup::Include { .. } => LookupAnswer::File(FileLookup::Absent),
    }
}

/// Local maildir delivery for example.org, relay for the rest from local clients.
pub const CONF: &str = r#"
listen on 127.0.0.1
action "local" maildir
action "out" relay
match from any for domain "example.org" action "local"
match from local for any action "out"
"#;
