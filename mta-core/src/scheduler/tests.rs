//! Scheduler tests: scenarios with a fake clock, and the simulation property.

use std::time::Duration;

use quickcheck::QuickCheck;
use smtp_proto::reply::EnhancedStatus;

use super::*;
use crate::bounce::ReportKind;
use crate::queue::{DeliveryKind, Envelope, EnvelopeId, EnvelopeState, Failure, Notify};
use crate::time::UnixTime;

mod hold;

const T0: u64 = 1_795_896_568;

fn t(secs: u64) -> UnixTime {
    UnixTime::from_secs(T0 + secs)
}

fn env(id: u64) -> Envelope {
    crate::queue::tests::sample_envelope(EnvelopeId::new(id).unwrap())
}

fn local(mut e: Envelope) -> Envelope {
    e.delivery = DeliveryKind::Local {
        user: "bob".into(),
        method: "maildir".into(),
    };
    e
}

fn fail(class: u8) -> Failure {
    Failure {
        status: EnhancedStatus::new(class, 1, 1),
        text: format!("{class}50 no"),
        remote_mta: Some("mx.example.net".into()),
    }
}

fn drain(s: &mut Scheduler) -> Vec<Action> {
    std::iter::from_fn(|| s.poll_action()).collect()
}

fn delivered_ids(actions: &[Action]) -> Vec<EnvelopeId> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Deliver(e) => Some(e.id),
            _ => None,
        })
        .collect()
}

const A: u64 = 0x1111_1111_0000_0001;
const B: u64 = 0x1111_1111_0000_0002;
const C: u64 = 0x1111_1111_0000_0003;
const D: u64 = 0x2222_2222_0000_0001;

fn id(v: u64) -> EnvelopeId {
    EnvelopeId::new(v).unwrap()
}

#[test]
fn delivers_then_removes() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    s.handle(Input::EnvelopeQueued(Box::new(env(A))), t(0))
        .unwrap();
    let a = drain(&mut s);
    assert!(matches!(&a[..], [Action::Deliver(e)] if e.tries == 1 && e.last_try == Some(t(0))));
    assert_eq!(s.inflight(), (0, 1));
    s.handle(
        Input::DeliveryResult {
            id: id(A),
            outcome: Outcome::Delivered,
        },
        t(3),
    )
    .unwrap();
    assert_eq!(drain(&mut s), [Action::Remove(id(A))]);
    assert!(s.is_empty());
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn temp_failure_retries_with_backoff_and_persists() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    s.handle(Input::EnvelopeQueued(Box::new(env(A))), t(0))
        .unwrap();
    drain(&mut s);
    s.handle(
        Input::DeliveryResult {
            id: id(A),
            outcome: Outcome::TempFail(fail(4)),
        },
        t(5),
    )
    .unwrap();
    let a = drain(&mut s);
    let Action::Update(e) = &a[0] else {
        panic!("{a:?}")
    };
    assert_eq!(e.state, EnvelopeState::Deferred { next: t(405) });
    assert_eq!(e.last_error, Some(fail(4)));
    assert_eq!(s.poll_timeout(), Some(t(405)));
    // Early ticks do nothing.
    s.handle(Input::Tick, t(404)).unwrap();
    assert!(delivered_ids(&drain(&mut s)).is_empty());
    s.handle(Input::Tick, t(405)).unwrap();
    let a = drain(&mut s);
    assert!(matches!(&a[..], [Action::Deliver(e)] if e.tries == 2));
    s.handle(
        Input::DeliveryResult {
            id: id(A),
            outcome: Outcome::TempFail(fail(4)),
        },
        t(410),
    )
    .unwrap();
    drain(&mut s);
    assert_eq!(s.poll_timeout(), Some(t(410 + 1600)));
}

