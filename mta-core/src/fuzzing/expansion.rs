//! Harness for format specifiers and recipient expansion: fuzz bytes choose the template,
//! the addresses, the alias and virtual tables and every answer of the runtime.
//!
//! Invariants checked: nothing panics; an expanded value is bounded and holds no control
//! character; an address never makes a fixed safe template produce `/..`, a hidden path
//! component or a character outside the safe set; the expander always finishes within a
//! bounded number of questions, accepts every well-formed answer, and returns
//! deduplicated deliveries.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::{
    Action, Config, Criterion, CriterionKind, Decision, DeliveryMethod, ForCriterion,
    FromCriterion, LocalOptions, Rule, TableMatch, TableRef,
};
use crate::expand::format::{is_safe_char, MAX_EXPANSION_LEN};
use crate::expand::{
    expand_format, Answer, ExpandAction, ExpandRequest, Expander, FileLookup, FormatContext,
    Question, UserLookup, MAX_NODES,
};
use crate::rules::{EnvelopeFacts, LocalFacts, Ruleset, SessionFacts, Source};
use crate::table::Table;

/// Runs both harnesses on one input.
pub fn expand(data: &[u8]) {
    let mut parts = data.split(|&b| b == 0xff);
    let mut next = || String::from_utf8_lossy(parts.next().unwrap_or(&[])).into_owned();
    let (template, rcpt, sender, aliases, virtuals, file) =
        (next(), next(), next(), next(), next(), next());
    let answers: Vec<u8> = data.iter().rev().take(64).copied().collect();
    format_harness(&template, &rcpt, &sender);
    expansion_harness(&rcpt, &sender, &aliases, &virtuals, &file, &answers);
}

fn format_harness(template: &str, rcpt: &str, sender: &str) {
    let ctx = FormatContext {
        sender,
        rcpt,
        dest: rcpt,
        user_name: "vmail",
        user_directory: "/var/vmail",
        mda: Some("/usr/bin/mda"),
        sub_addr_delim: '+',
    };
    if let Ok(out) = expand_format(template, &ctx) {
        assert!(out.len() <= MAX_EXPANSION_LEN);
        assert!(!out.chars().any(char::is_control));
    }
    let safe = "/var/mail/%{rcpt.domain:lowercase}/%{rcpt.user:strip}/%{sender[1:]}";
    if let Ok(out) = expand_format(safe, &ctx) {
        assert!(!out.contains("/."), "{out:?}");
        assert!(out.chars().all(|c| c == '/' || is_safe_char(c)), "{out:?}");
    }
}

fn map_table(name: &str, text: &str) -> Table {
    Table::parse_file(name, "/fuzz", text).unwrap_or(Table {
        name: name.into(),
        source: crate::table::TableSource::Inline,
        entries: crate::table::TableEntries::Map(vec![("x".into(), "y".into())]),
    })
}

fn rule(domain: &str, action: &str) -> Rule {
    let domain = TableMatch {
        regex: false,
        table: TableRef::literal(domain),
    };
    Rule {
        criteria: vec![
            Criterion {
                negated: false,
                kind: CriterionKind::From(FromCriterion::Any),
            },
            Criterion {
                negated: false,
                kind: CriterionKind::For(ForCriterion::Domain(domain)),
            },
        ],
        decision: Decision::Action(action.into()),
    }
}

fn config(aliases: &str, virtuals: &str) -> Config {
    let mut c = Config::default();
    c.tables.insert("a".into(), map_table("a", aliases));
    c.tables.insert("v".into(), map_table("v", virtuals));
    let local = LocalOptions {
        alias: Some("a".into()),
        ..LocalOptions::default()
    };
    let virt = LocalOptions {
        virtual_table: Some("v".into()),
        ..LocalOptions::default()
    };
    let maildir = DeliveryMethod::Maildir {
        path: Some("/var/vmail/%{dest.domain}/%{dest.user}".into()),
        junk: false,
    };
    c.actions.insert(
        "local".into(),
        Action {
            method: DeliveryMethod::Mbox,
            local,
        },
    );
    c.actions.insert(
        "vm".into(),
        Action {
            method: maildir,
            local: virt,
        },
    );
    let relay = DeliveryMethod::Relay(Box::default());
    c.actions.insert(
        "out".into(),
        Action {
            method: relay,
            local: LocalOptions::default(),
        },
    );
    c.rules = vec![
        rule("localhost", "local"),
        rule("example.org", "vm"),
        rule("*", "out"),
    ];
    c
}

