use super::*;
use quickcheck::{QuickCheck, TestResult};

const POLICY: BodyPolicy = BodyPolicy {
    max_line: 1000,
    max_size: 1 << 20,
    normalize_bare_lf: false,
};

/// Feeds `parts` one after the other; returns the body, the fault, and what is left in
/// the buffer after the end (None when the end was not found).
fn read_parts(
    policy: BodyPolicy,
    parts: &[&[u8]],
) -> (Vec<u8>, Option<BodyFault>, Option<Vec<u8>>) {
    let mut reader = DotReader::new(policy);
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    for part in parts {
        buf.extend_from_slice(part);
        if reader.read(&mut buf, &mut |c: Bytes| body.extend_from_slice(&c))
            == BodyProgress::Complete
        {
            return (body, reader.fault(), Some(buf.to_vec()));
        }
    }
    (body, reader.fault(), None)
}

fn read_all(input: &[u8]) -> (Vec<u8>, Option<BodyFault>, Option<Vec<u8>>) {
    read_parts(POLICY, &[input])
}

#[test]
fn plain_body_ends_at_crlf_dot_crlf() {
    let (body, fault, rest) = read_all(b"Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n");
    assert_eq!(body, b"Subject: x\r\n\r\nhello\r\n");
    assert_eq!(fault, None);
    assert_eq!(rest.as_deref(), Some(&b"QUIT\r\n"[..]));
}

#[test]
fn empty_body_is_just_the_dot() {
    assert_eq!(read_all(b".\r\n"), (vec![], None, Some(vec![])));
}

#[test]
fn stuffed_dots_are_removed_only_at_line_start() {
    let (body, fault, rest) = read_all(b"..x\r\na.b\r\n...\r\n.y\r\n.\r\n");
    assert_eq!(body, b".x\r\na.b\r\n..\r\ny\r\n");
    assert_eq!(fault, None);
    assert_eq!(rest.as_deref(), Some(&b""[..]));
}

#[test]
fn bare_lf_never_ends_the_message_and_dooms_it() {
    // The smuggling pattern: `\n.\n` and `\n.\r\n` must not end the message.
    let (_, fault, rest) = read_all(b"a\n.\nMAIL FROM:<x@y>\r\n");
    assert_eq!(fault, Some(BodyFault::BareLf));
    assert_eq!(rest, None);
    let (_, fault, rest) = read_all(b"a\n.\r\nMAIL FROM:<x@y>\r\n.\r\nNOOP\r\n");
    assert_eq!(fault, Some(BodyFault::BareLf));
    assert_eq!(rest.as_deref(), Some(&b"NOOP\r\n"[..]));
}

#[test]
fn bare_cr_never_ends_the_message_and_dooms_it() {
    let (_, fault, rest) = read_all(b"a\r.\r\nRSET\r\n");
    assert_eq!(fault, Some(BodyFault::BareCr));
    assert_eq!(rest, None);
    let (_, fault, rest) = read_all(b"a\r\n.\rX\r\n.\r\n");
    assert_eq!(fault, Some(BodyFault::BareCr));
    assert_eq!(rest.as_deref(), Some(&b""[..]));
    let (_, fault, _) = read_parts(POLICY, &[b"a\r", b"b\r\n.\r\n"]);
    assert_eq!(fault, Some(BodyFault::BareCr));
}

#[test]
fn normalize_rewrites_bare_lf_but_keeps_the_strict_end() {
    let policy = BodyPolicy {
        normalize_bare_lf: true,
        ..POLICY
    };
    let (body, fault, rest) = read_parts(policy, &[b"a\nb\n.\nc\r\n.\r\n"]);
    assert_eq!(fault, None);
    assert_eq!(body, b"a\r\nb\r\n.\r\nc\r\n");
    assert_eq!(rest.as_deref(), Some(&b""[..]));
}

#[test]
fn long_lines_and_big_bodies_are_faults() {
    let policy = BodyPolicy {
        max_line: 10,
        max_size: 20,
        normalize_bare_lf: false,
    };
    let roomy = BodyPolicy {
        max_size: 100,
        ..policy
    };
    let (_, fault, rest) = read_parts(roomy, &[b"12345678\r\n", b"123456789\r\n.\r\n"]);
    assert_eq!(fault, Some(BodyFault::LineTooLong));
    assert_eq!(rest.as_deref(), Some(&b""[..]));
    let (body, fault, _) = read_parts(
        policy,
        &[b"12345678\r\n", b"12345678\r\n", b"12345678\r\n.\r\n"],
    );
    assert_eq!(fault, Some(BodyFault::TooBig));
    assert!(body.len() <= 20);
    // A stuffed dot counts on the wire: `.` + 8 + CRLF is 11 octets.
    let (_, fault, _) = read_parts(policy, &[b"..2345678\r\n.\r\n"]);
    assert_eq!(fault, Some(BodyFault::LineTooLong));
}

