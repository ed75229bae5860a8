//! Tables for the address newtypes and their constructors.

use bytes::{Bytes, BytesMut};

use super::*;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

#[test]
fn domains() {
    for ok in [
        "a",
        "example.org",
        "a-b.c0",
        "0.example",
        "xn--bcher-kva.example",
        "192.0.2.1",
    ] {
        assert!(Domain::parse(b(ok), false).is_ok(), "{ok}");
    }
    let long_label = "a".repeat(64);
    let long_domain = ["abcdefghi"; 26].join(".");
    let table: &[(&str, CommandError)] = &[
        ("", CommandError::BadAddress("empty domain")),
        (".a", CommandError::BadAddress("empty domain label")),
        ("a.", CommandError::BadAddress("empty domain label")),
        ("_a.b", CommandError::BadAddress("invalid domain")),
        ("a_", CommandError::BadAddress("invalid domain")),
        ("a-", CommandError::BadAddress("invalid domain")),
        ("a b", CommandError::BadAddress("invalid domain")),
        ("bücher.example", CommandError::NeedsSmtpUtf8),
        (&long_label, CommandError::TooLong("domain label")),
        (&long_domain, CommandError::TooLong("domain")),
    ];
    for (input, want) in table {
        assert_eq!(
            Domain::parse(b(input), false).as_ref(),
            Err(want),
            "{input}"
        );
    }
    assert!(Domain::parse(b("bücher.example"), true).is_ok());
    let invalid_utf8 = Bytes::from_static(b"b\xfccher.example");
    assert_eq!(
        Domain::parse(invalid_utf8, true),
        Err(CommandError::BadAddress("invalid UTF-8"))
    );
}

#[test]
fn address_literals() {
    for ok in [
        "[192.0.2.1]",
        "[0.0.0.0]",
        "[255.255.255.255]",
        "[001.02.3.4]",
        "[IPv6:2001:db8::1]",
        "[ipv6:::]",
        "[IPv6:::ffff:192.0.2.1]",
        "[IPv6:1:2:3:4:5:6:7:8]",
        "[x-tag:anything!]",
    ] {
        assert!(AddressLiteral::parse(b(ok)).is_ok(), "{ok}");
    }
    for bad in [
        "192.0.2.1",
        "[192.0.2]",
        "[192.0.2.1.5]",
        "[192.0.2.256]",
        "[1234.0.2.1]",
        "[192.0.2.a]",
        "[IPv6:2001:db8::g]",
        "[IPv6:1:2:3:4:5:6:7:8:9]",
        "[IPv6:fe80::1%eth0]",
        "[tag:]",
        "[:content]",
        "[tag-:x]",
        "[tag:a\\b]",
        "[]",
        "[",
    ] {
        assert!(AddressLiteral::parse(b(bad)).is_err(), "{bad}");
    }
}

#[test]
fn mailboxes() {
    let m = Mailbox::parse(b("\"john \\\"jr\\\" doe\"@example.org"), false).unwrap();
    assert_eq!(m.local_part(), b"\"john \\\"jr\\\" doe\"");
    assert_eq!(m.local_part_unquoted(), b("john \"jr\" doe"));
    assert_eq!(m.host(), &Host::Domain(Domain(b("example.org"))));
    let plain = Mailbox::parse(b("a.b@[192.0.2.1]"), false).unwrap();
    assert_eq!(plain.local_part_unquoted(), b("a.b"));
    assert_eq!(plain.to_string(), "a.b@[192.0.2.1]");
    let mut out = BytesMut::new();
    plain.render(&mut out);
    assert_eq!(&out[..], b"a.b@[192.0.2.1]");
    assert_eq!(
        Mailbox::parse(b("\"\"@x"), false).unwrap().local_part(),
        b"\"\""
    );
    assert_eq!(
        Mailbox::parse(b("user"), false),
        Err(CommandError::BadAddress("missing domain"))
    );
    assert_eq!(
        Mailbox::parse(b("a@b@c"), false),
        Err(CommandError::BadAddress("invalid domain"))
    );
    assert_eq!(
        Mailbox::parse(b("jöran@x"), false),
        Err(CommandError::NeedsSmtpUtf8)
    );
    assert!(Mailbox::parse(b("jöran@x"), true).is_ok());
}

#[test]
fn detached_values_do_not_share_the_line() {
    let line = b("<bob@example.org>");
    let ReversePath::Mailbox(m) = ReversePath::parse(line.clone(), false).unwrap() else {
        panic!("not a mailbox");
    };
    let copy = m.detached();
    assert_eq!(copy, m);
    assert!(!line.as_ptr_range().contains(&copy.local_part().as_ptr()));
    assert!(!line
        .as_ptr_range()
        .contains(&copy.host().as_bytes().as_ptr()));
}

#[test]
fn paths() {
    assert_eq!(ReversePath::parse(b("<>"), false), Ok(ReversePath::Null));
    assert_eq!(
        ForwardPath::parse(b("<POSTMASTER>"), false),
        Ok(ForwardPath::Postmaster)
    );
    assert_eq!(
        ReversePath::parse(b("<postmaster>"), false),
        Err(CommandError::BadAddress("missing domain"))
    );
    assert_eq!(
        ForwardPath::parse(b("<>"), false),
        Err(CommandError::BadAddress("null path is not a recipient"))
    );
    assert_eq!(
        ForwardPath::parse(b("<a@b> x"), false),
        Err(CommandError::Syntax("unexpected text after path"))
    );
    let routed = ForwardPath::parse(b("<@x.example,@y.example:a@b>"), false).unwrap();
    assert_eq!(
        routed.mailbox().map(ToString::to_string),
        Some("a@b".to_string())
    );
    for path in ["<>", "<a@b>", "<\"x y\"@[IPv6:::1]>"] {
        let mut out = BytesMut::new();
        ReversePath::parse(b(path), false).unwrap().render(&mut out);
        assert_eq!(&out[..], path.as_bytes());
    }
    let domain = |last: usize| format!("{0}.{0}.{1}", "b".repeat(63), "b".repeat(last));
    let longest = format!("<{}@{}>", "a".repeat(64), domain(61));
    assert_eq!(longest.len(), MAX_PATH_LEN);
    assert!(ForwardPath::parse(b(&longest), false).is_ok());
    let too_long = format!("<{}@{}>", "a".repeat(64), domain(62));
    assert_eq!(
        ForwardPath::parse(b(&too_long), false),
        Err(CommandError::TooLong("path"))
    );
}
