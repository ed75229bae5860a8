//! Tests of the control protocol: round trips, the incremental decoder's bounds, and the
//! engine-side verbs over an engine built in memory.

use std::sync::Arc;
use std::time::Duration;

use quickcheck::{Arbitrary, Gen, QuickCheck};
use smtp_proto::reply::EnhancedStatus;

use super::*;
use crate::config;
use crate::engine::{Control, Engine, EngineFacts, Input};
use crate::queue::{
    DeliveryKind, DsnParams, Envelope, EnvelopeFlags, EnvelopeState, Failure, MessageId,
};
use crate::scheduler::Scope;
use crate::time::UnixTime;

fn text(g: &mut Gen) -> String {
    let s = String::arbitrary(g);
    s.chars().take(20).collect()
}

fn envelope_id(g: &mut Gen) -> EnvelopeId {
    let v = u64::arbitrary(g) | (1 << 40) | 1;
    EnvelopeId::new(v).unwrap()
}

fn target(g: &mut Gen) -> Target {
    match u8::arbitrary(g) % 3 {
        0 => Target::All,
        1 => Target::Envelope(envelope_id(g)),
        _ => Target::Message(MessageId::new(u32::arbitrary(g) | 1).unwrap()),
    }
}

fn agent(g: &mut Gen) -> Agent {
    *g.choose(&[Agent::Mda, Agent::Mta, Agent::Smtp]).unwrap()
}

impl Arbitrary for Request {
    fn arbitrary(g: &mut Gen) -> Self {
        match u8::arbitrary(g) % 20 {
            0 => Request::ShowQueue,
            1 => Request::ShowEnvelope(envelope_id(g)),
            2 => Request::ShowMessage(envelope_id(g)),
            3 => Request::ShowStats,
            4 => Request::ShowStatus,
            5 => Request::ShowRoutes,
            6 => Request::ShowHosts,
            7 => Request::Schedule(target(g)),
            8 => Request::Remove(target(g)),
            9 => Request::Pause(agent(g)),
            10 => Request::Resume(agent(g)),
            11 => Request::PauseEnvelope(target(g)),
            12 => Request::ResumeEnvelope(target(g)),
            13 => Request::Monitor,
            14 => Request::LogBrief,
            15 => Request::LogVerbose,
            16 => Request::Trace(text(g)),
            17 => Request::Untrace(text(g)),
            18 => Request::UpdateTable(text(g)),
            _ => Request::Enqueue(Submission {
                sender: text(g),
                recipients: (0..u8::arbitrary(g) % 4).map(|_| text(g)).collect(),
                message: Vec::arbitrary(g),
            }),
        }
    }
}

impl Arbitrary for Response {
    fn arbitrary(g: &mut Gen) -> Self {
        match u8::arbitrary(g) % 6 {
            0 => Response::Ok,
            1 => Response::Error(text(g)),
            2 => Response::Text((0..u8::arbitrary(g) % 5).map(|_| text(g)).collect()),
            3 => Response::Stats(
                (0..u8::arbitrary(g) % 5)
                    .map(|_| (text(g), i64::arbitrary(g)))
                    .collect(),
            ),
            4 => Response::Envelopes(
                (0..u8::arbitrary(g) % 3)
                    .map(|_| QueueRow {
                        id: u64::arbitrary(g),
                        family: text(g),
                        kind: text(g),
                        flags: text(g),
                        sender: text(g),
                        original_recipient: text(g),
                        recipient: text(g),
                        created: u64::arbitrary(g),
                        expires: u64::arbitrary(g),
                        last_try: u64::arbitrary(g),
                        tries: u32::arbitrary(g),
                        runstate: text(g),
                        delay: u64::arbitrary(g),
                        error: text(g),
                    })
                    .collect(),
            ),
            _ => Response::Status(Status {
                mda_paused: bool::arbitrary(g),
                mta_paused: bool::arbitrary(g),
                smtp_paused: bool::arbitrary(g),
            }),
        }
    }
}

#[test]
fn requests_round_trip() {
    fn prop(r: Request) -> bool {
        decode::<Request>(&encode(&r).unwrap()) == Ok(r)
    }
    QuickCheck::new()
        .tests(2000)
        .quickcheck(prop as fn(Request) -> bool);
}

#[test]
fn responses_round_trip() {
    fn prop(r: Response) -> bool {
        decode::<Response>(&encode(&r).unwrap()) == Ok(r)
    }
    QuickCheck::new()
        .tests(2000)
        .quickcheck(prop as fn(Response) -> bool);
}

