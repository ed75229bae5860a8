//! Reply rendering and parsing tables.

use bytes::{Bytes, BytesMut};

use super::{EhloCapabilities, EnhancedStatus, Reply, ReplyError, ReplyLimits, ReplyParser};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn parse_all(input: &[u8]) -> Result<Vec<Reply>, ReplyError> {
    let mut parser = ReplyParser::default();
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    while let Some(reply) = parser.parse(&mut buf)? {
        out.push(reply);
    }
    Ok(out)
}

#[test]
fn renders_single_and_multiline() {
    let ok = Reply::new(250, Some(EnhancedStatus::new(2, 0, 0)), "Ok");
    assert_eq!(ok.to_bytes(), b("250 2.0.0 Ok\r\n"));
    let plain = Reply::new(354, None, "End data with <CR><LF>.<CR><LF>");
    assert_eq!(
        plain.to_bytes(),
        b("354 End data with <CR><LF>.<CR><LF>\r\n")
    );
    let multi = Reply::multiline(250, None, vec![b("first"), b("second"), b("last")]);
    assert_eq!(
        multi.to_bytes(),
        b("250-first\r\n250-second\r\n250 last\r\n")
    );
    let status = Reply::multiline(550, Some(EnhancedStatus::new(5, 7, 1)), vec![b("a"), b("")]);
    assert_eq!(status.to_bytes(), b("550-5.7.1 a\r\n550 5.7.1\r\n"));
    let injected = Reply::new(250, None, "a\r\n250 b");
    assert_eq!(injected.to_bytes(), b("250 a  250 b\r\n"));
    let empty = Reply {
        code: 221,
        status: None,
        lines: vec![],
    };
    assert_eq!(empty.to_bytes(), b("221 \r\n"));
}

#[test]
fn status_displays_and_round_trips_leading_zeros() {
    assert_eq!(EnhancedStatus::new(4, 7, 1).to_string(), "4.7.1");
    let r = Reply::multiline(
        550,
        Some(EnhancedStatus::new(5, 1, 1)),
        vec![b("no"), b("user")],
    );
    assert_eq!(r.to_string(), "550 5.1.1 no user");
    let parsed = parse_all(b"250-2.01.000 a\r\n250 2.1.0 b\r\n").unwrap();
    let want = Reply::multiline(
        250,
        Some(EnhancedStatus::new(2, 1, 0)),
        vec![b("a"), b("b")],
    );
    assert_eq!(parsed, vec![want.clone()]);
    assert_eq!(want.to_bytes(), b("250-2.1.0 a\r\n250 2.1.0 b\r\n"));
}

#[test]
fn parses_replies() {
    let replies = parse_all(
        b"220 mx.example ESMTP\r\n250-mx.example\r\n250-PIPELINING\r\n250 SIZE 1000\r\n\
          250 2.1.0 Ok\r\n550-5.1.1 no such\r\n550 5.1.1 user\r\n354\r\n421-4.3.0 a\r\n421 b\r\n",
    )
    .unwrap();
    let want = [
        Reply::new(220, None, "mx.example ESMTP"),
        Reply::multiline(
            250,
            None,
            vec![b("mx.example"), b("PIPELINING"), b("SIZE 1000")],
        ),
        Reply::new(250, Some(EnhancedStatus::new(2, 1, 0)), "Ok"),
        Reply::multiline(
            550,
            Some(EnhancedStatus::new(5, 1, 1)),
            vec![b("no such"), b("user")],
        ),
        Reply::new(354, None, ""),
        Reply::multiline(
            421,
            Some(EnhancedStatus::new(4, 3, 0)),
            vec![b("a"), b("b")],
        ),
    ];
    assert_eq!(replies, want);
}

#[test]
fn status_needs_the_class_of_the_code() {
    let replies = parse_all(b"250 5.0.0 odd\r\n550 5.1.10x\r\n550 5.1234.1 x\r\n").unwrap();
    assert_eq!(replies[0].status, None);
    assert_eq!(replies[0].lines, vec![b("5.0.0 odd")]);
    assert_eq!(replies[1].status, None);
    assert_eq!(replies[2].status, None);
}

