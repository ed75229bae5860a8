//! Harnesses for the queue: the envelope record decoder, and the scheduler driven through
//! days of simulated time by a byte script, checking its invariants at every step.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use smtp_proto::reply::EnhancedStatus;

use crate::queue::{
    decode, encode, DeliveryKind, DsnParams, Envelope, EnvelopeFlags, EnvelopeId, EnvelopeState,
    Failure, MessageId, Notify, SplitMix64,
};
use crate::scheduler::{Action, Event, Input, Outcome, Scheduler, SchedulerConfig, Scope, Target};
use crate::time::UnixTime;

/// Decodes arbitrary bytes as an envelope record; whatever decodes must survive an
/// encode/decode round trip unchanged.
pub fn record(data: &[u8]) {
    if let Ok(envelope) = decode(data) {
        let again = decode(&encode(&envelope));
        assert_eq!(again.as_ref(), Ok(&envelope), "record round trip");
    }
}

/// Choices drawn from the fuzz input; zeros once it is used up.
struct Script<'a> {
    data: &'a [u8],
}

impl Script<'_> {
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    fn below(&mut self, n: u8) -> u8 {
        self.byte() % n.max(1)
    }
}

/// What became of an envelope, as seen from the actions.
#[derive(Default, Debug)]
struct Fate {
    kind_local: bool,
    expires: u64,
    wants_report: bool,
    wants_success: bool,
    success_reported: bool,
    last_deliver: Option<UnixTime>,
    tries: u32,
    in_flight: bool,
    delivered: bool,
    perm_failed: bool,
    bounced: bool,
    dropped: bool,
    control_removed: bool,
    removed: u32,
    /// Failed for good or expired: awaiting its report, beyond holds.
    failed: bool,
    /// Held by `Input::Hold` and not released (nor failed) since.
    held: bool,
    /// Held at some point.
    was_held: bool,
}

/// The simulated world around one scheduler.
struct Sim {
    sched: Scheduler,
    now: UnixTime,
    config: SchedulerConfig,
    fates: BTreeMap<EnvelopeId, Fate>,
    /// Deliveries under way: (completion time, id, outcome choice).
    running: BTreeSet<(UnixTime, EnvelopeId, u8)>,
    inflight: [usize; 2],
    /// The envelope whose result is being fed (for the expiry check).
    completing: Option<EnvelopeId>,
}

fn failure(class: u8) -> Failure {
    Failure {
        status: EnhancedStatus::new(class, 0, 0),
        text: format!("{class}50 {class}.0.0 simulated"),
        remote_mta: None,
    }
}