#[test]
fn local_retries_are_faster() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    s.handle(Input::EnvelopeQueued(Box::new(local(env(A)))), t(0))
        .unwrap();
    drain(&mut s);
    assert_eq!(s.inflight(), (1, 0));
    s.handle(
        Input::DeliveryResult {
            id: id(A),
            outcome: Outcome::TempFail(fail(4)),
        },
        t(0),
    )
    .unwrap();
    drain(&mut s);
    assert_eq!(s.poll_timeout(), Some(t(10)));
}

#[test]
fn failures_of_one_message_make_one_bounce() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    for v in [A, B, C, D] {
        s.handle(Input::EnvelopeQueued(Box::new(env(v))), t(0))
            .unwrap();
    }
    assert_eq!(delivered_ids(&drain(&mut s)).len(), 4);
    s.handle(
        Input::DeliveryResult {
            id: id(A),
            outcome: Outcome::PermFail(fail(5)),
        },
        t(1),
    )
    .unwrap();
    let a = drain(&mut s);
    assert!(matches!(&a[..], [Action::Update(e)] if e.state == EnvelopeState::Failed));
    s.handle(
        Input::DeliveryResult {
            id: id(B),
            outcome: Outcome::PermFail(fail(5)),
        },
        t(4),
    )
    .unwrap();
    s.handle(
        Input::DeliveryResult {
            id: id(C),
            outcome: Outcome::Delivered,
        },
        t(5),
    )
    .unwrap();
    s.handle(
        Input::DeliveryResult {
            id: id(D),
            outcome: Outcome::PermFail(fail(5)),
        },
        t(6),
    )
    .unwrap();
    drain(&mut s);
    assert_eq!(s.poll_timeout(), Some(t(11)));
    s.handle(Input::Tick, t(11)).unwrap();
    let a = drain(&mut s);
    let Action::Bounce(r) = &a[0] else {
        panic!("{a:?}")
    };
    assert_eq!(r.kind, ReportKind::Failure);
    assert_eq!(r.sender, "alice@example.org");
    let ids: Vec<_> = r.envelopes.iter().map(|e| e.id).collect();
    assert_eq!(ids, [id(A), id(B)]);
    assert_eq!(a[1..], [Action::Remove(id(A)), Action::Remove(id(B))]);
    // The other message's window closes later, with its own bounce.
    s.handle(Input::Tick, t(16)).unwrap();
    let a = drain(&mut s);
    assert!(
        matches!(&a[..], [Action::Bounce(r), Action::Remove(x)] if r.envelopes.len() == 1 && *x == id(D))
    );
    assert!(s.is_empty());
}

#[test]
fn no_bounce_for_the_null_sender_or_notify_never() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    let mut a = env(A);
    a.sender = None;
    let mut b = env(D);
    b.dsn.notify = Some(Notify::default());
    s.handle(Input::EnvelopeQueued(Box::new(a)), t(0)).unwrap();
    s.handle(Input::EnvelopeQueued(Box::new(b)), t(0)).unwrap();
    drain(&mut s);
    s.handle(
        Input::DeliveryResult {
            id: id(A),
            outcome: Outcome::PermFail(fail(5)),
        },
        t(1),
    )
    .unwrap();
    s.handle(
        Input::DeliveryResult {
            id: id(D),
            outcome: Outcome::PermFail(fail(5)),
        },
        t(1),
    )
    .unwrap();
    let a = drain(&mut s);
    assert_eq!(
        a,
        [
            Action::Event(Event::Dropped {
                id: id(A),
                reason: DropReason::NullSender
            }),
            Action::Remove(id(A)),
            Action::Event(Event::Dropped {
                id: id(D),
                reason: DropReason::NotifyNever
            }),
            Action::Remove(id(D)),
        ]
    );
    assert!(s.is_empty());
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn expiry_bounces_after_the_ttl() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    let mut e = env(A);
    e.created = t(0);
    e.expires = t(1000);
    s.handle(Input::EnvelopeQueued(Box::new(e)), t(0)).unwrap();
    drain(&mut s);
    s.handle(
        Input::DeliveryResult {
            id: id(A),
            outcome: Outcome::TempFail(fail(4)),
        },
        t(0),
    )
    .unwrap();
    drain(&mut s);
    s.handle(Input::Tick, t(400)).unwrap();
    drain(&mut s);
    s.handle(
        Input::DeliveryResult {
            id: id(A),
            outcome: Outcome::TempFail(fail(4)),
        },
        t(400),
    )
    .unwrap();
    drain(&mut s);
    // 400 + 1600 is past the expiry: the next wake-up is the expiry itself.
    assert_eq!(s.poll_timeout(), Some(t(1000)));
    s.handle(Input::Tick, t(1000)).unwrap();
    let a = drain(&mut s);
    assert_eq!(a[0], Action::Event(Event::Expired(id(A))));
    assert!(matches!(&a[1], Action::Update(e) if e.state == EnvelopeState::Expired));
    assert_eq!(a.len(), 2);
    s.handle(Input::Tick, t(1010)).unwrap();
    let a = drain(&mut s);
    assert!(
        matches!(&a[..], [Action::Bounce(r), Action::Remove(_)] if r.envelopes[0].state == EnvelopeState::Expired)
    );
}

