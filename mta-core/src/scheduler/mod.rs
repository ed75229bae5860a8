//! The scheduler: when each envelope is tried, retried, warned about and expired.
//!
//! It is a machine of the usual shape: [`Scheduler::handle`] feeds one [`Input`],
//! [`Scheduler::poll_action`] drains the [`Action`]s (call it until `None` after every
//! `handle`), and [`Scheduler::poll_timeout`] says when it next wants an [`Input::Tick`].
//!
//! **Time.** The scheduler knows only wall-clock [`UnixTime`]: every time it keeps is one
//! that is persisted (next try, expiry, creation), and a timer across a restart must mean
//! the same instant. The runtime passes its wall clock as `now`; if that clock steps back,
//! attempts are merely late, never early or repeated.
//!
//! **Life of an envelope.** Queued envelopes wait in an index ordered by ready time, one per
//! kind of delivery (local, relay), each with its own in-flight limit. A due envelope is
//! handed out with [`Action::Deliver`]; the runtime answers with [`Input::DeliveryResult`].
//! Delivered: [`Action::Remove`]. Temporary failure: retried by the [`RetryPolicy`] of its
//! kind, persisted with [`Action::Update`]; once past its expiry it is failed with
//! "delivery time expired". Permanent failure or expiry: persisted as such, then reported
//! in one [`Action::Bounce`] per message that groups the recipients which failed within
//! [`SchedulerConfig::bounce_window`], followed by their `Remove`s. A failure of an
//! envelope from the null sender `<>` (or of a report) is never reported: it is removed
//! with an [`Event::Dropped`]. A long delay is reported once per entry of
//! [`SchedulerConfig::warn_intervals`] with an [`Action::DelayNotice`], and a delivery
//! is reported with an [`Action::SuccessNotice`] when the sender asked for it
//! (`NOTIFY=SUCCESS`, RFC 3461 §4.1).
//!
//! **Control.** [`Input::Pause`] stops a whole kind; [`Input::Hold`] stops single
//! envelopes (`smtpctl pause envelope`): a held envelope keeps its state and next try but
//! is neither handed out nor expired, and sets no timer, until [`Input::Release`] puts it
//! back (due at once when its time passed). Holds live in memory only, as OpenSMTPD's.
//!
//! A runtime's loop, in outline:
//!
//! ```
//! use mta_core::scheduler::{Action, Input, Outcome, Scheduler};
//! use mta_core::time::UnixTime;
//!
//! fn drive(scheduler: &mut Scheduler, now: UnixTime) -> Option<UnixTime> {
//!     while let Some(action) = scheduler.poll_action() {
//!         match action {
//!             // Start the delivery; its end comes back later as a DeliveryResult.
//!             Action::Deliver(envelope) => {
//!                 let outcome = Outcome::Delivered;
//!                 scheduler.handle(Input::DeliveryResult { id: envelope.id, outcome }, now).ok()?;
//!             }
//!             // Rewrite the record with mta_core::queue::encode.
//!             Action::Update(_envelope) => {}
//!             // Compose with mta_core::bounce::compose and queue it from <>, then remove.
//!             Action::Bounce(_) | Action::DelayNotice(_) | Action::SuccessNotice(_) => {}
//!             Action::Remove(_id) => {}
//!             Action::Event(_event) => {}
//!         }
//!     }
//!     // Sleep until then (or until a delivery ends), then feed Input::Tick.
//!     scheduler.poll_timeout()
//! }
//! ```

mod control;
mod retry;
#[cfg(test)]
mod tests;

pub use retry::RetryPolicy;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use thiserror::Error;

use crate::bounce::{Report, ReportKind};
use crate::queue::{Envelope, EnvelopeId, EnvelopeState, Failure, MessageId};
use crate::time::UnixTime;

