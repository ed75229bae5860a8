//! The queue side of the engine on a fake clock: expiry, delay notices, control verbs.

#[path = "engine_harness.rs"]
mod harness;

use harness::{Harness, CONF};
use mta_core::bounce::ReportKind;
use mta_core::engine::{Control, Input};
use mta_core::queue::{Envelope, Failure};
use mta_core::scheduler::{Outcome, Scope, Target};
use smtp_proto::reply::EnhancedStatus;

fn accepted(h: &mut Harness) -> Envelope {
    let s = h.open();
    h.helo(s);
    h.mail(s, "alice@remote.test");
    h.rcpt(s, "bob@example.org");
    h.answer_lookups(&["bob"]);
    h.data(s);
    h.end(s, 10, 0);
    h.commit_all();
    h.deliveries.pop_front().expect("delivery")
}

fn tempfail() -> Outcome {
    Outcome::TempFail(Failure {
        status: EnhancedStatus::new(4, 2, 1),
        text: "mailbox busy".into(),
        remote_mta: None,
    })
}

#[test]
fn an_envelope_that_keeps_failing_expires_into_one_bounce() {
    let conf = format!("queue ttl 1d\n{CONF}");
    let mut h = Harness::new(&conf);
    let envelope = accepted(&mut h);
    assert_eq!(
        envelope.expires,
        envelope.created + std::time::Duration::from_secs(86_400)
    );
    let mut attempts = 1;
    let mut last = h.now;
    h.input(Input::DeliveryResult {
        id: envelope.id,
        outcome: tempfail(),
    });
    // Days of retries in a few milliseconds.
    for _ in 0..10_000 {
        if let Some(e) = h.deliveries.pop_front() {
            if e.flags.bounce {
                // The bounce itself is delivered at once.
                h.input(Input::DeliveryResult {
                    id: e.id,
                    outcome: Outcome::Delivered,
                });
                continue;
            }
            assert_eq!(e.id, envelope.id);
            assert!(
                h.now >= last && h.now <= envelope.expires,
                "attempts stop at expiry"
            );
            last = h.now;
            attempts += 1;
            h.input(Input::DeliveryResult {
                id: e.id,
                outcome: tempfail(),
            });
            continue;
        }
        if let Some((msgid, _)) = h.bounces.pop_front() {
            h.input(Input::BounceQueued {
                msgid,
                result: Ok(()),
            });
            continue;
        }
        if !h.advance() {
            break;
        }
    }
    assert!(attempts > 5, "retried: {attempts}");
    let failures: Vec<_> = h
        .bounce_log
        .iter()
        .filter(|(_, r)| r.kind == ReportKind::Failure)
        .collect();
    assert_eq!(failures.len(), 1, "exactly one bounce");
    assert!(h.removed.contains(&envelope.id));
    assert!(h
        .logs
        .iter()
        .any(|l| l == &format!("queue: envelope {} expired", envelope.id)));
    assert_eq!(h.engine.stats().get("scheduler.delivery.expired"), Some(&1));
    assert_eq!(
        h.engine.scheduler().len(),
        0,
        "the bounce was delivered too"
    );
}

#[test]
fn a_long_delay_is_reported_once_without_removing_the_envelope() {
    let conf = format!("bounce warn-interval 1h\n{CONF}");
    let mut h = Harness::new(&conf);
    let envelope = accepted(&mut h);
    h.input(Input::DeliveryResult {
        id: envelope.id,
        outcome: tempfail(),
    });
    while !h
        .bounce_log
        .iter()
        .any(|(_, r)| r.kind == ReportKind::Delay)
    {
        if let Some(e) = h.deliveries.pop_front() {
            h.input(Input::DeliveryResult {
                id: e.id,
                outcome: tempfail(),
            });
        } else {
            assert!(h.advance());
        }
    }
    let (msgid, carriers) = h.bounces.pop_front().unwrap();
    assert!(carriers[0].flags.bounce);
    h.input(Input::BounceQueued {
        msgid,
        result: Ok(()),
    });
    assert!(!h.removed.contains(&envelope.id), "still queued");
    assert!(h.engine.scheduler().get(envelope.id).is_some());
}

#[test]
fn pause_resume_schedule_and_remove() {
    let mut h = Harness::new(CONF);
    h.input(Input::Control(Control::Pause(Scope::Local)));
    let s = h.open();
    h.helo(s);
    h.mail(s, "alice@remote.test");
    h.rcpt(s, "bob@example.org");
    h.answer_lookups(&["bob"]);
    h.data(s);
    h.end(s, 10, 0);
    h.commit_all();
    assert!(h.deliveries.is_empty(), "paused");
    h.input(Input::Control(Control::Resume(Scope::Local)));
    let e = h.deliveries.pop_front().expect("resumed");
    h.input(Input::DeliveryResult {
        id: e.id,
        outcome: tempfail(),
    });
    assert!(h.deliveries.is_empty());
    h.input(Input::Control(Control::Schedule(Target::Envelope(e.id))));
    let e = h.deliveries.pop_front().expect("scheduled now");
    h.input(Input::DeliveryResult {
        id: e.id,
        outcome: tempfail(),
    });
    h.input(Input::Control(Control::Remove(Target::Message(
        e.message_id(),
    ))));
    assert_eq!(h.removed, vec![e.id]);
    assert!(h.bounce_log.is_empty(), "removal sends no report");
    assert_eq!(h.engine.stats().get("scheduler.envelope"), Some(&0));
    assert_eq!(h.engine.poll_timeout(), None);
}
