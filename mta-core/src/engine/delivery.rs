//! The queue side of the engine: envelopes handed to the scheduler, deliveries handed to
//! the runtime, and reports (bounces, delay and success notices) queued to senders.
//!
//! A report's recipient (the original sender) goes through the rules and expansion like
//! any recipient of a message from the local enqueuer, so a bounce to a local user is
//! delivered the way that user's mail is. The reported envelopes are removed only once
//! their report is queued: the runtime still needs the original message to compose it,
//! and a crash before then finds them persisted as failed and reports them again.

use std::sync::Arc;
use std::time::Duration;

use super::input::{Control, EffectResult, LookupId};
use super::transaction::LookupOwner;
use super::{Action, Engine};
use crate::bounce::{Report, ReportKind};
use crate::config::Decision;
use crate::expand::{self, Delivery, ExpandAction, ExpandRequest, Expander, QueryId, Refusal};
use crate::queue::{DeliveryKind, Envelope, EnvelopeId, MessageId};
use crate::rules::{EnvelopeFacts, SessionFacts, Source};
use crate::scheduler::{self, Outcome, DEFAULT_TTL};
use crate::time::UnixTime;

/// How long before a report that could not be prepared or queued is tried again.
pub(super) const REPORT_RETRY: Duration = Duration::from_secs(60);

/// A report on its way into the queue.
#[derive(Debug)]
pub(super) struct Outgoing {
    report: Report,
    /// The expansion of the report's recipient, while it runs.
    expander: Option<Expander>,
    /// The envelopes that carry the report, once expanded.
    envelopes: Vec<Envelope>,
    /// `QueueBounce` was emitted; waiting for `BounceQueued`.
    queuing: bool,
    /// When to try again after a temporary failure.
    retry: Option<UnixTime>,
    /// Removals of reported envelopes, emitted once the report is queued.
    held: Vec<EnvelopeId>,
}

impl Outgoing {
    /// When this report wants to be tried again.
    pub(super) fn retry_at(&self) -> Option<UnixTime> {
        self.retry
    }
}

impl Engine {
    /// Hands a committed (or reloaded) envelope to the scheduler.
    pub(super) fn queue_envelope(&mut self, envelope: Envelope, now: UnixTime) {
        let msgid = envelope.message_id();
        let id = envelope.id;
        match self
            .scheduler
            .handle(scheduler::Input::EnvelopeQueued(Box::new(envelope)), now)
        {
            Ok(()) => {
                let n = self.queued.entry(msgid).or_insert(0);
                *n = n.saturating_add(1);
                self.stats.enqueued();
            }
            Err(e) => self.log(format!("queue: envelope {id} not queued: {e}")),
        }
        self.drain_scheduler(now);
    }

    /// Envelopes read back from the spool at start.
    pub(super) fn reload(&mut self, envelopes: Vec<Envelope>, now: UnixTime) {
        let n = envelopes.len();
        for envelope in envelopes {
            self.queue_envelope(envelope, now);
        }
        self.log(format!("queue: {n} envelopes reloaded"));
    }

    /// A delivery ended.
    pub(super) fn delivery_result(&mut self, id: EnvelopeId, outcome: Outcome, now: UnixTime) {
        let Some(envelope) = self.scheduler.get(id).cloned() else {
            return;
        };
        let line = super::log::delivery(&envelope, &outcome, now);
        let counter = match &outcome {
            Outcome::Delivered => "scheduler.delivery.ok",
            Outcome::TempFail(_) => "scheduler.delivery.tempfail",
            // RFC 3463 §3.5: X.4.6, routing loop detected.
            Outcome::PermFail(f) if (f.status.subject, f.status.detail) == (4, 6) => {
                "scheduler.delivery.loop"
            }
            Outcome::PermFail(_) => "scheduler.delivery.permfail",
        };
        let input = scheduler::Input::DeliveryResult { id, outcome };
        if self.scheduler.handle(input, now).is_ok() {
            self.log(line);
            self.stats.add(counter, 1);
            self.stats.delivery(envelope.delivery.is_local(), false);
        }
        self.drain_scheduler(now);
    }

