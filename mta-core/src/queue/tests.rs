//! Tests of queue ids and the envelope record format.

use quickcheck::{Arbitrary, Gen, QuickCheck};
use smtp_proto::reply::EnhancedStatus;

use super::*;
use crate::time::UnixTime;

/// A plausible envelope, used by the record and scheduler tests.
pub(crate) fn sample_envelope(id: EnvelopeId) -> Envelope {
    Envelope {
        id,
        sender: Some("alice@example.org".into()),
        original_recipient: "bob@example.net".into(),
        recipient: "bob@example.net".into(),
        delivery: DeliveryKind::Relay {
            action: "outbound".into(),
        },
        dsn: DsnParams::default(),
        created: UnixTime::from_secs(1_795_896_568),
        expires: UnixTime::from_secs(1_795_896_568 + 4 * 86_400),
        tries: 0,
        last_try: None,
        last_error: None,
        warnings_sent: 0,
        state: EnvelopeState::Pending,
        flags: EnvelopeFlags::default(),
        listener: "".into(),
        helo: "client.example.org".into(),
        source: "192.0.2.7".into(),
    }
}

fn any_string(g: &mut Gen) -> String {
    // Mix plain text with the characters the escaping must survive.
    let pieces = [
        "a", "b@c", " ", ":", "\\", "\n", "\r", "\t", "\x00", "é", "\\n", "x: y",
    ];
    let n = usize::arbitrary(g) % 6;
    (0..n)
        .map(|_| *g.choose(&pieces).unwrap_or(&"a"))
        .collect::<String>()
        + &String::arbitrary(g)
}

fn any_time(g: &mut Gen) -> UnixTime {
    UnixTime::from_millis(u64::arbitrary(g))
}

fn any_opt<T>(g: &mut Gen, f: impl FnOnce(&mut Gen) -> T) -> Option<T> {
    if bool::arbitrary(g) {
        Some(f(g))
    } else {
        None
    }
}

/// An envelope with every field arbitrary (within what the format represents: the null
/// sender is `None`, never `Some("")`; statuses are of class 2, 4 or 5 below 1000).
#[derive(Clone, Debug)]
pub(crate) struct AnyEnvelope(pub(crate) Envelope);

impl Arbitrary for AnyEnvelope {
    fn arbitrary(g: &mut Gen) -> Self {
        let msg = MessageId::new(u32::arbitrary(g) | 1).unwrap();
        let id = EnvelopeId::new((u64::from(msg.get()) << 32) | u64::from(u32::arbitrary(g) | 2))
            .unwrap();
        let delivery = if bool::arbitrary(g) {
            DeliveryKind::Local {
                user: any_string(g),
                method: any_string(g),
            }
        } else {
            DeliveryKind::Relay {
                action: any_string(g),
            }
        };
        let status = EnhancedStatus::new(
            *g.choose(&[2, 4, 5]).unwrap(),
            u16::arbitrary(g) % 1000,
            u16::arbitrary(g) % 1000,
        );
        let state = match u8::arbitrary(g) % 5 {
            0 => EnvelopeState::Pending,
            1 => EnvelopeState::InFlight,
            2 => EnvelopeState::Deferred { next: any_time(g) },
            3 => EnvelopeState::Expired,
            _ => EnvelopeState::Failed,
        };
        AnyEnvelope(Envelope {
            id,
            sender: any_opt(g, any_string).filter(|s| !s.is_empty()),
            original_recipient: any_string(g),
            recipient: any_string(g),
            delivery,
            dsn: DsnParams {
                notify: any_opt(g, |g| Notify {
                    success: bool::arbitrary(g),
                    failure: bool::arbitrary(g),
                    delay: bool::arbitrary(g),
                }),
                orcpt: any_opt(g, any_string),
                ret: any_opt(g, |g| {
                    if bool::arbitrary(g) {
                        Ret::Full
                    } else {
                        Ret::Headers
                    }
                }),
                envid: any_opt(g, any_string),
            },
            created: any_time(g),
            expires: any_time(g),
            tries: u32::arbitrary(g),
            last_try: any_opt(g, any_time),
            last_error: any_opt(g, |g| Failure {
                status,
                text: any_string(g),
                remote_mta: any_opt(g, any_string),
            }),
            warnings_sent: u32::arbitrary(g),
            state,
            flags: EnvelopeFlags {
                bounce: bool::arbitrary(g),
                authenticated: bool::arbitrary(g),
            },
            listener: any_string(g),
            helo: any_string(g),
            source: any_string(g),
        })
    }
}

