//! The engine: the one machine that answers every server session's questions and conducts
//! the queue.
//!
//! It composes the [rules](crate::rules), the [expander](crate::expand), the
//! [queue model](crate::queue), the [scheduler](crate::scheduler) and
//! [bounces](crate::bounce). The runtime keeps one `Engine` (behind a lock when sessions
//! run on several threads) and:
//! - calls [`Engine::open_session`] for each new connection and forwards each session's
//!   `Ask(ReqId, Question)` as [`Input::Question`] (`EndOfMessage` as
//!   [`Input::EndOfMessage`], with the `Received:` count of [`ReceivedCounter`]);
//! - drains [`Engine::poll_action`] after every [`Engine::handle`] and performs each
//!   [`Action`]: answers go back to their session, lookups, commits and deliveries are
//!   performed and their results fed back as inputs;
//! - feeds [`Input::Tick`] at [`Engine::poll_timeout`].
//!
//! Every answer is asynchronous: a question is answered by an [`Action::Answer`] that may
//! come after other inputs (lookups, commits), and every question gets exactly one answer
//! as long as its session is open. Body bytes never pass through the engine: it composes
//! the `Received:` header at `DataStart` ([`Action::OpenMessage`]) and the runtime streams
//! the body into the incoming file itself. A message is answered `250` only after the
//! runtime confirms [`Action::CommitMessage`] with [`Input::Committed`] (RFC 5321 §6.1:
//! the server takes responsibility only once the message is safe).
//!
//! **Logs** ([`Action::Log`]) follow OpenSMTPD's wording, one line per event:
//! `smtp-in: session SID: connected from HOST [IP]:PORT`,
//! `smtp-in: session SID: failed-command command="RCPT TO:<...>" result="550 ..."`,
//! `smtp-in: session SID: message accepted: msgid=... from=<...> size=... nrcpt=...
//! proto=ESMTP`, `delivery: Ok|TempFail|PermFail for EVPID: from=<...>, to=<...>,
//! user=..., method=..., delay=Ns, stat=...`, and `queue: ...` lines for deferrals,
//! expiries and reports. Session ids are 16 hex digits, message ids 8, envelope ids 16.
//!
//! **Statistics** ([`Engine::stats`], every key listed with its meaning in
//! [`STAT_KEYS`], all present from the start) use OpenSMTPD's names:
//! - gauges: `smtp.session` and `smtp.session.inet4|inet6|local` (open sessions),
//!   `scheduler.envelope` (queued envelopes), `scheduler.envelope.incoming` (envelopes
//!   of messages and reports being committed), `scheduler.envelope.inflight` (being
//!   delivered), `mda.envelope` and `mta.envelope` (local and relayed deliveries in
//!   flight);
//! - counters: `smtp.tls` (STARTTLS handshakes), `smtp.smtps` (handshakes on smtps
//!   listeners), `smtp.message` (messages accepted), `smtp.loop` (refused for too many
//!   `Received:`), `scheduler.delivery.ok|tempfail|permfail|loop` (delivery results,
//!   `loop` for a permanent 5.4.6), `scheduler.delivery.expired` and
//!   `scheduler.envelope.expired` (both count expiries), `scheduler.envelope.removed`
//!   (`smtpctl remove`), `queue.bounce` (reports queued);
//! - counters of ours where OpenSMTPD's `monitor` derives the figure from a gauge's ups and
//!   downs: `smtp.session.new` and `smtp.session.closed` (sessions opened and closed),
//!   `scheduler.envelope.enqueued` and `scheduler.envelope.dequeued` (envelopes that
//!   entered and left the queue).
//!
//! **Holds.** [`Control::Hold`] (`smtpctl pause envelope`) keeps envelopes from being
//! tried (and from expiring) until [`Control::Release`]; see [`Scheduler::is_held`].

mod action;
mod decoy;
mod delivery;
mod input;
mod log;
mod method;
mod received;
mod session;
mod stats;
mod transaction;

#[cfg(test)]
mod tests;

pub use action::Action;
pub use input::{Control, EffectResult, Input, LookupId, PeerAddr, SessionId, SessionInfo};
pub use method::{LocalMethodSpec, MethodSpecError};
pub use received::ReceivedCounter;
pub use stats::{StatKey, StatKind, STAT_KEYS};

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use crate::config::Config;
use crate::queue::{EnvelopeId, MessageId, SplitMix64};
use crate::rules::{LocalFacts, RuleError, Ruleset};
use crate::scheduler::{Scheduler, SchedulerConfig};
use crate::time::UnixTime;

