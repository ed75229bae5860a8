//! Rule evaluation tables: configuration text, session, sender and recipient in, the
//! decision of smtpd.conf(5) out.

use std::collections::BTreeMap;

use mta_core::config::{self, Config, Decision};
use mta_core::rules::{EnvelopeFacts, LocalFacts, Ruleset, SessionFacts, Source};

fn parse(text: &str, files: &[(&str, &str)]) -> Config {
    let files: BTreeMap<String, String> = files
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect();
    let mut loader = |path: &str| {
        files
            .get(path)
            .cloned()
            .ok_or_else(|| "no such file".to_string())
    };
    config::parse(text, "smtpd.conf", &[], &mut loader).unwrap_or_else(|e| panic!("{e:?}"))
}

fn ruleset(text: &str, files: &[(&str, &str)]) -> Ruleset {
    let local = LocalFacts {
        domains: vec!["mail.example.org".into(), "localhost".into()],
        addresses: vec!["198.51.100.7".parse().unwrap()],
    };
    Ruleset::new(&parse(text, files), local).unwrap()
}

/// `"203.0.113.5 tls auth=bob tag=in rdns=h.example helo=h.example"`, or `"socket ..."`.
fn session(spec: &str) -> SessionFacts {
    let mut words = spec.split_whitespace();
    let source = match words.next().unwrap() {
        "socket" => Source::LocalSocket,
        ip => Source::Network(ip.parse().unwrap()),
    };
    let mut s = SessionFacts::new(source);
    for w in words {
        match w.split_once('=') {
            None if w == "tls" => s.tls = true,
            Some(("auth", v)) => s.auth_user = Some(v.into()),
            Some(("tag", v)) => s.listener_tag = Some(v.into()),
            Some(("rdns", v)) => s.rdns = Some(v.into()),
            Some(("helo", v)) => s.helo = Some(v.into()),
            _ => panic!("bad session word {w}"),
        }
    }
    s
}

fn decision(expected: &str) -> Decision {
    if expected == "reject" {
        Decision::Reject
    } else {
        Decision::Action(expected.into())
    }
}

/// Each row: session, sender, recipient, expected action name or `reject`.
fn check(rs: &Ruleset, rows: &[(&str, &str, &str, &str)]) {
    for (i, (s, sender, rcpt, expected)) in rows.iter().enumerate() {
        let v = rs.evaluate(
            &session(s),
            &EnvelopeFacts {
                sender,
                recipient: rcpt,
            },
        );
        assert_eq!(
            v.decision,
            decision(expected),
            "row {i}: {s} {sender} -> {rcpt}"
        );
    }
}

#[test]
fn default_openbsd_configuration() {
    let rs = ruleset(
        "table aliases { root = gilles }\nlisten on lo\n\
         action \"local_mail\" mbox alias <aliases>\naction \"outbound\" relay\n\
         match from local for local action \"local_mail\"\nmatch from local for any action \"outbound\"\n",
        &[],
    );
    check(
        &rs,
        &[
            ("127.0.0.1", "a@b", "root@mail.example.org", "local_mail"),
            ("socket", "", "root@localhost", "local_mail"),
            ("::1", "a@b", "x@example.com", "outbound"),
            ("198.51.100.7", "a@b", "x@example.com", "outbound"),
            ("203.0.113.5", "a@b", "root@mail.example.org", "reject"),
            ("203.0.113.5", "a@b", "x@example.com", "reject"),
        ],
    );
}

#[test]
fn manual_example_with_auth_and_domains() {
    let rs = ruleset(
        "table aliases file:/etc/aliases\nlisten on lo\n\
         action mda_with_aliases mda \"/path/to/mda -f -\" alias <aliases>\n\
         action mda_without_aliases mda \"/path/to/mda -f -\"\naction \"outbound\" relay\n\
         match for local action mda_with_aliases\n\
         match from any for domain example.com action mda_without_aliases\n\
         match for any action \"outbound\"\nmatch auth from any for any action \"outbound\"\n",
        &[("/etc/aliases", "root: gilles\n")],
    );
    check(
        &rs,
        &[
            ("127.0.0.1", "", "u@localhost", "mda_with_aliases"),
            ("203.0.113.5", "x@y", "u@EXAMPLE.com", "mda_without_aliases"),
            ("203.0.113.5", "x@y", "u@example.net", "reject"),
            ("203.0.113.5 auth=bob", "x@y", "u@example.net", "outbound"),
            ("127.0.0.1", "x@y", "u@example.net", "outbound"),
        ],
    );
}

