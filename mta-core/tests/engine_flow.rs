//! Whole transactions through the engine in memory, from smtpd.conf text to delivery.

#[path = "engine_harness.rs"]
mod harness;

use harness::{Harness, CONF};
use mta_core::engine::{Input, LocalMethodSpec};
use mta_core::expand::{Answer, LocalMethod, Question as Lookup, UserLookup};
use mta_core::queue::{self, DeliveryKind, EnvelopeState, Failure};
use mta_core::scheduler::Outcome;
use smtp_proto::reply::EnhancedStatus;

#[test]
fn full_transaction_from_rcpt_to_delivery() {
    let mut h = Harness::new(CONF);
    let s = h.open();
    assert!(h.logs.iter().any(|l| l.starts_with("smtp-in: session ")
        && l.contains("connected from client.example.net [192.0.2.1]:40000")));
    let helo = h.helo(s);
    let reply = h.answer(s, helo);
    assert_eq!(reply.code, 250);
    assert!(reply.lines[0].starts_with(b"mx.example.org Hello client.example.net"));
    let mail = h.mail(s, "alice@remote.test");
    assert_eq!(h.code(s, mail), 250);
    let rcpt = h.rcpt(s, "bob@example.org");
    // The answer waits for the user lookup.
    assert!(h.answers_to(s, rcpt).is_empty());
    assert!(
        matches!(h.lookups.front(), Some((_, sid, Lookup::User { name })) if *sid == s && name == "bob")
    );
    h.answer_lookups(&["bob"]);
    let reply = h.answer(s, rcpt);
    assert_eq!(
        (reply.code, reply.status),
        (250, Some(EnhancedStatus::new(2, 1, 5)))
    );

    let data = h.data(s);
    assert_eq!(h.code(s, data), 354);
    let (&msgid, header) = h.opened.iter().next().unwrap();
    let header = std::str::from_utf8(header).unwrap();
    assert!(header.starts_with("Received: from client.example.net (client.example.net [192.0.2.1])\r\n\tby mx.example.org ("), "{header}");
    assert!(
        header.contains(&format!("with ESMTP id {msgid}")),
        "{header}"
    );
    assert!(
        header.contains("\r\n\tfor <bob@example.org>;\r\n\t"),
        "{header}"
    );
    assert!(header.ends_with("+0000\r\n"), "{header}");

    let end = h.end(s, 1234, 2);
    assert!(h.answers_to(s, end).is_empty(), "no 250 before the commit");
    let (committed, records) = h.commits.front().cloned().unwrap();
    assert_eq!(committed, msgid);
    assert_eq!(records.len(), 1);
    let envelope = queue::decode(&records[0].1).unwrap();
    assert_eq!(envelope.id, records[0].0);
    assert_eq!(envelope.message_id(), msgid);
    assert_eq!(envelope.sender.as_deref(), Some("alice@remote.test"));
    assert_eq!(envelope.recipient, "bob@example.org");
    assert_eq!(envelope.state, EnvelopeState::Pending);
    let DeliveryKind::Local { user, method } = &envelope.delivery else {
        panic!("{envelope:?}")
    };
    let spec = LocalMethodSpec::parse(user, method).unwrap();
    assert_eq!(spec.user.unwrap().name, "bob");
    assert_eq!(
        spec.method,
        LocalMethod::Maildir {
            path: "/home/bob/Maildir".into(),
            junk: false
        }
    );

    h.commit_all();
    let reply = h.answer(s, end);
    assert_eq!(reply.code, 250);
    assert_eq!(
        reply.lines[0],
        format!("{msgid} Message accepted for delivery").as_bytes()
    );
    assert!(h
        .logs
        .iter()
        .any(|l| l.contains(&format!("message accepted: msgid={msgid}"))
            && l.contains("size=1234")
            && l.contains("nrcpt=1")
            && l.contains("proto=ESMTP")));

    let delivery = h.deliveries.pop_front().expect("handed to delivery");
    assert_eq!(delivery.id, envelope.id);
    assert_eq!(h.engine.stats().get("scheduler.envelope"), Some(&1));
    h.input(Input::DeliveryResult {
        id: delivery.id,
        outcome: Outcome::Delivered,
    });
    assert_eq!(h.removed, vec![envelope.id]);
    assert!(h.logs.iter().any(|l| l.starts_with(&format!("delivery: Ok for {}: from=<alice@remote.test>, to=<bob@example.org>, user=bob, method=maildir", envelope.id))));
    let stats = h.engine.stats();
    assert_eq!(stats.get("scheduler.envelope"), Some(&0));
    assert_eq!(stats.get("scheduler.delivery.ok"), Some(&1));
    assert_eq!(stats.get("smtp.session"), Some(&1));
    assert_eq!(stats.get("smtp.session.inet4"), Some(&1));
    h.input(Input::SessionClosed { session: s });
    assert_eq!(h.engine.stats().get("smtp.session"), Some(&0));
    assert_eq!(h.engine.poll_timeout(), None);
}

