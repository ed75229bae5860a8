//! smtpctl's per-envelope hold through the control answer and the engine, and the
//! statistics of `show stats` and `monitor` in OpenSMTPD's naming.

#[path = "engine_harness.rs"]
mod harness;

use harness::{Harness, CONF};
use mta_core::control::{Answer, ControlState, Request, Response};
use mta_core::engine::{Control, Input, PeerAddr, SessionId, SessionInfo, STAT_KEYS};
use mta_core::queue::{Envelope, EnvelopeId, Failure, MessageId};
use mta_core::scheduler::{Outcome, Target};
use smtp_proto::reply::EnhancedStatus;

fn failure(class: u8, subject: u16, detail: u16) -> Failure {
    Failure {
        status: EnhancedStatus::new(class, subject, detail),
        text: format!("{class}.{subject}.{detail} no"),
        remote_mta: None,
    }
}

/// A session of the local enqueuer (which may relay, per `CONF`).
fn open_local(h: &mut Harness) -> SessionId {
    let info = SessionInfo {
        listener: None,
        peer: PeerAddr::Local,
        local: None,
        rdns: None,
        tls: false,
    };
    let sid = h.engine.open_session(info, h.now);
    h.drain();
    sid
}

/// A message from `sid` to these recipients, committed; returns the deliveries handed out.
fn send(h: &mut Harness, sid: SessionId, recipients: &[&str]) -> Vec<Envelope> {
    h.helo(sid);
    h.mail(sid, "alice@remote.test");
    for r in recipients {
        h.rcpt(sid, r);
    }
    h.answer_lookups(&["bob", "carol"]);
    h.data(sid);
    h.end(sid, 10, 0);
    h.commit_all();
    h.deliveries.drain(..).collect()
}

/// What the control side answers at the harness's time; feeds a `Feed` to the engine.
fn control(h: &mut Harness, state: &mut ControlState, request: Request) -> Answer {
    let answer = state.answer(&h.engine, &request, h.now);
    if let Answer::Feed(c) = answer {
        h.input(Input::Control(c));
    }
    answer
}

fn queue_flags(h: &Harness, state: &mut ControlState, id: EnvelopeId) -> String {
    let Answer::Reply(Response::Envelopes(rows)) =
        state.answer(&h.engine, &Request::ShowQueue, h.now)
    else {
        panic!("show queue")
    };
    let row = rows.iter().find(|r| r.id == id.get()).expect("listed");
    format!("{} {}", row.flags, row.runstate)
}

#[test]
fn pause_envelope_holds_it_and_resume_releases_it() {
    let mut h = Harness::new(CONF);
    let mut state = ControlState::new(h.now);
    let s = h.open();
    let e = send(&mut h, s, &["bob@example.org"]).remove(0);
    h.input(Input::DeliveryResult {
        id: e.id,
        outcome: Outcome::TempFail(failure(4, 2, 1)),
    });
    let next = h.engine.poll_timeout().expect("retry timer");
    // Unknown ids get the usual errors.
    let unknown = EnvelopeId::new(0x0bad_0bad_0000_0001).unwrap();
    assert_eq!(
        control(
            &mut h,
            &mut state,
            Request::PauseEnvelope(Target::Envelope(unknown))
        ),
        Answer::Reply(Response::Error(format!("no such envelope: {unknown}")))
    );
    let nomsg = MessageId::new(0x0bad_0bad).unwrap();
    assert_eq!(
        control(
            &mut h,
            &mut state,
            Request::ResumeEnvelope(Target::Message(nomsg))
        ),
        Answer::Reply(Response::Error(format!("no such message: {nomsg}")))
    );
    // Held: flagged `suspend`, no timer, not tried even long after its next try.
    let target = Target::Envelope(e.id);
    assert_eq!(
        control(&mut h, &mut state, Request::PauseEnvelope(target)),
        Answer::Feed(Control::Hold(target))
    );
    assert_eq!(queue_flags(&h, &mut state, e.id), "suspend pending");
    assert_eq!(h.engine.poll_timeout(), None);
    h.now = next + std::time::Duration::from_secs(3600);
    h.input(Input::Tick);
    assert!(h.deliveries.is_empty());
    // Released: its next try passed, so it is tried at once.
    let all = Target::All;
    assert_eq!(
        control(&mut h, &mut state, Request::ResumeEnvelope(all)),
        Answer::Feed(Control::Release(all))
    );
    let again = h.deliveries.pop_front().expect("tried on release");
    assert_eq!((again.id, again.tries), (e.id, 2));
    assert_eq!(queue_flags(&h, &mut state, e.id), "- inflight");
}

fn stat(h: &Harness, key: &str) -> i64 {
    *h.engine
        .stats()
        .get(key)
        .unwrap_or_else(|| panic!("no stat {key}"))
}

#[test]
fn every_stat_key_is_reported_from_the_start() {
    let h = Harness::new(CONF);
    let stats = h.engine.stats();
    let keys: Vec<&str> = stats.keys().copied().collect();
    let listed: Vec<&str> = STAT_KEYS.iter().map(|k| k.name).collect();
    assert_eq!(keys, listed);
    for key in [
        "smtp.session",
        "smtp.session.inet4",
        "smtp.session.inet6",
        "smtp.session.local",
        "smtp.tls",
        "smtp.smtps",
        "smtp.message",
        "smtp.loop",
        "scheduler.envelope",
        "scheduler.envelope.incoming",
        "scheduler.envelope.inflight",
        "scheduler.envelope.expired",
        "scheduler.envelope.removed",
        "scheduler.delivery.ok",
        "scheduler.delivery.tempfail",
        "scheduler.delivery.permfail",
        "scheduler.delivery.loop",
        "queue.bounce",
        "mda.envelope",
        "mta.envelope",
    ] {
        assert_eq!(stats.get(key), Some(&0), "{key}");
    }
}