impl Sim {
    fn drain(&mut self, script: &mut Script<'_>) {
        while let Some(action) = self.sched.poll_action() {
            let now = self.now;
            match action {
                Action::Deliver(e) => {
                    let f = self
                        .fates
                        .get_mut(&e.id)
                        .expect("deliver of a known envelope");
                    assert!(
                        !f.in_flight && f.removed == 0,
                        "deliver twice or after removal"
                    );
                    assert!(!f.held, "a held envelope was handed out");
                    assert!(now.as_millis() < f.expires, "delivery at or after expiry");
                    assert!(
                        f.last_deliver.is_none_or(|t| t <= now),
                        "attempt times go back"
                    );
                    assert!(e.tries > f.tries, "tries must grow");
                    f.tries = e.tries;
                    f.last_deliver = Some(now);
                    f.in_flight = true;
                    let k = usize::from(!f.kind_local);
                    self.inflight[k] += 1;
                    let max = if f.kind_local {
                        self.config.max_inflight_local
                    } else {
                        self.config.max_inflight_remote
                    };
                    assert!(self.inflight[k] <= max, "in-flight limit exceeded");
                    let latency = Duration::from_secs(u64::from(script.below(120)));
                    self.running.insert((now + latency, e.id, script.byte()));
                }
                Action::Update(e) => {
                    if let EnvelopeState::Deferred { next } = e.state {
                        assert!(next >= now, "next try in the past");
                        assert!(next <= e.expires, "next try past expiry");
                    }
                }
                Action::Bounce(report) => {
                    assert!(!report.envelopes.is_empty(), "empty bounce");
                    assert!(!report.sender.is_empty(), "bounce to the null sender");
                    for e in &report.envelopes {
                        assert_eq!(e.message_id(), report.message, "bounce mixes messages");
                        let f = self
                            .fates
                            .get_mut(&e.id)
                            .expect("bounce of a known envelope");
                        assert!(f.wants_report, "bounce nobody asked for");
                        assert!(!f.bounced, "two bounces for one failure");
                        assert!(
                            f.perm_failed || now.as_millis() >= f.expires,
                            "bounce without a failure"
                        );
                        f.bounced = true;
                    }
                }
                Action::SuccessNotice(report) => {
                    assert!(
                        !report.sender.is_empty(),
                        "success notice to the null sender"
                    );
                    for e in &report.envelopes {
                        let f = self
                            .fates
                            .get_mut(&e.id)
                            .expect("report of a known envelope");
                        assert!(
                            f.delivered && f.wants_success,
                            "success notice without success"
                        );
                        assert!(!f.success_reported, "two success notices for one delivery");
                        f.success_reported = true;
                    }
                }
                Action::DelayNotice(report) => {
                    assert!(!report.sender.is_empty(), "delay notice to the null sender");
                }
                Action::Remove(id) => {
                    let f = self.fates.get_mut(&id).expect("remove of a known envelope");
                    assert!(!f.in_flight, "removed while in flight");
                    f.removed += 1;
                }
                Action::Event(Event::Dropped { id, .. }) => {
                    self.fates.get_mut(&id).expect("known").dropped = true;
                }
                Action::Event(Event::Expired(id)) => {
                    let f = self.fates.get_mut(&id).expect("known");
                    // Only an attempt under way may end past expiry while held.
                    assert!(
                        !f.held || self.completing == Some(id),
                        "a held envelope expired"
                    );
                    f.failed = true;
                    f.held = false;
                }
                Action::Event(Event::Removed(id)) => {
                    let f = self.fates.get(&id).expect("known");
                    assert!(f.control_removed, "removed without a request");
                }
                Action::Event(Event::Deferred { .. }) => {}
            }
        }
    }

    fn complete(&mut self, id: EnvelopeId, choice: u8) {
        let f = self.fates.get_mut(&id).expect("known");
        f.in_flight = false;
        self.inflight[usize::from(!f.kind_local)] -= 1;
        let outcome = match choice % 10 {
            0..=3 => {
                f.delivered = true;
                Outcome::Delivered
            }
            4..=7 => Outcome::TempFail(failure(4)),
            _ => {
                f.perm_failed = true;
                f.failed = true;
                f.held = false;
                Outcome::PermFail(failure(5))
            }
        };
        // A delivery of an envelope removed by control meanwhile counts for nothing.
        if f.control_removed {
            f.delivered = false;
            f.perm_failed = false;
        }
        // The next drain sees this result's actions.
        self.completing = Some(id);
        self.sched
            .handle(Input::DeliveryResult { id, outcome }, self.now)
            .expect("result");
    }

    /// The envelopes a control target names, as the sim knows them.
    fn named(&self, target: Target) -> Vec<EnvelopeId> {
        self.fates
            .keys()
            .copied()
            .filter(|id| match target {
                Target::Envelope(x) => *id == x,
                Target::Message(m) => id.message_id() == m,
                Target::All => true,
            })
            .collect()
    }

    /// Holds or releases `target`, tracking what the scheduler should hold, and checks
    /// that it agrees.
    fn hold(&mut self, target: Target, hold: bool) {
        for id in self.named(target) {
            let f = self.fates.get_mut(&id).expect("known");
            // Queued and not failed: the scheduler holds it (a release frees it).
            if f.removed == 0 && !f.failed {
                f.held = hold;
                f.was_held |= hold;
            }
        }
        let input = if hold {
            Input::Hold(target)
        } else {
            Input::Release(target)
        };
        self.sched.handle(input, self.now).expect("hold");
        for (id, f) in &self.fates {
            let expected = f.held && f.removed == 0;
            assert_eq!(self.sched.is_held(*id), expected, "{id} held state");
        }
    }

