//! Properties of the engine under arbitrary interleavings of session questions and
//! runtime answers: it never panics, never answers a question twice, answers every
//! question of an open session once the runtime has answered everything, and empties its
//! queue once every delivery succeeds.

#[path = "engine_harness.rs"]
mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use harness::Harness;
use mta_core::bounce::ReportKind;
use mta_core::engine::{Control, Input, SessionId};
use mta_core::expand::{Answer, FileLookup, UserLookup};
use mta_core::queue::{Failure, MessageId};
use mta_core::scheduler::{Outcome, Scope, Target};
use quickcheck::{Arbitrary, Gen, QuickCheck};
use smtp_proto::reply::EnhancedStatus;
use smtp_proto::server::ReqId;

/// One step of a scripted run.
#[derive(Clone, Debug)]
enum Op {
    Open,
    Helo(u8),
    Mail(u8, bool),
    Rcpt(u8, u8),
    Data(u8),
    End(u8, bool),
    BodyAborted(u8),
    Close(u8),
    Tls(u8),
    Lookup(u8, u8),
    Commit(u8, bool),
    Deliver(u8, u8),
    BounceQueued(u8, bool),
    Wait(u16),
    Advance,
    Control(u8),
    /// HELO, MAIL, RCPT of a known user with its lookups answered, then DATA: reaches
    /// the body often enough for commits, deliveries and bounces to happen.
    Flow(u8),
    /// AUTH as a known (true) or unknown user.
    Auth(u8, bool),
    /// The runtime's verdict on a pending password check.
    Password(u8, bool),
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Op {
        let a = u8::arbitrary(g);
        let b = u8::arbitrary(g);
        let flag = bool::arbitrary(g);
        match u8::arbitrary(g) % 24 {
            21 => Op::Auth(a, flag),
            22 => Op::Password(a, flag),
            17..=19 => Op::Flow(a),
            20 => Op::End(a, false),
            0 | 1 => Op::Open,
            2 => Op::Helo(a),
            3 => Op::Mail(a, flag),
            4 | 5 => Op::Rcpt(a, b),
            6 => Op::Data(a),
            7 => Op::End(a, flag),
            8 => Op::BodyAborted(a),
            9 => Op::Close(a),
            10 => Op::Tls(a),
            11 | 12 => Op::Lookup(a, b),
            13 => Op::Commit(a, flag),
            14 => Op::Deliver(a, b),
            15 => Op::BounceQueued(a, flag),
            _ => match b % 3 {
                0 => Op::Wait(u16::arbitrary(g)),
                1 => Op::Advance,
                _ => Op::Control(a),
            },
        }
    }
}

/// The scenario configuration with an `auth-optional` listener, so AUTH is exercised.
const PROPS_CONF: &str = r#"
table creds { "bob" = "$6$salt$hash" }
pki mail.example.org cert "/etc/ssl/mx.crt"
pki mail.example.org key "/etc/ssl/mx.key"
listen on 127.0.0.1 tls pki mail.example.org auth-optional <creds>
action "local" maildir
action "out" relay
match from any for domain "example.org" action "local"
match from local for any action "out"
"#;

const USERS: [&str; 4] = [
    "bob@example.org",
    "nobody@example.org",
    "x@elsewhere.test",
    "carol@example.org",
];
const KNOWN: [&str; 2] = ["bob", "carol"];

fn failure(class: u8) -> Failure {
    Failure {
        status: EnhancedStatus::new(class, 0, 0),
        text: "trouble".into(),
        remote_mta: None,
    }
}

struct Run {
    h: Harness,
    sessions: Vec<SessionId>,
    open: BTreeSet<SessionId>,
    asked: BTreeMap<(SessionId, ReqId), ()>,
    /// Messages whose commit the runtime confirmed: the client got 250 for them.
    durable: BTreeSet<MessageId>,
    /// `smtpctl remove` was used: mail may leave without delivery.
    removed_by_control: bool,
}

impl Run {
    fn session(&self, i: u8) -> Option<SessionId> {
        let n = self.sessions.len();
        (n > 0).then(|| self.sessions[usize::from(i) % n])
    }

    fn note(&mut self, sid: SessionId, req: ReqId) {
        self.asked.insert((sid, req), ());
    }

