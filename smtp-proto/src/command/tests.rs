//! Tables of command lines and what they parse to.

use bytes::{Bytes, BytesMut};

use super::{parse, Command, CommandError, ParseOptions};
use crate::params::{BodyType, MailParams, Notify, OriginalRecipient, RcptParams, Ret};
use crate::types::{ForwardPath, Host, Mailbox, ReversePath};

const ASCII: ParseOptions = ParseOptions { smtputf8: false };
const UTF8: ParseOptions = ParseOptions { smtputf8: true };

fn p(line: &str) -> Result<Command, CommandError> {
    parse(Bytes::copy_from_slice(line.as_bytes()), &ASCII)
}

fn mailbox(s: &str) -> Mailbox {
    Mailbox::parse(Bytes::copy_from_slice(s.as_bytes()), true).unwrap()
}

fn host(s: &str) -> Host {
    Host::parse(Bytes::copy_from_slice(s.as_bytes()), false).unwrap()
}

fn from(s: &str) -> Command {
    Command::Mail(ReversePath::Mailbox(mailbox(s)), MailParams::default())
}

fn to(s: &str) -> Command {
    Command::Rcpt(ForwardPath::Mailbox(mailbox(s)), RcptParams::default())
}

#[test]
fn simple_commands() {
    let table: &[(&str, Command)] = &[
        ("DATA", Command::Data),
        ("data", Command::Data),
        ("DATA  ", Command::Data),
        ("RSET", Command::Rset),
        ("QUIT", Command::Quit),
        ("StartTLS", Command::StartTls),
        ("NOOP", Command::Noop),
        ("NOOP anything at all", Command::Noop),
        (
            "VRFY postmaster",
            Command::Vrfy(Bytes::from_static(b"postmaster")),
        ),
        (
            "VRFY John Smith",
            Command::Vrfy(Bytes::from_static(b"John Smith")),
        ),
        ("EXPN staff", Command::Expn(Bytes::from_static(b"staff"))),
        ("HELP", Command::Help(None)),
        (
            "HELP MAIL",
            Command::Help(Some(Bytes::from_static(b"MAIL"))),
        ),
        ("HELO mx.example.org", Command::Helo(host("mx.example.org"))),
        ("EHLO mx.example.org", Command::Ehlo(host("mx.example.org"))),
        ("ehlo [192.0.2.1]", Command::Ehlo(host("[192.0.2.1]"))),
        (
            "EHLO [IPv6:2001:db8::1]",
            Command::Ehlo(host("[IPv6:2001:db8::1]")),
        ),
        ("EHLO 192.0.2.1", Command::Ehlo(host("192.0.2.1"))),
        ("EHLO DESKTOP_1A2B", Command::Ehlo(host("DESKTOP_1A2B"))),
        (
            "BDAT 0 LAST",
            Command::Bdat {
                size: 0,
                last: true,
            },
        ),
        (
            "BDAT 1000",
            Command::Bdat {
                size: 1000,
                last: false,
            },
        ),
        (
            "bdat 18446744073709551615 last",
            Command::Bdat {
                size: u64::MAX,
                last: true,
            },
        ),
        (
            "AUTH PLAIN",
            Command::Auth {
                mechanism: Bytes::from_static(b"PLAIN"),
                initial: None,
            },
        ),
        (
            "auth login dXNlcg==",
            Command::Auth {
                mechanism: Bytes::from_static(b"LOGIN"),
                initial: Some(Bytes::from_static(b"dXNlcg==")),
            },
        ),
        (
            "AUTH PLAIN =",
            Command::Auth {
                mechanism: Bytes::from_static(b"PLAIN"),
                initial: Some(Bytes::new()),
            },
        ),
    ];
    for (line, want) in table {
        assert_eq!(p(line).as_ref(), Ok(want), "{line}");
    }
}

