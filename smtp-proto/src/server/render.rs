//! Reply rendering for the server session, and the session's own canned replies.
//!
//! Replies are written straight into the pipeline's output buffer (no `format!` per
//! reply). Text from the engine is sanitized (CR and LF become spaces) so a reply can
//! never inject lines, codes outside 200..=599 are clamped, and the enhanced status is
//! left out when ENHANCEDSTATUSCODES is off and on 3yz replies (RFC 2034 §3).

use bytes::BytesMut;

use crate::reply::{EnhancedStatus, Reply};

/// A reply the session composes itself.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) struct Canned {
    pub(super) code: u16,
    pub(super) status: Option<EnhancedStatus>,
    pub(super) text: &'static str,
}

const fn canned(code: u16, class: u8, subject: u16, detail: u16, text: &'static str) -> Canned {
    Canned {
        code,
        status: Some(EnhancedStatus::new(class, subject, detail)),
        text,
    }
}

pub(super) const OK: Canned = canned(250, 2, 0, 0, "Ok");
pub(super) const HELP: Canned = canned(
    214,
    2,
    0,
    0,
    "See RFC 5321; commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH",
);
pub(super) const VRFY_CANNOT: Canned = canned(
    252,
    2,
    5,
    0,
    "Cannot VRFY user, but will accept message and attempt delivery",
);
pub(super) const EXPN_UNSUPPORTED: Canned = canned(502, 5, 5, 1, "EXPN not supported");
pub(super) const START_DATA: Canned = Canned {
    code: 354,
    status: None,
    text: "End data with <CR><LF>.<CR><LF>",
};
pub(super) const READY_TLS: Canned = canned(220, 2, 0, 0, "Ready to start TLS");
pub(super) const LINE_TOO_LONG: Canned = canned(500, 5, 5, 2, "Line too long");
pub(super) const AUTH_LINE_TOO_LONG: Canned =
    canned(500, 5, 5, 6, "Authentication Exchange line is too long");
pub(super) const NEED_HELO: Canned = canned(503, 5, 5, 1, "Send HELO or EHLO first");
pub(super) const NEED_EHLO: Canned = canned(503, 5, 5, 1, "Send EHLO first");
pub(super) const NEED_MAIL: Canned = canned(503, 5, 5, 1, "Need MAIL command");
pub(super) const NESTED_MAIL: Canned = canned(503, 5, 5, 1, "Nested MAIL command");
pub(super) const NO_RECIPIENTS: Canned = canned(554, 5, 5, 1, "No valid recipients");
pub(super) const MIXED_BODY: Canned = canned(
    503,
    5,
    5,
    1,
    "DATA and BDAT cannot be mixed in one transaction",
);
pub(super) const BINARY_NEEDS_BDAT: Canned = canned(503, 5, 5, 1, "BODY=BINARYMIME requires BDAT");
pub(super) const NOT_IMPLEMENTED: Canned = canned(502, 5, 5, 1, "Command not implemented");
pub(super) const TLS_ACTIVE: Canned = canned(503, 5, 5, 1, "TLS already active");
pub(super) const NEED_STARTTLS: Canned =
    canned(530, 5, 7, 0, "Must issue a STARTTLS command first");
pub(super) const NEED_AUTH: Canned = canned(530, 5, 7, 0, "Authentication required");
pub(super) const AUTH_TWICE: Canned = canned(503, 5, 5, 1, "Already authenticated");
pub(super) const AUTH_IN_TXN: Canned =
    canned(503, 5, 5, 1, "AUTH not permitted during a mail transaction");
pub(super) const AUTH_NEEDS_TLS: Canned = canned(
    538,
    5,
    7,
    11,
    "Encryption required for requested authentication mechanism",
);
pub(super) const AUTH_UNKNOWN: Canned = canned(504, 5, 5, 4, "Unrecognized authentication type");
pub(super) const AUTH_CANCELED: Canned = canned(501, 5, 0, 0, "Authentication canceled");
pub(super) const AUTH_MALFORMED: Canned = canned(501, 5, 5, 2, "Malformed authentication data");
pub(super) const AUTH_BAD_BASE64: Canned = canned(501, 5, 5, 2, "Invalid base64 data");
pub(super) const PARAM_NOT_ADVERTISED: Canned =
    canned(555, 5, 5, 4, "Parameter not supported here");
pub(super) const TOO_BIG: Canned = canned(
    552,
    5,
    3,
    4,
    "Message size exceeds fixed maximum message size",
);
pub(super) const TOO_MANY_RECIPIENTS: Canned = canned(452, 4, 5, 3, "Too many recipients");
pub(super) const TOO_MANY_TRANSACTIONS: Canned =
    canned(452, 4, 3, 2, "Too many transactions in this session");
