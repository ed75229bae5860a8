//! Holds (`smtpctl pause envelope` / `resume envelope`): a held envelope is never handed
//! out, sets no timer and does not expire; releasing it restores it.

use super::*;

const DAY: u64 = 86_400;

fn result(s: &mut Scheduler, v: u64, outcome: Outcome, at: u64) {
    s.handle(Input::DeliveryResult { id: id(v), outcome }, t(at))
        .unwrap();
}

#[test]
fn a_held_envelope_is_never_handed_out_until_released() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    s.handle(Input::Pause(Scope::All), t(0)).unwrap();
    for v in [A, B] {
        s.handle(Input::EnvelopeQueued(Box::new(env(v))), t(0))
            .unwrap();
    }
    s.handle(Input::Hold(Target::Envelope(id(A))), t(0))
        .unwrap();
    assert!(s.is_held(id(A)) && !s.is_held(id(B)));
    assert_eq!(s.held_count(), 1);
    s.handle(Input::Resume(Scope::All), t(1)).unwrap();
    assert_eq!(delivered_ids(&drain(&mut s)), [id(B)]);
    result(&mut s, B, Outcome::Delivered, 2);
    drain(&mut s);
    // No timer for the held envelope, and ticks do not touch it.
    assert_eq!(s.poll_timeout(), None);
    s.handle(Input::Tick, t(DAY)).unwrap();
    assert!(drain(&mut s).is_empty());
    assert_eq!(s.get(id(A)).map(|e| e.tries), Some(0));
    // Released: its time has come long ago, so it goes at once.
    s.handle(Input::Release(Target::Envelope(id(A))), t(DAY + 1))
        .unwrap();
    assert!(!s.is_held(id(A)));
    assert_eq!(delivered_ids(&drain(&mut s)), [id(A)]);
}

#[test]
fn a_held_deferred_envelope_keeps_its_next_try() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    s.handle(Input::EnvelopeQueued(Box::new(env(A))), t(0))
        .unwrap();
    drain(&mut s);
    result(&mut s, A, Outcome::TempFail(fail(4)), 5);
    drain(&mut s);
    assert_eq!(s.poll_timeout(), Some(t(405)));
    s.handle(Input::Hold(Target::Message(id(A).message_id())), t(10))
        .unwrap();
    assert_eq!(s.poll_timeout(), None);
    s.handle(Input::Tick, t(405)).unwrap();
    assert!(drain(&mut s).is_empty());
    let held = s.get(id(A)).unwrap();
    assert_eq!(held.state, EnvelopeState::Deferred { next: t(405) });
    // Released before its next try: it waits for it.
    s.handle(Input::Release(Target::All), t(100)).unwrap();
    assert!(drain(&mut s).is_empty());
    assert_eq!(s.poll_timeout(), Some(t(405)));
    s.handle(Input::Tick, t(405)).unwrap();
    let a = drain(&mut s);
    assert!(
        matches!(&a[..], [Action::Deliver(e)] if e.tries == 2),
        "{a:?}"
    );
}

#[test]
fn an_attempt_under_way_finishes_then_the_envelope_waits_held() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    for v in [A, B] {
        s.handle(Input::EnvelopeQueued(Box::new(env(v))), t(0))
            .unwrap();
    }
    drain(&mut s);
    s.handle(Input::Hold(Target::All), t(1)).unwrap();
    assert_eq!(s.held_count(), 2);
    // A delivered while held: gone as usual.
    result(&mut s, A, Outcome::Delivered, 2);
    assert_eq!(drain(&mut s), [Action::Remove(id(A))]);
    // B fails temporarily: persisted as deferred, but no timer while held.
    result(&mut s, B, Outcome::TempFail(fail(4)), 3);
    let a = drain(&mut s);
    assert!(
        a.iter()
            .any(|x| matches!(x, Action::Update(e) if e.state == EnvelopeState::Deferred { next: t(403) })),
        "{a:?}"
    );
    assert_eq!(s.poll_timeout(), None);
    s.handle(Input::Release(Target::Envelope(id(B))), t(4))
        .unwrap();
    assert_eq!(s.poll_timeout(), Some(t(403)));
}

