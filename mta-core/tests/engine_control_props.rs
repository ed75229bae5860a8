//! A property of the engine under smtpctl's queue verbs: for arbitrary sequences of
//! control requests (schedule, remove, pause, resume, hold, release; of one envelope, a
//! message or all) interleaved with new mail, delivery results, report commits and the
//! passing of time, every envelope ends exactly one way (delivered, bounced, removed by
//! request, or still queued), a held envelope is never handed out, and no failure is
//! reported twice.

#[path = "engine_harness.rs"]
mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use harness::Harness;
use mta_core::bounce::ReportKind;
use mta_core::control::{Agent, Answer, ControlState, Request};
use mta_core::engine::{Input, PeerAddr, SessionId, SessionInfo};
use mta_core::queue::{EnvelopeId, Failure, MessageId};
use mta_core::scheduler::{Outcome, Target};
use quickcheck::{Arbitrary, Gen, QuickCheck};
use smtp_proto::reply::EnhancedStatus;

/// Local delivery for example.org, relay for the rest from the local enqueuer; a short
/// ttl so that expiries happen within a run.
const CONF: &str = r#"
queue ttl 6h
listen on 127.0.0.1
action "local" maildir
action "out" relay
match from any for domain "example.org" action "local"
match from local for any action "out"
"#;

const RECIPIENTS: [&str; 3] = ["bob@example.org", "carol@example.org", "x@remote.test"];

/// One step of a run.
#[derive(Clone, Debug)]
enum Op {
    /// A message to the recipients picked by the mask's low bits.
    Message(u8),
    /// End the delivery picked by the first byte with the outcome picked by the second.
    Deliver(u8, u8),
    /// The runtime queued (or failed to queue) a report.
    BounceQueued(u8, bool),
    /// Time passes.
    Wait(u16),
    /// Time jumps to the engine's next deadline.
    Advance,
    /// A control request: verb, target kind, which envelope.
    Control(u8, u8, u8),
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Op {
        let (a, b, c) = (u8::arbitrary(g), u8::arbitrary(g), u8::arbitrary(g));
        match u8::arbitrary(g) % 12 {
            0 | 1 => Op::Message(a),
            2..=4 => Op::Deliver(a, b),
            5 => Op::BounceQueued(a, b % 4 != 0),
            6 => Op::Wait(u16::arbitrary(g)),
            7 => Op::Advance,
            _ => Op::Control(a, b, c),
        }
    }
}

fn failure(class: u8) -> Failure {
    Failure {
        status: EnhancedStatus::new(class, 0, 0),
        text: "trouble".into(),
        remote_mta: None,
    }
}

struct Run {
    h: Harness,
    control: ControlState,
    sender: SessionId,
    /// Envelopes of the messages sent (not of reports).
    originals: BTreeSet<EnvelopeId>,
    /// Envelopes that got a `Delivered` result.
    delivered: BTreeSet<EnvelopeId>,
}

impl Run {
    fn new() -> Run {
        let mut h = Harness::new(CONF);
        let info = SessionInfo {
            listener: None,
            peer: PeerAddr::Local,
            local: None,
            rdns: None,
            tls: false,
        };
        let sender = h.engine.open_session(info, h.now);
        h.drain();
        h.helo(sender);
        let control = ControlState::new(h.now);
        Run {
            h,
            control,
            sender,
            originals: BTreeSet::new(),
            delivered: BTreeSet::new(),
        }
    }

    fn send(&mut self, mask: u8) {
        let (h, s) = (&mut self.h, self.sender);
        h.mail(s, "alice@remote.test");
        for (i, r) in RECIPIENTS.iter().enumerate() {
            if mask & (1 << i) != 0 || (mask & 7 == 0 && i == 0) {
                h.rcpt(s, r);
            }
        }
        h.answer_lookups(&["bob", "carol"]);
        h.data(s);
        h.end(s, 10, 0);
        for (_, records) in &h.commits {
            for (id, _) in records {
                self.originals.insert(*id);
            }
        }
        h.commit_all();
    }

    /// Some queued envelope (or, now and then, one that is not queued).
    fn pick(&self, i: u8) -> EnvelopeId {
        let queued: Vec<EnvelopeId> = self
            .h
            .engine
            .scheduler()
            .envelopes()
            .map(|e| e.id)
            .collect();
        let known: Vec<EnvelopeId> = self.originals.iter().copied().collect();
        let pool = if i.is_multiple_of(8) || queued.is_empty() {
            known
        } else {
            queued
        };
        pool.get(usize::from(i) % pool.len().max(1))
            .copied()
            .unwrap_or_else(|| EnvelopeId::new(0x0bad_0bad_0000_0001).expect("id"))
    }

    fn request(&mut self, verb: u8, kind: u8, i: u8) {
        let id = self.pick(i);
        let target = match kind % 4 {
            0 => Target::All,
            1 => Target::Message(id.message_id()),
            _ => Target::Envelope(id),
        };
        let request = match verb % 8 {
            0 => Request::Schedule(target),
            1 => Request::Remove(target),
            2 => Request::Pause([Agent::Mda, Agent::Mta][usize::from(i % 2)]),
            3 => Request::Resume([Agent::Mda, Agent::Mta][usize::from(i % 2)]),
            4 | 5 => Request::PauseEnvelope(target),
            _ => Request::ResumeEnvelope(target),
        };
        if let Answer::Feed(c) = self.control.answer(&self.h.engine, &request, self.h.now) {
            self.h.input(Input::Control(c));
        }
    }