pub(super) const BARE_LINE_ENDING: Canned = canned(
    554,
    5,
    6,
    11,
    "Bare CR or LF in message; lines must end with CRLF",
);
pub(super) const BODY_LINE_TOO_LONG: Canned = canned(
    554,
    5,
    6,
    0,
    "Message has lines longer than 1000 octets (RFC 5321 4.5.3.1.6)",
);

/// One line of challenge for AUTH LOGIN's user name (`Username:` in base64).
pub(super) const LOGIN_USER: Canned = Canned {
    code: 334,
    status: None,
    text: "VXNlcm5hbWU6",
};
/// One line of challenge for AUTH LOGIN's password (`Password:` in base64).
pub(super) const LOGIN_PASSWORD: Canned = Canned {
    code: 334,
    status: None,
    text: "UGFzc3dvcmQ6",
};
/// The empty challenge of AUTH PLAIN without initial response (RFC 4954 §4).
pub(super) const EMPTY_CHALLENGE: Canned = Canned {
    code: 334,
    status: None,
    text: "",
};

/// Writes one reply: `code[-| ][x.y.z ]text CRLF` per line.
pub(super) fn write_lines<'a>(
    out: &mut BytesMut,
    code: u16,
    status: Option<EnhancedStatus>,
    lines: impl ExactSizeIterator<Item = &'a [u8]>,
    enhanced: bool,
) {
    let code = code.clamp(200, 599);
    let status = status.filter(|_| enhanced && !(300..400).contains(&code));
    let count = lines.len().max(1);
    let mut lines = lines.chain(std::iter::repeat(&b""[..]));
    for index in 0..count {
        let text = lines.next().unwrap_or_default();
        write_code(out, code);
        out.extend_from_slice(if index + 1 == count { b" " } else { b"-" });
        if let Some(s) = status {
            write_number(out, u64::from(s.class));
            out.extend_from_slice(b".");
            write_number(out, u64::from(s.subject));
            out.extend_from_slice(b".");
            write_number(out, u64::from(s.detail));
            out.extend_from_slice(b" ");
        }
        let mut rest = text;
        while let Some(at) = rest.iter().position(|b| *b == b'\r' || *b == b'\n') {
            out.extend_from_slice(rest.get(..at).unwrap_or_default());
            out.extend_from_slice(b" ");
            rest = rest.get(at + 1..).unwrap_or_default();
        }
        out.extend_from_slice(rest);
        out.extend_from_slice(b"\r\n");
    }
}

fn write_code(out: &mut BytesMut, code: u16) {
    let digits = [
        (code / 100 % 10) as u8,
        (code / 10 % 10) as u8,
        (code % 10) as u8,
    ];
    out.extend_from_slice(&digits.map(|d| b'0' + d));
}

/// Writes a decimal number without allocating.
pub(super) fn write_number(out: &mut BytesMut, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        if let Some(d) = digits.get_mut(at) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || at == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(at..).unwrap_or_default());
}

/// Writes a canned reply.
pub(super) fn write_canned(out: &mut BytesMut, reply: Canned, enhanced: bool) {
    write_lines(
        out,
        reply.code,
        reply.status,
        std::iter::once(reply.text.as_bytes()),
        enhanced,
    );
}

/// Writes a reply chosen by the engine.
pub(super) fn write_reply(out: &mut BytesMut, reply: &Reply, enhanced: bool) {
    write_lines(
        out,
        reply.code,
        reply.status,
        reply.lines.iter().map(|l| &l[..]),
        enhanced,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn render(reply: &Reply, enhanced: bool) -> String {
        let mut out = BytesMut::new();
        write_reply(&mut out, reply, enhanced);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn renders_single_multi_and_sanitized_lines() {
        let status = Some(EnhancedStatus::new(2, 1, 0));
        assert_eq!(
            render(&Reply::new(250, status, "Ok"), true),
            "250 2.1.0 Ok\r\n"
        );
        assert_eq!(render(&Reply::new(250, status, "Ok"), false), "250 Ok\r\n");
        let multi = Reply::multiline(250, None, vec![Bytes::from("a"), Bytes::from("b")]);
        assert_eq!(render(&multi, true), "250-a\r\n250 b\r\n");
        let evil = Reply::new(550, None, "no\r\n250 fake");
        assert_eq!(render(&evil, true), "550 no  250 fake\r\n");
        assert_eq!(render(&Reply::new(7, None, "x"), true), "200 x\r\n");
        assert_eq!(render(&Reply::new(354, status, "go"), true), "354 go\r\n");
        let mut out = BytesMut::new();
        write_number(&mut out, 0);
        write_number(&mut out, 18446744073709551615);
        assert_eq!(&out[..], b"018446744073709551615");
    }
}
