//! `smtpctl` argument parsing and output, and sendmail's options, input and `-t` header
//! handling.

use std::path::PathBuf;

use mta_core::control::{Agent, Request, Response};
use mta_core::scheduler::Target;
use runtime_std::control::sendmail::{self, Options, Origin};
use runtime_std::control::smtpctl::{self, Command, Invocation};

fn parse(words: &str) -> Result<Invocation, String> {
    let args: Vec<String> = words.split_whitespace().map(str::to_owned).collect();
    smtpctl::parse(&args)
}

fn request(words: &str) -> Request {
    match parse(words).unwrap().command {
        Command::Request(r) => r,
        other => panic!("{words}: {other:?}"),
    }
}

#[test]
fn verbs_and_abbreviations() {
    let env: mta_core::queue::EnvelopeId = "1234567800000001".parse().unwrap();
    let table = [
        ("show queue", Request::ShowQueue),
        ("sh q", Request::ShowQueue),
        ("show envelope 1234567800000001", Request::ShowEnvelope(env)),
        ("show message 1234567800000001", Request::ShowMessage(env)),
        ("show stats", Request::ShowStats),
        ("show status", Request::ShowStatus),
        ("sh ro", Request::ShowRoutes),
        ("show hosts", Request::ShowHosts),
        ("schedule all", Request::Schedule(Target::All)),
        (
            "schedule 1234567800000001",
            Request::Schedule(Target::Envelope(env)),
        ),
        (
            "remove 12345678",
            Request::Remove(Target::Message("12345678".parse().unwrap())),
        ),
        ("pause mda", Request::Pause(Agent::Mda)),
        ("resume mta", Request::Resume(Agent::Mta)),
        ("pause smtp", Request::Pause(Agent::Smtp)),
        ("pause envelope all", Request::PauseEnvelope(Target::All)),
        (
            "resume envelope 1234567800000001",
            Request::ResumeEnvelope(Target::Envelope(env)),
        ),
        ("log brief", Request::LogBrief),
        ("log v", Request::LogVerbose),
        ("trace smtp", Request::Trace("smtp".to_owned())),
        ("untrace all", Request::Untrace("all".to_owned())),
        (
            "update table aliases",
            Request::UpdateTable("aliases".to_owned()),
        ),
    ];
    for (words, want) in table {
        assert_eq!(request(words), want, "{words}");
    }
}

#[test]
fn socket_option_and_other_commands() {
    let i = parse("-s /tmp/x.sock show queue").unwrap();
    assert_eq!(i.socket, Some(PathBuf::from("/tmp/x.sock")));
    assert_eq!(
        parse("-s/tmp/y show queue").unwrap().socket,
        Some(PathBuf::from("/tmp/y"))
    );
    assert_eq!(parse("show queue").unwrap().socket, None);
    assert_eq!(parse("monitor").unwrap().command, Command::Monitor);
    assert_eq!(
        parse("encrypt secret").unwrap().command,
        Command::Encrypt(vec!["secret".to_owned()])
    );
    assert_eq!(
        parse("sendmail -t -oi").unwrap().command,
        Command::Sendmail(vec!["-t".to_owned(), "-oi".to_owned()])
    );
}

#[test]
fn bad_command_lines_are_refused() {
    for words in [
        "",
        "-s",
        "frobnicate",
        "show",
        "show stat",
        "s queue",
        "show queue extra",
        "schedule",
        "schedule 12345",
        "schedule 0000000000000000",
        "pause",
        "pause everything",
        "log",
        "update table",
        "update tables x",
        "monitor now",
    ] {
        assert!(parse(words).is_err(), "{words:?} should be refused");
    }
}

#[test]
fn rendering() {
    assert_eq!(
        smtpctl::render(&Response::Ok),
        Ok(vec!["command succeeded".to_owned()])
    );
    assert_eq!(
        smtpctl::render(&Response::Error("no such envelope".to_owned())),
        Err("command failed: no such envelope".to_owned())
    );
    assert_eq!(smtpctl::human_duration(0), "0d0h0m0s");
    assert_eq!(
        smtpctl::human_duration(2 * 86_400 + 3 * 3600 + 4 * 60 + 5),
        "2d3h4m5s"
    );
}

#[test]
fn monitor_lines_show_gauges_and_increments() {
    let first = vec![
        ("smtp.session".to_owned(), 4),
        ("scheduler.delivery.ok".to_owned(), 10),
        ("scheduler.envelope".to_owned(), 7),
    ];
    let second = vec![
        ("smtp.session".to_owned(), 5),
        ("scheduler.delivery.ok".to_owned(), 13),
        ("scheduler.envelope".to_owned(), 6),
    ];
    let header = smtpctl::monitor_header();
    let columns = header[1].split_whitespace().count();
    assert_eq!(columns, smtpctl::MONITOR_COLUMNS.len());
    let line1: Vec<i64> = smtpctl::monitor_line(&first, None)
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    let line2: Vec<i64> = smtpctl::monitor_line(&second, Some(&first))
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(line1.len(), columns);
    // Columns: sessions (gauge), ..., envelopes (gauge), ..., delivered (increase).
    assert_eq!((line1[0], line1[3], line1[6]), (4, 7, 10));
    assert_eq!((line2[0], line2[3], line2[6]), (5, 6, 3));
}

