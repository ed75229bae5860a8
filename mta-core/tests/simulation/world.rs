//! The simulated daemon: the engine, scripted clients, and a runtime whose every effect
//! (lookups, spool writes, deliveries, DNS and connects of relayed mail) is answered by
//! the fault plan, all on a fake clock. Nothing sleeps: the clock jumps to the next event
//! or engine deadline, so days of retries take milliseconds.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use mta_core::engine::{Action, Engine, EngineFacts, Input, PeerAddr, SessionId, SessionInfo};
use mta_core::expand::{Answer, FileLookup, Question as Lookup, UserLookup};
use mta_core::faults::{Fault, FaultCounter, FaultPlan, Verdict};
use mta_core::queue::{self, DeliveryKind, Envelope, EnvelopeId, Failure, MessageId};
use mta_core::scheduler::Outcome;
use mta_core::time::UnixTime;
use smtp_proto::reply::EnhancedStatus;
use smtp_proto::server::ReqId;

use super::client::{Client, Command};
use super::record::{Record, StepKey};
use super::scenario::{Scenario, CONF, USERS};

/// When every run starts.
pub const START: UnixTime = UnixTime::from_secs(1_800_000_000);
/// How long a run may go on in fake time: past the 4-day queue lifetime, so every
/// envelope is delivered, bounced or expired by then.
pub const HORIZON: Duration = Duration::from_secs(6 * 86_400);
/// How many events a run may take before it is declared a livelock.
const MAX_STEPS: u64 = 200_000;
/// How long an effect takes when the plan does not delay it.
const LATENCY: Duration = Duration::from_millis(1);

/// Something that happens at a given time.
#[derive(Debug)]
enum Event {
    /// A client sends its next command.
    Client(usize),
    /// An effect finished: feed its result.
    Feed(Input),
}

/// One run in progress.
pub struct World {
    engine: Engine,
    now: UnixTime,
    faults: FaultCounter,
    events: BTreeMap<(UnixTime, u64), Event>,
    seq: u64,
    clients: Vec<Client>,
    sessions: BTreeMap<SessionId, usize>,
    next_req: u64,
    /// Questions asked and not answered: which client asked.
    asked: BTreeMap<(SessionId, ReqId), usize>,
    /// Incoming messages whose file could not be created: their commit fails.
    unwritable: BTreeSet<MessageId>,
    /// Reports being queued, by their message id.
    reports: BTreeMap<MessageId, mta_core::bounce::Report>,
    last_tick: Option<UnixTime>,
    /// What happened, for the checks.
    pub record: Record,
    /// A line per event when tracing (a failing seed is replayed with it).
    pub trace: Option<Vec<String>>,
}

/// The directory's answer to a lookup (no faults).
pub fn directory(question: &Lookup) -> Answer {
    match question {
        Lookup::User { name } => Answer::User(match USERS.iter().position(|u| u == name) {
            Some(i) => UserLookup::Found {
                uid: 1000 + u32::try_from(i).unwrap(),
                gid: 1000,
                directory: format!("/home/{name}"),
            },
            None => UserLookup::NotFound,
        }),
        Lookup::Forward { user } if user.name == "carol" => {
            Answer::File(FileLookup::Content("bob@example.org\n".into()))
        }
        Lookup::Forward { .. } | Lookup::Include { .. } => Answer::File(FileLookup::Absent),
    }
}

fn failure(class: u8, subject: u16, detail: u16, text: &str) -> Failure {
    Failure {
        status: EnhancedStatus::new(class, subject, detail),
        text: text.to_owned(),
        remote_mta: None,
    }
}

impl World {
    /// A world for `scenario` under `plan` (a zero rate for the clean run).
    pub fn new(scenario: &Scenario, plan: FaultPlan, trace: bool) -> World {
        let config = Arc::new(crate::harness::parse_config(CONF));
        let facts = EngineFacts::new("mx.example.org", scenario.seed);
        let engine = Engine::new(config, facts, START).unwrap();
        let mut world = World {
            engine,
            now: START,
            faults: FaultCounter::new(plan),
            events: BTreeMap::new(),
            seq: 0,
            clients: Vec::new(),
            sessions: BTreeMap::new(),
            next_req: 1,
            asked: BTreeMap::new(),
            unwritable: BTreeSet::new(),
            reports: BTreeMap::new(),
            last_tick: None,
            record: Record::default(),
            trace: trace.then(Vec::new),
        };
        for (i, script) in scenario.sessions.iter().enumerate() {
            world.clients.push(Client::new(i, script.clone()));
            world.at(START.saturating_add(script.start), Event::Client(i));
        }
        world
    }

    fn note(&mut self, line: impl FnOnce() -> String) {
        if let Some(trace) = &mut self.trace {
            let now = self.now.as_millis() - START.as_millis();
            trace.push(format!("{now:>10} {}", line()));
        }
    }