#[test]
fn sessions_are_counted_by_family_and_tls_kind() {
    let mut h = Harness::new(CONF);
    let four = h.open();
    let six = h.engine.open_session(
        SessionInfo {
            listener: Some(0),
            peer: PeerAddr::Inet("[2001:db8::1]:4000".parse().unwrap()),
            local: None,
            rdns: None,
            tls: true,
        },
        h.now,
    );
    let local = open_local(&mut h);
    assert_eq!(stat(&h, "smtp.session"), 3);
    assert_eq!(
        [
            stat(&h, "smtp.session.inet4"),
            stat(&h, "smtp.session.inet6"),
            stat(&h, "smtp.session.local")
        ],
        [1, 1, 1]
    );
    let tls = |session| Input::SessionTls {
        session,
        protocol: "TLSv1.3".into(),
        cipher: "TLS_AES_256_GCM_SHA384".into(),
    };
    h.input(tls(four));
    h.input(tls(six));
    assert_eq!((stat(&h, "smtp.tls"), stat(&h, "smtp.smtps")), (1, 1));
    for sid in [four, six, local] {
        h.input(Input::SessionClosed { session: sid });
    }
    assert_eq!(stat(&h, "smtp.session"), 0);
    assert_eq!(stat(&h, "smtp.session.inet6"), 0);
    assert_eq!(
        (
            stat(&h, "smtp.session.new"),
            stat(&h, "smtp.session.closed")
        ),
        (3, 3)
    );
}

#[test]
fn queue_and_delivery_counters_follow_each_envelope() {
    let mut h = Harness::new(&format!("queue ttl 1h\n{CONF}"));
    let s = open_local(&mut h);
    h.helo(s);
    h.mail(s, "alice@remote.test");
    for r in [
        "bob@example.org",
        "carol@example.org",
        "x@remote.test",
        "y@remote.test",
    ] {
        h.rcpt(s, r);
    }
    h.answer_lookups(&["bob", "carol"]);
    h.data(s);
    h.end(s, 10, 0);
    // Committing: the envelopes are incoming, not yet queued.
    assert_eq!(stat(&h, "scheduler.envelope.incoming"), 4);
    assert_eq!(stat(&h, "scheduler.envelope"), 0);
    h.commit_all();
    assert_eq!(stat(&h, "scheduler.envelope.incoming"), 0);
    assert_eq!(stat(&h, "smtp.message"), 1);
    assert_eq!(stat(&h, "scheduler.envelope"), 4);
    assert_eq!(stat(&h, "scheduler.envelope.enqueued"), 4);
    assert_eq!(stat(&h, "scheduler.envelope.inflight"), 4);
    assert_eq!((stat(&h, "mda.envelope"), stat(&h, "mta.envelope")), (2, 2));
    let out: Vec<Envelope> = h.deliveries.drain(..).collect();
    let id = |r: &str| out.iter().find(|e| e.recipient == r).unwrap().id;
    let result = |h: &mut Harness, r: &str, outcome| {
        let id = id(r);
        h.input(Input::DeliveryResult { id, outcome });
    };
    result(&mut h, "bob@example.org", Outcome::Delivered);
    result(
        &mut h,
        "carol@example.org",
        Outcome::TempFail(failure(4, 2, 1)),
    );
    result(&mut h, "x@remote.test", Outcome::PermFail(failure(5, 4, 6)));
    result(&mut h, "y@remote.test", Outcome::TempFail(failure(4, 4, 1)));
    assert_eq!(
        [
            stat(&h, "scheduler.delivery.ok"),
            stat(&h, "scheduler.delivery.tempfail"),
            stat(&h, "scheduler.delivery.permfail"),
            stat(&h, "scheduler.delivery.loop"),
        ],
        [1, 2, 0, 1]
    );
    assert_eq!((stat(&h, "mda.envelope"), stat(&h, "mta.envelope")), (0, 0));
    assert_eq!(stat(&h, "scheduler.envelope.inflight"), 0);
    // Removed by request: carol.
    h.input(Input::Control(Control::Remove(Target::Envelope(id(
        "carol@example.org",
    )))));
    assert_eq!(stat(&h, "scheduler.envelope.removed"), 1);
    // y keeps failing until it expires; x's and y's failures make bounces.
    for _ in 0..1000 {
        if let Some(e) = h.deliveries.pop_front() {
            let outcome = if e.flags.bounce {
                Outcome::Delivered
            } else {
                Outcome::TempFail(failure(4, 4, 1))
            };
            h.input(Input::DeliveryResult { id: e.id, outcome });
        } else if let Some((msgid, _)) = h.bounces.pop_front() {
            h.input(Input::BounceQueued {
                msgid,
                result: Ok(()),
            });
        } else if !h.advance() {
            break;
        }
    }
    assert_eq!(stat(&h, "scheduler.envelope.expired"), 1);
    assert_eq!(stat(&h, "scheduler.delivery.expired"), 1);
    let reports = stat(&h, "queue.bounce");
    assert!(reports >= 1, "{reports}");
    assert_eq!(stat(&h, "scheduler.envelope"), 0);
    assert_eq!(
        stat(&h, "scheduler.envelope.enqueued"),
        stat(&h, "scheduler.envelope.dequeued")
    );
    assert_eq!(stat(&h, "scheduler.envelope.enqueued"), 4 + reports);
}