fn args(words: &str) -> Vec<String> {
    words.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn sendmail_options() {
    let o = sendmail::parse_args(&args("-t -i -f alice@example.org -FAlice bob carol")).unwrap();
    assert_eq!(
        o,
        Options {
            from: Some("alice@example.org".to_owned()),
            full_name: Some("Alice".to_owned()),
            extract: true,
            ignore_dots: true,
            recipients: vec!["bob".to_owned(), "carol".to_owned()],
        }
    );
    let o = sendmail::parse_args(&args("-oi -falice -odi -oem -bm -v -- -dash")).unwrap();
    assert!(o.ignore_dots && !o.extract);
    assert_eq!(o.from.as_deref(), Some("alice"));
    assert_eq!(o.recipients, ["-dash"]);
    assert!(sendmail::parse_args(&args("-bp")).is_err());
    assert!(sendmail::parse_args(&args("-q")).is_err());
    assert!(sendmail::parse_args(&args("-f")).is_err());
}

#[test]
fn a_lone_dot_ends_input_unless_i() {
    let input = b"Subject: x\n\nline\n.\nafter\n";
    let m = sendmail::read_message(&mut &input[..], false).unwrap();
    assert_eq!(m, b"Subject: x\n\nline\n");
    let m = sendmail::read_message(&mut &input[..], true).unwrap();
    assert_eq!(m, input);
    let crlf = b"a\r\n.\r\nb\r\n";
    assert_eq!(
        sendmail::read_message(&mut &crlf[..], false).unwrap(),
        b"a\r\n"
    );
    let dotted = b"..x\n.y\n";
    assert_eq!(
        sendmail::read_message(&mut &dotted[..], false).unwrap(),
        dotted
    );
}

#[test]
fn header_addresses() {
    assert_eq!(sendmail::addresses(" a@b.c"), ["a@b.c"]);
    assert_eq!(
        sendmail::addresses(" \"Doe, John\" <john@x.org>, jane@y.org (Jane, the boss)"),
        ["john@x.org", "jane@y.org"]
    );
    assert_eq!(
        sendmail::addresses("team: a@x.org, b@x.org;, c@y.org"),
        ["a@x.org", "b@x.org", "c@y.org"]
    );
    assert_eq!(
        sendmail::addresses("undisclosed-recipients:;"),
        Vec::<String>::new()
    );
}

fn origin() -> Origin {
    Origin {
        user: "alice".to_owned(),
        hostname: "mx.example.org".to_owned(),
        date: "Sat, 28 Nov 2026 21:00:00 +0000".to_owned(),
        message_id: "<1.2@mx.example.org>".to_owned(),
    }
}

#[test]
fn t_takes_recipients_from_headers_and_drops_bcc() {
    let message = b"To: Bob <bob@example.com>,\n carol@example.net\r\n\
Cc: dave@example.com\n\
Bcc: eve@example.com,\n\tfrank@example.com\n\
Subject: folded\n to: not a header\n\
\n\
To: body@example.com\n";
    let o = Options {
        extract: true,
        recipients: vec!["arg@example.com".to_owned()],
        ..Options::default()
    };
    let sub = sendmail::prepare(&o, message, &origin()).unwrap();
    assert_eq!(
        sub.recipients,
        [
            "arg@example.com",
            "bob@example.com",
            "carol@example.net",
            "dave@example.com",
            "eve@example.com",
            "frank@example.com"
        ]
    );
    assert_eq!(sub.sender, "alice@mx.example.org");
    assert_eq!(
        String::from_utf8(sub.message).unwrap(),
        "From: <alice@mx.example.org>\n\
Date: Sat, 28 Nov 2026 21:00:00 +0000\n\
Message-ID: <1.2@mx.example.org>\n\
To: Bob <bob@example.com>,\n carol@example.net\r\n\
Cc: dave@example.com\n\
Subject: folded\n to: not a header\n\
\n\
To: body@example.com\n"
    );
}

#[test]
fn without_t_headers_are_kept_and_not_read() {
    let message =
        b"From: Me <me@example.org>\nDate: x\nMessage-ID: <y>\nBcc: z@example.com\n\nhi\n";
    let o = Options {
        recipients: vec!["bob".to_owned()],
        from: Some(String::new()),
        ..Options::default()
    };
    let sub = sendmail::prepare(&o, message, &origin()).unwrap();
    assert_eq!(sub.recipients, ["bob"]);
    assert_eq!(sub.sender, "", "-f '' is the null sender");
    assert_eq!(
        sub.message,
        b"From: Me <me@example.org>\nDate: x\nMessage-ID: <y>\n\nhi\n"
    );
    let none = Options::default();
    assert!(sendmail::prepare(&none, message, &origin()).is_err());
}
