//! Each subsystem writes its lines when traced and nothing when not.

use std::collections::BTreeMap;
use std::time::Duration;

use mta_core::bounce::{Report, ReportKind};
use mta_core::config::Config;
use mta_core::engine::{Action, SessionId};
use mta_core::expand::{self, FileLookup, LocalUser, UserLookup};
use mta_core::queue::{
    self, DeliveryKind, DsnParams, Envelope, EnvelopeFlags, EnvelopeId, EnvelopeState, Failure,
    MessageId,
};
use mta_core::routing::{self, ConnId};
use mta_core::scheduler::Outcome;
use mta_core::time::UnixTime;
use smtp_proto::reply::EnhancedStatus;

use super::*;

const START: UnixTime = UnixTime::from_secs(1_800_000_000);

fn config() -> Config {
    let text = "listen on localhost\n\
                action \"box\" maildir \"/tmp/%{rcpt}\"\n\
                action \"out\" relay\n\
                match from any for domain \"example.org\" action \"out\"\n\
                match from local for any action \"box\"\n\
                match from any for any action \"box\"\n";
    mta_core::config::parse(text, "t.conf", &[], &mut |p| Err(p.to_owned())).expect("config")
}

fn envelope(delivery: DeliveryKind) -> Envelope {
    Envelope {
        id: EnvelopeId::new(0x1234_5678_0000_0001).expect("id"),
        sender: Some("bob@example.com".to_owned()),
        original_recipient: "list@here".to_owned(),
        recipient: "alice@here".to_owned(),
        delivery,
        dsn: DsnParams::default(),
        created: START,
        expires: START + Duration::from_secs(86_400),
        tries: 1,
        last_try: Some(START),
        last_error: Some(Failure {
            status: EnhancedStatus::new(4, 2, 0),
            text: "mailbox busy".to_owned(),
            remote_mta: None,
        }),
        warnings_sent: 0,
        state: EnvelopeState::Deferred {
            next: START + Duration::from_secs(600),
        },
        flags: EnvelopeFlags::default(),
        listener: "lo".to_owned(),
        helo: "client".to_owned(),
        source: "127.0.0.1".to_owned(),
    }
}

fn local() -> DeliveryKind {
    DeliveryKind::Local {
        user: "alice:1000:1000:/home/alice".to_owned(),
        method: "maildir:/tmp/alice@here".to_owned(),
    }
}

fn traced(subsystems: &[Subsystem]) -> Log {
    let log = Log::memory();
    log.set_traces(subsystems);
    log
}

#[test]
fn nothing_is_written_when_not_traced() {
    let log = traced(&[Subsystem::Smtp]);
    let config = config();
    engine_action(&log, &config, &commit_from(local(), "local"));
    engine_action(&log, &config, &Action::Deliver(envelope(local())));
    relay_action(&log, &routing::Action::Quit { conn: ConnId(1) });
    let answer = lookup(
        &log,
        &expand::Question::User {
            name: "alice".to_owned(),
        },
        expand::Answer::User(UserLookup::NotFound),
    );
    assert_eq!(answer, expand::Answer::User(UserLookup::NotFound));
    assert!(log.lines().is_empty(), "{:?}", log.lines());
}

/// The commit of one envelope with `delivery`, from a client at `source`.
fn commit_from(delivery: DeliveryKind, source: &str) -> Action {
    let mut e = envelope(delivery);
    e.source = source.to_owned();
    Action::CommitMessage {
        session: SessionId(0xab),
        msgid: e.message_id(),
        envelopes: vec![(e.id, queue::encode(&e))],
    }
}

#[test]
fn expand_and_rules_come_from_the_committed_envelopes() {
    let log = traced(&[Subsystem::Expand, Subsystem::Rules]);
    let config = config();
    engine_action(&log, &config, &commit_from(local(), "192.0.2.7"));
    engine_action(&log, &config, &commit_from(local(), "local"));
    let relay = DeliveryKind::Relay {
        action: "out".to_owned(),
    };
    engine_action(&log, &config, &commit_from(relay, "192.0.2.7"));
    let lines = log.lines();
    assert_eq!(lines.len(), 6, "{lines:?}");
    assert!(lines[0].starts_with("expand: session "), "{lines:?}");
    assert!(lines[0].contains("<list@here> expanded to <alice@here>: local delivery as alice"));
    assert!(lines[1].starts_with("rules: session "), "{lines:?}");
    // Both rules 2 and 3 lead to "box": the client's address tells them apart.
    let rule3 = "rcpt=<list@here>: matched rule 3 (match from any for any action \"box\")";
    assert!(lines[1].contains(rule3), "{lines:?}");
    assert!(
        lines[3].contains("matched rule 2 (match from local "),
        "{lines:?}"
    );
    // The evaluation says "box" (list@here is not in example.org) but the envelope was
    // relayed: every rule leading to "out" is named.
    assert!(
        lines[5].contains("matched rule 1 (match from any for domain"),
        "{lines:?}"
    );
}