#[test]
fn recipient_without_a_rule_is_refused() {
    let mut h = Harness::new(CONF);
    let s = h.open();
    h.helo(s);
    h.mail(s, "alice@remote.test");
    // From a network client, only example.org is accepted.
    let rcpt = h.rcpt(s, "carol@elsewhere.test");
    let reply = h.answer(s, rcpt);
    assert_eq!(
        (reply.code, reply.status),
        (550, Some(EnhancedStatus::new(5, 7, 1)))
    );
    assert!(h.lookups.is_empty());
    let data = h.data(s);
    assert_eq!(h.code(s, data), 554, "no valid recipient");
    assert!(h.opened.is_empty());
}

#[test]
fn unknown_local_user_is_refused() {
    let mut h = Harness::new(CONF);
    let s = h.open();
    h.helo(s);
    h.mail(s, "alice@remote.test");
    let rcpt = h.rcpt(s, "nobody@example.org");
    h.answer_lookups(&["bob"]);
    let reply = h.answer(s, rcpt);
    assert_eq!(
        (reply.code, reply.status),
        (550, Some(EnhancedStatus::new(5, 1, 1)))
    );
}

#[test]
fn lookup_failure_is_temporary() {
    let mut h = Harness::new(CONF);
    let s = h.open();
    h.helo(s);
    h.mail(s, "alice@remote.test");
    let rcpt = h.rcpt(s, "bob@example.org");
    let (id, _, _) = h.lookups.pop_front().unwrap();
    h.input(Input::LookupAnswer {
        id,
        answer: Answer::User(UserLookup::TempFail),
    });
    let reply = h.answer(s, rcpt);
    assert_eq!(reply.code, 451);
}

#[test]
fn max_rcpt_limits_recipients_per_transaction() {
    let conf = format!("smtp limit max-rcpt 2\n{CONF}");
    let mut h = Harness::new(&conf);
    let s = h.open();
    h.helo(s);
    h.mail(s, "alice@remote.test");
    // Two recipients still being looked up count against the limit.
    let a = h.rcpt(s, "bob@example.org");
    let b = h.rcpt(s, "carol@example.org");
    let c = h.rcpt(s, "dave@example.org");
    assert_eq!(h.code(s, c), 452);
    h.answer_lookups(&["bob", "carol", "dave"]);
    assert_eq!(h.code(s, a), 250);
    assert_eq!(h.code(s, b), 250);
    // A new transaction starts again from zero.
    h.data(s);
    h.end(s, 10, 0);
    h.commit_all();
    h.mail(s, "alice@remote.test");
    let d = h.rcpt(s, "dave@example.org");
    h.answer_lookups(&["dave"]);
    assert_eq!(h.code(s, d), 250);
}

#[test]
fn max_mails_limits_transactions_per_session() {
    let conf = format!("smtp limit max-mails 1\n{CONF}");
    let mut h = Harness::new(&conf);
    let s = h.open();
    h.helo(s);
    let first = h.mail(s, "alice@remote.test");
    assert_eq!(h.code(s, first), 250);
    let second = h.mail(s, "alice@remote.test");
    assert_eq!(h.code(s, second), 452);
}

#[test]
fn message_with_too_many_received_headers_is_refused_as_a_loop() {
    let mut h = Harness::new(CONF);
    let s = h.open();
    h.helo(s);
    h.mail(s, "alice@remote.test");
    h.rcpt(s, "bob@example.org");
    h.answer_lookups(&["bob"]);
    h.data(s);
    let msgid = *h.opened.keys().next().unwrap();
    let end = h.end(s, 100, mta_core::bounce::MAX_RECEIVED_HEADERS + 1);
    let reply = h.answer(s, end);
    assert_eq!(
        (reply.code, reply.status),
        (554, Some(EnhancedStatus::new(5, 4, 6)))
    );
    assert_eq!(h.aborted, vec![msgid]);
    assert!(h.commits.is_empty());
    // Exactly at the limit is fine.
    h.mail(s, "alice@remote.test");
    h.rcpt(s, "bob@example.org");
    h.answer_lookups(&["bob"]);
    h.data(s);
    let end = h.end(s, 100, mta_core::bounce::MAX_RECEIVED_HEADERS);
    assert!(h.answers_to(s, end).is_empty());
    assert_eq!(h.commits.len(), 1);
}

