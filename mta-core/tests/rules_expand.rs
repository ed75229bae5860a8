//! From smtpd.conf text to deliveries through the public API: parse, match the rules,
//! then drive the expansion machine with a scripted runtime, as the engine does.

use std::collections::BTreeMap;
use std::sync::Arc;

use mta_core::config::{self, Decision};
use mta_core::expand::{
    Answer, Delivery, ExpandAction, ExpandRequest, Expander, FileLookup, LocalMethod, Question,
    Refusal, UserLookup,
};
use mta_core::rules::{EnvelopeFacts, LocalFacts, Ruleset, SessionFacts, Source};

/// The outcome of one RCPT TO as the engine would compute it.
fn rcpt(
    conf: &str,
    files: &[(&str, &str)],
    users: &[&str],
    src: Source,
    sender: &str,
    recipient: &str,
) -> Result<Vec<Delivery>, Refusal> {
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
    let config =
        config::parse(conf, "smtpd.conf", &[], &mut loader).unwrap_or_else(|e| panic!("{e:?}"));
    let local = LocalFacts {
        domains: vec!["mx.example.org".into(), "localhost".into()],
        addresses: vec![],
    };
    let ruleset = Ruleset::new(&config, local).unwrap();
    let session = SessionFacts::new(src);
    let verdict = ruleset.evaluate(&session, &EnvelopeFacts { sender, recipient });
    let Decision::Action(action) = verdict.decision else {
        return Err(Refusal::not_authorized());
    };
    let request = ExpandRequest {
        session,
        sender: sender.into(),
        recipient: recipient.into(),
        action,
    };
    let mut expander = Expander::new(Arc::new(config), Arc::new(ruleset), request);
    while let Some(action) = expander.poll_action() {
        match action {
            ExpandAction::Ask(id, Question::User { name }) => {
                let found = users.contains(&name.as_str());
                let answer = if found {
                    UserLookup::Found {
                        uid: 1000,
                        gid: 1000,
                        directory: format!("/home/{name}"),
                    }
                } else {
                    UserLookup::NotFound
                };
                expander.handle(id, Answer::User(answer)).unwrap();
            }
            ExpandAction::Ask(id, Question::Forward { user }) => {
                let path = format!("{}/.forward", user.directory);
                let file = files
                    .get(&path)
                    .map_or(FileLookup::Absent, |t| FileLookup::Content(t.clone()));
                expander.handle(id, Answer::File(file)).unwrap();
            }
            ExpandAction::Ask(id, Question::Include { path }) => {
                let file = files
                    .get(&path)
                    .map_or(FileLookup::Absent, |t| FileLookup::Content(t.clone()));
                expander.handle(id, Answer::File(file)).unwrap();
            }
            ExpandAction::Done(result) => return result,
        }
    }
    panic!("expansion ended without a result")
}

fn net(ip: &str) -> Source {
    Source::Network(ip.parse().unwrap())
}

/// (user, method) of each local delivery, `relay:ADDRESS` for relays.
fn summary(result: Result<Vec<Delivery>, Refusal>) -> Vec<String> {
    match result {
        Err(r) => vec![format!("refused {}", r.code)],
        Ok(ds) => ds
            .into_iter()
            .map(|d| match d {
                Delivery::Relay { address, .. } => format!("relay:{address}"),
                Delivery::Local(l) => {
                    let who = l.user.map_or("-".to_string(), |u| u.name);
                    match l.method {
                        LocalMethod::Mbox => format!("{who}:mbox"),
                        LocalMethod::Maildir { path, .. } => format!("{who}:maildir:{path}"),
                        LocalMethod::Mda { command } => format!("{who}:mda:{command}"),
                        LocalMethod::Lmtp { dest, rcpt } => format!("{who}:lmtp:{dest}:{rcpt}"),
                        LocalMethod::File { path } => format!("{who}:file:{path}"),
                        LocalMethod::Command { command } => format!("{who}:command:{command}"),
                    }
                }
            })
            .collect(),
    }
}

#[test]
fn classic_virtual_catch_all_delivers_any_user_of_any_domain_to_gilles() {
    let conf = "listen on lo\naccept for any virtual { \"@\" => gilles } deliver to maildir\n";
    for recipient in [
        "anyone@anywhere.example",
        "root@mx.example.org",
        "a+b@c.example",
    ] {
        let got = summary(rcpt(
            conf,
            &[],
            &["gilles"],
            net("127.0.0.1"),
            "s@x.example",
            recipient,
        ));
        assert_eq!(
            got,
            vec!["gilles:maildir:/home/gilles/Maildir"],
            "{recipient}"
        );
    }
    let got = summary(rcpt(
        conf,
        &[],
        &["gilles"],
        net("203.0.113.1"),
        "s@x.example",
        "a@b.example",
    ));
    assert_eq!(got, vec!["refused 550"]);
}

#[test]
fn aliases_file_in_aliases5_format_with_forward_and_relay() {
    let conf = "table aliases file:/etc/mail/aliases\nlisten on lo\n\
                action \"local_mail\" maildir alias <aliases>\naction \"outbound\" relay\n\
                match from local for local action \"local_mail\"\nmatch from local for any action \"outbound\"\n";
    let files = [
        (
            "/etc/mail/aliases",
            "# system\nroot: gilles, ops@partner.example\npostmaster: root\n",
        ),
        (
            "/home/gilles/.forward",
            "\\gilles\n\"|/usr/bin/notify gilles\"\n",
        ),
    ];
    let got = summary(rcpt(
        conf,
        &files,
        &["gilles"],
        net("127.0.0.1"),
        "",
        "postmaster@mx.example.org",
    ));
    assert_eq!(
        got,
        vec![
            "gilles:maildir:/home/gilles/Maildir",
            "gilles:command:/usr/bin/notify gilles",
            "relay:ops@partner.example",
        ]
    );
    let got = summary(rcpt(
        conf,
        &files,
        &["gilles"],
        net("127.0.0.1"),
        "",
        "nobody@localhost",
    ));
    assert_eq!(got, vec!["refused 550"]);
    let got = summary(rcpt(
        conf,
        &files,
        &[],
        Source::LocalSocket,
        "a@b",
        "x@remote.example",
    ));
    assert_eq!(got, vec!["relay:x@remote.example"]);
}
