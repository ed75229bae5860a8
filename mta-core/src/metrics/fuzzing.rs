//! Harness of the Prometheus endpoint, shared by the quickcheck properties and the
//! cargo-fuzz target `metrics_http`: any bytes, split anywhere, give the request result
//! of one read; every answer is a well-framed response; rendered names are valid.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeSet;

use super::{parse_request_head, render, Reply, RequestHead, RequestReader, MAX_REQUEST_HEAD};
use crate::time::UnixTime;

/// The fuzz entry: the first byte chooses the chunk sizes, the rest is the request; the
/// request's lines also serve as statistics keys to render.
pub fn http(data: &[u8]) {
    let (seed, request) = match data.split_first() {
        Some((s, r)) => (*s, r),
        None => (0, data),
    };
    let cuts = chunk_sizes(seed, request.len());
    let head = same_result_however_split(request, &cuts);
    if let Some(reply) = Reply::for_request(&head) {
        well_framed(reply, &stats_from(request));
    }
    valid_exposition(&render(&stats_from(request)));
}

/// Chunk sizes from 1 to 16 derived from `seed`, covering `len` bytes.
fn chunk_sizes(seed: u8, len: usize) -> Vec<usize> {
    let mut sizes = Vec::new();
    let mut total = 0usize;
    let mut state = u32::from(seed).wrapping_mul(2_654_435_761).wrapping_add(1);
    while total < len {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let size = (state % 16) as usize + 1;
        sizes.push(size);
        total += size;
    }
    sizes
}

/// Feeds `request` to a [`RequestReader`] in chunks of `sizes` (the rest in one chunk),
/// stopping at the first result that is not incomplete, and checks that it is the result
/// of parsing everything at once. Returns that result.
pub fn same_result_however_split(request: &[u8], sizes: &[usize]) -> RequestHead {
    let whole = parse_request_head(request);
    let mut reader = RequestReader::new();
    let mut rest = request;
    let mut result = reader.push(&[]);
    for &size in sizes {
        if result != RequestHead::Incomplete || rest.is_empty() {
            break;
        }
        let (chunk, after) = rest.split_at(size.min(rest.len()));
        rest = after;
        result = reader.push(chunk);
        assert!(reader.received() <= MAX_REQUEST_HEAD);
    }
    if result == RequestHead::Incomplete && !rest.is_empty() {
        result = reader.push(rest);
    }
    assert_eq!(result, whole, "split as {sizes:?}");
    whole
}

/// Checks that the response to `reply` is one HTTP/1.1 status line, fields, an empty
/// line and a body of exactly `Content-Length` bytes, with `Connection: close`.
pub fn well_framed(reply: Reply, stats: &[(String, i64)]) {
    let bytes = reply.to_bytes(stats, UnixTime::from_secs(1_795_896_568));
    let text = String::from_utf8(bytes).expect("responses are UTF-8");
    let (head, body) = text
        .split_once("\r\n\r\n")
        .expect("an empty line ends the head");
    let code = reply.status().0;
    assert!(head.starts_with(&format!("HTTP/1.1 {code} ")), "{head}");
    assert!(head.contains("\r\nConnection: close"), "{head}");
    assert!(head.contains("\r\nDate: "), "{head}");
    assert!(
        head.contains(&format!("\r\nContent-Length: {}\r\n", body.len()))
            || head.ends_with(&format!("\r\nContent-Length: {}", body.len())),
        "{head}"
    );
    assert_eq!(
        head.contains("\r\nAllow: GET"),
        reply == Reply::MethodNotAllowed
    );
}

/// Statistics named after the lines of `data` (lossy UTF-8), valued by their length.
pub fn stats_from(data: &[u8]) -> Vec<(String, i64)> {
    String::from_utf8_lossy(data)
        .split('\n')
        .take(64)
        .map(|l| (l.to_owned(), l.len() as i64))
        .collect()
}

/// Whether `name` is a Prometheus metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Checks a rendered exposition: every metric has one `# HELP`, one `# TYPE` (gauge or
/// counter) and one integer sample, in that order, under a valid, unique name.
pub fn valid_exposition(text: &str) {
    let mut names = BTreeSet::new();
    let lines: Vec<&str> = text.lines().collect();
    assert!(text.is_empty() || text.ends_with('\n'));
    assert_eq!(lines.len() % 3, 0, "{text}");
    for group in lines.chunks(3) {
        let help = group[0].strip_prefix("# HELP ").expect("HELP first");
        let name = help.split(' ').next().unwrap();
        assert!(is_metric_name(name), "{name:?}");
        assert!(names.insert(name.to_owned()), "{name} twice");
        assert!(
            group[1] == format!("# TYPE {name} gauge")
                || group[1] == format!("# TYPE {name} counter"),
            "{}",
            group[1]
        );
        let (sample, value) = group[2].split_once(' ').expect("a sample");
        assert_eq!(sample, name);
        value.parse::<i64>().expect("an integer value");
    }
}
