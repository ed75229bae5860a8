//! What a run did, as the checks need it: every answer by script position, every
//! message made durable, every delivery attempt and its outcome, every report written.

use std::collections::{BTreeMap, BTreeSet};

use mta_core::bounce::{Report, ReportKind};
use mta_core::engine::{Engine, Input};
use mta_core::queue::{Envelope, EnvelopeId, MessageId};
use mta_core::scheduler::Outcome;
use mta_core::time::UnixTime;

/// A position in a client's script, the same in every run of one scenario.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum StepKey {
    /// The greeting.
    Helo,
    /// MAIL FROM of transaction `t`.
    Mail(usize),
    /// RCPT TO of transaction `t`, recipient at position `p`.
    Rcpt(usize, usize),
    /// DATA of transaction `t`.
    Data(usize),
    /// End of data of transaction `t`.
    End(usize),
}

/// Everything the checks look at.
#[derive(Default, Debug)]
pub struct Record {
    /// Reply codes by (client, step), in the order given.
    pub answers: BTreeMap<(usize, StepKey), Vec<u16>>,
    /// Messages answered 250: the client, its transaction and the recipients' positions.
    pub accepted: BTreeMap<MessageId, (usize, usize, Vec<usize>)>,
    /// Every envelope made durable (accepted messages and reports), by id.
    pub envelopes: BTreeMap<EnvelopeId, Envelope>,
    /// Messages made durable, with their envelope ids.
    pub durable: BTreeMap<MessageId, Vec<EnvelopeId>>,
    /// Deliveries handed out and not ended.
    pub inflight: BTreeSet<EnvelopeId>,
    /// Successful deliveries per envelope.
    pub delivered: BTreeMap<EnvelopeId, u32>,
    /// The last outcome per envelope.
    pub outcome: BTreeMap<EnvelopeId, Outcome>,
    /// Failure reports written, per reported envelope.
    pub bounced: BTreeMap<EnvelopeId, Vec<MessageId>>,
    /// Envelopes the engine removed from the spool.
    pub removed: BTreeSet<EnvelopeId>,
    /// Broken rules seen while running.
    pub violations: Vec<String>,
}

impl Record {
    /// Something that must never happen happened.
    pub fn violation(&mut self, what: String) {
        self.violations.push(what);
    }

    /// A client got `code` at `key`.
    pub fn answer(&mut self, client: usize, key: StepKey, code: u16) {
        self.answers.entry((client, key)).or_default().push(code);
    }

    /// The message `msgid` was answered 250.
    pub fn accepted(&mut self, msgid: MessageId, client: usize, txn: usize, rcpts: Vec<usize>) {
        if !self.durable.contains_key(&msgid) {
            self.violation(format!(
                "message {msgid} answered 250 but never made durable"
            ));
        }
        if self.accepted.insert(msgid, (client, txn, rcpts)).is_some() {
            self.violation(format!("message {msgid} answered 250 twice"));
        }
    }

    /// The runtime made `msgid` durable with `envelopes`.
    pub fn durable(&mut self, msgid: MessageId, envelopes: Vec<Envelope>) {
        let ids = envelopes.iter().map(|e| e.id).collect();
        if self.durable.insert(msgid, ids).is_some() {
            self.violation(format!("message {msgid} committed twice"));
        }
        for envelope in envelopes {
            self.envelopes.insert(envelope.id, envelope);
        }
    }

    /// A report was written as message `msgid`, carried by `carriers`.
    pub fn report_written(&mut self, msgid: MessageId, report: &Report, carriers: Vec<Envelope>) {
        if report.kind == ReportKind::Failure {
            for envelope in &report.envelopes {
                self.bounced.entry(envelope.id).or_default().push(msgid);
            }
        }
        for carrier in &carriers {
            if carrier.sender.is_some() || !carrier.flags.bounce {
                self.violation(format!(
                    "report carrier {} is not from <> flagged as a bounce",
                    carrier.id
                ));
            }
        }
        self.durable(msgid, carriers);
    }