#[test]
fn failed_commit_answers_451_and_queues_nothing() {
    let mut h = Harness::new(CONF);
    let s = h.open();
    h.helo(s);
    h.mail(s, "alice@remote.test");
    h.rcpt(s, "bob@example.org");
    h.answer_lookups(&["bob"]);
    h.data(s);
    let end = h.end(s, 10, 0);
    let (msgid, _) = h.commits.pop_front().unwrap();
    h.input(Input::Committed {
        msgid,
        result: Err("disk full".into()),
    });
    assert_eq!(h.code(s, end), 451);
    assert!(h.deliveries.is_empty());
    assert_eq!(h.engine.scheduler().len(), 0);
}

#[test]
fn session_closing_mid_body_aborts_the_message() {
    let mut h = Harness::new(CONF);
    let s = h.open();
    h.helo(s);
    h.mail(s, "alice@remote.test");
    h.rcpt(s, "bob@example.org");
    h.answer_lookups(&["bob"]);
    h.data(s);
    let msgid = *h.opened.keys().next().unwrap();
    h.input(Input::SessionClosed { session: s });
    assert_eq!(h.aborted, vec![msgid]);
    assert_eq!(h.engine.session_count(), 0);
}

#[test]
fn a_commit_confirmed_after_the_session_closed_is_still_queued() {
    let mut h = Harness::new(CONF);
    let s = h.open();
    h.helo(s);
    h.mail(s, "alice@remote.test");
    h.rcpt(s, "bob@example.org");
    h.answer_lookups(&["bob"]);
    h.data(s);
    let end = h.end(s, 10, 0);
    h.input(Input::SessionClosed { session: s });
    h.commit_all();
    assert!(
        h.answers_to(s, end).is_empty(),
        "no answer to a closed session"
    );
    assert_eq!(h.deliveries.len(), 1, "durable mail is delivered");
}

fn accepted_message(h: &mut Harness, sender: &str) -> mta_core::queue::Envelope {
    let s = h.open();
    h.helo(s);
    h.mail(s, sender);
    h.rcpt(s, "bob@example.org");
    h.answer_lookups(&["bob", "alice"]);
    h.data(s);
    h.end(s, 10, 0);
    h.commit_all();
    h.deliveries.pop_front().expect("delivery")
}

fn failure(class: u8) -> Failure {
    Failure {
        status: EnhancedStatus::new(class, 2, 0),
        text: format!("{class}00 mailbox trouble"),
        remote_mta: None,
    }
}

#[test]
fn permanent_failure_produces_exactly_one_bounce() {
    let mut h = Harness::new(CONF);
    let envelope = accepted_message(&mut h, "alice@remote.test");
    h.input(Input::DeliveryResult {
        id: envelope.id,
        outcome: Outcome::PermFail(failure(5)),
    });
    assert!(h
        .logs
        .iter()
        .any(|l| l.starts_with(&format!("delivery: PermFail for {}", envelope.id))));
    // The report is collected for a short window, then asked for.
    let mut guard = 0;
    while h.bounces.is_empty() && h.advance() {
        guard += 1;
        assert!(guard < 100);
    }
    let (bounce_id, carriers) = h.bounces.pop_front().expect("a bounce");
    assert!(
        !h.removed.contains(&envelope.id),
        "the original stays until the bounce is queued"
    );
    assert_eq!(carriers.len(), 1);
    let carrier = &carriers[0];
    assert_eq!(carrier.message_id(), bounce_id);
    assert_eq!(carrier.sender, None);
    assert!(carrier.flags.bounce);
    assert_eq!(carrier.recipient, "alice@remote.test");
    assert_eq!(
        carrier.delivery,
        DeliveryKind::Relay {
            action: "out".into()
        }
    );
    let (_, report) = &h.bounce_log[0];
    assert_eq!(report.message, envelope.message_id());
    assert_eq!(report.envelopes.len(), 1);
    h.input(Input::BounceQueued {
        msgid: bounce_id,
        result: Ok(()),
    });
    assert!(h.removed.contains(&envelope.id));
    assert_eq!(h.engine.stats().get("queue.bounce"), Some(&1));
    // The bounce itself fails for good: no report about a report.
    let bounce_delivery = h.deliveries.pop_front().expect("bounce delivered");
    assert_eq!(bounce_delivery.id, carrier.id);
    h.input(Input::DeliveryResult {
        id: carrier.id,
        outcome: Outcome::PermFail(failure(5)),
    });
    for _ in 0..100 {
        if !h.advance() {
            break;
        }
    }
    assert_eq!(h.bounce_log.len(), 1);
    assert!(h.removed.contains(&carrier.id));
    assert_eq!(h.engine.scheduler().len(), 0);
}