fn expansion_harness(
    rcpt: &str,
    sender: &str,
    aliases: &str,
    virtuals: &str,
    file: &str,
    answers: &[u8],
) {
    let config = config(aliases, virtuals);
    let local = LocalFacts {
        domains: vec!["localhost".into(), "example.org".into()],
        addresses: vec![],
    };
    let Ok(ruleset) = Ruleset::new(&config, local) else {
        return;
    };
    let session = SessionFacts::new(Source::Network([192, 0, 2, 1].into()));
    let verdict = ruleset.evaluate(
        &session,
        &EnvelopeFacts {
            sender,
            recipient: rcpt,
        },
    );
    let Decision::Action(action) = verdict.decision else {
        return;
    };
    let request = ExpandRequest {
        session,
        sender: sender.into(),
        recipient: rcpt.into(),
        action,
    };
    let mut expander = Expander::new(Arc::new(config), Arc::new(ruleset), request);
    let mut asked = 0usize;
    let mut users: BTreeMap<String, UserLookup> = BTreeMap::new();
    loop {
        match expander.poll_action() {
            Some(ExpandAction::Ask(id, question)) => {
                let choice = answers
                    .get(asked % answers.len().max(1))
                    .copied()
                    .unwrap_or(0);
                asked += 1;
                assert!(asked <= 2 * MAX_NODES + 2, "too many questions");
                let answer = match question {
                    Question::User { name } => Answer::User(
                        users
                            .entry(name)
                            .or_insert_with(|| match choice % 3 {
                                0 => UserLookup::Found {
                                    uid: 1000,
                                    gid: 100,
                                    directory: "/home/u".into(),
                                },
                                1 => UserLookup::NotFound,
                                _ => UserLookup::TempFail,
                            })
                            .clone(),
                    ),
                    Question::Forward { .. } | Question::Include { .. } => {
                        Answer::File(match choice % 3 {
                            0 => FileLookup::Absent,
                            1 => FileLookup::TempFail,
                            _ => FileLookup::Content(file.into()),
                        })
                    }
                };
                expander.handle(id, answer).unwrap();
            }
            Some(ExpandAction::Done(result)) => {
                if let Ok(deliveries) = result {
                    assert!(!deliveries.is_empty());
                    for (i, d) in deliveries.iter().enumerate() {
                        assert!(!deliveries[..i].contains(d), "duplicate delivery {d:?}");
                    }
                }
                assert!(expander.poll_action().is_none());
                return;
            }
            None => panic!("expander stalled without finishing"),
        }
    }
}

#[cfg(test)]
mod tests {
    quickcheck::quickcheck! {
        fn harness_holds_on_arbitrary_bytes(data: Vec<u8>) -> bool {
            super::expand(&data);
            true
        }
    }

    #[test]
    fn harness_reaches_deep_paths() {
        let cases: [&[u8]; 3] = [
            b"/m/%{rcpt.user}\xffroot@localhost\xffs@x\xffroot bob, |/bin/x, carol@example.org\xff@ vmail\xffbob\n\xff\x00\x02\x00",
            b"%{rcpt[2:-1]:lowercase|strip}\xffa+b@example.org\xff\xffa a\xffa+b@example.org error:550 gone\xff\xff",
            b"~/%{mda}\xff..@localhost\xff\xff..: :include:/x\xff\xff\"|cmd\" # c\n\xff\x02\x02\x02",
        ];
        for case in cases {
            super::expand(case);
        }
    }
}