#[test]
fn command_errors() {
    use CommandError::*;
    let table: &[(&str, CommandError)] = &[
        ("", Unrecognized),
        ("FOO", Unrecognized),
        ("DATAX", Unrecognized),
        ("STARTTLSX", Unrecognized),
        ("MAILFROM:<a@b>", Unrecognized),
        ("DATA now", Syntax("no arguments allowed")),
        ("RSET x", Syntax("no arguments allowed")),
        ("QUIT please", Syntax("no arguments allowed")),
        ("STARTTLS x", Syntax("no arguments allowed")),
        ("VRFY", Syntax("VRFY requires an argument")),
        ("EXPN", Syntax("EXPN requires an argument")),
        ("VRFY a\x01b", Syntax("control character in argument")),
        ("HELO", Syntax("a domain is required")),
        ("EHLO", Syntax("a domain is required")),
        (
            "EHLO -bad.example",
            Syntax("invalid domain or address literal"),
        ),
        ("EHLO a..b", Syntax("invalid domain or address literal")),
        (
            "EHLO two words",
            Syntax("invalid domain or address literal"),
        ),
        (
            "EHLO [300.1.1.1]",
            Syntax("invalid domain or address literal"),
        ),
        (
            "EHLO [IPv6:1:2:3]",
            Syntax("invalid domain or address literal"),
        ),
        (
            "EHLO bücher.example",
            Syntax("invalid domain or address literal"),
        ),
        ("BDAT", Syntax("BDAT requires a chunk size")),
        ("BDAT x", Syntax("BDAT requires a chunk size")),
        ("BDAT -1", Syntax("BDAT requires a chunk size")),
        (
            "BDAT 18446744073709551616",
            Syntax("BDAT requires a chunk size"),
        ),
        ("BDAT 10 FIRST", Syntax("expected LAST")),
        ("BDAT 10 LAST x", Syntax("too many BDAT arguments")),
        ("AUTH", Syntax("AUTH requires a mechanism")),
        ("AUTH PL@IN", Syntax("invalid SASL mechanism name")),
        (
            "AUTH ABCDEFGHIJKLMNOPQRSTU",
            Syntax("invalid SASL mechanism name"),
        ),
        ("AUTH PLAIN a b", Syntax("too many AUTH arguments")),
        ("AUTH PLAIN ***", Syntax("initial response is not base64")),
    ];
    for (line, want) in table {
        assert_eq!(p(line).as_ref(), Err(want), "{line}");
    }
}

#[test]
fn mail_from() {
    let bob = "bob@example.org";
    let table: &[(&str, Command)] = &[
        ("MAIL FROM:<bob@example.org>", from(bob)),
        ("mail from:<bob@example.org>", from(bob)),
        ("MAIL FROM: <bob@example.org>", from(bob)),
        ("MAIL FROM:<bob@example.org>  ", from(bob)),
        (
            "MAIL FROM:<@relay.example,@b.example:bob@example.org>",
            from(bob),
        ),
        (
            "MAIL FROM:<>",
            Command::Mail(ReversePath::Null, MailParams::default()),
        ),
        (
            "MAIL FROM:<\"john doe\"@example.org>",
            from("\"john doe\"@example.org"),
        ),
        (
            "MAIL FROM:<\"a>b\\\"c\"@example.org>",
            from("\"a>b\\\"c\"@example.org"),
        ),
        (
            "MAIL FROM:<a.b+tag@[192.0.2.1]>",
            from("a.b+tag@[192.0.2.1]"),
        ),
        ("MAIL FROM:<a@[IPv6:::1]>", from("a@[IPv6:::1]")),
        ("MAIL FROM:<a@[x-tag:stuff]>", from("a@[x-tag:stuff]")),
        ("MAIL FROM:<a@[x:\"]>", from("a@[x:\"]")),
        (
            "MAIL FROM:<a@[x:<>]> SIZE=1",
            Command::Mail(
                ReversePath::Mailbox(mailbox("a@[x:<>]")),
                MailParams {
                    size: Some(1),
                    ..MailParams::default()
                },
            ),
        ),
        ("MAIL FROM:<@r.example:\"a>b\"@c>", from("\"a>b\"@c")),
        (
            "MAIL FROM:<a@[IPv6:::ffff:192.0.2.1]>",
            from("a@[IPv6:::ffff:192.0.2.1]"),
        ),
        (
            "MAIL FROM:<> SIZE=1000 BODY=8bitmime RET=HDRS ENVID=QQ+2B1 AUTH=<>",
            Command::Mail(
                ReversePath::Null,
                MailParams {
                    size: Some(1000),
                    body: Some(BodyType::EightBitMime),
                    ret: Some(Ret::Headers),
                    envid: Some(Bytes::from_static(b"QQ+1")),
                    auth: Some(Bytes::new()),
                    smtputf8: false,
                },
            ),
        ),
        (
            "MAIL FROM:<jöran@bücher.example> SMTPUTF8 body=binarymime auth=a+2Bb@c",
            Command::Mail(
                ReversePath::Mailbox(mailbox("jöran@bücher.example")),
                MailParams {
                    smtputf8: true,
                    body: Some(BodyType::BinaryMime),
                    auth: Some(Bytes::from_static(b"a+b@c")),
                    ..MailParams::default()
                },
            ),
        ),
        (
            "MAIL FROM:<a@b> BODY=7BIT RET=full",
            Command::Mail(
                ReversePath::Mailbox(mailbox("a@b")),
                MailParams {
                    body: Some(BodyType::SevenBit),
                    ret: Some(Ret::Full),
                    ..MailParams::default()
                },
            ),
        ),
    ];
    for (line, want) in table {
        assert_eq!(p(line).as_ref(), Ok(want), "{line}");
    }
}