    fn held(&self) -> BTreeSet<EnvelopeId> {
        let s = self.h.engine.scheduler();
        s.envelopes()
            .map(|e| e.id)
            .filter(|&id| s.is_held(id))
            .collect()
    }

    fn step(&mut self, op: Op) {
        let held_before = self.held();
        let handed_out = self.h.delivered_log.len();
        let h = &mut self.h;
        match op {
            Op::Message(mask) => self.send(mask),
            Op::Deliver(i, kind) => {
                let n = h.deliveries.len();
                let Some(e) = h.deliveries.remove(usize::from(i) % n.max(1)) else {
                    return;
                };
                let outcome = match kind % 3 {
                    0 => Outcome::Delivered,
                    1 => Outcome::TempFail(failure(4)),
                    _ => Outcome::PermFail(failure(5)),
                };
                if outcome == Outcome::Delivered {
                    self.delivered.insert(e.id);
                }
                h.input(Input::DeliveryResult { id: e.id, outcome });
            }
            Op::BounceQueued(i, ok) => {
                let n = h.bounces.len();
                let Some((msgid, _)) = h.bounces.remove(usize::from(i) % n.max(1)) else {
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
            Op::Control(verb, kind, i) => self.request(verb, kind, i),
        }
        // Only a release lets a held envelope go: one held before and after this step
        // was not handed out during it.
        let held_after = self.held();
        for id in self.h.delivered_log.get(handed_out..).unwrap_or_default() {
            assert!(
                !(held_before.contains(id) && held_after.contains(id)),
                "held envelope {id} handed out"
            );
        }
    }

    /// Checks how every envelope ended.
    fn check(&self) {
        let h = &self.h;
        let removed_by_request: BTreeSet<EnvelopeId> = h
            .logs
            .iter()
            .filter_map(|l| {
                l.strip_prefix("queue: envelope ")?
                    .strip_suffix(" removed by request")?
                    .parse()
                    .ok()
            })
            .collect();
        // Never two failure reports about one envelope (a report asked again after a
        // failed commit keeps its own id: that is the same report).
        let mut bounced: BTreeMap<EnvelopeId, MessageId> = BTreeMap::new();
        for (msgid, report) in &h.bounce_log {
            if report.kind == ReportKind::Failure {
                for e in &report.envelopes {
                    let first = *bounced.entry(e.id).or_insert(*msgid);
                    assert_eq!(first, *msgid, "envelope {} reported twice", e.id);
                }
            }
        }
        let removed: BTreeSet<EnvelopeId> = h.removed.iter().copied().collect();
        assert_eq!(removed.len(), h.removed.len(), "an envelope removed twice");
        for id in &self.originals {
            let queued = h.engine.scheduler().get(*id).is_some();
            let by_request = removed_by_request.contains(id);
            let delivered = self.delivered.contains(id) && !by_request;
            let fates = [delivered, bounced.contains_key(id), by_request, queued];
            assert_eq!(
                fates.iter().filter(|&&x| x).count(),
                1,
                "{id}: delivered, bounced, removed, queued = {fates:?}"
            );
            // Its record goes only once it ended (a bounced one once its report is in).
            if removed.contains(id) {
                assert!(!queued, "{id} removed but queued");
            }
            if delivered || by_request {
                assert!(removed.contains(id), "{id} ended but its record stays");
            }
        }
        let stats = h.engine.stats();
        let stat = |k: &str| stats.get(k).copied().unwrap_or(0);
        assert_eq!(
            stat("scheduler.envelope.enqueued") - stat("scheduler.envelope.dequeued"),
            stat("scheduler.envelope")
        );
        assert_eq!(
            stat("scheduler.envelope.removed"),
            i64::try_from(removed_by_request.len()).expect("small")
        );
    }
}

fn run(ops: Vec<Op>) -> bool {
    let mut r = Run::new();
    for op in ops {
        r.step(op);
    }
    r.check();
    true
}

#[test]
fn control_requests_never_lose_or_double_report_an_envelope() {
    QuickCheck::new()
        .tests(400)
        .quickcheck(run as fn(Vec<Op>) -> bool);
}

#[test]
fn a_long_scripted_run_reaches_every_ending() {
    // A fixed script that holds, releases, removes, fails and expires.
    let mut ops = Vec::new();
    for round in 0u8..40 {
        ops.push(Op::Message(round));
        ops.push(Op::Control(4, 2, round));
        ops.push(Op::Deliver(round, round));
        ops.push(Op::Control(1, 2, round.wrapping_mul(7)));
        ops.push(Op::Wait(900));
        ops.push(Op::Control(6, 0, 0));
        ops.push(Op::Deliver(round.wrapping_add(1), round.wrapping_add(2)));
        ops.push(Op::BounceQueued(round, true));
        ops.push(Op::Advance);
    }
    ops.push(Op::Wait(u16::MAX));
    ops.push(Op::Advance);
    let mut r = Run::new();
    for op in ops {
        r.step(op);
    }
    r.check();
    let stats = r.h.engine.stats();
    for key in [
        "scheduler.delivery.ok",
        "scheduler.envelope.removed",
        "queue.bounce",
    ] {
        assert!(stats.get(key).copied().unwrap_or(0) > 0, "{key}: {stats:?}");
    }
}
