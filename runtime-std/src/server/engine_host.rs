//! The engine behind a mutex, and the effects of its actions.
//!
//! Any thread may [`EngineHost::feed`] an input. Under the lock the engine handles it and
//! its actions are drained: whatever is addressed to a session is pushed to that
//! session's [`Mailbox`] at once (so a session sees the engine's order), log lines and
//! the other effects are collected. After the lock is released the effects run: lookups
//! whose answer is known from the last seconds at once on the feeding thread (their
//! answers are fed back in the same call), the others on lookup threads,
//! deliveries on the [`DeliveryPool`], envelope updates, removals and bounces on spool
//! threads, one per message shard, in the engine's order within a message (a removal must
//! never overtake the update or the report before it).

mod control_access;
mod lookups;

pub use lookups::{known_answer, lookup};

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mta_core::bounce::{self, BounceContext, Report};
use mta_core::engine::{Action, Engine, Input, LocalMethodSpec, PeerAddr, SessionId, SessionInfo};
use mta_core::faults::Fault;
use mta_core::queue::{self, DeliveryKind, Envelope, EnvelopeId, Failure, MessageId};
use mta_core::scheduler::Outcome;
use mta_core::time::UnixTime;
use smtp_proto::reply::EnhancedStatus;
use smtp_proto::server::{Question, ReqId};

use super::conn::{AfterAnswer, SessionBackend};
use super::delivery_worker::{deliver_local, DeliveryPool, LocalJob};
use super::fork_server::serve::routes_to_agent;
use super::fork_server::{DeliveryDone, ForkServer};
use super::log::Log;
use super::mailbox::{Mailbox, Note};
use crate::delivery::DeliveryOutcome;
use crate::relay::{RelayAgent, RelayJob, ReportFn};
use crate::spool::{GroupCommitter, Spool};

/// Spool threads; the effects of one message always go to the same thread, in order.
const SPOOL_THREADS: usize = 8;
/// Threads for the lookups whose answer is not known yet.
const LOOKUP_THREADS: usize = 4;