/// Limits and policies of the scheduler (from smtpd.conf `queue ttl`, `bounce
/// warn-interval`, and the delivery limits).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SchedulerConfig {
    /// Retry policy of local deliveries.
    pub local_retry: RetryPolicy,
    /// Retry policy of relayed deliveries.
    pub remote_retry: RetryPolicy,
    /// How many local deliveries may run at once.
    pub max_inflight_local: usize,
    /// How many relayed deliveries may run at once.
    pub max_inflight_remote: usize,
    /// `bounce warn-interval`: after each of these delays since arrival, a still-queued
    /// envelope is reported as delayed, once (default: 4 h).
    pub warn_intervals: Vec<Duration>,
    /// How long failures of one message are collected into one report.
    pub bounce_window: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            local_retry: RetryPolicy::LOCAL,
            remote_retry: RetryPolicy::REMOTE,
            max_inflight_local: 32,
            max_inflight_remote: 128,
            warn_intervals: vec![Duration::from_secs(4 * 3600)],
            bounce_window: Duration::from_secs(10),
        }
    }
}

/// The queue lifetime of OpenSMTPD (`queue ttl`, default 4 days), for the engine to set
/// [`Envelope::expires`] with.
pub const DEFAULT_TTL: Duration = Duration::from_secs(4 * 86_400);

/// Which envelopes a control command applies to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Target {
    /// One envelope.
    Envelope(EnvelopeId),
    /// Every envelope of one message.
    Message(MessageId),
    /// Every envelope.
    All,
}

/// Which kind of delivery `Pause`/`Resume` applies to (`smtpctl pause mta|mda|mail`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Scope {
    /// Local deliveries.
    Local,
    /// Relayed deliveries.
    Remote,
    /// Both.
    All,
}

/// How one delivery attempt ended.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Outcome {
    /// Delivered (or accepted by the next hop).
    Delivered,
    /// Failed temporarily (4xx, unreachable host, local resource): retry later.
    TempFail(Failure),
    /// Failed for good (5xx, no such user): report to the sender.
    PermFail(Failure),
}

/// One input to the scheduler.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Input {
    /// An envelope entered the queue: just committed, or read back from the spool at start.
    EnvelopeQueued(Box<Envelope>),
    /// A delivery handed out with [`Action::Deliver`] ended.
    DeliveryResult {
        /// The envelope.
        id: EnvelopeId,
        /// How it ended.
        outcome: Outcome,
    },
    /// Try these deferred envelopes now (`smtpctl schedule`).
    Schedule(Target),
    /// Drop these envelopes without a report (`smtpctl remove`).
    Remove(Target),
    /// Stop handing out deliveries of this kind (`smtpctl pause`). Nothing of a paused
    /// kind is tried or expired until it is resumed.
    Pause(Scope),
    /// Hand out deliveries of this kind again (`smtpctl resume`).
    Resume(Scope),
    /// Hold these envelopes (`smtpctl pause envelope`): never handed out, no timer, no
    /// expiry while held; an attempt under way finishes. See [`Scheduler::is_held`].
    Hold(Target),
    /// Release held envelopes (`smtpctl resume envelope`): each waits for its next try
    /// again, due at once when that time (or its expiry) passed.
    Release(Target),
    /// Time passed (the deadline of [`Scheduler::poll_timeout`] came).
    Tick,
}

/// Why an envelope left the queue without a report.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DropReason {
    /// Its sender is `<>` or it is itself a report: no bounce for a bounce.
    NullSender,
    /// The sender asked for no failure report (`NOTIFY=NEVER` or no `FAILURE`).
    NotifyNever,
}

/// Something worth logging; no effect to perform.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Event {
    /// A failed envelope left the queue without a report.
    Dropped {
        /// The envelope.
        id: EnvelopeId,
        /// Why no report was sent.
        reason: DropReason,
    },
    /// A temporarily failed envelope will be tried again.
    Deferred {
        /// The envelope.
        id: EnvelopeId,
        /// When.
        next: UnixTime,
    },
    /// An envelope ran out of time.
    Expired(EnvelopeId),
    /// An envelope left the queue at a control request (`smtpctl remove`), without a
    /// report; its [`Action::Remove`] follows.
    Removed(EnvelopeId),
}