#[test]
fn a_held_envelope_expires_only_once_released() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    s.handle(Input::EnvelopeQueued(Box::new(env(A))), t(0))
        .unwrap();
    drain(&mut s);
    result(&mut s, A, Outcome::TempFail(fail(4)), 5);
    drain(&mut s);
    s.handle(Input::Hold(Target::All), t(6)).unwrap();
    // Long past its 4-day expiry, nothing happens while held.
    s.handle(Input::Tick, t(5 * DAY)).unwrap();
    assert!(drain(&mut s).is_empty());
    s.handle(Input::Release(Target::All), t(5 * DAY)).unwrap();
    let a = drain(&mut s);
    assert!(a.contains(&Action::Event(Event::Expired(id(A)))), "{a:?}");
    assert!(delivered_ids(&a).is_empty());
    // Then the bounce, once.
    s.handle(Input::Tick, t(5 * DAY + 10)).unwrap();
    let a = drain(&mut s);
    assert_eq!(
        a.iter().filter(|x| matches!(x, Action::Bounce(_))).count(),
        1
    );
    assert!(s.is_empty());
}

#[test]
fn schedule_and_remove_of_held_envelopes() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    for v in [A, B] {
        s.handle(Input::EnvelopeQueued(Box::new(env(v))), t(0))
            .unwrap();
    }
    drain(&mut s);
    result(&mut s, A, Outcome::TempFail(fail(4)), 1);
    result(&mut s, B, Outcome::TempFail(fail(4)), 1);
    drain(&mut s);
    s.handle(Input::Hold(Target::All), t(2)).unwrap();
    // `schedule` makes a held envelope due, but it stays held.
    s.handle(Input::Schedule(Target::Envelope(id(A))), t(3))
        .unwrap();
    assert!(drain(&mut s).is_empty());
    assert!(s.is_held(id(A)));
    // `remove` drops a held envelope; a later release finds nothing.
    s.handle(Input::Remove(Target::Envelope(id(B))), t(4))
        .unwrap();
    assert_eq!(
        drain(&mut s),
        [Action::Event(Event::Removed(id(B))), Action::Remove(id(B))]
    );
    s.handle(Input::Release(Target::All), t(5)).unwrap();
    // A was scheduled at t(3): due at once.
    assert_eq!(delivered_ids(&drain(&mut s)), [id(A)]);
    assert_eq!(s.held_count(), 0);
}

#[test]
fn a_failed_envelope_awaiting_its_report_is_not_held() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    s.handle(Input::EnvelopeQueued(Box::new(env(A))), t(0))
        .unwrap();
    drain(&mut s);
    result(&mut s, A, Outcome::PermFail(fail(5)), 1);
    drain(&mut s);
    s.handle(Input::Hold(Target::All), t(2)).unwrap();
    assert!(!s.is_held(id(A)));
    s.handle(Input::Tick, t(11)).unwrap();
    let a = drain(&mut s);
    assert!(
        matches!(&a[..], [Action::Bounce(_), Action::Remove(_)]),
        "{a:?}"
    );
}

#[test]
fn hold_and_release_of_unknown_or_unheld_envelopes_change_nothing() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    s.handle(Input::Pause(Scope::All), t(0)).unwrap();
    s.handle(Input::EnvelopeQueued(Box::new(env(A))), t(0))
        .unwrap();
    s.handle(Input::Hold(Target::Envelope(id(D))), t(0))
        .unwrap();
    s.handle(Input::Release(Target::Envelope(id(A))), t(0))
        .unwrap();
    s.handle(Input::Hold(Target::Envelope(id(A))), t(0))
        .unwrap();
    s.handle(Input::Hold(Target::Envelope(id(A))), t(0))
        .unwrap();
    s.handle(Input::Release(Target::Envelope(id(A))), t(0))
        .unwrap();
    assert!(drain(&mut s).is_empty());
    s.handle(Input::Resume(Scope::All), t(1)).unwrap();
    assert_eq!(delivered_ids(&drain(&mut s)), [id(A)]);
}