#[test]
fn mail_from_errors() {
    use CommandError::*;
    let long_local = format!("MAIL FROM:<{}@example.org>", "a".repeat(65));
    let long_label = format!("MAIL FROM:<a@{}.org>", "a".repeat(64));
    let long_domain = format!("MAIL FROM:<a@{}org>", "abcdefg.".repeat(32));
    let long_path = format!(
        "MAIL FROM:<{}@{}org>",
        "a".repeat(60),
        "abcdefghi.".repeat(20)
    );
    let long_envid = format!("MAIL FROM:<> ENVID={}", "x".repeat(101));
    let table: &[(&str, CommandError)] = &[
        ("MAIL", Syntax("expected FROM:<address>")),
        ("MAIL TO:<a@b>", Syntax("expected FROM:<address>")),
        ("MAIL FROM:", Syntax("address must be enclosed in <>")),
        ("MAIL FROM:a@b", Syntax("address must be enclosed in <>")),
        (
            "MAIL FROM:  <a@b>",
            Syntax("address must be enclosed in <>"),
        ),
        ("MAIL FROM:<a@b", Syntax("unterminated <path>")),
        (
            "MAIL FROM:<a@b>SIZE=10",
            Syntax("expected a space after the address"),
        ),
        ("MAIL FROM:<user>", BadAddress("missing domain")),
        ("MAIL FROM:<postmaster>", BadAddress("missing domain")),
        ("MAIL FROM:<@a.example>", BadAddress("invalid source route")),
        ("MAIL FROM:<@a.example", Syntax("unterminated <path>")),
        ("MAIL FROM:<\"a\\\">", Syntax("unterminated <path>")),
        (
            "MAIL FROM:<@a.example,b:u@c>",
            BadAddress("invalid source route"),
        ),
        ("MAIL FROM:<@-a:u@c>", BadAddress("invalid source route")),
        ("MAIL FROM:<a b@c>", BadAddress("invalid local part")),
        ("MAIL FROM:<.a@c>", BadAddress("invalid dots in local part")),
        (
            "MAIL FROM:<a..b@c>",
            BadAddress("invalid dots in local part"),
        ),
        ("MAIL FROM:<a.@c>", BadAddress("invalid dots in local part")),
        ("MAIL FROM:<@>", BadAddress("invalid source route")),
        ("MAIL FROM:<a@>", BadAddress("empty domain")),
        ("MAIL FROM:<a@b..c>", BadAddress("empty domain label")),
        ("MAIL FROM:<a@_b.d>", BadAddress("invalid domain")),
        ("MAIL FROM:<a@b_.d>", BadAddress("invalid domain")),
        ("MAIL FROM:<a@-b.c>", BadAddress("invalid domain")),
        ("MAIL FROM:<a@b.c->", BadAddress("invalid domain")),
        (
            "MAIL FROM:<a@[1.2.3]>",
            BadAddress("invalid IPv4 address literal"),
        ),
        (
            "MAIL FROM:<a@[1.2.3.256]>",
            BadAddress("invalid IPv4 address literal"),
        ),
        (
            "MAIL FROM:<a@[IPv6:1::2::3]>",
            BadAddress("invalid IPv6 address literal"),
        ),
        (
            "MAIL FROM:<a@[IPv6:1.2.3.4]>",
            BadAddress("invalid IPv6 address literal"),
        ),
        (
            "MAIL FROM:<a@[tag:]>",
            BadAddress("invalid address literal"),
        ),
        (
            "MAIL FROM:<a@[-tag:x]>",
            BadAddress("invalid address literal"),
        ),
        (
            "MAIL FROM:<a@[1.2.3.4]x>",
            BadAddress("invalid address literal"),
        ),
        ("MAIL FROM:<\"a@b>", Syntax("unterminated <path>")),
        ("MAIL FROM:<\"a\"b@c>", BadAddress("invalid local part")),
        (
            "MAIL FROM:<\"a\x01\"@c>",
            BadAddress("invalid character in quotes"),
        ),
        ("MAIL FROM:<jöran@example.org>", NeedsSmtpUtf8),
        ("MAIL FROM:<a@bücher.example>", NeedsSmtpUtf8),
        (&long_local, TooLong("local part")),
        (&long_label, TooLong("domain label")),
        (&long_domain, TooLong("path")),
        (&long_path, TooLong("path")),
        ("MAIL FROM:<> NOTIFY=NEVER", UnknownParameter),
        ("MAIL FROM:<> X-FOO=bar", UnknownParameter),
        ("MAIL FROM:<> XFOO", UnknownParameter),
        ("MAIL FROM:<> =x", Syntax("invalid parameter keyword")),
        ("MAIL FROM:<> -X=1", Syntax("invalid parameter keyword")),
        ("MAIL FROM:<> SIZE", BadParameter("SIZE")),
        ("MAIL FROM:<> SIZE=", BadParameter("SIZE")),
        ("MAIL FROM:<> SIZE=12a", BadParameter("SIZE")),
        (
            "MAIL FROM:<> SIZE=99999999999999999999",
            BadParameter("SIZE"),
        ),
        (
            "MAIL FROM:<> SIZE=1 size=2",
            BadParameter("duplicate parameter"),
        ),
        (
            "MAIL FROM:<> SMTPUTF8 SMTPUTF8",
            BadParameter("duplicate parameter"),
        ),
        (
            "MAIL FROM:<> SMTPUTF8=yes",
            BadParameter("SMTPUTF8 takes no value"),
        ),
        ("MAIL FROM:<> BODY=9BIT", BadParameter("BODY")),
        ("MAIL FROM:<> RET=ALL", BadParameter("RET")),
        ("MAIL FROM:<> AUTH=a+2", BadParameter("AUTH")),
        ("MAIL FROM:<> AUTH=a+0Ab", BadParameter("AUTH")),
        ("MAIL FROM:<> ENVID=a=b", BadParameter("ENVID")),
        ("MAIL FROM:<> ENVID=+C3+A9", BadParameter("ENVID")),
        (&long_envid, BadParameter("ENVID too long")),
    ];
    for (line, want) in table {
        assert_eq!(p(line).as_ref(), Err(want), "{line}");
    }
}