/// The wall clock as the engine counts it.
pub fn unix_now() -> UnixTime {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    UnixTime::from_millis(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

/// 64 bits from the kernel's random source (for seeds), or from the clock if it fails.
pub fn os_seed() -> u64 {
    let mut seed = [0u8; 8];
    // SAFETY: getrandom writes at most 8 bytes into the buffer we own.
    let n = unsafe { libc::getrandom(seed.as_mut_ptr().cast(), seed.len(), 0) };
    if n == 8 {
        u64::from_le_bytes(seed)
    } else {
        unix_now().as_millis() ^ u64::from(std::process::id()).rotate_left(32)
    }
}

/// An effect kept for the spool thread, in the engine's order.
enum SpoolWork {
    Update(Box<Envelope>),
    Remove(EnvelopeId),
    Bounce {
        report: Report,
        msgid: MessageId,
        envelopes: Vec<Envelope>,
    },
}

/// The engine and the sessions' mailboxes, under one lock.
struct Core {
    engine: Engine,
    mailboxes: HashMap<SessionId, Arc<Mailbox>>,
}

/// The shared engine and the runtime's effect executors. Create with
/// [`EngineHost::start`]; it implements [`SessionBackend`] for the connection threads.
pub struct EngineHost {
    core: Mutex<Core>,
    /// Wakes the timer thread when the engine's deadline moved before the one it waits for.
    timer_wake: Condvar,
    /// The engine time (ms) the timer thread waits for; 0: it wants no wake-up. Written
    /// and compared under the engine lock, so a change is never missed.
    timer_armed: AtomicU64,
    spool: Spool,
    committer: GroupCommitter,
    pool: DeliveryPool,
    /// Where lookups whose answer is not known run ([`lookups`]).
    lookups: DeliveryPool,
    /// Where deliveries run when the daemon is root (see [`ForkServer`]).
    forker: Option<Arc<ForkServer>>,
    spool_work: Vec<Mutex<Sender<SpoolWork>>>,
    log: Log,
    hostname: String,
    myself: Weak<EngineHost>,
    /// The relay agent, started with the first relayed envelope (`None`: it could not be).
    relay: OnceLock<Option<RelayAgent>>,
    /// Envelopes taken out of the spool as their delivery ended ([`EngineHost::delivered`]),
    /// whose removal the engine asks for next: no spool thread need wake to find them gone.
    removed_early: Mutex<HashSet<EnvelopeId>>,
}

/// The most envelopes [`EngineHost::removed_early`] remembers; past it, it starts over
/// (forgetting one only costs a removal that finds nothing).
const MAX_REMOVED_EARLY: usize = 65_536;

impl EngineHost {
    /// Wrap `engine`, start the spool threads and the timer thread. With `forker`, local
    /// deliveries run in children of the fork server, else in this process (which then
    /// runs as the delivering user already, so no fork is needed).
    ///
    /// # Errors
    ///
    /// When a thread cannot be started.
    pub fn start(
        engine: Engine,
        spool: Spool,
        committer: GroupCommitter,
        pool: DeliveryPool,
        forker: Option<Arc<ForkServer>>,
        log: Log,
        hostname: String,
    ) -> std::io::Result<Arc<EngineHost>> {
        let lookups = DeliveryPool::start_named("lookup", LOOKUP_THREADS)?;
        let mut senders = Vec::new();
        let mut receivers = Vec::new();
        for _ in 0..SPOOL_THREADS {
            let (tx, rx) = channel();
            senders.push(Mutex::new(tx));
            receivers.push(rx);
        }
        let host = Arc::new_cyclic(|myself| EngineHost {
            core: Mutex::new(Core {
                engine,
                mailboxes: HashMap::new(),
            }),
            timer_wake: Condvar::new(),
            timer_armed: AtomicU64::new(u64::MAX),
            spool,
            committer,
            pool,
            lookups,
            forker,
            spool_work: senders,
            log,
            hostname,
            myself: myself.clone(),
            relay: OnceLock::new(),
            removed_early: Mutex::new(HashSet::new()),
        });
        for (n, rx) in receivers.into_iter().enumerate() {
            let weak = Arc::downgrade(&host);
            std::thread::Builder::new()
                .name(format!("spool-{n}"))
                .spawn(move || spool_thread(&weak, &rx))?;
        }
        let weak = Arc::downgrade(&host);
        std::thread::Builder::new()
            .name("timer".to_owned())
            .spawn(move || timer_thread(&weak))?;
        Ok(host)
    }

    /// Feed `input` (and every input its effects produce at once) to the engine and carry
    /// out the actions.
    pub fn feed(&self, input: Input) {
        if let Some((effects, lines)) = self.step(input) {
            self.carry_out(effects, lines);
        }
    }

    /// Give `input` to the engine and route its actions (answers go to their sessions'
    /// mailboxes at once): the effects and log lines left to carry out. `None` when the
    /// engine is gone (its lock poisoned).
    fn step(&self, input: Input) -> Option<(Vec<Action>, Vec<String>)> {
        let mut effects = Vec::new();
        let mut lines = Vec::new();
        let wake_timer;
        {
            let mut core = self.core.lock().ok()?;
            core.engine.handle(input, unix_now());
            while let Some(action) = core.engine.poll_action() {
                super::trace::engine_action(&self.log, core.engine.config(), &action);
                route(&mut core, action, &mut effects, &mut lines);
            }
            super::trace::stats(&self.log, &core.engine);
            // Most inputs leave the deadline where it was: wake the timer thread only
            // when it must act sooner than it planned to.
            wake_timer = core
                .engine
                .poll_timeout()
                .is_some_and(|at| at.as_millis() < self.timer_armed.load(Ordering::Relaxed));
        }
        if wake_timer {
            self.timer_wake.notify_one();
        }
        Some((effects, lines))
    }

    /// Log `lines` and carry out `effects`, then feed every input they produce at once.
    fn carry_out(&self, effects: Vec<Action>, lines: Vec<String>) {
        let mut pending = VecDeque::new();
        let mut next = Some((effects, lines));
        while let Some((effects, lines)) = next {
            for line in lines {
                self.log.info(&line);
            }
            for effect in effects {
                if let Some(input) = self.perform(effect) {
                    pending.push_back(input);
                }
            }
            next = pending.pop_front().and_then(|input| self.step(input));
        }
    }

    /// Carry out one effect; returns the input it produced at once, if any.
    fn perform(&self, action: Action) -> Option<Input> {
        match action {
            Action::Lookup { id, question, .. } => {
                if let Some(answer) = known_answer(&question) {
                    let answer = super::trace::lookup(&self.log, &question, answer);
                    return Some(Input::LookupAnswer { id, answer });
                }
                // Not known: looked up on a lookup thread, so that the caller (a session
                // asking about a recipient) never waits on the system here.
                let myself = self.myself.clone();
                self.lookups.spawn(move || {
                    if let Some(host) = myself.upgrade() {
                        let answer = super::trace::lookup(&host.log, &question, lookup(&question));
                        host.feed(Input::LookupAnswer { id, answer });
                    }
                });
                None
            }
            Action::CheckPassword {
                id,
                user,
                hash,
                password,
            } => {
                self.check_password(id, user, hash, password);
                None
            }
            Action::Deliver(envelope) => {
                self.deliver(envelope);
                None
            }
            Action::UpdateEnvelope(envelope) => {
                self.spool_later(SpoolWork::Update(Box::new(envelope)));
                None
            }
            Action::RemoveEnvelope(id) => {
                let done = self
                    .removed_early
                    .lock()
                    .is_ok_and(|mut removed| removed.remove(&id));
                if !done {
                    self.spool_later(SpoolWork::Remove(id));
                }
                None
            }
            Action::QueueBounce {
                report,
                msgid,
                envelopes,
            } => {
                self.spool_later(SpoolWork::Bounce {
                    report,
                    msgid,
                    envelopes,
                });
                None
            }
            Action::Log(line) => {
                self.log.info(&line);
                None
            }
            Action::Answer { .. }
            | Action::OpenMessage { .. }
            | Action::AbortMessage { .. }
            | Action::CommitMessage { .. } => None,
        }
    }

    /// Queue a spool effect on the thread of its message: a report goes with the
    /// message it reports on, so it is written before that message's envelopes go.
    fn spool_later(&self, work: SpoolWork) {
        let message = match &work {
            SpoolWork::Update(envelope) => envelope.message_id(),
            SpoolWork::Remove(id) => id.message_id(),
            SpoolWork::Bounce { report, .. } => report.message,
        };
        let shard = usize::try_from(message.get()).unwrap_or(0) % SPOOL_THREADS;
        if let Some(Ok(tx)) = self.spool_work.get(shard).map(Mutex::lock) {
            let _ = tx.send(work);
        }
    }

    /// Hand an envelope to the delivery pool; its result comes back as an input.
    fn deliver(&self, envelope: Envelope) {
        let id = envelope.id;
        let job = match &envelope.delivery {
            DeliveryKind::Local { user, method } => match LocalMethodSpec::parse(user, method) {
                Ok(spec) => LocalJob {
                    msgid: envelope.message_id().to_string(),
                    sender: envelope.sender.clone().unwrap_or_default(),
                    recipient: envelope.recipient.clone(),
                    user: spec.user,
                    method: spec.method,
                    hostname: self.hostname.clone(),
                },
                Err(e) => {
                    let outcome = perm_fail(&format!("unreadable delivery method: {e}"));
                    self.feed_later(Input::DeliveryResult { id, outcome });
                    return;
                }
            },
            DeliveryKind::Relay { .. } => {
                self.relay(&envelope);
                return;
            }
        };
        let myself = self.myself.clone();
        let report: DeliveryDone = Box::new(move |outcome| {
            let outcome = to_outcome(outcome);
            if let Some(host) = myself.upgrade() {
                host.delivered(id, &outcome);
                host.feed(Input::DeliveryResult { id, outcome });
            }
        });
        // Not inside deliver_local: fork-server children would each start from a copy of
        // the same fault counters.
        if let Some(reason) = crate::monkey::strike(Fault::Delivery) {
            self.pool
                .spawn(move || report(DeliveryOutcome::TempFail(reason)));
            return;
        }
        let spool = self.spool.clone();
        let Some(forker) = self.forker.clone() else {
            self.pool.spawn(move || report(deliver_local(&spool, &job)));
            return;
        };
        // A maildir agent takes many deliveries at once: sent from here, no thread waits.
        let report = if routes_to_agent(&job) {
            match forker.try_deliver_then(&job, report) {
                Ok(()) => return,
                Err(report) => report,
            }
        } else {
            report
        };
        self.pool.spawn(move || report(forker.deliver(&job)));
    }

    /// A delivery finished: when it succeeded, take its envelope out of the spool at once
    /// on this thread, before the engine hears of it and before the spool work queued
    /// ahead, so that a crash from now on does not deliver it again. (The engine's own
    /// removal then finds it gone; an update still queued for it never brings it back.)
    fn delivered(&self, id: EnvelopeId, outcome: &Outcome) {
        if matches!(outcome, Outcome::Delivered) {
            let msgid = id.message_id().to_string();
            match self.spool.remove_envelope(&msgid, &id.to_string()) {
                Ok(_) => {
                    if let Ok(mut removed) = self.removed_early.lock() {
                        if removed.len() >= MAX_REMOVED_EARLY {
                            removed.clear();
                        }
                        removed.insert(id);
                    }
                }
                Err(e) => self
                    .log
                    .debug(&format!("queue: early removal of envelope {id}: {e}")),
            }
        }
    }

    /// Check an AUTH password on a thread of its own: a crypt(3) hash costs milliseconds
    /// (bcrypt far more), which must not hold the engine lock, a delivery thread or
    /// another session. The connection thread delays a refusal (`auth::FAILURE_DELAY`).
    fn check_password(
        &self,
        id: mta_core::engine::LookupId,
        user: String,
        hash: Option<String>,
        password: bytes::Bytes,
    ) {
        let myself = self.myself.clone();
        let spawned = std::thread::Builder::new()
            .name("auth".to_owned())
            .spawn(move || {
                let ok = crate::auth::check(&user, hash.as_deref(), &password);
                if let Some(host) = myself.upgrade() {
                    super::trace::credentials(&host.log, &user, hash.is_some(), ok);
                    host.feed(Input::PasswordChecked { id, ok });
                }
            });
        if let Err(e) = spawned {
            self.log
                .warn(&format!("smtp-in: cannot check a password: {e}"));
            self.feed_later(Input::PasswordChecked { id, ok: false });
        }
    }

    /// Hand a relayed envelope to the relay agent (started at the first one); its result
    /// comes back as an input.
    fn relay(&self, envelope: &Envelope) {
        let id = envelope.id;
        let Some(config) = self.core.lock().ok().map(|c| Arc::clone(c.engine.config())) else {
            return;
        };
        let agent = self.relay.get_or_init(|| {
            let myself = self.myself.clone();
            let report: ReportFn = Arc::new(move |id, outcome| {
                if let Some(host) = myself.upgrade() {
                    host.delivered(id, &outcome);
                    host.feed(Input::DeliveryResult { id, outcome });
                }
            });
            let started = RelayAgent::start(
                &config,
                &self.hostname,
                self.spool.clone(),
                self.log.clone(),
                report,
            );
            started
                .map_err(|e| {
                    self.log
                        .warn(&format!("smtp-out: cannot start relaying: {e}"))
                })
                .ok()
        });
        let job = RelayJob::for_envelope(envelope, &config, &self.hostname);
        match (agent, job) {
            (Some(agent), Ok(job)) => agent.submit(job),
            (_, Err(outcome)) => self.feed_later(Input::DeliveryResult { id, outcome }),
            (None, Ok(_)) => {
                let outcome = Outcome::TempFail(Failure {
                    status: EnhancedStatus::new(4, 3, 0),
                    text: "relaying could not be started".to_owned(),
                    remote_mta: None,
                });
                self.feed_later(Input::DeliveryResult { id, outcome });
            }
        }
    }

    /// Feed an input from a pool thread, never from inside the current drain.
    fn feed_later(&self, input: Input) {
        let myself = self.myself.clone();
        self.pool.spawn(move || {
            if let Some(host) = myself.upgrade() {
                host.feed(input);
            }
        });
    }

    fn spool_effect(&self, work: SpoolWork) -> Option<Input> {
        match work {
            SpoolWork::Update(envelope) => {
                let msgid = envelope.message_id().to_string();
                let evpid = envelope.id.to_string();
                if let Err(e) =
                    self.spool
                        .update_envelope(&msgid, &evpid, &queue::encode(&envelope))
                {
                    self.log
                        .warn(&format!("queue: cannot update envelope {evpid}: {e}"));
                }
                None
            }
            SpoolWork::Remove(id) => {
                let msgid = id.message_id().to_string();
                let evpid = id.to_string();
                // With its last envelope the message goes too.
                if let Err(e) = self.spool.remove_envelope(&msgid, &evpid) {
                    self.log
                        .warn(&format!("queue: cannot remove envelope {evpid}: {e}"));
                }
                None
            }
            SpoolWork::Bounce {
                report,
                msgid,
                envelopes,
            } => {
                let result = self.queue_bounce(&report, msgid, &envelopes);
                if let Err(reason) = &result {
                    self.log
                        .warn(&format!("queue: cannot queue report {msgid}: {reason}"));
                }
                Some(Input::BounceQueued { msgid, result })
            }
        }
    }

    /// Write the report of `report` as message `msgid` with its envelopes, durably.
    fn queue_bounce(
        &self,
        report: &Report,
        msgid: MessageId,
        envelopes: &[Envelope],
    ) -> Result<(), String> {
        let mut original = Vec::new();
        let limit = u64::try_from(bounce::MAX_RETURNED_MESSAGE)
            .unwrap_or(u64::MAX)
            .saturating_add(1024 * 1024);
        self.spool
            .read_message(&report.message.to_string())
            .and_then(|file| file.take(limit).read_to_end(&mut original))
            .map_err(|e| format!("read original: {e}"))?;
        let ctx = BounceContext {
            hostname: &self.hostname,
            now: unix_now(),
            seed: os_seed(),
        };
        let text = bounce::compose(report, &ctx, &original);
        let mut message = self
            .spool
            .create_incoming(&msgid.to_string())
            .map_err(|e| format!("create: {e}"))?;
        message
            .write_chunk(&text)
            .map_err(|e| format!("write: {e}"))?;
        for envelope in envelopes {
            message
                .add_envelope(&envelope.id.to_string(), &queue::encode(envelope))
                .map_err(|e| format!("envelope: {e}"))?;
        }
        self.committer
            .commit(message)
            .map_err(|e| format!("commit: {e}"))
    }

    /// How many sessions the engine knows.
    pub fn session_count(&self) -> usize {
        self.core
            .lock()
            .map(|c| c.engine.session_count())
            .unwrap_or(0)
    }
}

/// Send a session-addressed action to its mailbox; keep the rest for after the lock.
fn route(core: &mut Core, action: Action, effects: &mut Vec<Action>, lines: &mut Vec<String>) {
    let (session, note) = match action {
        Action::Answer {
            session,
            req,
            answer,
        } => (session, Note::Answer(req, answer)),
        Action::OpenMessage {
            session,
            msgid,
            header,
        } => (
            session,
            Note::Open {
                msgid: msgid.to_string(),
                header: header.to_vec(),
            },
        ),
        Action::CommitMessage {
            session,
            msgid,
            envelopes,
        } => (
            session,
            Note::Commit {
                msgid: msgid.to_string(),
                envelopes: envelopes
                    .into_iter()
                    .map(|(id, record)| (id.to_string(), record))
                    .collect(),
            },
        ),
        Action::AbortMessage { session, msgid } => (
            session,
            Note::Abort {
                msgid: msgid.to_string(),
            },
        ),
        Action::Log(line) => {
            lines.push(line);
            return;
        }
        other => {
            effects.push(other);
            return;
        }
    };
    if let Some(mailbox) = core.mailboxes.get(&session) {
        mailbox.push(note);
    }
}

impl SessionBackend for EngineHost {
    fn open(
        &self,
        peer: SocketAddr,
        local: SocketAddr,
        listener: usize,
        mailbox: Arc<Mailbox>,
    ) -> u64 {
        let info = SessionInfo {
            listener: Some(listener),
            peer: PeerAddr::Inet(peer),
            local: Some(local),
            rdns: None,
            tls: false,
        };
        self.open_session(info, mailbox)
    }

    fn question(&self, session: u64, req: ReqId, question: Question, received_headers: usize) {
        let session = SessionId(session);
        let input = match question {
            Question::EndOfMessage { size } => Input::EndOfMessage {
                session,
                req,
                size,
                received_headers,
            },
            question => Input::Question {
                session,
                req,
                question,
            },
        };
        self.feed(input);
    }

    fn tls(&self, session: u64, protocol: String, cipher: String) {
        self.feed(Input::SessionTls {
            session: SessionId(session),
            protocol,
            cipher,
        });
    }

    fn body_aborted(&self, session: u64) {
        self.feed(Input::BodyAborted {
            session: SessionId(session),
        });
    }

    fn committed(&self, session: u64, msgid: &str, result: Result<(), String>) {
        drop(self.committed_answer_first(session, msgid, result));
    }

    fn committed_answer_first(
        &self,
        _session: u64,
        msgid: &str,
        result: Result<(), String>,
    ) -> AfterAnswer {
        let Ok(msgid) = msgid.parse::<MessageId>() else {
            self.log
                .warn(&format!("smtp-in: commit of unknown message {msgid}"));
            return AfterAnswer::none();
        };
        let Some((effects, lines)) = self.step(Input::Committed { msgid, result }) else {
            return AfterAnswer::none();
        };
        let myself = self.myself.clone();
        AfterAnswer::new(Box::new(move || {
            if let Some(host) = myself.upgrade() {
                host.carry_out(effects, lines);
            }
        }))
    }

    fn closed(&self, session: u64) {
        let session = SessionId(session);
        if let Ok(mut core) = self.core.lock() {
            core.mailboxes.remove(&session);
        }
        self.feed(Input::SessionClosed { session });
    }
}

impl EngineHost {
    /// Registers a session described by `info` whose notes go to `mailbox`; returns its
    /// id (0 when the engine is unavailable).
    fn open_session(&self, info: SessionInfo, mailbox: Arc<Mailbox>) -> u64 {
        let mut lines = Vec::new();
        let id = {
            let Ok(mut core) = self.core.lock() else {
                return 0;
            };
            let id = core.engine.open_session(info, unix_now());
            core.mailboxes.insert(id, mailbox);
            let mut effects = Vec::new();
            while let Some(action) = core.engine.poll_action() {
                route(&mut core, action, &mut effects, &mut lines);
            }
            // Opening a session asks for nothing but log lines; keep any effect anyway.
            for effect in effects {
                let _ = self.perform_later(effect);
            }
            id
        };
        for line in lines {
            self.log.info(&line);
        }
        id.0
    }

    /// Queue an effect found while the lock was held, to run on a pool thread.
    fn perform_later(&self, action: Action) -> Option<()> {
        let myself = self.myself.clone();
        self.pool.spawn(move || {
            if let Some(host) = myself.upgrade() {
                if let Some(input) = host.perform(action) {
                    host.feed(input);
                }
            }
        });
        Some(())
    }
}

/// A delivery agent's outcome as the scheduler takes it.
fn to_outcome(outcome: DeliveryOutcome) -> Outcome {
    match outcome {
        DeliveryOutcome::Delivered => Outcome::Delivered,
        DeliveryOutcome::TempFail(text) => Outcome::TempFail(Failure {
            status: EnhancedStatus::new(4, 0, 0),
            text,
            remote_mta: None,
        }),
        DeliveryOutcome::PermFail(text) => perm_fail(&text),
    }
}

fn perm_fail(text: &str) -> Outcome {
    Outcome::PermFail(Failure {
        status: EnhancedStatus::new(5, 0, 0),
        text: text.to_owned(),
        remote_mta: None,
    })
}

fn spool_thread(host: &Weak<EngineHost>, work: &Receiver<SpoolWork>) {
    while let Ok(item) = work.recv() {
        let Some(host) = host.upgrade() else {
            return;
        };
        if let Some(input) = host.spool_effect(item) {
            host.feed(input);
        }
    }
}

fn timer_thread(host: &Weak<EngineHost>) {
    loop {
        let Some(host) = host.upgrade() else {
            return;
        };
        let due = {
            let Ok(core) = host.core.lock() else {
                return;
            };
            let now = unix_now();
            let deadline = core.engine.poll_timeout();
            let wait = match deadline {
                Some(deadline) => deadline.saturating_duration_since(now),
                None => Duration::from_secs(1),
            };
            if wait.is_zero() {
                true
            } else {
                let wait = wait.min(Duration::from_secs(1));
                let armed = now
                    .as_millis()
                    .saturating_add(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX));
                host.timer_armed.store(armed, Ordering::Relaxed);
                let _ = host.timer_wake.wait_timeout(core, wait);
                false
            }
        };
        if due {
            host.feed(Input::Tick);
            let stuck = host.core.lock().ok().is_some_and(|core| {
                let stuck = core
                    .engine
                    .poll_timeout()
                    .is_some_and(|deadline| deadline <= unix_now());
                if stuck {
                    // Asking for no wake-up while the deadline stays in the past.
                    host.timer_armed.store(0, Ordering::Relaxed);
                }
                stuck
            });
            if stuck {
                // The engine has nothing it can start now (limits); do not spin.
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}