    fn step(&mut self, op: Op) {
        let h = &mut self.h;
        match op {
            Op::Open => {
                let sid = h.open();
                self.sessions.push(sid);
                self.open.insert(sid);
            }
            Op::Helo(i) | Op::Mail(i, _) | Op::Rcpt(i, _) | Op::Data(i) | Op::End(i, _) => {
                let Some(sid) = self.session(i) else { return };
                if !self.open.contains(&sid) {
                    return;
                }
                let h = &mut self.h;
                let req = match op {
                    Op::Helo(_) => h.helo(sid),
                    Op::Mail(_, null) => {
                        if null {
                            h.ask(
                                sid,
                                smtp_proto::server::Question::MailFrom {
                                    path: smtp_proto::types::ReversePath::Null,
                                    params: Default::default(),
                                },
                            )
                        } else {
                            h.mail(sid, "alice@remote.test")
                        }
                    }
                    Op::Rcpt(_, u) => h.rcpt(sid, USERS[usize::from(u) % USERS.len()]),
                    Op::Data(_) => h.data(sid),
                    Op::End(_, looping) => h.end(sid, 100, if looping { 1000 } else { 1 }),
                    _ => return,
                };
                self.note(sid, req);
            }
            Op::Flow(i) => {
                let Some(sid) = self.session(i) else { return };
                if !self.open.contains(&sid) {
                    return;
                }
                let h = &mut self.h;
                let reqs = [
                    h.helo(sid),
                    h.mail(sid, "alice@remote.test"),
                    h.rcpt(sid, "bob@example.org"),
                ];
                h.answer_lookups(&KNOWN);
                let data = h.data(sid);
                for req in reqs.into_iter().chain([data]) {
                    self.note(sid, req);
                }
            }
            Op::Auth(i, known) => {
                let Some(sid) = self.session(i) else { return };
                if !self.open.contains(&sid) {
                    return;
                }
                let user = if known { "bob" } else { "mallory" };
                let req = self.h.ask(
                    sid,
                    smtp_proto::server::Question::Auth {
                        mechanism: smtp_proto::server::AuthMechanism::Login,
                        authzid: Default::default(),
                        authcid: user.into(),
                        password: "pw".into(),
                    },
                );
                self.note(sid, req);
            }
            Op::Password(i, ok) => {
                let n = h.password_checks.len();
                if n == 0 {
                    return;
                }
                let Some((id, _)) = h.password_checks.remove(usize::from(i) % n) else {
                    return;
                };
                h.input(Input::PasswordChecked { id, ok });
            }
            Op::BodyAborted(i) => {
                if let Some(sid) = self.session(i) {
                    self.h.input(Input::BodyAborted { session: sid });
                }
            }
            Op::Close(i) => {
                if let Some(sid) = self.session(i) {
                    self.open.remove(&sid);
                    self.h.input(Input::SessionClosed { session: sid });
                }
            }
            Op::Tls(i) => {
                if let Some(sid) = self.session(i) {
                    self.h.input(Input::SessionTls {
                        session: sid,
                        protocol: "TLSv1.3".into(),
                        cipher: "TLS_AES_128_GCM_SHA256".into(),
                    });
                }
            }
            Op::Lookup(i, kind) => {
                let n = h.lookups.len();
                if n == 0 {
                    return;
                }
                let Some((id, _, question)) = h.lookups.remove(usize::from(i) % n) else {
                    return;
                };
                let answer = match kind % 4 {
                    0 | 1 => harness::lookup_answer(&question, &KNOWN),
                    2 => Answer::User(UserLookup::TempFail),
                    _ => Answer::File(FileLookup::TempFail),
                };
                h.input(Input::LookupAnswer { id, answer });
            }
            Op::Commit(i, ok) => {
                let n = h.commits.len();
                if n == 0 {
                    return;
                }
                let Some((msgid, _)) = h.commits.remove(usize::from(i) % n) else {
                    return;
                };
                let result = if ok { Ok(()) } else { Err("disk".into()) };
                if ok {
                    self.durable.insert(msgid);
                }
                h.input(Input::Committed { msgid, result });
            }
            Op::Deliver(i, kind) => {
                let n = h.deliveries.len();
                if n == 0 {
                    return;
                }
                let Some(e) = h.deliveries.remove(usize::from(i) % n) else {
                    return;
                };
                let outcome = match kind % 3 {
                    0 => Outcome::Delivered,
                    1 => Outcome::TempFail(failure(4)),
                    _ => Outcome::PermFail(failure(5)),
                };
                h.input(Input::DeliveryResult { id: e.id, outcome });
            }
            Op::BounceQueued(i, ok) => {
                let n = h.bounces.len();
                if n == 0 {
                    return;
                }
                let Some((msgid, _)) = h.bounces.remove(usize::from(i) % n) else {
                    return;
                };
                let result = if ok { Ok(()) } else { Err("disk".into()) };
                h.input(Input::BounceQueued { msgid, result });
            }
            Op::Wait(secs) => {
                h.now = h.now + Duration::from_secs(u64::from(secs));
                h.input(Input::Tick);
            }
            Op::Advance => {
                h.advance();
            }
            Op::Control(c) => {
                let control = match c % 6 {
                    0 => Control::Pause(Scope::All),
                    1 => Control::Resume(Scope::All),
                    2 => Control::Schedule(Target::All),
                    3 => Control::Hold(Target::All),
                    4 => Control::Release(Target::All),
                    _ => Control::Remove(Target::All),
                };
                self.removed_by_control |= matches!(control, Control::Remove(_));
                h.input(Input::Control(control));
            }
        }
    }