#[test]
fn rcpt_to() {
    let table: &[(&str, Command)] = &[
        ("RCPT TO:<alice@example.org>", to("alice@example.org")),
        ("rcpt to: <alice@example.org>", to("alice@example.org")),
        (
            "RCPT TO:<@hop.example:alice@example.org>",
            to("alice@example.org"),
        ),
        (
            "RCPT TO:<postmaster>",
            Command::Rcpt(ForwardPath::Postmaster, RcptParams::default()),
        ),
        (
            "RCPT TO:<PostMaster>",
            Command::Rcpt(ForwardPath::Postmaster, RcptParams::default()),
        ),
        (
            "RCPT TO:<postmaster@example.org>",
            to("postmaster@example.org"),
        ),
        (
            "RCPT TO:<a@b> NOTIFY=success,Delay ORCPT=rfc822;a+2Bx@b",
            Command::Rcpt(
                ForwardPath::Mailbox(mailbox("a@b")),
                RcptParams {
                    notify: Some(Notify {
                        success: true,
                        delay: true,
                        ..Notify::default()
                    }),
                    orcpt: Some(OriginalRecipient {
                        addr_type: Bytes::from_static(b"rfc822"),
                        addr: Bytes::from_static(b"a+x@b"),
                    }),
                },
            ),
        ),
        (
            "RCPT TO:<a@b> NOTIFY=NEVER",
            Command::Rcpt(
                ForwardPath::Mailbox(mailbox("a@b")),
                RcptParams {
                    notify: Some(Notify {
                        never: true,
                        ..Notify::default()
                    }),
                    orcpt: None,
                },
            ),
        ),
    ];
    for (line, want) in table {
        assert_eq!(p(line).as_ref(), Ok(want), "{line}");
    }
    let utf8 = parse(Bytes::from("RCPT TO:<jöran@bücher.example>"), &UTF8);
    assert_eq!(utf8, Ok(to("jöran@bücher.example")));
}

