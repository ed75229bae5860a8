//! Tests of report composition and loop detection.

use quickcheck::QuickCheck;
use smtp_proto::reply::EnhancedStatus;

use super::*;
use crate::queue::{DeliveryKind, EnvelopeId, Failure, Ret};

const ORIGINAL: &[u8] = b"Received: from client (client [192.0.2.7])\r\n\tby mx; Sat, 28 Nov 2026 20:09:28 +0000\r\nFrom: alice@example.org\r\nSubject: hello\r\n\r\nbody line\r\n.dot line\r\n";

fn envelope(low: u64, state: EnvelopeState, text: &str) -> Envelope {
    let mut e =
        crate::queue::tests::sample_envelope(EnvelopeId::new(0x1234_5678_0000_0000 | low).unwrap());
    e.state = state;
    e.recipient = format!("rcpt{low}@example.net");
    e.original_recipient = format!("orig{low}@example.net");
    e.last_try = Some(UnixTime::from_secs(1_795_900_000));
    e.last_error = Some(Failure {
        status: EnhancedStatus::new(5, 1, 1),
        text: text.into(),
        remote_mta: Some("mx.example.net".into()),
    });
    e
}

fn report(kind: ReportKind, envelopes: Vec<Envelope>) -> Report {
    Report {
        kind,
        message: envelopes[0].message_id(),
        sender: "alice@example.org".into(),
        envelopes,
    }
}

fn ctx() -> BounceContext<'static> {
    BounceContext {
        hostname: "mail.example.org",
        now: UnixTime::from_secs(1_795_896_568),
        seed: 7,
    }
}

/// Every line ends in CRLF, is 7-bit and at most 998 bytes.
fn assert_wire_clean(msg: &[u8]) {
    assert!(msg.ends_with(b"\r\n"));
    for (i, b) in msg.iter().enumerate() {
        assert!(*b != 0 && *b < 0x80, "8-bit byte at {i}");
        if *b == b'\n' {
            assert_eq!(msg.get(i.wrapping_sub(1)), Some(&b'\r'), "bare LF at {i}");
        }
        if *b == b'\r' {
            assert_eq!(msg.get(i + 1), Some(&b'\n'), "bare CR at {i}");
        }
    }
    for line in msg.split(|&b| b == b'\n') {
        assert!(line.len() <= 999, "long line");
    }
}

fn boundary_of(text: &str) -> String {
    let start = text.find("boundary=\"").unwrap() + 10;
    text[start..].split('"').next().unwrap().to_owned()
}