#[test]
fn frames_decode_incrementally_byte_by_byte() {
    fn prop(rs: Vec<Request>) -> bool {
        let mut stream = Vec::new();
        for r in &rs {
            stream.extend(encode(r).unwrap());
        }
        let mut d = FrameDecoder::<Request>::new();
        let mut got = Vec::new();
        for b in &stream {
            assert_eq!(d.push(std::slice::from_ref(b)), 1);
            if let Some(r) = d.next() {
                got.push(r.unwrap());
            }
        }
        d.is_idle() && got == rs
    }
    QuickCheck::new()
        .tests(300)
        .quickcheck(prop as fn(Vec<Request>) -> bool);
}

#[test]
fn arbitrary_bytes_never_panic_the_decoders() {
    fn prop(data: Vec<u8>, chunk: u8) -> bool {
        let mut input = vec![chunk];
        input.extend(data);
        crate::fuzzing::control::frames(&input);
        // The same bytes behind a valid header, so the payload decoders run.
        let mut framed = b"SC\x01".to_vec();
        framed.push(chunk % 22);
        framed.extend((input.len() as u32).to_be_bytes());
        framed.extend(&input);
        crate::fuzzing::control::frames(&framed);
        true
    }
    QuickCheck::new()
        .tests(3000)
        .quickcheck(prop as fn(Vec<u8>, u8) -> bool);
}

#[test]
fn an_oversized_header_is_refused_before_its_payload() {
    let mut d = FrameDecoder::<Request>::new();
    // ShowQueue (tag 1) claiming 1 MiB: over the 64 KiB bound of short requests.
    let header = [b'S', b'C', 1, 1, 0, 0x10, 0, 0];
    assert_eq!(d.push(&header), HEADER_LEN);
    assert_eq!(d.push(&[0; 100]), 0);
    assert_eq!(d.next(), Some(Err(DecodeError::TooLarge { len: 1 << 20 })));
    assert!(d.buffered() <= HEADER_LEN);
    // A submission may be that large; one over 64 MiB may not.
    let mut d = FrameDecoder::<Request>::new();
    d.push(&[b'S', b'C', 1, 20, 0, 0x10, 0, 0]);
    assert_eq!(d.next(), None);
    let mut d = FrameDecoder::<Request>::new();
    d.push(&[b'S', b'C', 1, 20, 4, 0, 0, 1]);
    assert!(matches!(d.next(), Some(Err(DecodeError::TooLarge { .. }))));
}

#[test]
fn other_versions_and_magic_are_refused() {
    let mut frame = encode(&Request::ShowStats).unwrap();
    assert_eq!(frame, b"SC\x01\x04\0\0\0\0");
    frame[2] = 2;
    assert_eq!(decode::<Request>(&frame), Err(DecodeError::Version(2)));
    frame[0] = b'X';
    assert_eq!(decode::<Request>(&frame), Err(DecodeError::Magic));
}

#[test]
fn an_oversized_message_cannot_be_encoded() {
    let big = Request::Enqueue(Submission {
        sender: String::new(),
        recipients: vec!["a@b".to_owned()],
        message: vec![b'x'; MAX_SUBMISSION as usize],
    });
    assert!(matches!(encode(&big), Err(DecodeError::TooLarge { .. })));
}

const START: UnixTime = UnixTime::from_secs(1_800_000_000);

fn engine() -> Engine {
    let conf = "table aliases { root = alice }\n\
                action \"mbox\" maildir\naction out relay\n\
                match for local action \"mbox\"\nmatch from any for any action out\n";
    let config =
        config::parse(conf, "smtpd.conf", &[], &mut |_| Err("no files".to_owned())).unwrap();
    Engine::new(
        Arc::new(config),
        EngineFacts::new("mx.example.org", 7),
        START,
    )
    .unwrap()
}

