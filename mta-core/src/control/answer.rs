//! The daemon's side of the control verbs: what each [`Request`] reads from the engine,
//! feeds to it, or asks of the runtime.

use std::collections::BTreeSet;

use super::{Agent, QueueRow, Request, Response, Status, Submission};
use crate::engine::{Control, Engine};
use crate::queue::{self, EnvelopeId, MessageId};
use crate::scheduler::{Scope, Target};
use crate::time::UnixTime;

/// The subsystems smtpctl(8) can `trace` (`transfer` is the older name of `mta`,
/// outgoing sessions).
pub const TRACE_SUBSYSTEMS: &[&str] = &[
    "imsg",
    "io",
    "smtp",
    "filters",
    "mta",
    "transfer",
    "bounce",
    "scheduler",
    "expand",
    "lookup",
    "stat",
    "rules",
    "mproc",
    "all",
];

/// Something only the runtime can do for a request; it then sends [`Response::Ok`], or
/// the response the effect produced ([`Effect::ShowMessage`], [`Effect::Enqueue`]), or
/// [`Response::Error`] when it failed.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Effect {
    /// Stop accepting new SMTP sessions (`pause smtp`).
    PauseSmtp,
    /// Accept new SMTP sessions again (`resume smtp`).
    ResumeSmtp,
    /// Log verbosely (`log verbose`) or not (`log brief`).
    Verbose(bool),
    /// Trace a subsystem, or stop tracing it; `traces` is the whole set now traced.
    Trace {
        /// Every subsystem traced after this request.
        traces: Vec<String>,
    },
    /// Read this file table again (`update table NAME`).
    UpdateTable(String),
    /// Answer [`Response::Text`] with the lines of this queued message (`show message`).
    ShowMessage(MessageId),
    /// Answer [`Response::Text`] with the relay routes the runtime's router knows, one
    /// per line (`show routes`); the router lives with the runtime's relay agent.
    ShowRoutes,
    /// Answer [`Response::Text`] with the MX hosts the router knows and whether each is
    /// marked broken (`show hosts`).
    ShowHosts,
    /// Queue this locally submitted message as a session from the local enqueuer would,
    /// and answer [`Response::Text`] with the message id, or an error.
    Enqueue(Submission),
}

/// What to do with a request.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Answer {
    /// Send this response.
    Reply(Response),
    /// Feed `Input::Control(control)` to the engine (and perform its actions), then send
    /// [`Response::Ok`].
    Feed(Control),
    /// Perform this effect, then reply as [`Effect`] says.
    Runtime(Effect),
}

/// What the control side remembers between requests: start time, paused parts, log
/// settings. One per daemon.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ControlState {
    started: UnixTime,
    status: Status,
    verbose: bool,
    traces: BTreeSet<String>,
}

impl Request {
    /// True for requests that change the daemon or reveal other users' mail: only root or
    /// the daemon's owner may send them. Anyone may submit mail and read the counters
    /// and the status.
    pub fn needs_privilege(&self) -> bool {
        !matches!(
            self,
            Request::Enqueue(_) | Request::ShowStats | Request::ShowStatus | Request::Monitor
        )
    }
}

impl ControlState {
    /// The state of a daemon started at `started` (for `uptime`), nothing paused.
    pub fn new(started: UnixTime) -> Self {
        ControlState {
            started,
            status: Status::default(),
            verbose: false,
            traces: BTreeSet::new(),
        }
    }

    /// Whether MDA, MTA and SMTP are paused.
    pub fn status(&self) -> Status {
        self.status
    }