/// Something the runtime must do.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Action {
    /// Deliver this envelope (locally or by relay), then feed back a
    /// [`Input::DeliveryResult`].
    Deliver(Envelope),
    /// Rewrite this envelope's record in the spool (new tries, next try, state).
    Update(Envelope),
    /// Queue this failure report as a new message from `<>` to the sender. Perform it
    /// before the `Remove`s of its envelopes that follow it.
    Bounce(Report),
    /// Queue this delay report as a new message from `<>` to the sender.
    DelayNotice(Report),
    /// Queue this delivery report (`NOTIFY=SUCCESS`) as a new message from `<>` to the
    /// sender.
    SuccessNotice(Report),
    /// Delete this envelope from the spool (and the message once it has no envelopes).
    Remove(EnvelopeId),
    /// Log this.
    Event(Event),
}

/// A caller mistake.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Error)]
#[non_exhaustive]
pub enum SchedulerError {
    /// An envelope with this id is already queued.
    #[error("envelope {0} is already queued")]
    Duplicate(EnvelopeId),
    /// No envelope with this id is queued.
    #[error("no envelope {0} in the queue")]
    Unknown(EnvelopeId),
    /// A result for an envelope that was not handed out.
    #[error("envelope {0} is not being delivered")]
    NotInFlight(EnvelopeId),
}

/// Index of a kind of delivery in the per-kind tables.
const LOCAL: usize = 0;
const REMOTE: usize = 1;

fn kind_of(e: &Envelope) -> usize {
    if e.delivery.is_local() {
        LOCAL
    } else {
        REMOTE
    }
}

fn kinds(scope: Scope) -> &'static [usize] {
    match scope {
        Scope::Local => &[LOCAL],
        Scope::Remote => &[REMOTE],
        Scope::All => &[LOCAL, REMOTE],
    }
}

/// Advances `e.warnings_sent` past every warn interval already reached; true when that
/// reached a new one and the sender wants delay reports (RFC 3461 §4.1 `NOTIFY=DELAY`).
fn due_warnings(intervals: &[Duration], e: &mut Envelope, now: UnixTime) -> bool {
    let reached = intervals
        .iter()
        .take_while(|&&d| e.created.saturating_add(d) <= now)
        .count();
    let reached = u32::try_from(reached).unwrap_or(u32::MAX);
    if reached <= e.warnings_sent {
        return false;
    }
    e.warnings_sent = reached;
    e.wants_delay_report()
}

/// A queued envelope and what the scheduler knows beyond its record.
#[derive(Clone, Debug)]
struct Entry {
    envelope: Envelope,
    /// Removed by control while in flight: delete once the result comes.
    removing: bool,
    /// Held by control (`smtpctl pause envelope`): out of `waiting` until released.
    held: bool,
    /// While waiting (pending or deferred): when it is due, its key in `waiting` unless
    /// held.
    ready: Option<UnixTime>,
}

/// A report being collected for one message.
#[derive(Clone, Debug)]
struct PendingReport {
    deadline: UnixTime,
    sender: String,
    envelopes: Vec<Envelope>,
}

/// The scheduler machine. Verbs: `handle` (inputs), `poll_action` and `poll_timeout`
/// (outputs), and `&self` getters for `smtpctl show queue`.
#[derive(Clone, Debug)]
pub struct Scheduler {
    config: SchedulerConfig,
    envelopes: BTreeMap<EnvelopeId, Entry>,
    /// Per kind: envelopes waiting to be tried, by ready time.
    waiting: [BTreeSet<(UnixTime, EnvelopeId)>; 2],
    inflight: [usize; 2],
    paused: [bool; 2],
    reports: BTreeMap<(MessageId, ReportKind), PendingReport>,
    report_deadlines: BTreeSet<(UnixTime, MessageId, ReportKind)>,
    actions: VecDeque<Action>,
}