    fn at(&mut self, when: UnixTime, event: Event) {
        self.seq += 1;
        self.events.insert((when.max(self.now), self.seq), event);
    }

    fn after(&mut self, verdict_delay: Duration, event: Event) {
        let when = self.now.saturating_add(LATENCY + verdict_delay);
        self.at(when, event);
    }

    /// Plays the run to its end: every client done and the engine idle, or the horizon.
    /// `Err` on a livelock.
    pub fn run(&mut self) -> Result<(), String> {
        let horizon = START.saturating_add(HORIZON);
        for _ in 0..MAX_STEPS {
            let event_at = self.events.keys().next().map(|(t, _)| *t);
            let tick_at = self.engine.poll_timeout().map(|t| match self.last_tick {
                // Nothing could start at the last tick (limits): wait for an event.
                Some(last) if t <= last => last.saturating_add(Duration::from_millis(1)),
                _ => t,
            });
            let next = match (event_at, tick_at) {
                (None, None) => return Ok(()),
                (Some(e), Some(t)) => e.min(t),
                (Some(e), None) => e,
                (None, Some(t)) => t,
            };
            if next > horizon {
                return Ok(());
            }
            self.now = self.now.max(next);
            if event_at == Some(next) {
                let (_, event) = self.events.pop_first().unwrap();
                match event {
                    Event::Client(i) => self.client_step(i),
                    Event::Feed(input) => self.feed(input),
                }
            } else {
                self.last_tick = Some(self.now);
                self.note(|| "tick".into());
                self.feed(Input::Tick);
            }
        }
        Err(format!("no end after {MAX_STEPS} events (livelock?)"))
    }

    /// Feed one input and carry out the engine's actions.
    fn feed(&mut self, input: Input) {
        if !matches!(input, Input::Tick) {
            self.note(|| format!("feed {input:?}"));
        }
        self.record.observe_input(&input);
        self.engine.handle(input, self.now);
        while let Some(action) = self.engine.poll_action() {
            self.act(action);
        }
    }