#[test]
fn body_leaves_in_few_chunks() {
    let mut reader = DotReader::new(POLICY);
    let mut buf = BytesMut::from(&b"line one\r\nline two\r\n..dot\r\nend\r\n.\r\n"[..]);
    let mut chunks = Vec::new();
    assert_eq!(
        reader.read(&mut buf, &mut |c| chunks.push(c)),
        BodyProgress::Complete
    );
    assert_eq!(chunks.len(), 2, "{chunks:?}");
}

#[test]
fn stuffing_doubles_leading_dots_and_terminates() {
    assert_eq!(&stuff(b"")[..], b".\r\n");
    assert_eq!(&stuff(b".a\r\nb\r\n.\r\n")[..], b"..a\r\nb\r\n..\r\n.\r\n");
    assert_eq!(&stuff(b"no newline")[..], b"no newline\r\n.\r\n");
    assert_eq!(&stuff(b"x\r")[..], b"x\r\n.\r\n");
}

#[test]
fn bdat_chunk_counts_down_exactly() {
    let mut chunk = BdatChunk::new(5);
    let mut buf = BytesMut::from(&b"abc"[..]);
    assert_eq!(chunk.take(&mut buf).as_deref(), Some(&b"abc"[..]));
    buf.extend_from_slice(b"deNOOP\r\n");
    assert_eq!(chunk.take(&mut buf).as_deref(), Some(&b"de"[..]));
    assert!(chunk.is_complete());
    assert_eq!(chunk.take(&mut buf), None);
    assert_eq!(&buf[..], b"NOOP\r\n");
}

/// A body made of CRLF-terminated lines without bare CR or LF (dots allowed anywhere).
fn clean_body(lines: Vec<Vec<u8>>) -> Vec<u8> {
    let mut body = Vec::new();
    for mut line in lines {
        line.retain(|b| *b != b'\r' && *b != b'\n');
        body.extend_from_slice(&line);
        body.extend_from_slice(b"\r\n");
    }
    body
}

fn split_points(len: usize, cuts: &[u16]) -> Vec<usize> {
    let mut points: Vec<usize> = cuts.iter().map(|c| *c as usize % (len + 1)).collect();
    points.sort_unstable();
    points
}

fn pieces<'a>(wire: &'a [u8], cuts: &[u16]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut from = 0;
    for at in split_points(wire.len(), cuts) {
        out.push(&wire[from..at]);
        from = at;
    }
    out.push(&wire[from..]);
    out
}

#[test]
fn unstuff_of_stuff_is_identity_under_any_split() {
    fn prop(lines: Vec<Vec<u8>>, cuts: Vec<u16>) -> TestResult {
        let body = clean_body(lines);
        let wire = stuff(&body);
        let policy = BodyPolicy {
            max_line: usize::MAX,
            max_size: u64::MAX,
            normalize_bare_lf: false,
        };
        let (got, fault, rest) = read_parts(policy, &pieces(&wire, &cuts));
        TestResult::from_bool(got == body && fault.is_none() && rest == Some(vec![]))
    }
    QuickCheck::new()
        .tests(500)
        .quickcheck(prop as fn(Vec<Vec<u8>>, Vec<u16>) -> TestResult);
}

#[test]
fn any_bytes_under_any_split_give_the_same_result() {
    fn prop(wire: Vec<u8>, cuts: Vec<u16>, normalize: bool) -> bool {
        let policy = BodyPolicy {
            max_line: 20,
            max_size: 64,
            normalize_bare_lf: normalize,
        };
        let whole = read_parts(policy, &[&wire]);
        let split = read_parts(policy, &pieces(&wire, &cuts));
        // A doomed body may have been partly delivered before the fault was seen.
        (whole.1, &whole.2) == (split.1, &split.2) && (whole.1.is_some() || whole.0 == split.0)
    }
    QuickCheck::new()
        .tests(1000)
        .quickcheck(prop as fn(Vec<u8>, Vec<u16>, bool) -> bool);
}

#[test]
fn end_is_found_exactly_at_the_first_strict_terminator() {
    fn prop(wire: Vec<u8>) -> bool {
        let policy = BodyPolicy {
            max_line: usize::MAX,
            max_size: u64::MAX,
            normalize_bare_lf: false,
        };
        let mut framed = b"\r\n".to_vec();
        framed.extend_from_slice(&wire);
        let naive = framed
            .windows(5)
            .position(|w| w == b"\r\n.\r\n")
            .map(|at| at + 5 - 2);
        let (_, _, rest) = read_parts(policy, &[&wire]);
        naive.map(|end| wire[end..].to_vec()) == rest
    }
    QuickCheck::new()
        .tests(2000)
        .quickcheck(prop as fn(Vec<u8>) -> bool);
}