    /// What to do with `request` at `now`, reading `engine` for `show` verbs.
    pub fn answer(&mut self, engine: &Engine, request: &Request, now: UnixTime) -> Answer {
        match request {
            Request::ShowQueue => Answer::Reply(Response::Envelopes(
                engine
                    .scheduler()
                    .envelopes()
                    .map(|e| QueueRow::of_queued(e, engine.scheduler().is_held(e.id), now))
                    .collect(),
            )),
            Request::ShowEnvelope(id) => Answer::Reply(show_envelope(engine, *id)),
            Request::ShowMessage(id) => match engine.scheduler().get(*id) {
                Some(e) => Answer::Runtime(Effect::ShowMessage(e.message_id())),
                None => Answer::Reply(no_such(Target::Envelope(*id))),
            },
            Request::ShowStats | Request::Monitor => Answer::Reply(self.stats(engine, now)),
            Request::ShowStatus => Answer::Reply(Response::Status(self.status)),
            Request::ShowRoutes => Answer::Runtime(Effect::ShowRoutes),
            Request::ShowHosts => Answer::Runtime(Effect::ShowHosts),
            Request::Schedule(t) => self.queue_control(engine, *t, Control::Schedule(*t)),
            Request::Remove(t) => self.queue_control(engine, *t, Control::Remove(*t)),
            Request::Pause(agent) => self.pause(*agent, true),
            Request::Resume(agent) => self.pause(*agent, false),
            Request::PauseEnvelope(t) => self.queue_control(engine, *t, Control::Hold(*t)),
            Request::ResumeEnvelope(t) => self.queue_control(engine, *t, Control::Release(*t)),
            Request::LogBrief | Request::LogVerbose => {
                self.verbose = matches!(request, Request::LogVerbose);
                Answer::Runtime(Effect::Verbose(self.verbose))
            }
            Request::Trace(s) | Request::Untrace(s) => {
                if !TRACE_SUBSYSTEMS.contains(&s.as_str()) {
                    return Answer::Reply(Response::Error(format!("invalid trace subsystem: {s}")));
                }
                if matches!(request, Request::Trace(_)) {
                    self.traces.insert(s.clone());
                } else {
                    self.traces.remove(s);
                }
                Answer::Runtime(Effect::Trace {
                    traces: self.traces.iter().cloned().collect(),
                })
            }
            Request::UpdateTable(name) => {
                if engine.config().tables.contains_key(name) {
                    Answer::Runtime(Effect::UpdateTable(name.clone()))
                } else {
                    Answer::Reply(Response::Error(format!("no such table: {name}")))
                }
            }
            Request::Enqueue(sub) => match check_submission(sub) {
                Ok(()) => Answer::Runtime(Effect::Enqueue(sub.clone())),
                Err(e) => Answer::Reply(Response::Error(e)),
            },
        }
    }

    /// The engine's counters, with `uptime` in seconds, sorted by name.
    fn stats(&self, engine: &Engine, now: UnixTime) -> Response {
        let uptime = now.saturating_duration_since(self.started).as_secs();
        let mut stats: Vec<(String, i64)> = engine
            .stats()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        stats.push((
            "uptime".to_owned(),
            i64::try_from(uptime).unwrap_or(i64::MAX),
        ));
        stats.sort();
        Response::Stats(stats)
    }

    fn queue_control(&mut self, engine: &Engine, target: Target, control: Control) -> Answer {
        let scheduler = engine.scheduler();
        let known = match target {
            Target::All => true,
            Target::Envelope(id) => scheduler.get(id).is_some(),
            Target::Message(m) => scheduler.envelopes().any(|e| e.message_id() == m),
        };
        if known {
            Answer::Feed(control)
        } else {
            Answer::Reply(no_such(target))
        }
    }

    fn pause(&mut self, agent: Agent, paused: bool) -> Answer {
        let flag = match agent {
            Agent::Mda => &mut self.status.mda_paused,
            Agent::Mta => &mut self.status.mta_paused,
            Agent::Smtp => &mut self.status.smtp_paused,
        };
        if *flag == paused {
            let state = if paused {
                "already paused"
            } else {
                "already running"
            };
            return Answer::Reply(Response::Error(format!("{} {state}", agent.name())));
        }
        *flag = paused;
        let scope = match agent {
            Agent::Mda => Scope::Local,
            Agent::Mta => Scope::Remote,
            Agent::Smtp if paused => return Answer::Runtime(Effect::PauseSmtp),
            Agent::Smtp => return Answer::Runtime(Effect::ResumeSmtp),
        };
        Answer::Feed(if paused {
            Control::Pause(scope)
        } else {
            Control::Resume(scope)
        })
    }
}

/// The envelope's spool record as lines (`show envelope`).
fn show_envelope(engine: &Engine, id: EnvelopeId) -> Response {
    match engine.scheduler().get(id) {
        Some(e) => Response::Text(
            String::from_utf8_lossy(&queue::encode(e))
                .lines()
                .map(str::to_owned)
                .collect(),
        ),
        None => no_such(Target::Envelope(id)),
    }
}

fn no_such(target: Target) -> Response {
    Response::Error(match target {
        Target::Envelope(id) => format!("no such envelope: {id}"),
        Target::Message(id) => format!("no such message: {id}"),
        Target::All => "no envelope".to_owned(),
    })
}

/// A submission needs a recipient, and addresses without line breaks or angle brackets
/// (they go into SMTP commands, RFC 5321 §4.1.2).
fn check_submission(sub: &Submission) -> Result<(), String> {
    let bad = |a: &str| a.contains(['\r', '\n', '<', '>']) || a.chars().any(char::is_control);
    if sub.recipients.is_empty() {
        return Err("no recipients".to_owned());
    }
    if bad(&sub.sender) {
        return Err(format!("invalid sender: {}", sub.sender.escape_debug()));
    }
    for r in &sub.recipients {
        if r.is_empty() || bad(r) {
            return Err(format!("invalid recipient: {}", r.escape_debug()));
        }
    }
    Ok(())
}