impl Scheduler {
    /// An empty scheduler.
    pub fn new(mut config: SchedulerConfig) -> Self {
        config.warn_intervals.sort();
        Scheduler {
            config,
            envelopes: BTreeMap::new(),
            waiting: [BTreeSet::new(), BTreeSet::new()],
            inflight: [0, 0],
            paused: [false, false],
            reports: BTreeMap::new(),
            report_deadlines: BTreeSet::new(),
            actions: VecDeque::new(),
        }
    }

    /// Feeds one input at wall-clock time `now`; drain [`Scheduler::poll_action`] after.
    ///
    /// # Errors
    /// [`SchedulerError`] when the caller queues an id twice or reports a result for an
    /// envelope it was not handed; the scheduler is unchanged then.
    pub fn handle(&mut self, input: Input, now: UnixTime) -> Result<(), SchedulerError> {
        match input {
            Input::EnvelopeQueued(e) => self.queue(*e, now)?,
            Input::DeliveryResult { id, outcome } => self.result(id, outcome, now)?,
            Input::Schedule(target) => {
                for id in self.targets(target) {
                    self.schedule_now(id, now);
                }
            }
            Input::Remove(target) => {
                for id in self.targets(target) {
                    self.remove(id);
                }
            }
            Input::Hold(target) => {
                for id in self.targets(target) {
                    self.hold(id);
                }
            }
            Input::Release(target) => {
                for id in self.targets(target) {
                    self.release(id);
                }
            }
            Input::Pause(scope) => kinds(scope).iter().for_each(|&k| self.set_paused(k, true)),
            Input::Resume(scope) => kinds(scope).iter().for_each(|&k| self.set_paused(k, false)),
            Input::Tick => {}
        }
        self.process(now);
        Ok(())
    }

    /// The next thing to do, or `None` when there is nothing more until the next input.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When the scheduler next needs an [`Input::Tick`]: the earliest ready time of a kind
    /// that is neither paused nor at its in-flight limit, or the end of a report window.
    pub fn poll_timeout(&self) -> Option<UnixTime> {
        let ready = [LOCAL, REMOTE]
            .into_iter()
            .filter(|&k| !self.paused_at(k) && self.has_capacity(k))
            .filter_map(|k| self.waiting.get(k).and_then(|w| w.first()).map(|&(t, _)| t));
        let report = self.report_deadlines.first().map(|&(t, _, _)| t);
        ready.chain(report).min()
    }

    /// How many envelopes are queued (waiting, in flight, or awaiting their report).
    pub fn len(&self) -> usize {
        self.envelopes.len()
    }

    /// True when no envelope is queued.
    pub fn is_empty(&self) -> bool {
        self.envelopes.is_empty()
    }

    /// The queued envelope with this id.
    pub fn get(&self, id: EnvelopeId) -> Option<&Envelope> {
        self.envelopes.get(&id).map(|e| &e.envelope)
    }

    /// Every queued envelope, by id.
    pub fn envelopes(&self) -> impl Iterator<Item = &Envelope> {
        self.envelopes.values().map(|e| &e.envelope)
    }

    /// How many (local, relayed) deliveries are in flight.
    pub fn inflight(&self) -> (usize, usize) {
        (self.inflight[LOCAL], self.inflight[REMOTE])
    }

    fn paused_at(&self, kind: usize) -> bool {
        self.paused.get(kind).copied().unwrap_or(false)
    }

    fn set_paused(&mut self, kind: usize, value: bool) {
        if let Some(p) = self.paused.get_mut(kind) {
            *p = value;
        }
    }

    fn has_capacity(&self, kind: usize) -> bool {
        let max = if kind == LOCAL {
            self.config.max_inflight_local
        } else {
            self.config.max_inflight_remote
        };
        self.inflight.get(kind).is_some_and(|&n| n < max)
    }