#[test]
fn ids_display_and_parse() {
    let m = MessageId::new(0x3a2f_00c1).unwrap();
    assert_eq!(m.to_string(), "3a2f00c1");
    assert_eq!("3a2f00c1".parse::<MessageId>(), Ok(m));
    assert_eq!("3A2F00C1".parse::<MessageId>(), Ok(m));
    let e = EnvelopeId::new(0x3a2f_00c1_d40b_9e77).unwrap();
    assert_eq!(e.to_string(), "3a2f00c1d40b9e77");
    assert_eq!(e.message_id(), m);
    assert_eq!("3a2f00c1d40b9e77".parse::<EnvelopeId>(), Ok(e));
    for bad in [
        "",
        "3a2f00c",
        "3a2f00c1d",
        "+a2f00c1",
        "3a2f00cg",
        " 3a2f00c",
    ] {
        assert_eq!(bad.parse::<MessageId>(), Err(IdError::Malformed), "{bad:?}");
    }
    assert_eq!("00000000".parse::<MessageId>(), Err(IdError::Zero));
    assert_eq!("3a2f00c100000000".parse::<EnvelopeId>(), Err(IdError::Zero));
    assert_eq!("000000000000abcd".parse::<EnvelopeId>(), Err(IdError::Zero));
    assert_eq!(
        "3a2f00c1d40b9e7".parse::<EnvelopeId>(),
        Err(IdError::Malformed)
    );
}

#[test]
fn ids_are_reproducible_from_the_seed_and_name_their_message() {
    let mut a = SplitMix64::new(42);
    let mut b = SplitMix64::new(42);
    let ma = MessageId::generate(&mut a);
    assert_eq!(ma, MessageId::generate(&mut b));
    let ea = EnvelopeId::generate(ma, &mut a);
    assert_eq!(ea, EnvelopeId::generate(ma, &mut b));
    assert_eq!(ea.message_id(), ma);
    let mut c = SplitMix64::new(43);
    assert_ne!(ma, MessageId::generate(&mut c));
}

#[test]
fn record_is_readable_text() {
    let e = sample_envelope("3a2f00c1d40b9e77".parse().unwrap());
    let text = String::from_utf8(encode(&e)).unwrap();
    assert!(
        text.starts_with("version: 1\nid: 3a2f00c1d40b9e77\nmessage: 3a2f00c1\n"),
        "{text}"
    );
    assert!(text.contains("\nsender: alice@example.org\n"), "{text}");
    assert!(
        text.contains("\ndelivery: relay\naction: outbound\n"),
        "{text}"
    );
    assert!(text.contains("\ncreated: 1795896568\n"), "{text}");
    assert!(text.contains("\nstate: pending\n"), "{text}");
    assert_eq!(decode(text.as_bytes()), Ok(e));
}

#[test]
fn values_cannot_inject_lines() {
    let mut e = sample_envelope("3a2f00c1d40b9e77".parse().unwrap());
    e.recipient = "x@y\nstate: expired\r\nversion: 9".into();
    e.helo = "\\n\u{7f}".into();
    let bytes = encode(&e);
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert_eq!(text.matches("\nstate:").count(), 1, "{text}");
    assert!(!text.contains('\r'));
    assert_eq!(decode(&bytes), Ok(e));
}

#[test]
fn null_sender_is_an_empty_value() {
    let mut e = sample_envelope("3a2f00c1d40b9e77".parse().unwrap());
    e.sender = None;
    let text = String::from_utf8(encode(&e)).unwrap();
    assert!(text.contains("\nsender: \n"), "{text}");
    assert_eq!(decode(text.as_bytes()).unwrap().sender, None);
}