#[test]
fn scheduler_and_bounce_lines() {
    let log = traced(&[Subsystem::Scheduler, Subsystem::Bounce]);
    let config = config();
    let e = envelope(local());
    engine_action(&log, &config, &Action::Deliver(e.clone()));
    engine_action(&log, &config, &Action::UpdateEnvelope(e.clone()));
    let mut expired = e.clone();
    expired.state = EnvelopeState::Expired;
    engine_action(&log, &config, &Action::UpdateEnvelope(expired.clone()));
    engine_action(&log, &config, &Action::RemoveEnvelope(e.id));
    engine_action(
        &log,
        &config,
        &Action::QueueBounce {
            report: Report {
                kind: ReportKind::Failure,
                message: e.message_id(),
                sender: "bob@example.com".to_owned(),
                envelopes: vec![expired],
            },
            msgid: MessageId::new(0x9999).expect("msgid"),
            envelopes: vec![e.clone()],
        },
    );
    let lines = log.lines();
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert!(
        lines[0].contains("scheduled: local delivery as alice"),
        "{lines:?}"
    );
    assert!(
        lines[1].contains("deferred after 1 attempt until"),
        "{lines:?}"
    );
    assert!(
        lines[2].contains("expired: 4.2.0 mailbox busy"),
        "{lines:?}"
    );
    assert!(lines[3].contains("removed from the queue"), "{lines:?}");
    assert!(lines[4].starts_with("bounce: Failure report "), "{lines:?}");
    assert!(lines[4].contains("to <bob@example.com>"), "{lines:?}");
}

#[test]
fn lookups_are_shown_with_their_answers() {
    let log = traced(&[Subsystem::Lookup]);
    let user = LocalUser {
        name: "alice".to_owned(),
        uid: 1000,
        gid: 1000,
        directory: "/home/alice".to_owned(),
    };
    let answer = expand::Answer::File(FileLookup::Content("bob\ncarol\n".to_owned()));
    let back = lookup(&log, &expand::Question::Forward { user }, answer.clone());
    assert_eq!(back, answer);
    credentials(&log, "alice", true, false);
    assert_eq!(
        log.lines(),
        vec![
            "lookup: .forward of \"alice\": 2 lines".to_owned(),
            "lookup: credentials of \"alice\" in the credentials table: no match".to_owned(),
        ]
    );
}

#[test]
fn relay_sessions_show_connections_and_replies() {
    let log = traced(&[Subsystem::Mta]);
    let conn = ConnId(7);
    relay_action(
        &log,
        &routing::Action::Connect {
            conn,
            addr: "192.0.2.1:25".parse().expect("addr"),
            host: "mx.example.org".to_owned(),
            src: None,
            tls: routing::TlsPolicy::Opportunistic,
            auth: None,
            helo: None,
            ca: None,
            pki: None,
        },
    );
    relay_input(
        &log,
        &routing::Input::ConnectResult {
            conn,
            result: Ok(()),
        },
    );
    let id = EnvelopeId::new(0x1234_5678_0000_0001).expect("id");
    relay_input(
        &log,
        &routing::Input::SessionOutcome {
            conn,
            results: vec![(
                id,
                Outcome::PermFail(Failure {
                    status: EnhancedStatus::new(5, 1, 1),
                    text: "550 no such user".to_owned(),
                    remote_mta: None,
                }),
            )],
        },
    );
    let lines = log.lines();
    assert!(
        lines[0].contains("connecting to mx.example.org [192.0.2.1:25]"),
        "{lines:?}"
    );
    assert!(lines[1].ends_with(": connected"), "{lines:?}");
    assert!(
        lines[2].contains("refused: 5.1.1 550 no such user"),
        "{lines:?}"
    );
}

#[test]
fn counters_that_changed_are_shown_once() {
    let log = traced(&[Subsystem::Stat]);
    let mut counters = BTreeMap::from([("smtp.session".to_owned(), 1), ("queue.x".to_owned(), 4)]);
    assert!(
        log.stats_changed(counters.clone()).is_empty(),
        "the first look only takes them"
    );
    counters.insert("smtp.session".to_owned(), 0);
    counters.insert("smtp.message".to_owned(), 2);
    assert_eq!(
        log.stats_changed(counters.clone()),
        vec![
            "stat: increment smtp.message by 2: 2".to_owned(),
            "stat: decrement smtp.session by 1: 0".to_owned(),
        ]
    );
    assert!(log.stats_changed(counters).is_empty());
}