fn deferred_envelope() -> Envelope {
    Envelope {
        id: EnvelopeId::new(0x1234_5678_0000_0001).unwrap(),
        sender: Some("bob@example.com".to_owned()),
        original_recipient: "Alice@mx.example.org".to_owned(),
        recipient: "alice@mx.example.org".to_owned(),
        delivery: DeliveryKind::Local {
            user: "alice".to_owned(),
            method: "maildir".to_owned(),
        },
        dsn: DsnParams::default(),
        created: START,
        expires: START + Duration::from_secs(4 * 86_400),
        tries: 1,
        last_try: Some(START + Duration::from_secs(10)),
        last_error: Some(Failure {
            status: EnhancedStatus::new(4, 2, 0),
            text: "mailbox busy".to_owned(),
            remote_mta: None,
        }),
        warnings_sent: 0,
        state: EnvelopeState::Deferred {
            next: START + Duration::from_secs(900),
        },
        flags: EnvelopeFlags::default(),
        listener: "lo".to_owned(),
        helo: "client.example.com".to_owned(),
        source: "192.0.2.7".to_owned(),
    }
}

/// An engine holding one deferred local envelope, reloaded as after a restart.
fn engine_with_deferred() -> Engine {
    let mut engine = engine();
    engine.handle(
        Input::Reload(vec![deferred_envelope()]),
        START + Duration::from_secs(20),
    );
    while engine.poll_action().is_some() {}
    engine
}

#[test]
fn show_queue_lists_a_deferred_envelope_in_smtpctl_format() {
    let engine = engine_with_deferred();
    let mut state = ControlState::new(START);
    let now = START + Duration::from_secs(100);
    let Answer::Reply(Response::Envelopes(rows)) = state.answer(&engine, &Request::ShowQueue, now)
    else {
        panic!("show queue answers envelopes");
    };
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].line(),
        "1234567800000001|inet4|mda|-|bob@example.com|Alice@mx.example.org|\
         alice@mx.example.org|1800000000|1800345600|1800000010|1|pending|800|mailbox busy"
    );
}

#[test]
fn show_stats_has_engine_counters_and_uptime() {
    let engine = engine_with_deferred();
    let mut state = ControlState::new(START);
    let Answer::Reply(Response::Stats(stats)) = state.answer(
        &engine,
        &Request::ShowStats,
        START + Duration::from_secs(75),
    ) else {
        panic!("show stats answers counters");
    };
    assert!(stats.contains(&("uptime".to_owned(), 75)), "{stats:?}");
    assert!(
        stats.contains(&("scheduler.envelope".to_owned(), 1)),
        "{stats:?}"
    );
    let mut sorted = stats.clone();
    sorted.sort();
    assert_eq!(sorted, stats);
}

#[test]
fn schedule_and_remove_feed_controls_for_known_ids_only() {
    let engine = engine_with_deferred();
    let mut state = ControlState::new(START);
    let id = deferred_envelope().id;
    let target = Target::Envelope(id);
    assert_eq!(
        state.answer(&engine, &Request::Schedule(target), START),
        Answer::Feed(Control::Schedule(target))
    );
    assert_eq!(
        state.answer(
            &engine,
            &Request::Remove(Target::Message(id.message_id())),
            START
        ),
        Answer::Feed(Control::Remove(Target::Message(id.message_id())))
    );
    let unknown = Target::Envelope(EnvelopeId::new(0x1111_1111_2222_2222).unwrap());
    assert_eq!(
        state.answer(&engine, &Request::Schedule(unknown), START),
        Answer::Reply(Response::Error(
            "no such envelope: 1111111122222222".to_owned()
        ))
    );
}

#[test]
fn a_paused_envelope_is_listed_suspended_until_resumed() {
    let mut engine = engine_with_deferred();
    let mut state = ControlState::new(START);
    let id = deferred_envelope().id;
    let now = START + Duration::from_secs(100);
    let feed = |engine: &mut Engine, state: &mut ControlState, request: Request| {
        let Answer::Feed(control) = state.answer(engine, &request, now) else {
            panic!("feeds the engine");
        };
        engine.handle(Input::Control(control), now);
        while engine.poll_action().is_some() {}
    };
    feed(
        &mut engine,
        &mut state,
        Request::PauseEnvelope(Target::Envelope(id)),
    );
    let line = |engine: &Engine, state: &mut ControlState| {
        let Answer::Reply(Response::Envelopes(rows)) =
            state.answer(engine, &Request::ShowQueue, now)
        else {
            panic!("show queue answers envelopes");
        };
        rows[0].line()
    };
    // OpenSMTPD's smtpctl puts `suspend` among the flags and keeps the envelope pending.
    assert_eq!(
        line(&engine, &mut state),
        "1234567800000001|inet4|mda|suspend|bob@example.com|Alice@mx.example.org|\
         alice@mx.example.org|1800000000|1800345600|1800000010|1|pending|800|mailbox busy"
    );
    feed(
        &mut engine,
        &mut state,
        Request::ResumeEnvelope(Target::All),
    );
    assert!(line(&engine, &mut state).contains("|mda|-|"));
}

