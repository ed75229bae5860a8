//! The endpoint's answers: what each request gets (RFC 9110 §15 status codes), and the
//! bytes of the response. Every response has a `Content-Length` and `Connection: close`
//! (one request per connection, RFC 9112 §9.6).

use std::fmt::Write;

use super::http::RequestHead;
use super::render::render;
use crate::time::UnixTime;

/// The media type of the text exposition format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The path the statistics are served at.
pub const METRICS_PATH: &str = "/metrics";

/// What the endpoint answers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Reply {
    /// `GET /metrics`: 200 with the statistics.
    Metrics,
    /// `GET /`: 200 with a line pointing to `/metrics`.
    Index,
    /// `GET` of another path: 404.
    NotFound,
    /// Another method: 405 with `Allow: GET` (RFC 9110 §15.5.6).
    MethodNotAllowed,
    /// A malformed request: 400.
    BadRequest,
    /// A head longer than [`MAX_REQUEST_HEAD`](super::MAX_REQUEST_HEAD): 431 (RFC 6585 §5).
    HeadTooLarge,
    /// The head did not come in time: 408 (RFC 9110 §15.5.9).
    RequestTimeout,
    /// The daemon did not give its statistics: 503.
    Unavailable,
}

impl Reply {
    /// The answer to a request head; `None` while it is incomplete.
    pub fn for_request(head: &RequestHead) -> Option<Reply> {
        Some(match head {
            RequestHead::Get { path } if path == METRICS_PATH => Reply::Metrics,
            RequestHead::Get { path } if path == "/" => Reply::Index,
            RequestHead::Get { .. } => Reply::NotFound,
            RequestHead::OtherMethod => Reply::MethodNotAllowed,
            RequestHead::Malformed => Reply::BadRequest,
            RequestHead::TooLarge => Reply::HeadTooLarge,
            RequestHead::Incomplete => return None,
        })
    }

    /// The status code and reason phrase.
    pub fn status(self) -> (u16, &'static str) {
        match self {
            Reply::Metrics | Reply::Index => (200, "OK"),
            Reply::NotFound => (404, "Not Found"),
            Reply::MethodNotAllowed => (405, "Method Not Allowed"),
            Reply::BadRequest => (400, "Bad Request"),
            Reply::HeadTooLarge => (431, "Request Header Fields Too Large"),
            Reply::RequestTimeout => (408, "Request Timeout"),
            Reply::Unavailable => (503, "Service Unavailable"),
        }
    }

    /// The whole response. `stats` are used by [`Reply::Metrics`] only (as
    /// [`Response::Stats`](crate::control::Response::Stats) carries them); `now` is the
    /// wall time for the `Date` field (RFC 9110 §6.6.1).
    pub fn to_bytes(self, stats: &[(String, i64)], now: UnixTime) -> Vec<u8> {
        let (code, reason) = self.status();
        let (content_type, body) = match self {
            Reply::Metrics => (CONTENT_TYPE, render(stats)),
            Reply::Index => (
                "text/plain; charset=utf-8",
                format!("smtpd statistics for Prometheus: see {METRICS_PATH}\n"),
            ),
            _ => ("text/plain; charset=utf-8", format!("{code} {reason}\n")),
        };
        let mut head = String::with_capacity(256);
        // Writing to a String cannot fail.
        let _ = write!(
            head,
            "HTTP/1.1 {code} {reason}\r\nDate: {}\r\nContent-Type: {content_type}\r\n\
             Content-Length: {}\r\nConnection: close\r\n",
            http_date(now),
            body.len()
        );
        if self == Reply::MethodNotAllowed {
            head.push_str("Allow: GET\r\n");
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(body.as_bytes());
        out
    }
}

/// `now` as an IMF-fixdate (RFC 9110 §5.6.7), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`: the
/// RFC 5322 form in UTC with `GMT` for `+0000`.
fn http_date(now: UnixTime) -> String {
    let date = now.rfc5322().to_string();
    match date.strip_suffix(" +0000") {
        Some(stem) => format!("{stem} GMT"),
        None => date,
    }
}
