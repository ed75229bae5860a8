//! `smtpctl` argument parsing and OpenSMTPD's output formats (queue lines, counters,
//! `monitor`), and sendmail's options, input, headers and `-t` handling.

use std::path::PathBuf;

use mta_core::control::{Agent, QueueRow, Request, Response, Status};
use mta_core::scheduler::Target;
use runtime_std::control::sendmail::{self, Mode, Options, Origin};
use runtime_std::control::smtpctl::{self, Command, EnvelopeVerb, Invocation, MonitorDigest};

fn parse(words: &str) -> Result<Invocation, String> {
    let args: Vec<String> = words.split_whitespace().map(str::to_owned).collect();
    smtpctl::parse(&args)
}

fn command(words: &str) -> Command {
    parse(words)
        .unwrap_or_else(|e| panic!("{words}: {e}"))
        .command
}

const ENV: &str = "1234567800000001";
const MSG: &str = "12345678";

#[test]
fn verbs_and_abbreviations() {
    let env = Target::Envelope(ENV.parse().unwrap());
    let msg = Target::Message(MSG.parse().unwrap());
    let envelope_id = ENV.parse().unwrap();
    let table = [
        ("show queue", Command::ShowQueue(None)),
        ("sh q", Command::ShowQueue(None)),
        (
            "show queue 12345678",
            Command::ShowQueue(Some(MSG.parse().unwrap())),
        ),
        (
            "show envelope 1234567800000001",
            Command::Request(Request::ShowEnvelope(envelope_id)),
        ),
        ("show message 1234567800000001", Command::ShowMessage(env)),
        ("show message 12345678", Command::ShowMessage(msg)),
        ("show stats", Command::Request(Request::ShowStats)),
        ("show status", Command::Request(Request::ShowStatus)),
        ("sh ro", Command::Request(Request::ShowRoutes)),
        ("show hosts", Command::Request(Request::ShowHosts)),
        (
            "schedule all",
            Command::Envelopes(EnvelopeVerb::Schedule, Target::All),
        ),
        (
            "schedule 1234567800000001",
            Command::Envelopes(EnvelopeVerb::Schedule, env),
        ),
        (
            "remove 12345678",
            Command::Envelopes(EnvelopeVerb::Remove, msg),
        ),
        (
            "rem all",
            Command::Envelopes(EnvelopeVerb::Remove, Target::All),
        ),
        ("pause mda", Command::Request(Request::Pause(Agent::Mda))),
        ("resume mta", Command::Request(Request::Resume(Agent::Mta))),
        ("pause smtp", Command::Request(Request::Pause(Agent::Smtp))),
        (
            "pause envelope all",
            Command::Envelopes(EnvelopeVerb::Pause, Target::All),
        ),
        (
            "resume env 1234567800000001",
            Command::Envelopes(EnvelopeVerb::Resume, env),
        ),
        ("log brief", Command::Request(Request::LogBrief)),
        ("log v", Command::Request(Request::LogVerbose)),
        (
            "trace smtp",
            Command::Request(Request::Trace("smtp".to_owned())),
        ),
        (
            "untrace all",
            Command::Request(Request::Untrace("all".to_owned())),
        ),
        (
            "update table aliases",
            Command::Request(Request::UpdateTable("aliases".to_owned())),
        ),
        ("monitor", Command::Monitor),
        ("mon", Command::Monitor),
    ];
    for (words, want) in table {
        assert_eq!(command(words), want, "{words}");
    }
}