#[test]
fn bounce_to_a_local_sender_is_expanded_like_any_recipient() {
    let mut h = Harness::new(CONF);
    let envelope = accepted_message(&mut h, "alice@example.org");
    h.input(Input::DeliveryResult {
        id: envelope.id,
        outcome: Outcome::PermFail(failure(5)),
    });
    while h.lookups.is_empty() && h.bounces.is_empty() && h.advance() {}
    h.answer_lookups(&["alice"]);
    let (_, carriers) = h.bounces.pop_front().expect("a bounce");
    assert!(
        matches!(&carriers[0].delivery, DeliveryKind::Local { user, .. } if user.starts_with("alice:"))
    );
}

#[test]
fn failed_bounce_queueing_is_retried() {
    let mut h = Harness::new(CONF);
    let envelope = accepted_message(&mut h, "alice@remote.test");
    h.input(Input::DeliveryResult {
        id: envelope.id,
        outcome: Outcome::PermFail(failure(5)),
    });
    while h.bounces.is_empty() && h.advance() {}
    let (bounce_id, _) = h.bounces.pop_front().unwrap();
    h.input(Input::BounceQueued {
        msgid: bounce_id,
        result: Err("disk full".into()),
    });
    assert!(!h.removed.contains(&envelope.id));
    assert!(h.advance());
    let (again, _) = h.bounces.pop_front().expect("asked again");
    assert_eq!(again, bounce_id);
    h.input(Input::BounceQueued {
        msgid: bounce_id,
        result: Ok(()),
    });
    assert!(h.removed.contains(&envelope.id));
}

#[test]
fn temporary_failure_is_retried_later_until_delivered() {
    let mut h = Harness::new(CONF);
    let envelope = accepted_message(&mut h, "alice@remote.test");
    let mut last = h.now;
    for attempt in 0..5 {
        h.input(Input::DeliveryResult {
            id: envelope.id,
            outcome: Outcome::TempFail(failure(4)),
        });
        assert!(h.deliveries.is_empty(), "not retried at once");
        let update = h.updates.last().expect("persisted");
        assert!(matches!(update.state, EnvelopeState::Deferred { next } if next > h.now));
        while h.deliveries.is_empty() {
            assert!(h.advance(), "attempt {attempt}: a retry is scheduled");
        }
        assert!(h.now > last, "retries move forward in time");
        last = h.now;
        let again = h.deliveries.pop_front().unwrap();
        assert_eq!(again.id, envelope.id);
    }
    assert!(h
        .logs
        .iter()
        .any(|l| l.starts_with(&format!("delivery: TempFail for {}", envelope.id))));
    h.input(Input::DeliveryResult {
        id: envelope.id,
        outcome: Outcome::Delivered,
    });
    assert!(h.removed.contains(&envelope.id));
    assert!(h.bounce_log.is_empty());
}