    /// A queue control command.
    pub(super) fn control(&mut self, control: Control, now: UnixTime) {
        let input = match control {
            Control::Schedule(t) => scheduler::Input::Schedule(t),
            Control::Remove(t) => scheduler::Input::Remove(t),
            Control::Pause(s) => scheduler::Input::Pause(s),
            Control::Resume(s) => scheduler::Input::Resume(s),
            Control::Hold(t) => scheduler::Input::Hold(t),
            Control::Release(t) => scheduler::Input::Release(t),
        };
        // These inputs name no envelope that must exist: they cannot fail.
        let _ = self.scheduler.handle(input, now);
        self.drain_scheduler(now);
    }

    /// Time passed: due deliveries, reports to retry.
    pub(super) fn tick(&mut self, now: UnixTime) {
        let _ = self.scheduler.handle(scheduler::Input::Tick, now);
        self.drain_scheduler(now);
        let due: Vec<MessageId> = self
            .reports
            .iter()
            .filter(|(_, r)| r.retry.is_some_and(|t| t <= now))
            .map(|(&m, _)| m)
            .collect();
        for msgid in due {
            self.retry_report(msgid, now);
        }
    }

    /// Turns the scheduler's actions into the engine's.
    fn drain_scheduler(&mut self, now: UnixTime) {
        while let Some(action) = self.scheduler.poll_action() {
            match action {
                scheduler::Action::Deliver(e) => {
                    self.stats.delivery(e.delivery.is_local(), true);
                    self.actions.push_back(Action::Deliver(e));
                }
                scheduler::Action::Update(e) => self.actions.push_back(Action::UpdateEnvelope(e)),
                scheduler::Action::Bounce(r)
                | scheduler::Action::DelayNotice(r)
                | scheduler::Action::SuccessNotice(r) => self.start_report(r, now),
                scheduler::Action::Remove(id) => match self.held.remove(&id) {
                    Some(msgid) if self.reports.contains_key(&msgid) => {
                        if let Some(r) = self.reports.get_mut(&msgid) {
                            r.held.push(id);
                        }
                    }
                    _ => self.remove_envelope(id),
                },
                scheduler::Action::Event(event) => self.scheduler_event(event),
            }
        }
    }

    fn scheduler_event(&mut self, event: scheduler::Event) {
        let line = match event {
            scheduler::Event::Dropped { id, reason } => {
                format!("queue: envelope {id} dropped without report ({reason:?})")
            }
            scheduler::Event::Deferred { id, next } => {
                format!("queue: envelope {id} deferred until {}", next.rfc5322())
            }
            scheduler::Event::Expired(id) => {
                self.stats.add("scheduler.delivery.expired", 1);
                self.stats.add("scheduler.envelope.expired", 1);
                format!("queue: envelope {id} expired")
            }
            scheduler::Event::Removed(id) => {
                self.stats.add("scheduler.envelope.removed", 1);
                format!("queue: envelope {id} removed by request")
            }
        };
        self.log(line);
    }