    fn queue(&mut self, mut e: Envelope, now: UnixTime) -> Result<(), SchedulerError> {
        let id = e.id;
        if self.envelopes.contains_key(&id) {
            return Err(SchedulerError::Duplicate(id));
        }
        let ready = match e.state {
            // In flight when the previous run stopped: its outcome is unknown, try again.
            EnvelopeState::Pending | EnvelopeState::InFlight => {
                e.state = EnvelopeState::Pending;
                Some(now)
            }
            EnvelopeState::Deferred { next } => Some(next),
            EnvelopeState::Expired | EnvelopeState::Failed => None,
        };
        self.envelopes.insert(
            id,
            Entry {
                envelope: e,
                removing: false,
                held: false,
                ready: None,
            },
        );
        match ready {
            Some(t) => self.enqueue_waiting(id, t),
            // Already persisted as failed: only its report is left to send.
            None => self.fail(id, now, false),
        }
        Ok(())
    }

    fn result(
        &mut self,
        id: EnvelopeId,
        outcome: Outcome,
        now: UnixTime,
    ) -> Result<(), SchedulerError> {
        let entry = self
            .envelopes
            .get_mut(&id)
            .ok_or(SchedulerError::Unknown(id))?;
        if entry.envelope.state != EnvelopeState::InFlight {
            return Err(SchedulerError::NotInFlight(id));
        }
        let kind = kind_of(&entry.envelope);
        if let Some(n) = self.inflight.get_mut(kind) {
            *n = n.saturating_sub(1);
        }
        if entry.removing {
            self.envelopes.remove(&id);
            self.actions.push_back(Action::Event(Event::Removed(id)));
            self.actions.push_back(Action::Remove(id));
            return Ok(());
        }
        match outcome {
            Outcome::Delivered => {
                if let Some(entry) = self.envelopes.remove(&id) {
                    if entry.envelope.wants_success_report() {
                        self.collect(ReportKind::Success, entry.envelope, now);
                    }
                }
                self.actions.push_back(Action::Remove(id));
            }
            Outcome::PermFail(failure) => {
                entry.envelope.last_error = Some(failure);
                entry.envelope.state = EnvelopeState::Failed;
                self.fail(id, now, true);
            }
            Outcome::TempFail(failure) => {
                entry.envelope.last_error = Some(failure);
                self.defer(id, now);
            }
        }
        Ok(())
    }

    /// Schedules the next attempt after a temporary failure, or expires the envelope.
    fn defer(&mut self, id: EnvelopeId, now: UnixTime) {
        let Some(entry) = self.envelopes.get_mut(&id) else {
            return;
        };
        let e = &mut entry.envelope;
        let kind = kind_of(e);
        let policy = if kind == LOCAL {
            self.config.local_retry
        } else {
            self.config.remote_retry
        };
        let Some(next) = policy.next_try(e.tries, now, e.expires) else {
            self.expire(id, now);
            return;
        };
        e.state = EnvelopeState::Deferred { next };
        let warn = due_warnings(&self.config.warn_intervals, e, now);
        if warn {
            let copy = e.clone();
            self.collect(ReportKind::Delay, copy, now);
        }
        if let Some(entry) = self.envelopes.get(&id) {
            self.actions
                .push_back(Action::Update(entry.envelope.clone()));
        }
        self.enqueue_waiting(id, next);
        self.actions
            .push_back(Action::Event(Event::Deferred { id, next }));
    }

    fn expire(&mut self, id: EnvelopeId, now: UnixTime) {
        if let Some(entry) = self.envelopes.get_mut(&id) {
            entry.envelope.state = EnvelopeState::Expired;
            self.actions.push_back(Action::Event(Event::Expired(id)));
            self.fail(id, now, true);
        }
    }