#[test]
fn rcpt_to_errors() {
    use CommandError::*;
    let table: &[(&str, CommandError)] = &[
        ("RCPT FROM:<a@b>", Syntax("expected TO:<address>")),
        ("RCPT TO:<>", BadAddress("null path is not a recipient")),
        ("RCPT TO:<alice>", BadAddress("missing domain")),
        ("RCPT TO:<jöran@example.org>", NeedsSmtpUtf8),
        ("RCPT TO:<a@b> SIZE=10", UnknownParameter),
        (
            "RCPT TO:<a@b> NOTIFY=NEVER,DELAY",
            BadParameter("NOTIFY=NEVER is exclusive"),
        ),
        ("RCPT TO:<a@b> NOTIFY=DELAY,DELAY", BadParameter("NOTIFY")),
        ("RCPT TO:<a@b> NOTIFY=SOMETIMES", BadParameter("NOTIFY")),
        ("RCPT TO:<a@b> NOTIFY=", BadParameter("NOTIFY")),
        ("RCPT TO:<a@b> NOTIFY=SUCCESS,", BadParameter("NOTIFY")),
        (
            "RCPT TO:<a@b> NOTIFY=NEVER NOTIFY=NEVER",
            BadParameter("duplicate parameter"),
        ),
        ("RCPT TO:<a@b> ORCPT=a@b", BadParameter("ORCPT")),
        ("RCPT TO:<a@b> ORCPT=;a@b", BadParameter("ORCPT")),
        ("RCPT TO:<a@b> ORCPT=rfc822;", BadParameter("ORCPT")),
        ("RCPT TO:<a@b> ORCPT=rfc822;a+zz", BadParameter("ORCPT")),
    ];
    for (line, want) in table {
        assert_eq!(p(line).as_ref(), Err(want), "{line}");
    }
}

#[test]
fn fields_are_slices_of_the_line() {
    let line = Bytes::from_static(b"MAIL FROM:<bob@example.org> ENVID=abc");
    let Ok(Command::Mail(ReversePath::Mailbox(m), params)) = parse(line.clone(), &ASCII) else {
        panic!("does not parse");
    };
    let inside = |p: *const u8| line.as_ptr_range().contains(&p);
    assert!(inside(m.local_part().as_ptr()));
    assert!(inside(m.host().as_bytes().as_ptr()));
    assert!(inside(params.envid.unwrap().as_ptr()));
}

#[test]
fn renders_lines_that_parse_back() {
    let lines = [
        "MAIL FROM:<bob@example.org> SIZE=1000 BODY=8BITMIME SMTPUTF8 AUTH=<> RET=FULL ENVID=a+2B",
        "RCPT TO:<postmaster> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+3Db@c",
        "RCPT TO:<\"x y\"@[IPv6:::1]>",
        "BDAT 42 LAST",
        "AUTH PLAIN =",
        "AUTH LOGIN dXNlcg==",
        "HELP",
        "VRFY a b",
        "EHLO [192.0.2.1]",
    ];
    for line in lines {
        let cmd = parse(Bytes::from(line), &UTF8).unwrap();
        let mut out = BytesMut::new();
        cmd.render(&mut out);
        assert_eq!(&out[..], format!("{line}\r\n").as_bytes());
    }
}

#[test]
fn errors_map_to_replies() {
    let code = |e: CommandError, rcpt| e.reply(rcpt).code;
    assert_eq!(code(CommandError::Unrecognized, false), 500);
    assert_eq!(code(CommandError::Syntax("x"), false), 501);
    assert_eq!(code(CommandError::UnknownParameter, false), 555);
    assert_eq!(code(CommandError::NeedsSmtpUtf8, true), 553);
    let bad = CommandError::BadAddress("x").reply(true);
    assert_eq!((bad.code, bad.status.map(|s| s.detail)), (553, Some(3)));
}

#[test]
fn rendering_never_lets_a_field_end_the_line() {
    let mut out = BytesMut::new();
    Command::Vrfy(Bytes::from_static(b"a\r\nRSET")).render(&mut out);
    assert_eq!(&out[..], b"VRFY a  RSET\r\n");
}