    /// The runtime answers everything and every delivery succeeds, until nothing is left.
    fn settle(&mut self) {
        let h = &mut self.h;
        h.input(Input::Control(Control::Resume(Scope::All)));
        h.input(Input::Control(Control::Release(Target::All)));
        for _ in 0..10_000 {
            h.answer_lookups(&KNOWN);
            self.durable.extend(h.commits.iter().map(|(m, _)| *m));
            h.commit_all();
            while let Some((id, _)) = h.password_checks.pop_front() {
                h.input(Input::PasswordChecked { id, ok: true });
            }
            if let Some((msgid, _)) = h.bounces.pop_front() {
                h.input(Input::BounceQueued {
                    msgid,
                    result: Ok(()),
                });
                continue;
            }
            if let Some(e) = h.deliveries.pop_front() {
                h.input(Input::DeliveryResult {
                    id: e.id,
                    outcome: Outcome::Delivered,
                });
                continue;
            }
            if h.lookups.is_empty() && h.commits.is_empty() && !h.advance() {
                return;
            }
        }
        panic!("the run does not settle");
    }
}

fn run(ops: Vec<Op>) -> bool {
    let mut r = Run {
        h: Harness::new(PROPS_CONF),
        sessions: Vec::new(),
        open: BTreeSet::new(),
        asked: BTreeMap::new(),
        durable: BTreeSet::new(),
        removed_by_control: false,
    };
    for op in ops {
        r.step(op);
    }
    r.settle();
    // Never two answers to one question, never an answer to nothing.
    let mut seen = BTreeSet::new();
    for (sid, req, _) in &r.h.answers {
        assert!(seen.insert((*sid, *req)), "two answers to {req:?}");
        assert!(r.asked.contains_key(&(*sid, *req)), "answer to no question");
    }
    // Every question of a session still open got its answer.
    for (sid, req) in r.asked.keys() {
        if r.open.contains(sid) {
            assert!(
                seen.contains(&(*sid, *req)),
                "{req:?} of {sid:?} unanswered"
            );
        }
    }
    // Never two failure reports about one envelope (a report whose queueing failed is
    // asked again under its own id: that is the same report).
    let mut reported = BTreeMap::new();
    for (msgid, report) in &r.h.bounce_log {
        if report.kind == ReportKind::Failure {
            for e in &report.envelopes {
                let first = *reported.entry(e.id).or_insert(*msgid);
                assert_eq!(first, *msgid, "envelope {} reported twice", e.id);
            }
        }
    }
    // Every message answered 250 was handed to delivery (unless removed by hand).
    if !r.removed_by_control {
        let attempted: BTreeSet<MessageId> =
            r.h.delivered_log.iter().map(|id| id.message_id()).collect();
        for msgid in &r.durable {
            assert!(attempted.contains(msgid), "message {msgid} never delivered");
        }
    }
    // Once everything is delivered the queue is empty and every record removed.
    assert_eq!(r.h.engine.scheduler().len(), 0);
    assert_eq!(
        r.h.engine
            .stats()
            .get("scheduler.envelope")
            .copied()
            .unwrap_or(0),
        0
    );
    assert_eq!(r.h.engine.poll_timeout(), None);
    true
}

#[test]
fn arbitrary_interleavings_answer_every_question_once() {
    QuickCheck::new()
        .tests(500)
        .quickcheck(run as fn(Vec<Op>) -> bool);
}
