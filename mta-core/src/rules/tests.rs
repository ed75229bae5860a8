//! Rule evaluation over configurations built from the model directly (the text grammar is
//! exercised by the tables in `tests/rules_*.rs`).

use std::net::IpAddr;

use super::*;
use crate::config::{
    Criterion, CriterionKind, ForCriterion, FromCriterion, Rule, TableMatch, TableRef,
};
use crate::table::{Table, TableEntries, TableSource};

fn crit(negated: bool, kind: CriterionKind) -> Criterion {
    Criterion { negated, kind }
}

fn lit(v: &str) -> TableMatch {
    TableMatch {
        regex: false,
        table: TableRef::literal(v),
    }
}

fn re(v: &str) -> TableMatch {
    TableMatch {
        regex: true,
        table: TableRef::literal(v),
    }
}

fn named(n: &str) -> TableMatch {
    TableMatch {
        regex: false,
        table: TableRef::Named(n.into()),
    }
}

fn action(n: &str) -> Decision {
    Decision::Action(n.into())
}

fn config(rules: Vec<Rule>) -> Config {
    let mut c = Config::default();
    c.tables.insert(
        "nets".into(),
        Table {
            name: "nets".into(),
            source: TableSource::Inline,
            entries: TableEntries::List(vec!["192.0.2.0/24".into(), "2001:db8::/32".into()]),
        },
    );
    c.rules = rules;
    c
}