#[test]
fn negation_catch_alls_and_mailaddr_tables() {
    let rs = ruleset(
        "table other-relays file:/etc/other-relays\ntable rcpts { \"@example.org\", \"vip@example.net\" }\n\
         action \"local_mail\" mbox\naction in maildir\n\
         match !from src <other-relays> mail-from \"@example.com\" for any reject\n\
         match from any for domain example.com action \"local_mail\"\n\
         match from any !for rcpt-to <rcpts> reject\n\
         match from any for any action in\n",
        &[("/etc/other-relays", "192.0.2.0/24\n2001:db8::1\n")],
    );
    check(
        &rs,
        &[
            ("203.0.113.5", "ceo@example.com", "a@example.com", "reject"),
            (
                "192.0.2.77",
                "ceo@example.com",
                "a@example.com",
                "local_mail",
            ),
            (
                "2001:db8::1",
                "ceo@example.com",
                "a@example.com",
                "local_mail",
            ),
            ("203.0.113.5", "", "a@example.com", "local_mail"),
            ("203.0.113.5", "a@b", "x@example.org", "in"),
            ("203.0.113.5", "a@b", "vip+tag@example.net", "in"),
            ("203.0.113.5", "a@b", "nobody@example.net", "reject"),
        ],
    );
}

#[test]
fn regex_tags_tls_and_helo() {
    let rs = ruleset(
        "table dyn { \"\\.dyn\\.\", \"^[0-9-]+\\.\" }\n\
         action in maildir\naction submit relay\n\
         match from any tag \"SUBMIT\" auth tls for any action submit\n\
         match from rdns regex <dyn> for any reject\n\
         match from any helo regex \"^mx[0-9]*\\.\" for domain regex \"^(example|sample)\\.org$\" action in\n\
         match from any !tls for any reject\n\
         match from any for domain \"*.example.org\" action in\n",
        &[],
    );
    check(
        &rs,
        &[
            (
                "203.0.113.5 tag=SUBMIT auth=bob tls",
                "bob@x",
                "a@anywhere.example",
                "submit",
            ),
            (
                "203.0.113.5 tag=SUBMIT auth=bob",
                "bob@x",
                "a@anywhere.example",
                "reject",
            ),
            (
                "203.0.113.5 tls rdns=1-2-3-4.dyn.isp.example",
                "a@b",
                "x@sub.example.org",
                "reject",
            ),
            (
                "203.0.113.5 rdns=1-2-3-4.isp.example",
                "a@b",
                "x@sub.example.org",
                "reject",
            ),
            (
                "203.0.113.5 tls rdns=mx.isp.example helo=mx1.isp.example",
                "a@b",
                "x@sample.org",
                "in",
            ),
            (
                "203.0.113.5 helo=mx1.isp.example",
                "a@b",
                "x@sample.org",
                "in",
            ),
            (
                "203.0.113.5 helo=mail.isp.example",
                "a@b",
                "x@sample.org",
                "reject",
            ),
            ("203.0.113.5 tls", "a@b", "x@deep.sub.example.org", "in"),
            ("203.0.113.5 tls", "a@b", "x@example.org", "reject"),
        ],
    );
}

#[test]
fn from_socket_and_auth_tables() {
    let rs = ruleset(
        "table admins { alice, bob }\naction loc mbox\naction out relay\n\
         match from socket for any action loc\n\
         match from auth <admins> for any action out\n\
         match from auth regex \"^svc-\" for domain \"example.net\" action out\n",
        &[],
    );
    check(
        &rs,
        &[
            ("socket", "", "x@example.com", "loc"),
            ("127.0.0.1", "", "x@example.com", "reject"),
            ("203.0.113.5 auth=alice", "a@b", "x@example.com", "out"),
            ("203.0.113.5 auth=carol", "a@b", "x@example.com", "reject"),
            ("203.0.113.5 auth=svc-backup", "a@b", "x@example.net", "out"),
            (
                "203.0.113.5 auth=svc-backup",
                "a@b",
                "x@example.com",
                "reject",
            ),
        ],
    );
}

#[test]
fn negated_sources_null_sender_and_file_tables() {
    let rs = ruleset(
        "table rcpts file:/etc/mail/recipients\n         action in mbox\naction out relay\n\
         match !from local for local reject\n\
         match from local mail-from regex \"^$\" for any action out\n\
         match from any tag regex \"^mx-\" for rcpt-to <rcpts> action in\n\
         match from local !mail-from \"@example.com\" for any action out\n\
         match !from rdns for any reject\n\
         match from any for any action in\n",
        &[(
            "/etc/mail/recipients",
            "# who may receive\ninfo@example.net\n@example.com\n",
        )],
    );
    check(
        &rs,
        &[
            ("203.0.113.5", "a@b", "root@localhost", "reject"),
            ("127.0.0.1", "", "x@remote.example", "out"),
            ("127.0.0.1", "a@example.com", "x@remote.example", "reject"),
            ("127.0.0.1", "a@example.net", "x@remote.example", "out"),
            ("203.0.113.5 tag=mx-1", "a@b", "info@example.net", "in"),
            ("203.0.113.5 tag=mx-1", "a@b", "anyone@example.com", "in"),
            ("203.0.113.5 tag=mx-1", "a@b", "other@example.net", "reject"),
            (
                "203.0.113.5 tag=smtp rdns=h.example",
                "a@b",
                "other@example.net",
                "in",
            ),
        ],
    );
}