    fn any_held(&self) -> bool {
        self.fates.values().any(|f| f.held && f.removed == 0)
    }
}

fn make_envelopes(script: &mut Script<'_>, now: UnixTime) -> Vec<Envelope> {
    let mut rng = SplitMix64::new(u64::from(script.byte()));
    let mut out = Vec::new();
    for _ in 0..1 + script.below(3) {
        let message = MessageId::generate(&mut rng);
        let sender = match script.below(8) {
            0 => None,
            _ => Some("sender@example.org".to_owned()),
        };
        let ttl = [3600, 86_400, 4 * 86_400][usize::from(script.below(3))];
        for _ in 0..1 + script.below(4) {
            let delivery = if script.below(2) == 0 {
                DeliveryKind::Local {
                    user: "bob".into(),
                    method: "maildir".into(),
                }
            } else {
                DeliveryKind::Relay {
                    action: "outbound".into(),
                }
            };
            let notify = match script.below(6) {
                0 => Some(Notify::default()),
                1 => Some(Notify {
                    success: false,
                    failure: true,
                    delay: false,
                }),
                2 => Some(Notify {
                    success: true,
                    failure: true,
                    delay: true,
                }),
                _ => None,
            };
            let state = match script.below(8) {
                0 => EnvelopeState::Deferred {
                    next: now + Duration::from_secs(600),
                },
                1 => EnvelopeState::InFlight,
                _ => EnvelopeState::Pending,
            };
            out.push(Envelope {
                id: EnvelopeId::generate(message, &mut rng),
                sender: sender.clone(),
                original_recipient: "rcpt@example.net".into(),
                recipient: "rcpt@example.net".into(),
                delivery,
                dsn: DsnParams {
                    notify,
                    ..DsnParams::default()
                },
                created: now,
                expires: now + Duration::from_secs(ttl),
                tries: 0,
                last_try: None,
                last_error: None,
                warnings_sent: 0,
                state,
                flags: EnvelopeFlags::default(),
                listener: String::new(),
                helo: "client".into(),
                source: "192.0.2.1".into(),
            });
        }
    }
    out
}

/// Drives a scheduler through a fuzz-chosen script: a few messages, delivery outcomes and
/// latencies, and control commands (schedule, remove, pause, resume, hold, release), with
/// simulated time jumping to the next deadline. Checks: in-flight limits hold, attempts
/// are monotone and stop at expiry, a held envelope is never handed out nor expired
/// (only an attempt already under way may end), the scheduler holds exactly what was held
/// and not released, no bounce to `<>`, never two bounces for one failure, and every
/// envelope ends exactly once: delivered, bounced, dropped, or removed by control (held
/// envelopes are released when nothing else is left, and must then end too).
pub fn scheduler(data: &[u8]) {
    simulate(data);
}

/// What a simulation run came to, so tests can check that a script reached deep.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Summary {
    /// Envelopes queued.
    pub envelopes: usize,
    /// Delivery attempts handed out.
    pub attempts: u32,
    /// Envelopes delivered.
    pub delivered: usize,
    /// Envelopes reported in a bounce.
    pub bounced: usize,
    /// Simulated time elapsed.
    pub elapsed: Duration,
    /// Envelopes held at some point and delivered in the end.
    pub held_then_delivered: usize,
}

