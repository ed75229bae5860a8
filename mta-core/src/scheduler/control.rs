//! The scheduler's side of smtpctl(8)'s per-envelope verbs: `schedule`, `remove`,
//! `pause envelope` (hold) and `resume envelope` (release).
//!
//! A held envelope keeps its state, its tries and its next-try time, but it is out of
//! the index of waiting envelopes: it is never handed out and its timer does not fire,
//! and, as in OpenSMTPD's scheduler, it is not expired while held either. Releasing it
//! puts it back at its next-try time, so one whose time passed (or whose expiry passed)
//! is handled at once. A hold is not persisted: after a restart every envelope runs.

use super::{Action, EnvelopeId, EnvelopeState, Event, ReportKind, Scheduler, Target};
use crate::time::UnixTime;

impl Scheduler {
    /// True when this envelope is queued and held (`smtpctl pause envelope`).
    pub fn is_held(&self, id: EnvelopeId) -> bool {
        self.envelopes.get(&id).is_some_and(|e| e.held)
    }

    /// How many queued envelopes are held.
    pub fn held_count(&self) -> usize {
        self.envelopes.values().filter(|e| e.held).count()
    }

    /// Puts a waiting envelope in the index at its ready time, unless it is held.
    pub(super) fn enqueue_waiting(&mut self, id: EnvelopeId, ready: UnixTime) {
        let Some(entry) = self.envelopes.get_mut(&id) else {
            return;
        };
        entry.ready = Some(ready);
        if entry.held {
            return;
        }
        if let Some(w) = self.waiting.get_mut(super::kind_of(&entry.envelope)) {
            w.insert((ready, id));
        }
    }

    /// Takes an envelope out of the index of waiting envelopes (it keeps its ready time).
    fn unindex(&mut self, id: EnvelopeId) {
        let Some(entry) = self.envelopes.get(&id) else {
            return;
        };
        if let (Some(t), false) = (entry.ready, entry.held) {
            if let Some(w) = self.waiting.get_mut(super::kind_of(&entry.envelope)) {
                w.remove(&(t, id));
            }
        }
    }

    /// `smtpctl schedule`: a waiting envelope becomes due now (a held one on release).
    pub(super) fn schedule_now(&mut self, id: EnvelopeId, now: UnixTime) {
        let waiting = self.envelopes.get(&id).is_some_and(|e| {
            matches!(
                e.envelope.state,
                EnvelopeState::Pending | EnvelopeState::Deferred { .. }
            )
        });
        if !waiting {
            return;
        }
        self.unindex(id);
        if let Some(entry) = self.envelopes.get_mut(&id) {
            entry.envelope.state = EnvelopeState::Pending;
        }
        self.enqueue_waiting(id, now);
    }

    /// `smtpctl pause envelope`: stop handing this envelope out. One in flight finishes
    /// its attempt; should that fail temporarily, it then waits held. A failed envelope
    /// awaiting its report is not held: the report goes out.
    pub(super) fn hold(&mut self, id: EnvelopeId) {
        let holdable = self.envelopes.get(&id).is_some_and(|e| {
            !e.held
                && matches!(
                    e.envelope.state,
                    EnvelopeState::Pending
                        | EnvelopeState::Deferred { .. }
                        | EnvelopeState::InFlight
                )
        });
        if !holdable {
            return;
        }
        self.unindex(id);
        if let Some(entry) = self.envelopes.get_mut(&id) {
            entry.held = true;
        }
    }

    /// `smtpctl resume envelope`: the envelope waits for its next try again (due at once
    /// when that time passed).
    pub(super) fn release(&mut self, id: EnvelopeId) {
        let Some(entry) = self.envelopes.get_mut(&id) else {
            return;
        };
        if !entry.held {
            return;
        }
        entry.held = false;
        if let Some(t) = entry.ready {
            self.enqueue_waiting(id, t);
        }
    }

    /// `smtpctl remove`: drop the envelope without a report (at the end of its attempt
    /// when one is under way).
    pub(super) fn remove(&mut self, id: EnvelopeId) {
        let Some(entry) = self.envelopes.get_mut(&id) else {
            return;
        };
        match entry.envelope.state {
            EnvelopeState::InFlight => {
                entry.removing = true;
                return;
            }
            EnvelopeState::Pending | EnvelopeState::Deferred { .. } => self.unindex(id),
            EnvelopeState::Expired | EnvelopeState::Failed => {
                let key = (id.message_id(), ReportKind::Failure);
                if let Some(report) = self.reports.get_mut(&key) {
                    report.envelopes.retain(|x| x.id != id);
                    if report.envelopes.is_empty() {
                        self.report_deadlines
                            .remove(&(report.deadline, key.0, key.1));
                        self.reports.remove(&key);
                    }
                }
            }
        }
        self.envelopes.remove(&id);
        self.actions.push_back(Action::Event(Event::Removed(id)));
        self.actions.push_back(Action::Remove(id));
    }

    /// The queued envelopes a control command names.
    pub(super) fn targets(&self, target: Target) -> Vec<EnvelopeId> {
        match target {
            Target::Envelope(id) => vec![id],
            Target::Message(m) => {
                let low = u64::from(m.get()) << 32;
                let (Some(first), Some(last)) =
                    (EnvelopeId::new(low | 1), EnvelopeId::new(low | 0xffff_ffff))
                else {
                    return Vec::new();
                };
                self.envelopes
                    .range(first..=last)
                    .map(|(&id, _)| id)
                    .collect()
            }
            Target::All => self.envelopes.keys().copied().collect(),
        }
    }
}