#[test]
fn unknown_keys_and_later_versions_are_read() {
    let e = sample_envelope("3a2f00c1d40b9e77".parse().unwrap());
    let text = String::from_utf8(encode(&e)).unwrap();
    let future = text.replacen("version: 1", "version: 3", 1) + "priority: high\n# a comment\n";
    assert_eq!(decode(future.as_bytes()), Ok(e.clone()));
    // CRLF line ends (an admin's editor) are tolerated.
    assert_eq!(decode(text.replace('\n', "\r\n").as_bytes()), Ok(e));
}

#[test]
fn missing_repeated_and_malformed_are_errors() {
    let e = sample_envelope("3a2f00c1d40b9e77".parse().unwrap());
    let text = String::from_utf8(encode(&e)).unwrap();
    for key in [
        "id",
        "sender",
        "original-recipient",
        "recipient",
        "delivery",
        "created",
        "expires",
        "state",
    ] {
        let without: String = text
            .lines()
            .filter(|l| !l.starts_with(&format!("{key}:")))
            .map(|l| l.to_owned() + "\n")
            .collect();
        assert_eq!(
            decode(without.as_bytes()),
            Err(RecordError::Missing(key)),
            "{key}"
        );
    }
    assert_eq!(decode(b""), Err(RecordError::NoVersion));
    assert_eq!(
        decode(b"id: 3a2f00c1d40b9e77\n"),
        Err(RecordError::NoVersion)
    );
    assert_eq!(decode(b"version: 0\n"), Err(RecordError::NoVersion));
    assert_eq!(decode(&[0xff, 0xfe]), Err(RecordError::NotUtf8));
    let repeated = text.clone() + "recipient: other@example.com\n";
    assert_eq!(
        decode(repeated.as_bytes()),
        Err(RecordError::Repeated("recipient".into()))
    );
    let no_colon = text.clone() + "garbage\n";
    assert!(matches!(
        decode(no_colon.as_bytes()),
        Err(RecordError::MalformedLine(_))
    ));
    let bad_escape = text.replace("helo: client", "helo: \\q");
    assert!(matches!(
        decode(bad_escape.as_bytes()),
        Err(RecordError::MalformedLine(_))
    ));
    let bad_time = text.replace("created: 1795896568", "created: 17958.5");
    assert_eq!(
        decode(bad_time.as_bytes()),
        Err(RecordError::Invalid("created"))
    );
    let bad_msg = text.replace("message: 3a2f00c1", "message: 3a2f00c2");
    assert_eq!(
        decode(bad_msg.as_bytes()),
        Err(RecordError::Invalid("message"))
    );
    let deferred = text.replace("state: pending", "state: deferred");
    assert_eq!(
        decode(deferred.as_bytes()),
        Err(RecordError::Missing("next-try"))
    );
}

#[test]
fn prop_record_round_trip() {
    fn prop(e: AnyEnvelope) -> bool {
        decode(&encode(&e.0)) == Ok(e.0)
    }
    QuickCheck::new()
        .tests(2000)
        .quickcheck(prop as fn(AnyEnvelope) -> bool);
}

#[test]
fn prop_arbitrary_bytes_never_panic() {
    fn prop(data: Vec<u8>) -> bool {
        crate::fuzzing::queue::record(&data);
        true
    }
    QuickCheck::new()
        .tests(2000)
        .quickcheck(prop as fn(Vec<u8>) -> bool);
}

#[test]
fn prop_mutated_records_never_panic() {
    // Arbitrary bytes rarely get past the version line; mutate real records instead.
    fn prop(e: AnyEnvelope, at: usize, byte: u8) -> bool {
        let mut bytes = encode(&e.0);
        if !bytes.is_empty() {
            let i = at % bytes.len();
            bytes[i] = byte;
        }
        crate::fuzzing::queue::record(&bytes);
        true
    }
    QuickCheck::new()
        .tests(2000)
        .quickcheck(prop as fn(AnyEnvelope, usize, u8) -> bool);
}