#[test]
fn delay_notice_once_per_warn_interval() {
    let config = SchedulerConfig {
        warn_intervals: vec![Duration::from_secs(4 * 3600), Duration::from_secs(3600)],
        ..SchedulerConfig::default()
    };
    let mut s = Scheduler::new(config);
    let mut e = env(A);
    e.created = t(0);
    s.handle(Input::EnvelopeQueued(Box::new(e)), t(0)).unwrap();
    let mut notices = Vec::new();
    let mut now = 0;
    while now < 7 * 3600 {
        for a in drain(&mut s) {
            match a {
                Action::Deliver(_) => s
                    .handle(
                        Input::DeliveryResult {
                            id: id(A),
                            outcome: Outcome::TempFail(fail(4)),
                        },
                        t(now),
                    )
                    .unwrap(),
                Action::DelayNotice(r) => notices.push((now, r)),
                _ => {}
            }
        }
        now = s.poll_timeout().unwrap().as_secs() - T0;
        s.handle(Input::Tick, t(now)).unwrap();
    }
    let times: Vec<u64> = notices.iter().map(|(n, _)| *n).collect();
    // Attempts at 0, 400, 2000, 5600 (past 1 h), 12000, 22000 (past 4 h); each notice
    // leaves when its 10 s window closes.
    assert_eq!(times, [5610, 22_010], "{notices:?}");
    assert!(notices.iter().all(|(_, r)| r.kind == ReportKind::Delay));
    assert_eq!(s.get(id(A)).unwrap().warnings_sent, 2);
}

#[test]
fn inflight_limits_per_kind() {
    let config = SchedulerConfig {
        max_inflight_local: 1,
        max_inflight_remote: 2,
        ..Default::default()
    };
    let mut s = Scheduler::new(config);
    for v in [A, B, C] {
        s.handle(Input::EnvelopeQueued(Box::new(env(v))), t(0))
            .unwrap();
    }
    s.handle(Input::EnvelopeQueued(Box::new(local(env(D)))), t(0))
        .unwrap();
    s.handle(Input::EnvelopeQueued(Box::new(local(env(D + 1)))), t(0))
        .unwrap();
    assert_eq!(delivered_ids(&drain(&mut s)), [id(A), id(B), id(D)]);
    assert_eq!(s.inflight(), (1, 2));
    // Both kinds at their limit: no timer, the next result wakes it.
    assert_eq!(s.poll_timeout(), None);
    s.handle(
        Input::DeliveryResult {
            id: id(A),
            outcome: Outcome::Delivered,
        },
        t(1),
    )
    .unwrap();
    assert_eq!(delivered_ids(&drain(&mut s)), [id(C)]);
}