    /// A failed or expired envelope: collect it for its message's report, or drop it.
    /// `persist` records the new state first so a crash cannot lose the report.
    fn fail(&mut self, id: EnvelopeId, now: UnixTime, persist: bool) {
        let Some(entry) = self.envelopes.get_mut(&id) else {
            return;
        };
        // Its report goes out whatever holds it: it no longer waits for anything.
        entry.held = false;
        entry.ready = None;
        let e = &entry.envelope;
        if !e.wants_failure_report() {
            let reason = if e.is_bounce() {
                DropReason::NullSender
            } else {
                DropReason::NotifyNever
            };
            self.envelopes.remove(&id);
            self.actions
                .push_back(Action::Event(Event::Dropped { id, reason }));
            self.actions.push_back(Action::Remove(id));
            return;
        }
        let copy = e.clone();
        if persist {
            self.actions.push_back(Action::Update(copy.clone()));
        }
        self.collect(ReportKind::Failure, copy, now);
    }

    /// Adds an envelope to its message's pending report of this kind, opening the
    /// collection window if none is open.
    fn collect(&mut self, kind: ReportKind, e: Envelope, now: UnixTime) {
        let message = e.message_id();
        let window = self.config.bounce_window;
        let report = self.reports.entry((message, kind)).or_insert_with(|| {
            let deadline = now.saturating_add(window);
            self.report_deadlines.insert((deadline, message, kind));
            PendingReport {
                deadline,
                sender: e.sender.clone().unwrap_or_default(),
                envelopes: Vec::new(),
            }
        });
        report.envelopes.retain(|x| x.id != e.id);
        report.envelopes.push(e);
    }

    /// Hands out due envelopes within the in-flight limits, expires the overdue, and
    /// sends the reports whose window closed.
    fn process(&mut self, now: UnixTime) {
        for kind in [LOCAL, REMOTE] {
            while !self.paused_at(kind) {
                let Some(&(t, id)) = self.waiting.get(kind).and_then(|w| w.first()) else {
                    break;
                };
                if t > now {
                    break;
                }
                let expired = self
                    .envelopes
                    .get(&id)
                    .is_none_or(|e| now >= e.envelope.expires);
                if !expired && !self.has_capacity(kind) {
                    break;
                }
                if let Some(w) = self.waiting.get_mut(kind) {
                    w.remove(&(t, id));
                }
                if let Some(entry) = self.envelopes.get_mut(&id) {
                    entry.ready = None;
                }
                if expired {
                    self.expire(id, now);
                } else {
                    self.start(id, kind, now);
                }
            }
        }
        while let Some(&(deadline, message, kind)) = self.report_deadlines.first() {
            if deadline > now {
                break;
            }
            self.report_deadlines.remove(&(deadline, message, kind));
            let Some(pending) = self.reports.remove(&(message, kind)) else {
                continue;
            };
            let ids: Vec<EnvelopeId> = pending.envelopes.iter().map(|e| e.id).collect();
            let report = Report {
                kind,
                message,
                sender: pending.sender,
                envelopes: pending.envelopes,
            };
            match kind {
                ReportKind::Failure => {
                    self.actions.push_back(Action::Bounce(report));
                    for id in ids {
                        self.envelopes.remove(&id);
                        self.actions.push_back(Action::Remove(id));
                    }
                }
                ReportKind::Delay => self.actions.push_back(Action::DelayNotice(report)),
                ReportKind::Success => self.actions.push_back(Action::SuccessNotice(report)),
            }
        }
    }

    fn start(&mut self, id: EnvelopeId, kind: usize, now: UnixTime) {
        let Some(entry) = self.envelopes.get_mut(&id) else {
            return;
        };
        let e = &mut entry.envelope;
        e.state = EnvelopeState::InFlight;
        e.tries = e.tries.saturating_add(1);
        e.last_try = Some(now);
        if let Some(n) = self.inflight.get_mut(kind) {
            *n = n.saturating_add(1);
        }
        self.actions.push_back(Action::Deliver(e.clone()));
    }
}