#[test]
fn schedule_fed_to_the_engine_hands_the_envelope_out() {
    let mut engine = engine_with_deferred();
    let mut state = ControlState::new(START);
    let now = START + Duration::from_secs(30);
    let Answer::Feed(control) = state.answer(&engine, &Request::Schedule(Target::All), now) else {
        panic!("schedule feeds the engine");
    };
    engine.handle(Input::Control(control), now);
    let mut delivered = false;
    while let Some(a) = engine.poll_action() {
        delivered |= matches!(a, crate::engine::Action::Deliver(_));
    }
    assert!(delivered);
}

#[test]
fn pause_and_resume_track_status() {
    let engine = engine();
    let mut state = ControlState::new(START);
    assert_eq!(
        state.answer(&engine, &Request::Pause(Agent::Mda), START),
        Answer::Feed(Control::Pause(Scope::Local))
    );
    assert_eq!(
        state.answer(&engine, &Request::Pause(Agent::Smtp), START),
        Answer::Runtime(Effect::PauseSmtp)
    );
    assert!(matches!(
        state.answer(&engine, &Request::Pause(Agent::Mda), START),
        Answer::Reply(Response::Error(_))
    ));
    let Answer::Reply(Response::Status(status)) =
        state.answer(&engine, &Request::ShowStatus, START)
    else {
        panic!("status");
    };
    assert_eq!(status.lines(), ["MDA paused", "MTA running", "SMTP paused"]);
    assert_eq!(
        state.answer(&engine, &Request::Resume(Agent::Mta), START),
        Answer::Reply(Response::Error("mta already running".to_owned()))
    );
    assert_eq!(
        state.answer(&engine, &Request::Resume(Agent::Mda), START),
        Answer::Feed(Control::Resume(Scope::Local))
    );
}

#[test]
fn runtime_effects_and_refusals() {
    let engine = engine_with_deferred();
    let mut state = ControlState::new(START);
    let id = deferred_envelope().id;
    assert_eq!(
        state.answer(&engine, &Request::ShowMessage(id), START),
        Answer::Runtime(Effect::ShowMessage(id.message_id()))
    );
    assert_eq!(
        state.answer(&engine, &Request::UpdateTable("aliases".to_owned()), START),
        Answer::Runtime(Effect::UpdateTable("aliases".to_owned()))
    );
    assert!(matches!(
        state.answer(&engine, &Request::UpdateTable("nope".to_owned()), START),
        Answer::Reply(Response::Error(_))
    ));
    assert_eq!(
        state.answer(&engine, &Request::Trace("smtp".to_owned()), START),
        Answer::Runtime(Effect::Trace {
            traces: vec!["smtp".to_owned()]
        })
    );
    assert!(matches!(
        state.answer(&engine, &Request::Trace("bogus".to_owned()), START),
        Answer::Reply(Response::Error(_))
    ));
    let sub = Submission {
        sender: "alice".to_owned(),
        recipients: vec!["bob@example.com".to_owned()],
        message: b"Subject: hi\n\nhello\n".to_vec(),
    };
    assert_eq!(
        state.answer(&engine, &Request::Enqueue(sub.clone()), START),
        Answer::Runtime(Effect::Enqueue(sub.clone()))
    );
    let bad = Submission {
        recipients: vec!["evil>\r\nRCPT TO:<x".to_owned()],
        ..sub
    };
    assert!(matches!(
        state.answer(&engine, &Request::Enqueue(bad), START),
        Answer::Reply(Response::Error(_))
    ));
    let Answer::Reply(Response::Text(lines)) =
        state.answer(&engine, &Request::ShowEnvelope(id), START)
    else {
        panic!("show envelope");
    };
    assert!(
        lines.iter().any(|l| l.contains("alice@mx.example.org")),
        "{lines:?}"
    );
}

#[test]
fn only_submission_and_counters_are_unprivileged() {
    assert!(!Request::ShowStats.needs_privilege());
    assert!(!Request::Monitor.needs_privilege());
    assert!(Request::ShowQueue.needs_privilege());
    assert!(Request::Pause(Agent::Mda).needs_privilege());
    assert!(Request::Remove(Target::All).needs_privilege());
}