use session::Session;
use transaction::{Commit, LookupOwner};

/// The name the engine gives itself in `Received:` headers (`by HOST (NAME)`), as
/// OpenSMTPD writes `(OpenSMTPD)`.
pub const SOFTWARE_NAME: &str = "smtpd-rs";

/// What the engine knows about the machine it runs on, from the runtime.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct EngineFacts {
    /// This host's name: the default banner and `Received: by` name, and the name bounces
    /// come from.
    pub hostname: String,
    /// Local domains and addresses (`for local`, `from local`).
    pub local: LocalFacts,
    /// Seed of the id generator (from OS entropy in a runtime, fixed in a test).
    pub seed: u64,
    /// Scheduler limits and retry policies; `queue ttl` and `bounce warn-interval` of the
    /// configuration override its expiry and warnings.
    pub scheduler: SchedulerConfig,
}

impl EngineFacts {
    /// Facts for host `hostname` with `seed`: the host name and `localhost` as local
    /// domains, default scheduler limits.
    pub fn new(hostname: &str, seed: u64) -> Self {
        EngineFacts {
            hostname: hostname.to_owned(),
            local: LocalFacts {
                domains: vec![hostname.to_owned(), "localhost".to_owned()],
                addresses: Vec::new(),
            },
            seed,
            scheduler: SchedulerConfig::default(),
        }
    }
}

/// A configuration the engine cannot run with.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// A match rule cannot be compiled.
    #[error("invalid rule: {0}")]
    Rule(#[from] RuleError),
}

/// The engine machine (see the module documentation). Verbs: [`Engine::open_session`],
/// [`Engine::handle`], [`Engine::poll_action`], [`Engine::poll_timeout`], and `&self`
/// getters ([`Engine::stats`], [`Engine::scheduler`]).
#[derive(Debug)]
pub struct Engine {
    config: Arc<Config>,
    ruleset: Arc<Ruleset>,
    facts: EngineFacts,
    rng: SplitMix64,
    sessions: BTreeMap<SessionId, Session>,
    /// Outstanding lookups and password checks, by id.
    lookups: BTreeMap<LookupId, LookupOwner>,
    next_lookup: u64,
    /// Messages being received or committed (their ids are taken).
    incoming: BTreeMap<MessageId, SessionId>,
    /// Messages whose commit was asked and not yet confirmed.
    commits: BTreeMap<MessageId, Commit>,
    /// Reports being prepared or queued, by their own message id.
    reports: BTreeMap<MessageId, delivery::Outgoing>,
    /// Reported envelopes whose removal waits until their report is queued.
    held: BTreeMap<EnvelopeId, MessageId>,
    /// Queued envelopes per message (their ids are taken).
    queued: BTreeMap<MessageId, usize>,
    scheduler: Scheduler,
    /// The runtime said the spool has no room: new transactions are refused for now.
    spool_full: bool,
    actions: VecDeque<Action>,
    stats: stats::Stats,
}

impl Engine {
    /// An engine for `config` on the machine described by `facts`, started at `now` (it
    /// sets no timer until envelopes are queued).
    ///
    /// # Errors
    /// [`EngineError`] when the rules of `config` cannot be compiled.
    pub fn new(
        config: Arc<Config>,
        facts: EngineFacts,
        now: UnixTime,
    ) -> Result<Engine, EngineError> {
        let _ = now;
        let ruleset = Arc::new(Ruleset::new(&config, facts.local.clone())?);
        let mut scheduler_config = facts.scheduler.clone();
        if !config.options.bounce_warn_interval.is_empty() {
            scheduler_config.warn_intervals = config.options.bounce_warn_interval();
        }
        Ok(Engine {
            rng: SplitMix64::new(facts.seed),
            scheduler: Scheduler::new(scheduler_config),
            config,
            ruleset,
            facts,
            sessions: BTreeMap::new(),
            lookups: BTreeMap::new(),
            next_lookup: 1,
            incoming: BTreeMap::new(),
            commits: BTreeMap::new(),
            reports: BTreeMap::new(),
            held: BTreeMap::new(),
            queued: BTreeMap::new(),
            spool_full: false,
            actions: VecDeque::new(),
            stats: stats::Stats::default(),
        })
    }