#[test]
fn reply_errors() {
    let table: &[(&[u8], ReplyError)] = &[
        (b"25 x\r\n", ReplyError::BadCode),
        (b"abc x\r\n", ReplyError::BadCode),
        (b"650 x\r\n", ReplyError::BadCode),
        (b"150 x\r\n", ReplyError::BadCode),
        (b"250x\r\n", ReplyError::BadSeparator),
        (b"250-a\r\n251 b\r\n", ReplyError::CodeMismatch),
        (b"250 a\n", ReplyError::BareCrLf),
        (b"250 a\rb\r\n", ReplyError::BareCrLf),
    ];
    for (input, want) in table {
        assert_eq!(
            parse_all(input),
            Err(*want),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn limits_hold() {
    let limits = ReplyLimits {
        max_lines: 3,
        max_line_len: 16,
    };
    let mut parser = ReplyParser::new(limits);
    let mut buf = BytesMut::from(&b"250-a\r\n250-b\r\n250-c\r\n250 d\r\n"[..]);
    assert_eq!(parser.parse(&mut buf), Err(ReplyError::TooManyLines));
    assert_eq!(
        parser.parse(&mut buf),
        Err(ReplyError::TooManyLines),
        "sticky"
    );

    let mut parser = ReplyParser::new(limits);
    let mut buf = BytesMut::from(&b"250 0123456789ab\r\n"[..]);
    assert_eq!(parser.parse(&mut buf), Err(ReplyError::LineTooLong));

    let mut parser = ReplyParser::new(limits);
    let mut buf = BytesMut::from(&b"250 0123456789\r\n"[..]);
    assert!(
        parser.parse(&mut buf).unwrap().is_some(),
        "16 bytes with CRLF fit"
    );

    let mut parser = ReplyParser::new(limits);
    let mut buf = BytesMut::from(&b"250 0123456789a"[..]);
    assert_eq!(parser.parse(&mut buf), Ok(None));
    buf.extend_from_slice(b"b");
    assert_eq!(parser.parse(&mut buf), Err(ReplyError::LineTooLong));
}

#[test]
fn incomplete_reply_waits_and_keeps_the_buffer() {
    let mut parser = ReplyParser::default();
    let mut buf = BytesMut::from(&b"250-a\r\n250"[..]);
    assert_eq!(parser.parse(&mut buf), Ok(None));
    assert_eq!(&buf[..], b"250-a\r\n250");
    buf.extend_from_slice(b" b\r\n221 bye\r\n");
    let first = parser.parse(&mut buf).unwrap().unwrap();
    assert_eq!(first.lines, vec![b("a"), b("b")]);
    assert_eq!(&buf[..], b"221 bye\r\n");
    assert_eq!(
        parser.parse(&mut buf).unwrap(),
        Some(Reply::new(221, None, "bye"))
    );
    assert!(buf.is_empty());
}

#[test]
fn ehlo_capabilities() {
    let reply = Reply::multiline(
        250,
        None,
        [
            "mx.example Hello",
            "PIPELINING",
            "8bitmime",
            "SIZE 35882577",
            "ENHANCEDSTATUSCODES",
            "SMTPUTF8",
            "CHUNKING",
            "BINARYMIME",
            "DSN",
            "STARTTLS",
            "AUTH PLAIN LOGIN",
            "AUTH=LOGIN XOAUTH2",
            "X-UNKNOWN 1",
        ]
        .map(b)
        .to_vec(),
    );
    let caps = EhloCapabilities::from_reply(&reply);
    assert_eq!(
        caps,
        EhloCapabilities {
            pipelining: true,
            eightbitmime: true,
            size: Some(35882577),
            enhancedstatuscodes: true,
            smtputf8: true,
            chunking: true,
            binarymime: true,
            dsn: true,
            starttls: true,
            auth: vec![b("PLAIN"), b("LOGIN"), b("XOAUTH2")],
        }
    );
    assert!(caps.supports_auth(b"plain"));
    assert!(!caps.supports_auth(b"CRAM-MD5"));
    assert_eq!(
        EhloCapabilities::from_reply(&caps.reply(b("mx.example"))),
        caps
    );

    let bare_size = Reply::multiline(250, None, vec![b("mx"), b("SIZE")]);
    assert_eq!(EhloCapabilities::from_reply(&bare_size).size, Some(0));
    let refused = Reply::multiline(502, None, vec![b("mx"), b("PIPELINING")]);
    assert_eq!(
        EhloCapabilities::from_reply(&refused),
        EhloCapabilities::default()
    );
    let helo_only = Reply::new(250, None, "mx.example");
    assert_eq!(
        EhloCapabilities::from_reply(&helo_only),
        EhloCapabilities::default()
    );
}