#[test]
fn failure_report_structure() {
    let mut a = envelope(
        1,
        EnvelopeState::Failed,
        "550 5.1.1 <rcpt1@example.net>: no such user",
    );
    a.dsn.orcpt = Some("rfc822;orig1@example.net".into());
    a.dsn.envid = Some("QQ314159".into());
    let b = envelope(2, EnvelopeState::Expired, "451 4.4.1 connection timed out");
    let msg = compose(&report(ReportKind::Failure, vec![a, b]), &ctx(), ORIGINAL);
    assert_wire_clean(&msg);
    let text = String::from_utf8(msg).unwrap();
    let boundary = boundary_of(&text);
    for needle in [
        "From: Mail Delivery System <MAILER-DAEMON@mail.example.org>\r\n",
        "To: <alice@example.org>\r\n",
        "Subject: Delivery status notification: error\r\n",
        "Date: Sat, 28 Nov 2026 20:09:28 +0000\r\n",
        "Auto-Submitted: auto-replied\r\n",
        "Content-Type: multipart/report; report-type=delivery-status;\r\n",
        "Content-Type: message/delivery-status\r\n",
        "Reporting-MTA: dns; mail.example.org\r\n",
        "Original-Envelope-Id: QQ314159\r\n",
        "Arrival-Date: Sat, 28 Nov 2026 20:09:28 +0000\r\n",
        "\r\nOriginal-Recipient: rfc822; orig1@example.net\r\nFinal-Recipient: rfc822; rcpt1@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\nRemote-MTA: dns; mx.example.net\r\nDiagnostic-Code: smtp; 550 5.1.1 <rcpt1@example.net>: no such user\r\n",
        "Final-Recipient: rfc822; rcpt2@example.net\r\nAction: failed\r\nStatus: 5.4.7\r\n",
        "<orig2@example.net>: delivery time expired; last error: 451 4.4.1 connection timed out\r\n",
        "Content-Type: message/rfc822\r\n",
        "Subject: hello\r\n\r\nbody line\r\n.dot line\r\n",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    assert_eq!(text.matches(&format!("--{boundary}\r\n")).count(), 3);
    assert!(text.ends_with(&format!("\r\n--{boundary}--\r\n")));
}

#[test]
fn ret_hdrs_returns_only_the_header() {
    let mut a = envelope(1, EnvelopeState::Failed, "550 no");
    a.dsn.ret = Some(Ret::Headers);
    let text = String::from_utf8(compose(
        &report(ReportKind::Failure, vec![a]),
        &ctx(),
        ORIGINAL,
    ))
    .unwrap();
    assert!(text.contains("Content-Type: text/rfc822-headers\r\n"));
    assert!(text.contains("Subject: hello\r\n"));
    assert!(!text.contains("body line"));
}

#[test]
fn eight_bit_message_falls_back_to_ascii_header() {
    let a = envelope(1, EnvelopeState::Failed, "550 n\u{e9}\r\nope");
    let original = "Subject: caf\u{e9}\nX: y\n\nbody \u{e9}\u{ff}\n".as_bytes();
    let msg = compose(&report(ReportKind::Failure, vec![a]), &ctx(), original);
    assert_wire_clean(&msg);
    let text = String::from_utf8(msg).unwrap();
    assert!(text.contains("text/rfc822-headers"));
    assert!(text.contains("Subject: caf??\r\nX: y\r\n"), "{text}");
    assert!(
        text.contains("Diagnostic-Code: smtp; 550 n?  ope\r\n"),
        "{text}"
    );
    assert!(!text.contains("body"));
}

#[test]
fn delay_report() {
    let mut a = envelope(
        1,
        EnvelopeState::Deferred {
            next: UnixTime::from_secs(1),
        },
        "421 busy",
    );
    a.last_error.as_mut().unwrap().status = EnhancedStatus::new(4, 7, 0);
    a.delivery = DeliveryKind::Local {
        user: "bob".into(),
        method: "mbox".into(),
    };
    let text = String::from_utf8(compose(
        &report(ReportKind::Delay, vec![a.clone()]),
        &ctx(),
        ORIGINAL,
    ))
    .unwrap();
    assert!(text.contains("Subject: Delivery status notification: delay\r\n"));
    assert!(text.contains("Action: delayed\r\nStatus: 4.7.0\r\n"));
    assert!(text.contains("Diagnostic-Code: x-unix; 421 busy\r\n"));
    let until = format!("Will-Retry-Until: {}\r\n", a.expires.rfc5322());
    assert!(text.contains(&until), "{text}");
}

#[test]
fn boundary_avoids_the_content() {
    let mut rng = SplitMix64::new(ctx().seed);
    let first = format!("=_{:016x}{:016x}", rng.next_u64(), rng.next_u64());
    let original = format!("Subject: x\r\n\r\n--{first}\r\n");
    let a = envelope(1, EnvelopeState::Failed, "550 no");
    let text = String::from_utf8(compose(
        &report(ReportKind::Failure, vec![a]),
        &ctx(),
        original.as_bytes(),
    ))
    .unwrap();
    assert_ne!(boundary_of(&text), first);
    assert!(text.contains(&first));
}

#[test]
fn received_headers_are_counted_in_the_header_only() {
    let msg = b"Received: a\r\nRECEIVED : b\r\n received: continuation\r\nX-Received: no\r\nreceived:c\nSubject: s\r\n\r\nReceived: in the body\r\n";
    assert_eq!(count_received_headers(msg), 3);
    assert_eq!(count_received_headers(b""), 0);
    let many = "Received: hop\r\n".repeat(MAX_RECEIVED_HEADERS);
    assert!(!is_looping(many.as_bytes()));
    let more = many + "Received: one more\r\n\r\nbody";
    assert!(is_looping(more.as_bytes()));
}

#[test]
fn prop_reports_are_always_wire_clean() {
    fn prop(original: Vec<u8>, text: String, rcpt: String, host: String, hdrs: bool) -> bool {
        let mut a = envelope(1, EnvelopeState::Failed, &text);
        a.recipient = rcpt.clone();
        a.dsn.orcpt = Some(rcpt);
        a.dsn.ret = hdrs.then_some(Ret::Headers);
        let ctx = BounceContext {
            hostname: &host,
            ..ctx()
        };
        for kind in [ReportKind::Failure, ReportKind::Delay] {
            assert_wire_clean(&compose(&report(kind, vec![a.clone()]), &ctx, &original));
        }
        true
    }
    QuickCheck::new()
        .tests(500)
        .quickcheck(prop as fn(Vec<u8>, String, String, String, bool) -> bool);
}

#[test]
fn success_report_returns_the_header_only() {
    let mut a = envelope(1, EnvelopeState::InFlight, "451 earlier failure");
    a.dsn.ret = Some(Ret::Full);
    let mut b = envelope(2, EnvelopeState::InFlight, "451 earlier failure");
    b.delivery = DeliveryKind::Local {
        user: "bob".into(),
        method: "maildir".into(),
    };
    let msg = compose(&report(ReportKind::Success, vec![a, b]), &ctx(), ORIGINAL);
    assert_wire_clean(&msg);
    let text = String::from_utf8(msg).unwrap();
    assert!(text.contains("Subject: Delivery status notification: success\r\n"));
    assert!(text.contains(
        "Final-Recipient: rfc822; rcpt1@example.net\r\nAction: relayed\r\nStatus: 2.0.0\r\n"
    ));
    assert!(text.contains(
        "Final-Recipient: rfc822; rcpt2@example.net\r\nAction: delivered\r\nStatus: 2.0.0\r\n"
    ));
    assert!(text.contains("<orig2@example.net>: delivered\r\n"));
    assert!(!text.contains("Diagnostic-Code"));
    assert!(!text.contains("earlier failure"));
    assert!(text.contains("Content-Type: text/rfc822-headers\r\n"));
    assert!(!text.contains("body line"));
}

#[test]
fn report_envelope_is_never_reported_on() {
    let r = report(
        ReportKind::Failure,
        vec![envelope(1, EnvelopeState::Failed, "550 no")],
    );
    let id = EnvelopeId::new(0x4444_4444_0000_0001).unwrap();
    let relay = DeliveryKind::Relay {
        action: "outbound".into(),
    };
    let now = UnixTime::from_secs(100);
    let e = r.envelope(
        id,
        relay,
        now,
        std::time::Duration::from_secs(60),
        "mail.example.org",
    );
    assert_eq!(e.sender, None);
    assert_eq!(e.recipient, "alice@example.org");
    assert_eq!(e.expires, UnixTime::from_secs(160));
    assert!(e.is_bounce() && e.flags.bounce);
    assert!(!e.wants_failure_report() && !e.wants_delay_report() && !e.wants_success_report());
}
