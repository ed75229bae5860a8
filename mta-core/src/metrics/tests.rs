//! Unit tests and properties of the Prometheus endpoint.

use quickcheck::{QuickCheck, TestResult};

use super::fuzzing::{
    http, is_metric_name, same_result_however_split, valid_exposition, well_framed,
};
use super::*;
use crate::engine::STAT_KEYS;
use crate::time::UnixTime;

fn get(path: &str) -> RequestHead {
    RequestHead::Get { path: path.into() }
}

#[test]
fn names_follow_the_show_stats_keys() {
    assert_eq!(metric_name("smtp.session"), "smtpd_smtp_session");
    assert_eq!(
        metric_name("smtp.session.inet4"),
        "smtpd_smtp_session_inet4"
    );
    assert_eq!(metric_name("uptime"), "smtpd_uptime_seconds");
    assert_eq!(metric_name("a-b c/é_9"), "smtpd_a_b_c___9");
    assert_eq!(metric_name(""), "smtpd_");
}

#[test]
fn counters_are_the_keys_that_only_increase() {
    assert_eq!(metric_type("smtp.session"), "gauge");
    assert_eq!(metric_type("scheduler.envelope"), "gauge");
    assert_eq!(metric_type("smtp.session.new"), "counter");
    assert_eq!(metric_type("scheduler.delivery.ok"), "counter");
    assert_eq!(metric_type("queue.bounce"), "counter");
    assert_eq!(metric_type("uptime"), "gauge");
    assert_eq!(metric_type("not.a.known.key"), "gauge");
}

#[test]
fn renders_help_type_and_sample_per_key() {
    let stats = vec![
        ("scheduler.delivery.ok".to_owned(), 3),
        ("smtp.session".to_owned(), -1),
        ("uptime".to_owned(), 42),
        ("odd\\key\nline".to_owned(), 7),
    ];
    let text = render(&stats);
    assert_eq!(
        text,
        "# HELP smtpd_scheduler_delivery_ok deliveries that succeeded\n\
         # TYPE smtpd_scheduler_delivery_ok counter\n\
         smtpd_scheduler_delivery_ok 3\n\
         # HELP smtpd_smtp_session open SMTP sessions\n\
         # TYPE smtpd_smtp_session gauge\n\
         smtpd_smtp_session -1\n\
         # HELP smtpd_uptime_seconds seconds since the daemon started\n\
         # TYPE smtpd_uptime_seconds gauge\n\
         smtpd_uptime_seconds 42\n\
         # HELP smtpd_odd_key_line the statistic odd\\\\key\\nline of smtpctl show stats\n\
         # TYPE smtpd_odd_key_line gauge\n\
         smtpd_odd_key_line 7\n"
    );
    valid_exposition(&text);
}

#[test]
fn every_engine_key_renders() {
    let stats: Vec<(String, i64)> = STAT_KEYS.iter().map(|k| (k.name.to_owned(), 0)).collect();
    let text = render(&stats);
    valid_exposition(&text);
    assert_eq!(text.lines().count(), STAT_KEYS.len() * 3);
}

#[test]
fn a_name_given_twice_is_rendered_once() {
    let stats = vec![("a.b".to_owned(), 1), ("a_b".to_owned(), 2)];
    let text = render(&stats);
    valid_exposition(&text);
    assert!(text.contains("smtpd_a_b 1\n") && !text.contains("smtpd_a_b 2"));
}

