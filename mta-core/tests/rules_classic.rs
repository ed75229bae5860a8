//! Rule evaluation tables for the classic (OpenSMTPD 5.x) grammar: each `accept` line is
//! an action `classic-N` plus a rule, `reject` lines are rejecting rules.

use mta_core::config::{self, Config, Decision};
use mta_core::rules::{EnvelopeFacts, LocalFacts, Ruleset, SessionFacts, Source};

fn parse(text: &str) -> Config {
    let mut loader = |_: &str| Err("no files".to_string());
    config::parse(text, "smtpd.conf", &[], &mut loader).unwrap_or_else(|e| panic!("{e:?}"))
}

fn eval(text: &str, src: Source, sender: &str, rcpt: &str) -> Decision {
    let local = LocalFacts {
        domains: vec!["localhost".into(), "mx.example.org".into()],
        addresses: vec![],
    };
    let rs = Ruleset::new(&parse(text), local).unwrap();
    rs.evaluate(
        &SessionFacts::new(src),
        &EnvelopeFacts {
            sender,
            recipient: rcpt,
        },
    )
    .decision
}

fn net(ip: &str) -> Source {
    Source::Network(ip.parse().unwrap())
}

fn action(name: &str) -> Decision {
    Decision::Action(name.into())
}

#[test]
fn virtual_catch_all_for_any() {
    let text = "listen on lo\naccept for any virtual { \"@\" => gilles } deliver to maildir\n";
    assert_eq!(
        eval(text, net("127.0.0.1"), "a@b", "anyone@anywhere.example"),
        action("classic-1")
    );
    assert_eq!(
        eval(text, Source::LocalSocket, "", "x@y.z"),
        action("classic-1")
    );
    assert_eq!(
        eval(text, net("203.0.113.9"), "a@b", "anyone@anywhere.example"),
        Decision::Reject
    );
}

#[test]
fn classic_from_any_domains_and_relay() {
    let text = "listen on 0.0.0.0\n\
                reject from any sender \"@spam.example\" for any\n\
                accept from any for domain \"example.org\" deliver to mbox\n\
                accept for local deliver to mbox\n\
                accept for any relay\n";
    let rows = [
        (
            net("203.0.113.9"),
            "x@spam.example",
            "a@example.org",
            Decision::Reject,
        ),
        (
            net("203.0.113.9"),
            "x@ok.example",
            "a@example.org",
            action("classic-2"),
        ),
        (
            net("203.0.113.9"),
            "x@ok.example",
            "a@localhost",
            Decision::Reject,
        ),
        (
            net("127.0.0.1"),
            "x@ok.example",
            "a@localhost",
            action("classic-3"),
        ),
        (
            net("127.0.0.1"),
            "x@ok.example",
            "a@elsewhere.example",
            action("classic-4"),
        ),
        (
            net("203.0.113.9"),
            "x@ok.example",
            "a@elsewhere.example",
            Decision::Reject,
        ),
    ];
    for (i, (src, sender, rcpt, want)) in rows.into_iter().enumerate() {
        assert_eq!(eval(text, src, sender, rcpt), want, "row {i}");
    }
}