#[test]
fn envelope_verbs_send_their_requests() {
    let t = Target::All;
    assert_eq!(EnvelopeVerb::Schedule.request(t), Request::Schedule(t));
    assert_eq!(EnvelopeVerb::Remove.request(t), Request::Remove(t));
    assert_eq!(EnvelopeVerb::Pause.request(t), Request::PauseEnvelope(t));
    assert_eq!(EnvelopeVerb::Resume.request(t), Request::ResumeEnvelope(t));
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
    assert_eq!(
        command("encrypt secret"),
        Command::Encrypt(vec!["secret".to_owned()])
    );
    assert_eq!(command("encrypt"), Command::Encrypt(vec![]));
    assert_eq!(
        command("sendmail -t -oi"),
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
        "show queue extra words",
        "show queue 1234567800000001",
        "show queue all",
        "show message all",
        "show message",
        "show envelope 12345678",
        "schedule",
        "schedule 12345",
        "schedule 0000000000000000",
        "remove 1234567800000001 12345678",
        "pause",
        "pause everything",
        "pause envelope",
        "pause mda now",
        "log",
        "log loud",
        "update table",
        "update tables x",
        "monitor now",
        "trace",
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
    assert_eq!(
        smtpctl::render(&Response::Status(Status {
            mta_paused: true,
            ..Status::default()
        })),
        Ok(vec![
            "MDA running".to_owned(),
            "MTA paused".to_owned(),
            "SMTP running".to_owned()
        ])
    );
    let stats = Response::Stats(vec![
        ("scheduler.delivery.ok".to_owned(), 12),
        ("smtp.session".to_owned(), 0),
        ("uptime".to_owned(), 94_691),
    ]);
    assert_eq!(
        smtpctl::render(&stats).unwrap(),
        [
            "scheduler.delivery.ok=12",
            "smtp.session=0",
            "uptime=94691",
            "uptime.human=1d2h18m11s"
        ]
    );
}

#[test]
fn uptime_is_written_with_the_units_that_are_not_zero() {
    let table = [
        (0, "0s"),
        (21, "21s"),
        (60, "1m"),
        (3600, "1h"),
        (3605, "1h5s"),
        (86_400, "1d"),
        (90_061, "1d1h1m1s"),
        (9_253_995, "107d2h33m15s"),
        (-61, "-1m1s"),
    ];
    for (secs, want) in table {
        assert_eq!(smtpctl::human_duration(secs), want, "{secs}");
    }
}

fn row() -> QueueRow {
    QueueRow {
        id: 0x1234_5678_9abc_def0,
        family: "inet4".to_owned(),
        kind: "mda".to_owned(),
        flags: "-".to_owned(),
        sender: "bob@example.com".to_owned(),
        original_recipient: "Alice@example.org".to_owned(),
        recipient: "alice@example.org".to_owned(),
        created: 1_800_000_000,
        expires: 1_800_345_600,
        last_try: 1_800_000_010,
        tries: 1,
        runstate: "pending".to_owned(),
        delay: 800,
        error: "450 mailbox busy".to_owned(),
    }
}

#[test]
fn queue_lines_have_opensmtpd_fields() {
    assert_eq!(
        smtpctl::queue_line(&row()),
        "123456789abcdef0|inet4|mda||bob@example.com|Alice@example.org|alice@example.org|\
         1800000000|1800345600|1800000010|1|pending|800|450 mailbox busy"
    );
    let bounce = QueueRow {
        kind: "bounce".to_owned(),
        flags: "authenticated,bounce".to_owned(),
        sender: String::new(),
        runstate: "inflight".to_owned(),
        error: "a|b\r\nc".to_owned(),
        ..row()
    };
    let line = smtpctl::queue_line(&bounce);
    assert_eq!(line.split('|').count(), 14, "{line}");
    let fields: Vec<&str> = line.split('|').collect();
    assert_eq!(fields[2], "bounce");
    assert_eq!(fields[3], "bounce,auth", "OpenSMTPD's order and spelling");
    assert_eq!(fields[4], "@", "the null sender as OpenSMTPD writes it");
    assert_eq!(fields[11], "inflight");
    assert_eq!(fields[13], "a\\174b\\015\\012c");
    let paused = QueueRow {
        flags: "paused".to_owned(),
        ..row()
    };
    assert_eq!(
        smtpctl::queue_line(&paused).split('|').nth(3),
        Some("suspend")
    );
}

#[test]
fn rows_match_envelope_message_and_all() {
    let r = row();
    let ok = |s: &str| smtpctl::row_matches(&r, smtpctl::target(s).unwrap());
    assert!(ok("all"));
    assert!(ok("12345678"));
    assert!(ok("123456789abcdef0"));
    assert!(!ok("12345679"));
    assert!(!ok("123456789abcdef1"));
}

#[test]
fn envelope_counts_as_opensmtpd_prints_them() {
    assert_eq!(
        smtpctl::envelopes_line(EnvelopeVerb::Schedule, 1),
        "1 envelope scheduled"
    );
    assert_eq!(
        smtpctl::envelopes_line(EnvelopeVerb::Remove, 3),
        "3 envelopes removed"
    );
    assert_eq!(
        smtpctl::envelopes_line(EnvelopeVerb::Pause, 0),
        "0 envelope paused"
    );
    assert_eq!(
        smtpctl::envelopes_line(EnvelopeVerb::Resume, 2),
        "2 envelopes resumed"
    );
}

fn stats(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

fn numbers(line: &str) -> Vec<i64> {
    line.split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect()
}

#[test]
fn monitor_reads_its_counters_from_the_stats() {
    let d = MonitorDigest::from_stats(&stats(&[
        ("smtp.session", 2),
        ("smtp.session.new", 10),
        ("smtp.session.closed", 8),
        ("smtp.session.inet4", 2),
        ("scheduler.envelope", 3),
        ("scheduler.envelope.enqueued", 40),
        ("scheduler.envelope.dequeued", 37),
        ("scheduler.delivery.ok", 30),
        ("scheduler.delivery.tempfail", 5),
        ("scheduler.delivery.permfail", 4),
        ("smtp.loop", 1),
        ("scheduler.delivery.loop", 1),
        ("scheduler.delivery.expired", 2),
        ("scheduler.envelope.expired", 2),
        ("scheduler.envelope.removed", 3),
        ("queue.bounce", 4),
        ("uptime", 99),
    ]));
    assert_eq!(
        d,
        MonitorDigest {
            clients: 2,
            connected: 10,
            disconnected: 8,
            envelopes: 3,
            enqueued: 40,
            dequeued: 37,
            delivered: 30,
            tempfail: 5,
            permfail: 4,
            loops: 2,
            expired: 2,
            removed: 3,
            bounces: 4,
        }
    );
    assert_eq!(MonitorDigest::from_stats(&[]), MonitorDigest::default());
}

#[test]
fn monitor_lines_show_gauges_and_increments_in_opensmtpd_columns() {
    let first = MonitorDigest {
        clients: 4,
        connected: 10,
        disconnected: 6,
        envelopes: 7,
        enqueued: 20,
        dequeued: 13,
        delivered: 10,
        ..MonitorDigest::default()
    };
    let second = MonitorDigest {
        clients: 5,
        connected: 13,
        disconnected: 8,
        envelopes: 6,
        enqueued: 22,
        dequeued: 16,
        delivered: 13,
        bounces: 1,
        ..MonitorDigest::default()
    };
    let line1 = smtpctl::monitor_line(&first, &MonitorDigest::default());
    let line2 = smtpctl::monitor_line(&second, &first);
    // curr conn disc | curr enq deq | ok tmpfail prmfail loop | expire remove bounce
    assert_eq!(numbers(&line1), [4, 10, 6, 7, 20, 13, 10, 0, 0, 0, 0, 0, 0]);
    assert_eq!(numbers(&line2), [5, 3, 2, 6, 2, 3, 3, 0, 0, 0, 0, 0, 1]);
    assert_eq!(
        line2,
        "   5    3    2     6    2    3    3       0       0    0      0      0      1"
    );
    // Each number ends under the end of its column title.
    let titles = smtpctl::MONITOR_HEADER[1];
    let ends = |s: &str| -> Vec<usize> {
        let b = s.as_bytes();
        (0..b.len())
            .filter(|&i| b[i] != b' ' && b.get(i + 1).is_none_or(|c| *c == b' '))
            .collect()
    };
    assert_eq!(ends(&line2), ends(titles));
}

#[test]
fn monitor_repeats_its_header() {
    let d = MonitorDigest::default();
    let first = smtpctl::monitor_output(0, &d, &d);
    assert_eq!(first.len(), 3);
    assert_eq!(first[..2], smtpctl::MONITOR_HEADER);
    assert_eq!(smtpctl::monitor_output(1, &d, &d).len(), 1);
    let again = smtpctl::monitor_output(smtpctl::MONITOR_HEADER_EVERY, &d, &d);
    assert_eq!(again.len(), 4);
    assert_eq!(again[0], "", "a blank line before a repeated header");
    assert_eq!(again[1..3], smtpctl::MONITOR_HEADER);
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
            mode: Mode::Submit,
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
    let o = sendmail::parse_args(&args(
        "-ti -N success,failure -R hdrs -V id -Ex -d0.1 -S bob",
    ))
    .unwrap();
    assert!(o.extract && o.ignore_dots, "grouped flags");
    assert_eq!(o.recipients, ["bob"], "DSN options take their value");
    assert_eq!(
        sendmail::parse_args(&args("-bi")).unwrap().mode,
        Mode::Newaliases
    );
    assert_eq!(
        sendmail::parse_args(&args("-b i")).unwrap().mode,
        Mode::Newaliases
    );
    for bad in ["-bp", "-bs", "-q", "-q30m", "-f", "-F", "-k"] {
        assert!(sendmail::parse_args(&args(bad)).is_err(), "{bad}");
    }
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

#[test]
fn names_and_addresses_are_qualified_and_quoted() {
    assert_eq!(sendmail::qualify("bob", "mx.org"), "bob@mx.org");
    assert_eq!(sendmail::qualify("bob@x.org", "mx.org"), "bob@x.org");
    assert_eq!(sendmail::qualify("", "mx.org"), "");
    assert_eq!(
        sendmail::full_name("Alice Doe,Room 1,555", "alice").as_deref(),
        Some("Alice Doe")
    );
    assert_eq!(
        sendmail::full_name("& Smith", "bob").as_deref(),
        Some("Bob Smith")
    );
    assert_eq!(sendmail::full_name(",,,", "bob"), None);
    assert_eq!(sendmail::display_name("Alice Doe"), "Alice Doe");
    assert_eq!(sendmail::display_name("J. Doe"), "\"J. Doe\"");
    assert_eq!(sendmail::display_name("a \"b\" \\"), "\"a \\\"b\\\" \\\\\"");
}

fn origin() -> Origin {
    Origin {
        user: "alice".to_owned(),
        full_name: None,
        hostname: "mx.example.org".to_owned(),
        date: "Sat, 28 Nov 2026 21:00:00 +0000".to_owned(),
        message_id: "<1.2@mx.example.org>".to_owned(),
    }
}

const ADDED: &str = "Date: Sat, 28 Nov 2026 21:00:00 +0000\nMessage-ID: <1.2@mx.example.org>\n";

fn text(sub: &mta_core::control::Submission) -> String {
    String::from_utf8(sub.message.clone()).unwrap()
}

#[test]
fn t_takes_recipients_from_headers_and_drops_bcc() {
    let message = b"To: Bob <bob@example.com>,\n carol@example.net\r\n\
Cc: dave\n\
Bcc: eve@example.com,\n\tfrank@example.com\n\
Subject: folded\n to: not a header\n\
\n\
To: body@example.com\n";
    let o = Options {
        extract: true,
        recipients: vec!["arg@example.com, other@example.com".to_owned()],
        ..Options::default()
    };
    let sub = sendmail::prepare(&o, message, &origin()).unwrap();
    assert_eq!(
        sub.recipients,
        [
            "arg@example.com",
            "other@example.com",
            "bob@example.com",
            "carol@example.net",
            "dave@mx.example.org",
            "eve@example.com",
            "frank@example.com"
        ]
    );
    assert_eq!(sub.sender, "alice@mx.example.org");
    assert_eq!(
        text(&sub),
        format!(
            "From: <alice@mx.example.org>\n{ADDED}\
To: Bob <bob@example.com>,\n carol@example.net\r\n\
Cc: dave\n\
Subject: folded\n to: not a header\n\
\n\
To: body@example.com\n"
        )
    );
}

#[test]
fn without_t_headers_are_kept_and_not_read() {
    let message =
        b"From: Me <me@example.org>\nDate: x\nMessage-ID: <y>\nBcc: z@example.com\n\nhi\n";
    let o = Options {
        recipients: vec!["bob".to_owned()],
        from: Some("<>".to_owned()),
        ..Options::default()
    };
    let sub = sendmail::prepare(&o, message, &origin()).unwrap();
    assert_eq!(sub.recipients, ["bob@mx.example.org"]);
    assert_eq!(sub.sender, "", "-f '<>' is the null sender");
    assert_eq!(
        sub.message,
        b"From: Me <me@example.org>\nDate: x\nMessage-ID: <y>\n\nhi\n"
    );
    let none = Options::default();
    assert_eq!(
        sendmail::prepare(&none, message, &origin()),
        Err("no recipients".to_owned())
    );
}

#[test]
fn the_sender_comes_from_f_else_from_the_from_header_else_the_user() {
    let to = |from: Option<&str>| Options {
        recipients: vec!["bob@example.com".to_owned()],
        from: from.map(str::to_owned),
        ..Options::default()
    };
    let with_from = b"From: Boss <boss@example.org>\n\nhi\n";
    let sub = sendmail::prepare(&to(None), with_from, &origin()).unwrap();
    assert_eq!(sub.sender, "boss@example.org");
    let sub = sendmail::prepare(&to(Some("<x@example.net>")), with_from, &origin()).unwrap();
    assert_eq!(sub.sender, "x@example.net");
    let sub = sendmail::prepare(&to(Some("carol")), b"\nhi\n", &origin()).unwrap();
    assert_eq!(sub.sender, "carol@mx.example.org");
    assert!(text(&sub).starts_with("From: <carol@mx.example.org>\n"));
    // The user's full name goes into From: unless -f names someone else.
    let named = Origin {
        full_name: Some("Alice A. Doe".to_owned()),
        ..origin()
    };
    let sub = sendmail::prepare(&to(None), b"\nhi\n", &named).unwrap();
    assert_eq!(sub.sender, "alice@mx.example.org");
    assert!(text(&sub).starts_with("From: \"Alice A. Doe\" <alice@mx.example.org>\n"));
    let sub = sendmail::prepare(&to(Some("carol")), b"\nhi\n", &named).unwrap();
    assert!(text(&sub).starts_with("From: <carol@mx.example.org>\n"));
    let with_name = Options {
        full_name: Some("Carol".to_owned()),
        ..to(Some("carol"))
    };
    let sub = sendmail::prepare(&with_name, b"\nhi\n", &named).unwrap();
    assert!(text(&sub).starts_with("From: Carol <carol@mx.example.org>\n"));
}

#[test]
fn a_message_without_header_gets_a_blank_line_before_its_body() {
    let o = Options {
        recipients: vec!["bob@example.com".to_owned()],
        ..Options::default()
    };
    let prepared = |m: &[u8]| text(&sendmail::prepare(&o, m, &origin()).unwrap());
    let head = format!("From: <alice@mx.example.org>\n{ADDED}");
    assert_eq!(
        prepared(b"just a line: with a colon\nmore\n"),
        format!("{head}\njust a line: with a colon\nmore\n")
    );
    assert_eq!(
        prepared(b"Subject: s\nbody without blank line\n"),
        format!("{head}Subject: s\n\nbody without blank line\n")
    );
    assert_eq!(
        prepared(b"Subject: only a header\n"),
        format!("{head}Subject: only a header\n")
    );
    assert_eq!(prepared(b"\nbody\n"), format!("{head}\nbody\n"));
    assert_eq!(prepared(b""), head);
    // An mbox separator and Return-Path are dropped, as the enqueuer does.
    assert_eq!(
        prepared(
            b"From alice Sat Nov 28 21:00:00 2026\nReturn-Path: <x@y>\n\tfolded\nSubject: s\n\nb\n"
        ),
        format!("{head}Subject: s\n\nb\n")
    );
}

#[test]
fn long_lines_are_sent_quoted_printable() {
    let o = Options {
        recipients: vec!["bob@example.com".to_owned()],
        ..Options::default()
    };
    let long = "x".repeat(2000);
    let message = format!("Subject: long\n\nshort =\n{long}\n");
    let sub = sendmail::prepare(&o, message.as_bytes(), &origin()).unwrap();
    let t = text(&sub);
    let (head, body) = t.split_once("\n\n").unwrap();
    for field in [
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=unknown-8bit",
        "Content-Disposition: inline",
        "Content-Transfer-Encoding: quoted-printable",
        "Subject: long",
    ] {
        assert!(head.lines().any(|l| l == field), "{field} in {head}");
    }
    assert!(body.starts_with("short =3D\n"), "{body}");
    assert!(body.lines().all(|l| l.len() <= 76), "{body}");
    let unfolded = body.replace("=\n", "");
    assert_eq!(unfolded, format!("short =3D\n{long}\n"));
    // A message that names its own encoding is left as it is.
    let own = format!("Content-Transfer-Encoding: 8bit\n\n{long}\n");
    let sub = sendmail::prepare(&o, own.as_bytes(), &origin()).unwrap();
    assert!(text(&sub).ends_with(&own));
    // Lines just under the limit are not encoded.
    let fits = format!("Subject: s\n\n{}\n", "y".repeat(988));
    let sub = sendmail::prepare(&o, fits.as_bytes(), &origin()).unwrap();
    assert!(text(&sub).ends_with(&fits));
}

#[test]
fn quoted_printable_encoding() {
    assert_eq!(sendmail::quoted_printable(b"plain text\n"), b"plain text\n");
    assert_eq!(
        sendmail::quoted_printable(b"caf\xc3\xa9 = ok \r\ntab\t\nend"),
        b"caf=C3=A9 =3D ok=20\ntab=09\nend"
    );
    let wide = sendmail::quoted_printable(&[0xffu8; 100]);
    let text = String::from_utf8(wide).unwrap();
    assert!(text.lines().all(|l| l.len() <= 76), "{text}");
    assert_eq!(text.replace("=\n", ""), "=FF".repeat(100));
}

#[test]
fn queue_lines_keep_their_shape_whatever_the_fields_hold() {
    let mut nasty: Vec<String> = (0u8..0x20).map(|b| format!("a{}b", b as char)).collect();
    nasty.extend(
        ["|", "\\", "x|y|z", "\u{7f}", "é|\u{85}", "", " "]
            .iter()
            .map(|s| (*s).to_owned()),
    );
    for s in &nasty {
        let r = QueueRow {
            family: s.clone(),
            flags: s.clone(),
            sender: s.clone(),
            original_recipient: s.clone(),
            recipient: s.clone(),
            runstate: s.clone(),
            error: s.clone(),
            ..row()
        };
        let line = smtpctl::queue_line(&r);
        assert_eq!(line.split('|').count(), 14, "{s:?}: {line:?}");
        assert!(!line.chars().any(char::is_control), "{s:?}: {line:?}");
    }
}

#[test]
fn prepared_messages_end_with_the_original_body() {
    let o = Options {
        recipients: vec!["bob@example.com".to_owned()],
        ..Options::default()
    };
    let bodies: [&[u8]; 5] = [b"hi\n", b"", b"no newline", b"\r\n\r\n", b". \n..\n"];
    for body in bodies {
        for head in [&b""[..], b"Subject: s\n\n", b"Subject: s\r\n\r\n"] {
            let message = [head, body].concat();
            let sub = sendmail::prepare(&o, &message, &origin()).unwrap();
            assert!(
                sub.message.ends_with(body),
                "{message:?} -> {:?}",
                sub.message
            );
            let text = String::from_utf8_lossy(&sub.message);
            assert!(text.starts_with("From: "), "{text:?}");
            assert!(text.contains("\nDate: ") && text.contains("\nMessage-ID: "));
        }
    }
}

#[test]
fn connection_errors_say_what_is_wrong() {
    use std::io::{Error, ErrorKind};
    let path = std::path::Path::new("/run/x.sock");
    let gone = smtpctl::connect_error(path, &Error::from(ErrorKind::NotFound));
    assert!(
        gone.starts_with("smtpd doesn't seem to be running: cannot connect to /run/x.sock"),
        "{gone}"
    );
    let refused = smtpctl::connect_error(path, &Error::from(ErrorKind::ConnectionRefused));
    assert!(refused.contains("doesn't seem to be running"), "{refused}");
    let denied = smtpctl::connect_error(path, &Error::from(ErrorKind::PermissionDenied));
    assert!(
        denied.starts_with("cannot connect to /run/x.sock: permission denied"),
        "{denied}"
    );
    let other = smtpctl::connect_error(path, &Error::other("boom"));
    assert_eq!(other, "cannot connect to /run/x.sock: boom");
}