#[test]
fn pause_resume_schedule_remove() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    s.handle(Input::Pause(Scope::Remote), t(0)).unwrap();
    s.handle(Input::EnvelopeQueued(Box::new(env(A))), t(0))
        .unwrap();
    s.handle(Input::EnvelopeQueued(Box::new(env(B))), t(0))
        .unwrap();
    assert!(drain(&mut s).is_empty());
    assert_eq!(s.poll_timeout(), None);
    s.handle(Input::Resume(Scope::All), t(1)).unwrap();
    assert_eq!(delivered_ids(&drain(&mut s)), [id(A), id(B)]);
    s.handle(
        Input::DeliveryResult {
            id: id(A),
            outcome: Outcome::TempFail(fail(4)),
        },
        t(2),
    )
    .unwrap();
    drain(&mut s);
    s.handle(Input::Schedule(Target::Message(id(A).message_id())), t(3))
        .unwrap();
    assert_eq!(delivered_ids(&drain(&mut s)), [id(A)]);
    // Removing an envelope in flight waits for its result.
    s.handle(Input::Remove(Target::All), t(4)).unwrap();
    assert!(drain(&mut s).is_empty());
    s.handle(
        Input::DeliveryResult {
            id: id(B),
            outcome: Outcome::PermFail(fail(5)),
        },
        t(5),
    )
    .unwrap();
    assert_eq!(
        drain(&mut s),
        [Action::Event(Event::Removed(id(B))), Action::Remove(id(B))]
    );
    s.handle(
        Input::DeliveryResult {
            id: id(A),
            outcome: Outcome::Delivered,
        },
        t(5),
    )
    .unwrap();
    assert_eq!(
        drain(&mut s),
        [Action::Event(Event::Removed(id(A))), Action::Remove(id(A))]
    );
    assert!(s.is_empty());
}

#[test]
fn remove_deferred_and_awaiting_bounce() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    s.handle(Input::EnvelopeQueued(Box::new(env(A))), t(0))
        .unwrap();
    s.handle(Input::EnvelopeQueued(Box::new(env(B))), t(0))
        .unwrap();
    drain(&mut s);
    s.handle(
        Input::DeliveryResult {
            id: id(A),
            outcome: Outcome::TempFail(fail(4)),
        },
        t(1),
    )
    .unwrap();
    s.handle(
        Input::DeliveryResult {
            id: id(B),
            outcome: Outcome::PermFail(fail(5)),
        },
        t(1),
    )
    .unwrap();
    drain(&mut s);
    s.handle(Input::Remove(Target::Envelope(id(A))), t(2))
        .unwrap();
    s.handle(Input::Remove(Target::Envelope(id(B))), t(2))
        .unwrap();
    assert_eq!(
        drain(&mut s),
        [
            Action::Event(Event::Removed(id(A))),
            Action::Remove(id(A)),
            Action::Event(Event::Removed(id(B))),
            Action::Remove(id(B))
        ]
    );
    assert_eq!(s.poll_timeout(), None);
    s.handle(Input::Tick, t(100)).unwrap();
    assert!(drain(&mut s).is_empty());
}

#[test]
fn reloaded_states() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    let mut a = env(A);
    a.state = EnvelopeState::InFlight;
    let mut b = env(B);
    b.state = EnvelopeState::Deferred { next: t(50) };
    let mut c = env(C);
    c.state = EnvelopeState::Failed;
    c.last_error = Some(fail(5));
    for e in [a, b, c] {
        s.handle(Input::EnvelopeQueued(Box::new(e)), t(0)).unwrap();
    }
    let acts = drain(&mut s);
    // No Update for the failed one: it is already persisted as failed.
    assert_eq!(delivered_ids(&acts), [id(A)]);
    assert_eq!(acts.len(), 1);
    assert_eq!(s.poll_timeout(), Some(t(10)));
    s.handle(Input::Tick, t(10)).unwrap();
    assert!(
        matches!(&drain(&mut s)[..], [Action::Bounce(r), Action::Remove(_)] if r.envelopes[0].id == id(C))
    );
}