    fn remove_envelope(&mut self, id: EnvelopeId) {
        let msgid = id.message_id();
        if let Some(n) = self.queued.get_mut(&msgid) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.queued.remove(&msgid);
            }
            self.stats.dequeued();
        }
        self.actions.push_back(Action::RemoveEnvelope(id));
    }

    /// A report is due: hold back the removal of the envelopes it reports, then route its
    /// recipient.
    fn start_report(&mut self, report: Report, now: UnixTime) {
        let msgid = self.fresh_message_id();
        if report.kind == ReportKind::Failure {
            for e in &report.envelopes {
                self.held.insert(e.id, msgid);
            }
        }
        self.reports.insert(
            msgid,
            Outgoing {
                report,
                expander: None,
                envelopes: Vec::new(),
                queuing: false,
                retry: None,
                held: Vec::new(),
            },
        );
        self.expand_report(msgid, now);
    }

    /// Matches the report's recipient against the rules (as mail from the local enqueuer
    /// and `<>`) and starts its expansion.
    fn expand_report(&mut self, msgid: MessageId, now: UnixTime) {
        let Some(out) = self.reports.get(&msgid) else {
            return;
        };
        let session = SessionFacts::new(Source::LocalSocket);
        let recipient = out.report.sender.clone();
        let verdict = self.ruleset.evaluate(
            &session,
            &EnvelopeFacts {
                sender: "",
                recipient: &recipient,
            },
        );
        let Decision::Action(action) = verdict.decision else {
            self.report_failed(msgid, &Refusal::not_authorized());
            return;
        };
        let request = ExpandRequest {
            session,
            sender: String::new(),
            recipient,
            action,
        };
        let expander = Expander::new(Arc::clone(&self.config), Arc::clone(&self.ruleset), request);
        if let Some(out) = self.reports.get_mut(&msgid) {
            out.expander = Some(expander);
            out.retry = None;
        }
        self.drive_report(msgid, now);
    }

    fn drive_report(&mut self, msgid: MessageId, now: UnixTime) {
        loop {
            let Some(expander) = self
                .reports
                .get_mut(&msgid)
                .and_then(|o| o.expander.as_mut())
            else {
                return;
            };
            match expander.poll_action() {
                None => return,
                Some(ExpandAction::Ask(query, question)) => {
                    let id: LookupId = self.next_lookup_id();
                    self.lookups
                        .insert(id, LookupOwner::Report { msgid, query });
                    // Reports belong to no session; the runtime answers them like any.
                    self.actions.push_back(Action::Lookup {
                        id,
                        session: super::SessionId(0),
                        question,
                    });
                }
                Some(ExpandAction::Done(result)) => {
                    if let Some(o) = self.reports.get_mut(&msgid) {
                        o.expander = None;
                    }
                    match result {
                        Ok(deliveries) if !deliveries.is_empty() => {
                            self.queue_report(msgid, &deliveries, now)
                        }
                        Ok(_) => self.report_failed(msgid, &Refusal::unknown_user()),
                        Err(refusal) if refusal.is_temporary() => {
                            if let Some(o) = self.reports.get_mut(&msgid) {
                                o.retry = Some(now.saturating_add(REPORT_RETRY));
                            }
                        }
                        Err(refusal) => self.report_failed(msgid, &refusal),
                    }
                    return;
                }
            }
        }
    }

    /// An answer to a lookup of a report's expansion.
    pub(super) fn report_lookup_answer(
        &mut self,
        msgid: MessageId,
        query: QueryId,
        answer: expand::Answer,
        now: UnixTime,
    ) {
        let Some(expander) = self
            .reports
            .get_mut(&msgid)
            .and_then(|o| o.expander.as_mut())
        else {
            return;
        };
        if expander.handle(query, answer).is_ok() {
            self.drive_report(msgid, now);
        } else if let Some(out) = self.reports.get_mut(&msgid) {
            // An answer of the wrong kind: start the expansion again later.
            out.expander = None;
            out.retry = Some(now.saturating_add(REPORT_RETRY));
        }
    }

    /// The report's recipient is known: ask the runtime to write and queue it.
    fn queue_report(&mut self, msgid: MessageId, deliveries: &[Delivery], now: UnixTime) {
        let hostname = self.facts.hostname.clone();
        let mut envelopes: Vec<Envelope> = Vec::new();
        for delivery in deliveries {
            let (action, recipient, kind) = match delivery {
                Delivery::Local(local) => {
                    let (user, method) = super::LocalMethodSpec {
                        user: local.user.clone(),
                        method: local.method.clone(),
                    }
                    .format();
                    (
                        &local.action,
                        &local.dest,
                        DeliveryKind::Local { user, method },
                    )
                }
                Delivery::Relay { action, address } => (
                    action,
                    address,
                    DeliveryKind::Relay {
                        action: action.clone(),
                    },
                ),
            };
            let ttl = self
                .config
                .actions
                .get(action)
                .and_then(|a| a.local.ttl)
                .or(self.config.options.queue.ttl)
                .unwrap_or(DEFAULT_TTL);
            let id = loop {
                let id = EnvelopeId::generate(msgid, &mut self.rng);
                if envelopes.iter().all(|e| e.id != id) {
                    break id;
                }
            };
            let Some(out) = self.reports.get(&msgid) else {
                return;
            };
            let mut envelope = out.report.envelope(id, kind, now, ttl, &hostname);
            envelope.recipient = recipient.clone();
            envelopes.push(envelope);
        }
        let Some(out) = self.reports.get_mut(&msgid) else {
            return;
        };
        out.envelopes = envelopes.clone();
        out.queuing = true;
        out.retry = None;
        let report = out.report.clone();
        self.stats
            .add("scheduler.envelope.incoming", count(&envelopes));
        self.actions.push_back(Action::QueueBounce {
            report,
            msgid,
            envelopes,
        });
    }

    /// The report cannot be delivered at all (no rule or no user for the sender): drop
    /// it, and let the reported envelopes go.
    fn report_failed(&mut self, msgid: MessageId, refusal: &Refusal) {
        let Some(out) = self.reports.remove(&msgid) else {
            return;
        };
        self.log(format!(
            "queue: report {msgid} on message {} to <{}> dropped: {}",
            out.report.message, out.report.sender, refusal.text
        ));
        self.release(msgid, out.held);
    }

    /// Emits the removals held for a report, and any still expected.
    fn release(&mut self, msgid: MessageId, held: Vec<EnvelopeId>) {
        self.held.retain(|_, m| *m != msgid);
        for id in held {
            self.remove_envelope(id);
        }
    }

    /// The runtime queued (or failed to queue) a report.
    pub(super) fn bounce_queued(&mut self, msgid: MessageId, result: EffectResult, now: UnixTime) {
        let Some(out) = self.reports.get_mut(&msgid) else {
            return;
        };
        if !out.queuing {
            return;
        }
        out.queuing = false;
        let incoming = count(&out.envelopes);
        self.stats.add("scheduler.envelope.incoming", -incoming);
        match result {
            Ok(()) => {
                let Some(out) = self.reports.remove(&msgid) else {
                    return;
                };
                self.stats.add("queue.bounce", 1);
                self.log(format!(
                    "queue: report {msgid} on message {} queued for <{}>",
                    out.report.message, out.report.sender
                ));
                self.release(msgid, out.held);
                for envelope in out.envelopes {
                    self.queue_envelope(envelope, now);
                }
            }
            Err(reason) => {
                out.retry = Some(now.saturating_add(REPORT_RETRY));
                self.log(format!("queue: report {msgid} not queued: {reason}"));
            }
        }
    }

    /// A report whose expansion or queueing failed for now: try again.
    fn retry_report(&mut self, msgid: MessageId, now: UnixTime) {
        let Some(out) = self.reports.get_mut(&msgid) else {
            return;
        };
        out.retry = None;
        if out.envelopes.is_empty() {
            self.expand_report(msgid, now);
        } else {
            out.queuing = true;
            let (report, envelopes) = (out.report.clone(), out.envelopes.clone());
            self.stats
                .add("scheduler.envelope.incoming", count(&envelopes));
            self.actions.push_back(Action::QueueBounce {
                report,
                msgid,
                envelopes,
            });
        }
    }
}

/// A number of envelopes as a statistic's increment.
pub(super) fn count<T>(items: &[T]) -> i64 {
    i64::try_from(items.len()).unwrap_or(i64::MAX)
}