    /// Swaps in new contents for table `table.name` (`smtpctl update table`): the rules are
    /// compiled again from the changed configuration; sessions and expansions already
    /// running keep the tables they started with.
    ///
    /// # Errors
    /// When no table has that name, or the rules no longer compile; the engine then keeps
    /// its current configuration.
    pub fn replace_table(&mut self, table: crate::table::Table) -> Result<(), String> {
        if !self.config.tables.contains_key(&table.name) {
            return Err(format!("no such table: {}", table.name));
        }
        let mut config = Config::clone(&self.config);
        config.tables.insert(table.name.clone(), table);
        let ruleset = Ruleset::new(&config, self.facts.local.clone())
            .map_err(|e| format!("invalid rule: {e}"))?;
        self.config = Arc::new(config);
        self.ruleset = Arc::new(ruleset);
        Ok(())
    }

    /// Registers a new connection and returns its id; feed its questions with that id and
    /// end it with [`Input::SessionClosed`]. Logs `smtp-in: session ... connected from ...`.
    /// Ids are never 0 (the session of report lookups) and never reused while open.
    pub fn open_session(&mut self, info: SessionInfo, now: UnixTime) -> SessionId {
        let _ = now;
        let id = loop {
            let candidate = SessionId(self.rng.next_u64());
            if candidate.0 != 0 && !self.sessions.contains_key(&candidate) {
                break candidate;
            }
        };
        self.stats.session_opened(&info.peer);
        self.log(log::connected(id, &info));
        let session = Session::new(&self.config, info);
        self.sessions.insert(id, session);
        id
    }

    /// Feeds one input at wall-clock time `now`; drain [`Engine::poll_action`] after.
    /// Inputs that name an unknown session, lookup or message are ignored (the session
    /// may have closed in between).
    pub fn handle(&mut self, input: Input, now: UnixTime) {
        match input {
            Input::Question {
                session,
                req,
                question,
            } => self.question(session, req, question, now),
            Input::EndOfMessage {
                session,
                req,
                size,
                received_headers,
            } => self.end_of_message(session, req, size, received_headers, now),
            Input::SessionTls {
                session,
                protocol,
                cipher,
            } => self.session_tls(session, protocol, cipher),
            Input::BodyAborted { session } => self.body_aborted(session),
            Input::SessionClosed { session } => self.session_closed(session),
            Input::LookupAnswer { id, answer } => self.lookup_answer(id, answer, now),
            Input::PasswordChecked { id, ok } => self.password_checked(id, ok),
            Input::Committed { msgid, result } => self.committed(msgid, result, now),
            Input::DeliveryResult { id, outcome } => self.delivery_result(id, outcome, now),
            Input::BounceQueued { msgid, result } => self.bounce_queued(msgid, result, now),
            Input::SpoolSpace { available } => {
                if self.spool_full == available {
                    self.spool_full = !available;
                    let state = if available { "available again" } else { "full" };
                    self.log(format!("queue: spool {state}"));
                }
            }
            Input::Reload(envelopes) => self.reload(envelopes, now),
            Input::Control(control) => self.control(control, now),
            Input::Tick => self.tick(now),
        }
    }

    /// The next thing to do, or `None` until the next input.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When the engine next needs an [`Input::Tick`] (the scheduler's next due envelope or
    /// report, or a report to try queueing again).
    pub fn poll_timeout(&self) -> Option<UnixTime> {
        let reports = self.reports.values().filter_map(|r| r.retry_at());
        self.scheduler
            .poll_timeout()
            .into_iter()
            .chain(reports)
            .min()
    }

    /// Counters in OpenSMTPD's naming (`smtpctl show stats`): every key of
    /// [`STAT_KEYS`], e.g. `smtp.session`, `smtp.session.inet4`, `scheduler.envelope`,
    /// `queue.bounce`.
    pub fn stats(&self) -> BTreeMap<&'static str, i64> {
        self.stats.snapshot()
    }

    /// The queue as the scheduler holds it (for `smtpctl show queue`).
    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    /// The host name this engine was started with (bounces come from it).
    pub fn hostname(&self) -> &str {
        &self.facts.hostname
    }

    /// How many sessions are open.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// The configuration the engine runs with.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    fn log(&mut self, line: String) {
        self.actions.push_back(Action::Log(line));
    }

    fn next_lookup_id(&mut self) -> LookupId {
        let id = LookupId(self.next_lookup);
        self.next_lookup = self.next_lookup.wrapping_add(1);
        id
    }

    /// A message id used nowhere in memory (incoming, committing, queued or reporting).
    fn fresh_message_id(&mut self) -> MessageId {
        loop {
            let id = MessageId::generate(&mut self.rng);
            if !self.incoming.contains_key(&id)
                && !self.commits.contains_key(&id)
                && !self.reports.contains_key(&id)
                && !self.queued.contains_key(&id)
            {
                return id;
            }
        }
    }
}