    fn client_step(&mut self, i: usize) {
        let Some(command) = self.clients[i].next_command() else {
            return;
        };
        match command {
            Command::Connect => {
                let info = SessionInfo {
                    listener: Some(0),
                    peer: PeerAddr::Inet(
                        format!("192.0.2.{}:4000{}", i % 200 + 1, i % 10)
                            .parse()
                            .unwrap(),
                    ),
                    local: None,
                    rdns: Some("client.example.net".into()),
                    tls: false,
                };
                let sid = self.engine.open_session(info, self.now);
                self.note(|| format!("client {i} connects as {sid}"));
                self.sessions.insert(sid, i);
                self.clients[i].connected(sid);
                while let Some(action) = self.engine.poll_action() {
                    self.act(action);
                }
                self.after(Duration::ZERO, Event::Client(i));
            }
            Command::Ask(question) => {
                let sid = self.clients[i].session();
                let req = ReqId(self.next_req);
                self.next_req += 1;
                self.asked.insert((sid, req), i);
                self.feed(Input::Question {
                    session: sid,
                    req,
                    question,
                });
            }
            Command::End {
                size,
                received_headers,
            } => {
                let sid = self.clients[i].session();
                let req = ReqId(self.next_req);
                self.next_req += 1;
                self.asked.insert((sid, req), i);
                self.feed(Input::EndOfMessage {
                    session: sid,
                    req,
                    size,
                    received_headers,
                });
            }
            Command::Quit => {
                let sid = self.clients[i].session();
                self.feed(Input::SessionClosed { session: sid });
            }
        }
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::Answer {
                session,
                req,
                answer,
            } => {
                let code = answer.reply.code;
                self.note(|| format!("answer {session} {req:?}: {code}"));
                let Some(i) = self.asked.remove(&(session, req)) else {
                    self.record.violation(format!("answer to a question never asked or answered twice: {session} {req:?} {code}"));
                    return;
                };
                let client = &mut self.clients[i];
                let (key, wait) = client.answered(code);
                if let Some(key) = key {
                    self.record.answer(i, key, code);
                    if let (StepKey::End(t), 250) = (key, code) {
                        let accepted = client.last_accepted();
                        if let Some(msgid) = client.open_message() {
                            self.record.accepted(msgid, i, t, accepted);
                        } else {
                            self.record.violation(format!(
                                "client {i}: 250 at end of data without a message"
                            ));
                        }
                    }
                }
                self.after(wait, Event::Client(i));
            }
            Action::Lookup { id, question, .. } => {
                let kind = match question {
                    Lookup::User { .. } => Fault::UserLookup,
                    Lookup::Forward { .. } | Lookup::Include { .. } => Fault::FileLookup,
                };
                let verdict = self.faults.next(kind);
                let answer = match (verdict, &question) {
                    (Verdict::Fail, Lookup::User { .. }) => Answer::User(UserLookup::TempFail),
                    (Verdict::Fail, _) => Answer::File(FileLookup::TempFail),
                    _ => directory(&question),
                };
                self.after(
                    delay_of(verdict),
                    Event::Feed(Input::LookupAnswer { id, answer }),
                );
            }
            Action::CheckPassword { id, .. } => {
                self.after(
                    Duration::ZERO,
                    Event::Feed(Input::PasswordChecked { id, ok: false }),
                );
            }
            Action::OpenMessage { session, msgid, .. } => {
                if let Some(i) = self.sessions.get(&session) {
                    self.clients[*i].opened(msgid);
                }
                if self.faults.next(Fault::SpoolWrite) == Verdict::Fail {
                    self.unwritable.insert(msgid);
                }
            }
            Action::AbortMessage { msgid, .. } => {
                self.unwritable.remove(&msgid);
            }
            Action::CommitMessage {
                msgid, envelopes, ..
            } => {
                let (result, delay) = if self.unwritable.remove(&msgid) {
                    (Err("spool create failed".to_owned()), Duration::ZERO)
                } else {
                    let verdict = self.faults.next(Fault::SpoolWrite);
                    let result = if verdict == Verdict::Fail {
                        Err("commit failed".to_owned())
                    } else {
                        Ok(())
                    };
                    (result, delay_of(verdict))
                };
                if result.is_ok() {
                    let decoded: Vec<Envelope> = envelopes
                        .iter()
                        .map(|(id, bytes)| {
                            let e = queue::decode(bytes).unwrap();
                            assert_eq!(e.id, *id);
                            e
                        })
                        .collect();
                    self.record.durable(msgid, decoded);
                }
                self.after(delay, Event::Feed(Input::Committed { msgid, result }));
            }
            Action::Deliver(envelope) => self.deliver(envelope),
            Action::UpdateEnvelope(envelope) => self.record.updated(&envelope),
            Action::RemoveEnvelope(id) => self.record.removed(id),
            Action::QueueBounce {
                report,
                msgid,
                envelopes,
            } => {
                let verdict = self.faults.next(Fault::SpoolWrite);
                let result = if verdict == Verdict::Fail {
                    Err("report commit failed".to_owned())
                } else {
                    self.record.report_written(msgid, &report, envelopes);
                    Ok(())
                };
                self.reports.insert(msgid, report);
                self.after(
                    delay_of(verdict),
                    Event::Feed(Input::BounceQueued { msgid, result }),
                );
            }
            Action::Log(line) => self.note(|| line),
        }
    }

    /// One delivery attempt: local mailboxes (dave's refuses for good), or the remote MX
    /// of remote.test (refusing `reject@`, deferring `defer@`), behind the plan's faults.
    fn deliver(&mut self, envelope: Envelope) {
        let id: EnvelopeId = envelope.id;
        if !self.record.start_delivery(id) {
            return;
        }
        let local_part = envelope
            .recipient
            .split('@')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let (verdicts, outcome) = match &envelope.delivery {
            DeliveryKind::Local { .. } => {
                let v = self.faults.next(Fault::Delivery);
                let outcome = if local_part == "dave" {
                    Outcome::PermFail(failure(5, 2, 1, "mailbox disabled"))
                } else {
                    Outcome::Delivered
                };
                (vec![v], outcome)
            }
            DeliveryKind::Relay { .. } => {
                let dns = self.faults.next(Fault::DnsQuery);
                let connect = if dns == Verdict::Fail {
                    Verdict::Proceed
                } else {
                    self.faults.next(Fault::Connect)
                };
                let outcome = match local_part.as_str() {
                    "reject" => Outcome::PermFail(failure(5, 1, 1, "550 no such mailbox")),
                    "defer" => Outcome::TempFail(failure(4, 2, 2, "452 mailbox full")),
                    _ => Outcome::Delivered,
                };
                (vec![dns, connect], outcome)
            }
        };
        let failed = verdicts.contains(&Verdict::Fail);
        let outcome = if failed {
            Outcome::TempFail(failure(4, 4, 1, "monkey: injected temporary failure"))
        } else {
            outcome
        };
        let delay = verdicts.iter().map(|v| delay_of(*v)).sum();
        self.after(delay, Event::Feed(Input::DeliveryResult { id, outcome }));
    }

    /// The engine, for the final state of its queue.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The time the run ended.
    pub fn now(&self) -> UnixTime {
        self.now
    }

    /// Whether every client finished its script.
    pub fn clients_done(&self) -> bool {
        self.clients.iter().all(Client::done)
    }
}

fn delay_of(verdict: Verdict) -> Duration {
    match verdict {
        Verdict::Delay(d) => d,
        _ => Duration::ZERO,
    }
}