fn local() -> LocalFacts {
    LocalFacts {
        domains: vec!["mail.example.org".into(), "localhost".into()],
        addresses: vec![ip("198.51.100.7")],
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> SessionFacts {
    SessionFacts::new(Source::Network(ip(s)))
}

fn eval(rs: &Ruleset, s: &SessionFacts, sender: &str, rcpt: &str) -> (Option<usize>, Decision) {
    let v = rs.evaluate(
        s,
        &EnvelopeFacts {
            sender,
            recipient: rcpt,
        },
    );
    (v.rule, v.decision)
}

#[test]
fn defaults_are_from_local_for_local() {
    let rs = Ruleset::new(
        &config(vec![Rule {
            criteria: vec![],
            decision: action("local"),
        }]),
        local(),
    )
    .unwrap();
    assert_eq!(
        eval(&rs, &net("127.0.0.1"), "", "bob@mail.example.org"),
        (Some(0), action("local"))
    );
    assert_eq!(
        eval(&rs, &net("::1"), "", "bob@localhost"),
        (Some(0), action("local"))
    );
    assert_eq!(
        eval(&rs, &net("198.51.100.7"), "", "bob@MAIL.example.org"),
        (Some(0), action("local"))
    );
    assert_eq!(
        eval(
            &rs,
            &SessionFacts::new(Source::LocalSocket),
            "",
            "postmaster"
        ),
        (Some(0), action("local"))
    );
    assert_eq!(
        eval(&rs, &net("127.0.0.1"), "", "bob@[127.0.0.1]"),
        (Some(0), action("local"))
    );
    assert_eq!(
        eval(&rs, &net("127.0.0.1"), "", "bob@[IPv6:::1]"),
        (Some(0), action("local"))
    );
    assert_eq!(
        eval(&rs, &net("127.0.0.1"), "", "bob@[192.0.2.1]"),
        (None, Decision::Reject)
    );
    assert_eq!(
        eval(&rs, &net("203.0.113.1"), "", "bob@mail.example.org"),
        (None, Decision::Reject)
    );
    assert_eq!(
        eval(&rs, &net("127.0.0.1"), "", "bob@example.com"),
        (None, Decision::Reject)
    );
    assert!(rs.is_local_domain("LOCALHOST"));
    assert!(!rs.is_local_domain(""));
}

#[test]
fn first_match_wins_and_reject() {
    let rules = vec![
        Rule {
            criteria: vec![
                crit(true, CriterionKind::From(FromCriterion::Src(named("nets")))),
                crit(false, CriterionKind::From(FromCriterion::Any)),
                crit(false, CriterionKind::MailFrom(lit("@example.org"))),
                crit(false, CriterionKind::For(ForCriterion::Any)),
            ],
            decision: Decision::Reject,
        },
        Rule {
            criteria: vec![
                crit(false, CriterionKind::From(FromCriterion::Any)),
                crit(
                    false,
                    CriterionKind::For(ForCriterion::Domain(lit("example.org"))),
                ),
            ],
            decision: action("in"),
        },
    ];
    let rs = Ruleset::new(&config(rules), local()).unwrap();
    assert_eq!(
        eval(
            &rs,
            &net("203.0.113.1"),
            "forged@example.org",
            "a@example.org"
        ),
        (Some(0), Decision::Reject)
    );
    assert_eq!(
        eval(&rs, &net("192.0.2.9"), "real@example.org", "a@example.org"),
        (Some(1), action("in"))
    );
    assert_eq!(
        eval(
            &rs,
            &net("2001:db8::1"),
            "real@example.org",
            "a@example.org"
        ),
        (Some(1), action("in"))
    );
    assert_eq!(
        eval(&rs, &net("203.0.113.1"), "", "a@example.org"),
        (Some(1), action("in"))
    );
    assert_eq!(
        eval(&rs, &net("203.0.113.1"), "x@y", "a@example.net"),
        (None, Decision::Reject)
    );
}

#[test]
fn session_criteria() {
    let any = |kind| {
        vec![
            crit(false, CriterionKind::From(FromCriterion::Any)),
            crit(false, CriterionKind::For(ForCriterion::Any)),
            crit(false, kind),
        ]
    };
    let rules = vec![
        Rule {
            criteria: any(CriterionKind::Tag {
                regex: false,
                tag: "SUBMIT".into(),
            }),
            decision: action("tag"),
        },
        Rule {
            criteria: any(CriterionKind::Tag {
                regex: true,
                tag: "^in-[0-9]+$".into(),
            }),
            decision: action("tagre"),
        },
        Rule {
            criteria: any(CriterionKind::Auth(Some(lit("alice")))),
            decision: action("alice"),
        },
        Rule {
            criteria: any(CriterionKind::Auth(Some(re("^b")))),
            decision: action("b-users"),
        },
        Rule {
            criteria: any(CriterionKind::Auth(None)),
            decision: action("authed"),
        },
        Rule {
            criteria: any(CriterionKind::Helo(lit("*.trusted.example"))),
            decision: action("helo"),
        },
        Rule {
            criteria: any(CriterionKind::From(FromCriterion::Rdns(Some(re(
                "\\.dyn\\.",
            ))))),
            decision: Decision::Reject,
        },
        Rule {
            criteria: any(CriterionKind::Tls),
            decision: action("tls"),
        },
        Rule {
            criteria: any(CriterionKind::From(FromCriterion::Rdns(None))),
            decision: action("rdns"),
        },
    ];
    let rs = Ruleset::new(&config(rules), local()).unwrap();
    let mut s = net("203.0.113.5");
    let go = |s: &SessionFacts| eval(&rs, s, "x@y", "r@z").1;
    assert_eq!(go(&s), Decision::Reject);
    s.rdns = Some("host.example".into());
    assert_eq!(go(&s), action("rdns"));
    s.tls = true;
    assert_eq!(go(&s), action("tls"));
    s.rdns = Some("1-2-3-4.dyn.isp.example".into());
    assert_eq!(go(&s), Decision::Reject);
    s.helo = Some("mx.TRUSTED.example".into());
    assert_eq!(go(&s), action("helo"));
    s.auth_user = Some("carol".into());
    assert_eq!(go(&s), action("authed"));
    s.auth_user = Some("bob".into());
    assert_eq!(go(&s), action("b-users"));
    s.auth_user = Some("ALICE".into());
    assert_eq!(go(&s), action("alice"));
    s.listener_tag = Some("in-42".into());
    assert_eq!(go(&s), action("tagre"));
    s.listener_tag = Some("SUBMIT".into());
    assert_eq!(go(&s), action("tag"));
    s.listener_tag = Some("submit".into());
    assert_eq!(go(&s), action("alice"), "tags compare exactly");
}

#[test]
fn socket_and_src_regex() {
    let rules = vec![
        Rule {
            criteria: vec![crit(false, CriterionKind::From(FromCriterion::Socket))],
            decision: action("sock"),
        },
        Rule {
            criteria: vec![
                crit(false, CriterionKind::From(FromCriterion::Src(re("^10\\.")))),
                crit(
                    false,
                    CriterionKind::For(ForCriterion::RcptTo(re("^[a-z]+@example\\.net$"))),
                ),
            ],
            decision: action("ten"),
        },
    ];
    let rs = Ruleset::new(&config(rules), local()).unwrap();
    assert_eq!(
        eval(
            &rs,
            &SessionFacts::new(Source::LocalSocket),
            "",
            "a@mail.example.org"
        )
        .1,
        action("sock")
    );
    assert_eq!(
        eval(&rs, &net("127.0.0.1"), "", "a@mail.example.org").1,
        Decision::Reject
    );
    assert_eq!(
        eval(&rs, &net("10.1.1.1"), "", "abc@example.net").1,
        action("ten")
    );
    assert_eq!(
        eval(&rs, &net("::ffff:10.1.1.1"), "", "abc@example.net").1,
        action("ten")
    );
    assert_eq!(
        eval(&rs, &net("10.1.1.1"), "", "ab1@example.net").1,
        Decision::Reject
    );
}

#[test]
fn compile_errors_name_the_rule() {
    let bad_table = vec![
        Rule {
            criteria: vec![],
            decision: action("a"),
        },
        Rule {
            criteria: vec![crit(false, CriterionKind::Helo(named("missing")))],
            decision: action("a"),
        },
    ];
    assert_eq!(
        Ruleset::new(&config(bad_table), local()).unwrap_err().rule,
        1
    );
    let bad_re = vec![Rule {
        criteria: vec![crit(false, CriterionKind::Helo(re("(")))],
        decision: action("a"),
    }];
    assert_eq!(Ruleset::new(&config(bad_re), local()).unwrap_err().rule, 0);
    let bad_net = vec![Rule {
        criteria: vec![crit(
            false,
            CriterionKind::From(FromCriterion::Src(lit("not-an-ip"))),
        )],
        decision: action("a"),
    }];
    assert!(Ruleset::new(&config(bad_net), local()).is_err());
    let empty = Ruleset::new(&config(vec![]), local()).unwrap();
    assert!(empty.is_empty());
    assert_eq!(
        eval(&empty, &net("127.0.0.1"), "", "a@localhost"),
        (None, Decision::Reject)
    );
}