/// The body of [`scheduler`]: runs the simulation, checks it, and sums it up.
pub fn simulate(data: &[u8]) -> Summary {
    let mut script = Script { data };
    let config = SchedulerConfig {
        max_inflight_local: 1 + usize::from(script.below(3)),
        max_inflight_remote: 1 + usize::from(script.below(4)),
        warn_intervals: vec![Duration::from_secs(3600), Duration::from_secs(4 * 3600)],
        ..SchedulerConfig::default()
    };
    let start = UnixTime::from_secs(1_795_896_568);
    let mut sim = Sim {
        sched: Scheduler::new(config.clone()),
        now: start,
        config,
        fates: BTreeMap::new(),
        running: BTreeSet::new(),
        inflight: [0, 0],
        completing: None,
    };
    let mut dup_check = BTreeSet::new();
    for e in make_envelopes(&mut script, start) {
        if !dup_check.insert(e.id) {
            continue;
        }
        sim.fates.insert(
            e.id,
            Fate {
                kind_local: e.delivery.is_local(),
                expires: e.expires.as_millis(),
                wants_report: e.wants_failure_report(),
                wants_success: e.wants_success_report(),
                ..Fate::default()
            },
        );
        sim.sched
            .handle(Input::EnvelopeQueued(Box::new(e)), start)
            .expect("queue");
    }
    let ids: Vec<EnvelopeId> = sim.fates.keys().copied().collect();
    let mut paused = false;
    for _ in 0..100_000 {
        sim.drain(&mut script);
        sim.completing = None;
        // Now and then, a control command.
        let control = match script.below(16) {
            1 => Some(Input::Schedule(Target::All)),
            2 if !paused => {
                paused = true;
                Some(Input::Pause(
                    [Scope::Local, Scope::Remote, Scope::All][usize::from(script.below(3))],
                ))
            }
            3 => {
                paused = false;
                Some(Input::Resume(Scope::All))
            }
            4 if !ids.is_empty() => {
                let id = ids[usize::from(script.byte()) % ids.len()];
                let f = sim.fates.get_mut(&id).expect("known");
                if f.removed == 0 && !f.bounced {
                    f.control_removed = true;
                }
                Some(Input::Remove(Target::Envelope(id)))
            }
            5 | 6 if !ids.is_empty() => {
                let id = ids[usize::from(script.byte()) % ids.len()];
                let target = match script.below(4) {
                    0 => Target::Message(id.message_id()),
                    1 => Target::All,
                    _ => Target::Envelope(id),
                };
                let hold = script.below(2) == 0;
                sim.hold(target, hold);
                continue;
            }
            _ => None,
        };
        if let Some(input) = control {
            sim.sched.handle(input, sim.now).expect("control");
            continue;
        }
        let timer = sim.sched.poll_timeout();
        let result = sim.running.first().copied();
        match (timer, result) {
            (_, Some((t, id, choice))) if timer.is_none_or(|tt| t <= tt) => {
                sim.running.remove(&(t, id, choice));
                sim.now = sim.now.max(t);
                sim.complete(id, choice);
            }
            (Some(t), _) => {
                sim.now = sim.now.max(t);
                sim.sched.handle(Input::Tick, sim.now).expect("tick");
            }
            (None, _) if paused => {
                paused = false;
                sim.sched
                    .handle(Input::Resume(Scope::All), sim.now)
                    .expect("resume");
            }
            // Nothing left to do but held envelopes: release them, they must go on.
            (None, _) if sim.any_held() => sim.hold(Target::All, false),
            (None, _) => break,
        }
    }
    sim.drain(&mut script);
    assert!(sim.sched.is_empty(), "envelopes left: {}", sim.sched.len());
    for (id, f) in &sim.fates {
        assert_eq!(f.removed, 1, "{id} removed {} times", f.removed);
        let ends = [f.delivered, f.bounced, f.dropped, f.control_removed];
        assert_eq!(
            f.success_reported,
            f.delivered && f.wants_success,
            "{id} success notice"
        );
        assert_eq!(
            ends.iter().filter(|&&x| x).count(),
            1,
            "{id} ended as {f:?}"
        );
    }
    Summary {
        envelopes: sim.fates.len(),
        attempts: sim.fates.values().map(|f| f.tries).sum(),
        delivered: sim.fates.values().filter(|f| f.delivered).count(),
        bounced: sim.fates.values().filter(|f| f.bounced).count(),
        elapsed: sim.now.saturating_duration_since(start),
        held_then_delivered: sim
            .fates
            .values()
            .filter(|f| f.was_held && f.delivered)
            .count(),
    }
}