#[test]
fn answers_may_arrive_out_of_order_across_sessions() {
    let mut h = Harness::new(CONF);
    let a = h.open();
    let b = h.open();
    assert_ne!(a, b);
    h.helo(a);
    h.helo(b);
    h.mail(a, "alice@remote.test");
    h.mail(b, "carol@remote.test");
    let ra = h.rcpt(a, "bob@example.org");
    let rb = h.rcpt(b, "dave@example.org");
    let la = h.lookups.pop_front().unwrap();
    let lb = h.lookups.pop_front().unwrap();
    assert_eq!((la.1, lb.1), (a, b));
    // b's lookup is answered first.
    h.input(Input::LookupAnswer {
        id: lb.0,
        answer: harness::lookup_answer(&lb.2, &["dave"]),
    });
    h.answer_lookups(&["dave"]);
    assert_eq!(h.code(b, rb), 250);
    assert!(h.answers_to(a, ra).is_empty());
    h.input(Input::LookupAnswer {
        id: la.0,
        answer: harness::lookup_answer(&la.2, &["bob"]),
    });
    h.answer_lookups(&["bob"]);
    assert_eq!(h.code(a, ra), 250);
    // Both open messages, commits confirmed in reverse order.
    h.data(a);
    h.data(b);
    let ea = h.end(a, 10, 0);
    let eb = h.end(b, 20, 0);
    let ca = h.commits.pop_front().unwrap();
    let cb = h.commits.pop_front().unwrap();
    assert_ne!(ca.0, cb.0);
    h.input(Input::Committed {
        msgid: cb.0,
        result: Ok(()),
    });
    assert_eq!(h.code(b, eb), 250);
    assert!(h.answers_to(a, ea).is_empty());
    h.input(Input::Committed {
        msgid: ca.0,
        result: Ok(()),
    });
    assert_eq!(h.code(a, ea), 250);
    assert_eq!(h.deliveries.len(), 2);
}

#[test]
fn data_asked_while_a_recipient_is_still_looked_up_waits_for_it() {
    let mut h = Harness::new(CONF);
    let s = h.open();
    h.helo(s);
    h.mail(s, "alice@remote.test");
    let rcpt = h.rcpt(s, "bob@example.org");
    let data = h.data(s);
    assert!(h.answers_to(s, data).is_empty());
    h.answer_lookups(&["bob"]);
    assert_eq!(h.code(s, rcpt), 250);
    assert_eq!(h.code(s, data), 354);
    let pos = |req| h.answers.iter().position(|(_, r, _)| *r == req).unwrap();
    assert!(pos(rcpt) < pos(data));
}

#[test]
fn new_mail_while_lookups_run_answers_the_pending_recipients() {
    let mut h = Harness::new(CONF);
    let s = h.open();
    h.helo(s);
    h.mail(s, "alice@remote.test");
    let rcpt = h.rcpt(s, "bob@example.org");
    let mail = h.mail(s, "alice@remote.test");
    assert_eq!(h.code(s, rcpt), 451);
    assert_eq!(h.code(s, mail), 250);
    // The stale lookup answer is ignored.
    h.answer_lookups(&["bob"]);
    assert_eq!(h.answers_to(s, rcpt).len(), 1);
}

#[test]
fn reloaded_envelopes_are_delivered() {
    let mut h = Harness::new(CONF);
    let envelope = accepted_message(&mut h, "alice@remote.test");
    let mut fresh = Harness::new(CONF);
    fresh.input(Input::Reload(vec![envelope.clone()]));
    let again = fresh
        .deliveries
        .pop_front()
        .expect("delivered after restart");
    assert_eq!(again.id, envelope.id);
    assert_eq!(fresh.engine.stats().get("scheduler.envelope"), Some(&1));
}

#[test]
fn vrfy_expn_and_auth_without_a_table() {
    let mut h = Harness::new(CONF);
    let s = h.open();
    let v = h.ask(s, smtp_proto::server::Question::Vrfy("bob".into()));
    assert_eq!(h.code(s, v), 252);
    let e = h.ask(s, smtp_proto::server::Question::Expn("list".into()));
    assert_eq!(h.code(s, e), 502);
    let a = h.ask(
        s,
        smtp_proto::server::Question::Auth {
            mechanism: smtp_proto::server::AuthMechanism::Plain,
            authzid: "".into(),
            authcid: "bob".into(),
            password: "secret".into(),
        },
    );
    assert_eq!(h.code(s, a), 454);
}

#[test]
fn recipients_leading_to_one_mailbox_make_one_envelope() {
    let mut h = Harness::new(CONF);
    let s = h.open();
    h.helo(s);
    h.mail(s, "alice@remote.test");
    let a = h.rcpt(s, "bob@example.org");
    let b = h.rcpt(s, "BOB@example.org");
    let c = h.rcpt(s, "carol@example.org");
    h.answer_lookups(&["bob", "carol"]);
    for req in [a, b, c] {
        assert_eq!(h.code(s, req), 250);
    }
    h.data(s);
    h.end(s, 10, 0);
    let (_, records) = h.commits.front().unwrap();
    let mut to: Vec<String> = records
        .iter()
        .map(|(_, r)| queue::decode(r).unwrap().recipient)
        .collect();
    to.sort();
    assert_eq!(to.len(), 2, "{to:?}");
    let ids: std::collections::BTreeSet<_> = records.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids.len(), 2);
}