#[test]
fn misuse_is_an_error() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    s.handle(Input::Pause(Scope::All), t(0)).unwrap();
    s.handle(Input::EnvelopeQueued(Box::new(env(A))), t(0))
        .unwrap();
    assert_eq!(
        s.handle(Input::EnvelopeQueued(Box::new(env(A))), t(0)),
        Err(SchedulerError::Duplicate(id(A)))
    );
    let r = |v| Input::DeliveryResult {
        id: id(v),
        outcome: Outcome::Delivered,
    };
    assert_eq!(s.handle(r(B), t(0)), Err(SchedulerError::Unknown(id(B))));
    assert_eq!(
        s.handle(r(A), t(0)),
        Err(SchedulerError::NotInFlight(id(A)))
    );
}

#[test]
fn prop_simulation_invariants() {
    fn prop(data: Vec<u8>) -> bool {
        crate::fuzzing::queue::scheduler(&data);
        true
    }
    QuickCheck::new()
        .tests(500)
        .quickcheck(prop as fn(Vec<u8>) -> bool);
    // Longer scripts reach deeper: several messages, control commands, long retry runs.
    fn prop_long(a: Vec<u8>, b: Vec<u8>, c: Vec<u8>, d: Vec<u8>) -> bool {
        prop([a, b, c, d].concat())
    }
    QuickCheck::new()
        .tests(200)
        .quickcheck(prop_long as fn(Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) -> bool);
}

#[test]
fn simulations_hold_and_release_envelopes_that_then_arrive() {
    // Pseudo-random scripts: enough of them hold envelopes that are delivered later.
    let mut rng = crate::queue::SplitMix64::new(5);
    let mut reached = 0;
    for _ in 0..200 {
        let data: Vec<u8> = (0..600).map(|_| rng.next_u64().to_le_bytes()[0]).collect();
        reached += crate::fuzzing::queue::simulate(&data).held_then_delivered;
    }
    assert!(reached >= 20, "held then delivered: {reached}");
}

#[test]
fn simulation_with_long_temp_failures() {
    // Every outcome a temporary failure: every envelope retries until it expires.
    let mut data = vec![1u8, 2, 42, 2, 2, 3];
    // 77: no control command, a temporary failure, relayed, 4-day ttl (see the harness).
    data.extend(std::iter::repeat_n(77u8, 4000));
    let summary = crate::fuzzing::queue::simulate(&data);
    // Three messages of two relayed recipients; one expires after 1 h, two after 4 days.
    assert_eq!(summary.envelopes, 6);
    assert_eq!(summary.delivered, 0);
    assert_eq!(summary.bounced, 6);
    assert!(
        summary.elapsed >= Duration::from_secs(4 * 86_400),
        "{summary:?}"
    );
    // 400 s · n² capped at 4 h: 3 attempts in the first hour, about 28 in four days.
    assert!(summary.attempts >= 2 * 3 + 4 * 25, "{summary:?}");
}

#[test]
fn success_notice_when_asked() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    let mut a = env(A);
    a.dsn.notify = Some(Notify {
        success: true,
        failure: true,
        delay: false,
    });
    s.handle(Input::EnvelopeQueued(Box::new(a)), t(0)).unwrap();
    s.handle(Input::EnvelopeQueued(Box::new(env(B))), t(0))
        .unwrap();
    drain(&mut s);
    s.handle(
        Input::DeliveryResult {
            id: id(A),
            outcome: Outcome::Delivered,
        },
        t(1),
    )
    .unwrap();
    s.handle(
        Input::DeliveryResult {
            id: id(B),
            outcome: Outcome::Delivered,
        },
        t(1),
    )
    .unwrap();
    assert_eq!(
        drain(&mut s),
        [Action::Remove(id(A)), Action::Remove(id(B))]
    );
    assert!(s.is_empty());
    assert_eq!(s.poll_timeout(), Some(t(11)));
    s.handle(Input::Tick, t(11)).unwrap();
    let a = drain(&mut s);
    assert!(
        matches!(&a[..], [Action::SuccessNotice(r)] if r.kind == ReportKind::Success && r.envelopes.len() == 1 && r.envelopes[0].id == id(A))
    );
}