    /// The engine hands `id` out for delivery; false (and a violation) when it is in
    /// flight already or was delivered.
    pub fn start_delivery(&mut self, id: EnvelopeId) -> bool {
        if !self.envelopes.contains_key(&id) {
            self.violation(format!("delivery of {id}, which was never made durable"));
        }
        if self.delivered.get(&id).copied().unwrap_or(0) > 0 {
            self.violation(format!("{id} handed out again after it was delivered"));
        }
        if !self.inflight.insert(id) {
            self.violation(format!("{id} handed out while its delivery runs"));
            return false;
        }
        true
    }

    /// An input fed to the engine (delivery results are counted here).
    pub fn observe_input(&mut self, input: &Input) {
        if let Input::DeliveryResult { id, outcome } = input {
            self.inflight.remove(id);
            if *outcome == Outcome::Delivered {
                *self.delivered.entry(*id).or_default() += 1;
            }
            self.outcome.insert(*id, outcome.clone());
        }
    }

    /// The engine rewrote an envelope's record.
    pub fn updated(&mut self, envelope: &Envelope) {
        if self.removed.contains(&envelope.id) {
            self.violation(format!("{} updated after its removal", envelope.id));
        }
    }

    /// The engine removed an envelope from the spool.
    pub fn removed(&mut self, id: EnvelopeId) {
        if !self.removed.insert(id) {
            self.violation(format!("{id} removed twice"));
        }
    }

    /// The invariants of one run, at its end: every durable envelope was delivered,
    /// reported or dropped as the rules say, or is still queued; none delivered twice,
    /// none both delivered and bounced, none bounced twice, no report to `<>`.
    pub fn check(&self, engine: &Engine, now: UnixTime) -> Vec<String> {
        let mut problems = self.violations.clone();
        let queued: BTreeSet<EnvelopeId> = engine.scheduler().envelopes().map(|e| e.id).collect();
        for (id, envelope) in &self.envelopes {
            let delivered = self.delivered.get(id).copied().unwrap_or(0);
            let bounces = self.bounced.get(id).map_or(0, Vec::len);
            // Held in the spool while the engine still works on it (a report waiting
            // for its lookups, say) counts as queued; once the engine is idle, only the
            // scheduler's queue does.
            let in_queue = queued.contains(id)
                || (!self.removed.contains(id) && engine.poll_timeout().is_some());
            if delivered > 1 {
                problems.push(format!("{id} delivered {delivered} times"));
            }
            if bounces > 1 {
                problems.push(format!("{id} reported as failed {bounces} times"));
            }
            if delivered > 0 && bounces > 0 {
                problems.push(format!("{id} both delivered and bounced"));
            }
            if bounces > 0 && envelope.sender.is_none() {
                problems.push(format!("{id} from <> was bounced"));
            }
            if delivered > 0 && in_queue {
                problems.push(format!("{id} delivered but still queued"));
            }
            let failed_for_good = matches!(self.outcome.get(id), Some(Outcome::PermFail(_)))
                || now >= envelope.expires;
            let dropped = envelope.sender.is_none() && failed_for_good && self.removed.contains(id);
            if delivered == 0 && bounces == 0 && !in_queue && !dropped {
                let what = if self.removed.contains(id) {
                    "lost: removed from the spool"
                } else {
                    "stuck: still in the spool, forgotten by the idle engine"
                };
                problems.push(format!(
                    "{id} {what}, never delivered nor bounced (last outcome {:?})",
                    self.outcome.get(id)
                ));
            }
            if (delivered > 0 || bounces > 0) && !in_queue && !self.removed.contains(id) {
                problems.push(format!("{id} finished but never removed from the spool"));
            }
        }
        for msgid in self.accepted.keys() {
            if !self.durable.contains_key(msgid) {
                problems.push(format!("{msgid} answered 250 but not durable"));
            }
        }
        // Each recipient of a scripted transaction is accepted at most once.
        let mut seen = BTreeSet::new();
        for (client, txn, rcpts) in self.accepted.values() {
            for r in rcpts {
                if !seen.insert((client, txn, r)) {
                    problems.push(format!(
                        "client {client} transaction {txn} recipient {r} accepted twice"
                    ));
                }
            }
        }
        problems
    }
}