#[test]
fn requests() {
    let cases: &[(&[u8], RequestHead)] = &[
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", get("/metrics")),
        (b"GET /metrics?x=1 HTTP/1.0\r\n\r\n", get("/metrics")),
        (b"\r\nGET / HTTP/1.0\n\n", get("/")),
        (
            b"GET http://h:9464/metrics HTTP/1.1\r\nHost: h\r\n\r\n",
            get("/metrics"),
        ),
        (b"GET HTTP://h HTTP/1.0\r\n\r\n", get("/")),
        (b"GET /nope HTTP/1.0\r\nAccept: */*\r\n\r\n", get("/nope")),
        (
            b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
            RequestHead::OtherMethod,
        ),
        (b"get / HTTP/1.0\r\n\r\n", RequestHead::OtherMethod),
        (b"OPTIONS * HTTP/1.0\r\n\r\n", RequestHead::OtherMethod),
        (b"GET * HTTP/1.0\r\n\r\n", RequestHead::Malformed),
        (b"GET /metrics HTTP/1.1\r\n\r\n", RequestHead::Malformed),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            RequestHead::Malformed,
        ),
        (b"GET / HTTP/2.0\r\n\r\n", RequestHead::Malformed),
        (b"GET  / HTTP/1.0\r\n\r\n", RequestHead::Malformed),
        (b"GET /a b HTTP/1.0\r\n\r\n", RequestHead::Malformed),
        (
            b"GET / HTTP/1.0\r\nBad Name: x\r\n\r\n",
            RequestHead::Malformed,
        ),
        (
            b"GET / HTTP/1.0\r\nX: a\r\n folded\r\n\r\n",
            RequestHead::Malformed,
        ),
        (b"GET / HTTP/1.0\r\nX: a\rb\r\n\r\n", RequestHead::Malformed),
        (b"\x16\x03\x01\x02\x00\n", RequestHead::Malformed),
        (
            b"GET /metrics HTTP/1.1\r\nHost: x\r\n",
            RequestHead::Incomplete,
        ),
        (b"GET /metr", RequestHead::Incomplete),
        (b"", RequestHead::Incomplete),
    ];
    for (bytes, expected) in cases {
        assert_eq!(
            &parse_request_head(bytes),
            expected,
            "{}",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn a_bad_request_line_is_known_before_the_head_ends() {
    assert_eq!(
        parse_request_head(b"BAD LINE\r\nHost: x"),
        RequestHead::Malformed
    );
}

#[test]
fn an_oversized_head_is_too_large() {
    let mut long = b"GET / HTTP/1.0\r\nX: ".to_vec();
    long.resize(MAX_REQUEST_HEAD + 100, b'a');
    assert_eq!(parse_request_head(&long), RequestHead::TooLarge);
    let mut reader = RequestReader::new();
    for chunk in long.chunks(1000) {
        reader.push(chunk);
    }
    assert_eq!(reader.received(), MAX_REQUEST_HEAD);
    assert_eq!(reader.room(), 0);
    assert_eq!(reader.push(b"\r\n\r\n"), RequestHead::TooLarge);
    // The same head just within the bound is read.
    let mut fits = b"GET / HTTP/1.0\r\nX: ".to_vec();
    fits.resize(MAX_REQUEST_HEAD - 4, b'a');
    fits.extend_from_slice(b"\r\n\r\n");
    assert_eq!(parse_request_head(&fits), get("/"));
}

#[test]
fn replies_to_each_request() {
    let reply = |h: RequestHead| Reply::for_request(&h);
    assert_eq!(reply(get("/metrics")), Some(Reply::Metrics));
    assert_eq!(reply(get("/")), Some(Reply::Index));
    assert_eq!(reply(get("/nope")), Some(Reply::NotFound));
    assert_eq!(
        reply(RequestHead::OtherMethod),
        Some(Reply::MethodNotAllowed)
    );
    assert_eq!(reply(RequestHead::Malformed), Some(Reply::BadRequest));
    assert_eq!(reply(RequestHead::TooLarge), Some(Reply::HeadTooLarge));
    assert_eq!(reply(RequestHead::Incomplete), None);
}

#[test]
fn the_metrics_response() {
    let stats = vec![("smtp.session".to_owned(), 2)];
    let bytes = Reply::Metrics.to_bytes(&stats, UnixTime::from_secs(784_111_777));
    let body = render(&stats);
    let expected = format!(
        "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
         Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(String::from_utf8(bytes).unwrap(), expected);
}

#[test]
fn the_error_responses() {
    let now = UnixTime::from_secs(0);
    let text = |r: Reply| String::from_utf8(r.to_bytes(&[], now)).unwrap();
    let not_allowed = text(Reply::MethodNotAllowed);
    assert!(not_allowed.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
    assert!(not_allowed.contains("\r\nAllow: GET\r\n"));
    assert!(text(Reply::NotFound).starts_with("HTTP/1.1 404 Not Found\r\n"));
    assert!(text(Reply::BadRequest).starts_with("HTTP/1.1 400 "));
    assert!(text(Reply::HeadTooLarge).starts_with("HTTP/1.1 431 "));
    assert!(text(Reply::RequestTimeout).starts_with("HTTP/1.1 408 "));
    assert!(text(Reply::Unavailable).starts_with("HTTP/1.1 503 "));
    assert!(text(Reply::Index).ends_with("\r\n\r\nsmtpd statistics for Prometheus: see /metrics\n"));
    for r in [
        Reply::Metrics,
        Reply::Index,
        Reply::NotFound,
        Reply::MethodNotAllowed,
        Reply::BadRequest,
        Reply::HeadTooLarge,
        Reply::RequestTimeout,
        Reply::Unavailable,
    ] {
        well_framed(r, &[("uptime".to_owned(), 1)]);
    }
}

#[test]
fn any_split_of_a_request_gives_the_same_result() {
    fn prop(request: Vec<u8>, sizes: Vec<u8>, valid: bool) -> TestResult {
        let request = if valid {
            let mut r = b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n".to_vec();
            r.extend_from_slice(&request);
            r.extend_from_slice(b"\r\n\r\n");
            r
        } else {
            request
        };
        let sizes: Vec<usize> = sizes.iter().map(|&s| usize::from(s % 32) + 1).collect();
        same_result_however_split(&request, &sizes);
        TestResult::passed()
    }
    QuickCheck::new()
        .tests(500)
        .quickcheck(prop as fn(Vec<u8>, Vec<u8>, bool) -> TestResult);
}

#[test]
fn arbitrary_bytes_never_panic() {
    fn prop(data: Vec<u8>) -> bool {
        http(&data);
        true
    }
    QuickCheck::new()
        .tests(500)
        .quickcheck(prop as fn(Vec<u8>) -> bool);
    http(b"\x07GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    http(b"");
}

#[test]
fn rendered_names_are_valid_metric_names() {
    fn prop(keys: Vec<String>) -> bool {
        let stats: Vec<(String, i64)> = keys.into_iter().map(|k| (k, 1)).collect();
        for (key, _) in &stats {
            assert!(is_metric_name(&metric_name(key)), "{key:?}");
        }
        valid_exposition(&render(&stats));
        true
    }
    QuickCheck::new()
        .tests(500)
        .quickcheck(prop as fn(Vec<String>) -> bool);
}
