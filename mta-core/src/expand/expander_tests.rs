//! Tests of the expansion machine against a scripted runtime (password database and files).

use std::collections::BTreeMap;
use std::sync::Arc;

use quickcheck::quickcheck;

use super::*;
use crate::config::{self, Config};
use crate::rules::{LocalFacts, Ruleset, SessionFacts, Source};

/// The world the runtime would look at.
#[derive(Default)]
struct World {
    users: BTreeMap<String, UserLookup>,
    files: BTreeMap<String, FileLookup>,
}

impl World {
    fn with_users(names: &[&str]) -> World {
        let mut w = World::default();
        for (i, name) in names.iter().enumerate() {
            let uid = 1000 + i as u32;
            let found = UserLookup::Found {
                uid,
                gid: 100,
                directory: format!("/home/{name}"),
            };
            w.users.insert(name.to_string(), found);
        }
        w
    }

    fn file(mut self, path: &str, text: &str) -> World {
        self.files
            .insert(path.into(), FileLookup::Content(text.into()));
        self
    }

    fn answer(&self, q: &Question) -> Answer {
        match q {
            Question::User { name } => Answer::User(
                self.users
                    .get(name)
                    .cloned()
                    .unwrap_or(UserLookup::NotFound),
            ),
            Question::Forward { user } => {
                let path = format!("{}/.forward", user.directory);
                Answer::File(self.files.get(&path).cloned().unwrap_or(FileLookup::Absent))
            }
            Question::Include { path } => {
                Answer::File(self.files.get(path).cloned().unwrap_or(FileLookup::Absent))
            }
        }
    }
}

fn parse(text: &str) -> Config {
    let mut loader = |_: &str| Err("no files".to_string());
    config::parse(text, "smtpd.conf", &[], &mut loader).unwrap_or_else(|e| panic!("{e:?}"))
}

/// Runs an expansion to its end; returns the questions asked and the result.
fn run(conf: &str, world: &World, rcpt: &str) -> (Vec<Question>, Result<Vec<Delivery>, Refusal>) {
    let config = parse(conf);
    let local = LocalFacts {
        domains: vec!["localhost".into(), "example.org".into()],
        addresses: vec![],
    };
    let ruleset = Ruleset::new(&config, local).unwrap();
    let session = SessionFacts::new(Source::Network("127.0.0.1".parse().unwrap()));
    let verdict = ruleset.evaluate(
        &session,
        &crate::rules::EnvelopeFacts {
            sender: "s@x.example",
            recipient: rcpt,
        },
    );
    let crate::config::Decision::Action(action) = verdict.decision else {
        panic!("rejected {rcpt}")
    };
    let request = ExpandRequest {
        session,
        sender: "s@x.example".into(),
        recipient: rcpt.into(),
        action,
    };
    let mut ex = Expander::new(Arc::new(config), Arc::new(ruleset), request);
    assert_eq!(ex.poll_timeout(), None);
    let mut asked = Vec::new();
    for _ in 0..10_000 {
        match ex.poll_action() {
            Some(ExpandAction::Ask(id, q)) => {
                ex.handle(id, world.answer(&q)).unwrap();
                asked.push(q);
            }
            Some(ExpandAction::Done(result)) => {
                assert!(ex.is_done());
                assert_eq!(ex.poll_action(), None);
                return (asked, result);
            }
            None => panic!("expander stalled"),
        }
    }
    panic!("expander never finished")
}

fn user(name: &str, uid: u32) -> LocalUser {
    LocalUser {
        name: name.into(),
        uid,
        gid: 100,
        directory: format!("/home/{name}"),
    }
}

fn local(action: &str, dest: &str, u: Option<LocalUser>, method: LocalMethod) -> Delivery {
    Delivery::Local(LocalDelivery {
        action: action.into(),
        dest: dest.into(),
        user: u,
        method,
    })
}

fn code(r: &Result<Vec<Delivery>, Refusal>) -> (u16, String) {
    let r = r.as_ref().unwrap_err();
    let s = r
        .status
        .map(|s| format!("{}.{}.{}", s.class, s.subject, s.detail))
        .unwrap_or_default();
    (r.code, s)
}

const MBOX: &str = "action \"mb\" mbox\nmatch from local for local action \"mb\"\n";

#[test]
fn system_user_found_unknown_and_tempfail() {
    let world = World::with_users(&["bob"]);
    let (asked, r) = run(MBOX, &world, "Bob@localhost");
    assert_eq!(
        asked,
        vec![
            Question::User { name: "bob".into() },
            Question::Forward {
                user: user("bob", 1000)
            }
        ]
    );
    assert_eq!(
        r.unwrap(),
        vec![local(
            "mb",
            "Bob@localhost",
            Some(user("bob", 1000)),
            LocalMethod::Mbox
        )]
    );
    assert_eq!(
        code(&run(MBOX, &world, "nobody@localhost").1),
        (550, "5.1.1".into())
    );
    let mut flaky = World::default();
    flaky.users.insert("bob".into(), UserLookup::TempFail);
    assert_eq!(
        code(&run(MBOX, &flaky, "bob@localhost").1),
        (451, "4.3.0".into())
    );
    let mut no_fwd = World::with_users(&["bob"]);
    no_fwd
        .files
        .insert("/home/bob/.forward".into(), FileLookup::TempFail);
    assert_eq!(
        code(&run(MBOX, &no_fwd, "bob@localhost").1),
        (451, "4.3.0".into())
    );
}

#[test]
fn sub_address_is_stripped_for_the_user() {
    let conf = "table a { \"bob+lists\" = \"|/usr/bin/sort-lists\" }\n\
                action \"md\" maildir \"~/Mail/%{rcpt.user:strip}\" alias <a>\n\
                match from local for local action \"md\"\n";
    let world = World::with_users(&["bob"]);
    let (_, r) = run(conf, &world, "bob+news@localhost");
    let path = "/home/bob/Mail/bob".to_string();
    assert_eq!(
        r.unwrap(),
        vec![local(
            "md",
            "bob+news@localhost",
            Some(user("bob", 1000)),
            LocalMethod::Maildir { path, junk: false }
        )]
    );
    let (_, r) = run(conf, &world, "bob+lists@localhost");
    let cmd = LocalMethod::Command {
        command: "/usr/bin/sort-lists".into(),
    };
    assert_eq!(
        r.unwrap(),
        vec![local("md", "bob+lists@localhost", None, cmd)]
    );
}

#[test]
fn aliases_recursion_self_reference_and_dedup() {
    let conf =
        "table a { root = \"bob, alice, bob@localhost\", bob = \"bob, |/usr/bin/vacation bob\", \
                alice = \"/var/mail/alice.log\" }\n\
                action \"mb\" mbox alias <a>\nmatch from local for local action \"mb\"\n";
    let world = World::with_users(&["bob", "alice"]);
    let (_, r) = run(conf, &world, "root@localhost");
    assert_eq!(
        r.unwrap(),
        vec![
            local(
                "mb",
                "bob@localhost",
                Some(user("bob", 1000)),
                LocalMethod::Mbox
            ),
            local(
                "mb",
                "bob@localhost",
                None,
                LocalMethod::Command {
                    command: "/usr/bin/vacation bob".into()
                }
            ),
            local(
                "mb",
                "alice@localhost",
                None,
                LocalMethod::File {
                    path: "/var/mail/alice.log".into()
                }
            ),
        ]
    );
}

#[test]
fn alias_loops_and_depth() {
    let conf = "table a { a = b, b = a }\naction \"mb\" mbox alias <a>\nmatch from local for local action \"mb\"\n";
    let (_, r) = run(conf, &World::with_users(&["a"]), "a@localhost");
    assert_eq!(
        r.unwrap(),
        vec![local(
            "mb",
            "a@localhost",
            Some(user("a", 1000)),
            LocalMethod::Mbox
        )]
    );
    assert_eq!(
        code(&run(conf, &World::default(), "a@localhost").1),
        (550, "5.1.1".into())
    );
    let chain: Vec<String> = (0..20).map(|i| format!("u{i} = u{}", i + 1)).collect();
    let conf = format!("table a {{ {} }}\naction \"mb\" mbox alias <a>\nmatch from local for local action \"mb\"\n", chain.join(", "));
    assert_eq!(
        code(&run(&conf, &World::with_users(&["u20"]), "u0@localhost").1),
        (550, "5.4.6".into())
    );
}

#[test]
fn error_targets_refuse_with_their_code() {
    let conf =
        "table a { gone = \"error:550 5.1.6 moved away\", busy = \"error:450 over quota\" }\n\
                action \"mb\" mbox alias <a>\nmatch from local for local action \"mb\"\n";
    let (_, r) = run(conf, &World::default(), "gone@localhost");
    let refusal = r.unwrap_err();
    assert_eq!(
        (refusal.code, refusal.text.as_str()),
        (550, "5.1.6 moved away")
    );
    assert_eq!(
        refusal.status,
        Some(smtp_proto::reply::EnhancedStatus::new(5, 1, 6))
    );
    let (_, r) = run(conf, &World::default(), "busy@localhost");
    let refusal = r.unwrap_err();
    assert!(refusal.is_temporary());
    assert_eq!(refusal.status, None);
    assert_eq!(refusal.to_reply().code, 450);
}

#[test]
fn include_files() {
    let conf = "table a { staff = \":include:/etc/mail/staff\" }\n\
                action \"mb\" mbox alias <a>\naction \"out\" relay\n\
                match from local for local action \"mb\"\nmatch from local for any action \"out\"\n";
    let world = World::with_users(&["bob"]).file(
        "/etc/mail/staff",
        "# staff\nbob\n\"|/bin/cat\", carol@remote.example\n",
    );
    let (asked, r) = run(conf, &world, "staff@localhost");
    assert_eq!(
        asked[0],
        Question::Include {
            path: "/etc/mail/staff".into()
        }
    );
    assert_eq!(
        r.unwrap(),
        vec![
            local(
                "mb",
                "bob@localhost",
                Some(user("bob", 1000)),
                LocalMethod::Mbox
            ),
            local(
                "mb",
                "staff@localhost",
                None,
                LocalMethod::Command {
                    command: "/bin/cat".into()
                }
            ),
            Delivery::Relay {
                action: "out".into(),
                address: "carol@remote.example".into()
            },
        ]
    );
    assert_eq!(
        code(&run(conf, &World::default(), "staff@localhost").1),
        (451, "4.3.0".into())
    );
}

#[test]
fn forward_files() {
    let conf = "action \"mb\" mbox\naction \"out\" relay\n\
                match from local for local action \"mb\"\nmatch from local for any action \"out\"\n";
    let world = World::with_users(&["bob"]).file(
        "/home/bob/.forward",
        "# keep a copy\n\\bob\nbob@elsewhere.example # remote\n\"|/usr/bin/filter -x\"\n",
    );
    let (_, r) = run(conf, &world, "bob@localhost");
    let bob = Some(user("bob", 1000));
    assert_eq!(
        r.unwrap(),
        vec![
            local("mb", "bob@localhost", bob.clone(), LocalMethod::Mbox),
            Delivery::Relay {
                action: "out".into(),
                address: "bob@elsewhere.example".into()
            },
            local(
                "mb",
                "bob@localhost",
                bob,
                LocalMethod::Command {
                    command: "/usr/bin/filter -x".into()
                }
            ),
        ]
    );
    let inc = World::with_users(&["bob"]).file("/home/bob/.forward", ":include:/etc/x\n");
    assert_eq!(
        code(&run(conf, &inc, "bob@localhost").1),
        (451, "4.3.0".into()),
        ":include: is refused in .forward"
    );
    let empty = World::with_users(&["bob"]).file("/home/bob/.forward", "# nothing\n");
    assert_eq!(run(conf, &empty, "bob@localhost").1.unwrap().len(), 1);
}

#[test]
fn classic_virtual_catch_all_delivers_to_gilles() {
    let conf = "listen on lo\naccept for any virtual { \"@\" => gilles } deliver to maildir\n";
    let world = World::with_users(&["gilles"]);
    for rcpt in ["anyone@anywhere.example", "x+y@example.org"] {
        let (_, r) = run(conf, &world, rcpt);
        let dest = format!("gilles@{}", rcpt.rsplit_once('@').unwrap().1);
        let path = "/home/gilles/Maildir".to_string();
        let got = r.unwrap();
        assert_eq!(got.len(), 1);
        let Delivery::Local(d) = &got[0] else {
            panic!()
        };
        assert_eq!(
            (d.dest.as_str(), &d.user, &d.method),
            (
                dest.as_str(),
                &Some(user("gilles", 1000)),
                &LocalMethod::Maildir { path, junk: false }
            )
        );
    }
}

#[test]
fn virtual_with_userbase_and_unknown() {
    let conf = "table v { \"joe@example.org\" = joe, \"@example.org\" = \"error:550 5.1.1 no such user here\" }\n\
                table ub { joe = \"2000:200:/var/vmail/joe\" }\n\
                action \"vm\" maildir \"%{user.directory}/%{dest.domain}\" virtual <v> userbase <ub>\n\
                match from local for domain \"example.org\" action \"vm\"\n";
    let (asked, r) = run(conf, &World::default(), "joe@example.org");
    let joe = LocalUser {
        name: "joe".into(),
        uid: 2000,
        gid: 200,
        directory: "/var/vmail/joe".into(),
    };
    assert_eq!(asked, vec![Question::Forward { user: joe.clone() }]);
    let path = "/var/vmail/joe/example.org".to_string();
    assert_eq!(
        r.unwrap(),
        vec![local(
            "vm",
            "joe@example.org",
            Some(joe),
            LocalMethod::Maildir { path, junk: false }
        )]
    );
    assert_eq!(
        code(&run(conf, &World::default(), "ann@example.org").1),
        (550, "5.1.1".into())
    );
    let no_catchall = "table v { \"joe@example.org\" = joe }\naction \"vm\" mbox virtual <v>\n\
                       match from local for domain \"example.org\" action \"vm\"\n";
    assert_eq!(
        code(&run(no_catchall, &World::default(), "ann@example.org").1),
        (550, "5.1.1".into())
    );
}

#[test]
fn mda_wrapper_lmtp_and_user_option() {
    let conf = "mda wrapper \"w\" \"/usr/bin/wrap -- %{mda}\"\n\
                action \"m\" mda \"/usr/bin/deliver -u %{user.username} -r %{rcpt}\" wrapper \"w\"\n\
                match from local for local action \"m\"\n";
    let (_, r) = run(conf, &World::with_users(&["bob"]), "bob@localhost");
    let command = "/usr/bin/wrap -- /usr/bin/deliver -u bob -r bob@localhost".to_string();
    assert_eq!(
        r.unwrap(),
        vec![local(
            "m",
            "bob@localhost",
            Some(user("bob", 1000)),
            LocalMethod::Mda { command }
        )]
    );
    let conf = "action \"l\" lmtp \"/run/dovecot/lmtp\" rcpt-to user vmail\nmatch from local for local action \"l\"\n";
    let (asked, r) = run(conf, &World::with_users(&["vmail"]), "Ann@example.org");
    assert_eq!(
        asked,
        vec![Question::User {
            name: "vmail".into()
        }],
        "no .forward with `user`"
    );
    let lmtp = LocalMethod::Lmtp {
        dest: "/run/dovecot/lmtp".into(),
        rcpt: "Ann@example.org".into(),
    };
    assert_eq!(
        r.unwrap(),
        vec![local(
            "l",
            "Ann@example.org",
            Some(user("vmail", 1000)),
            lmtp
        )]
    );
}

#[test]
fn forward_only_and_expand_only() {
    let conf = "table a { ext = \"ext@remote.example\", pipe = \"|/bin/true\" }\n\
                action \"fo\" forward-only alias <a>\naction \"out\" relay\n\
                match from local for local action \"fo\"\nmatch from local for any action \"out\"\n";
    let world = World::with_users(&["bob"]);
    let (_, r) = run(conf, &world, "ext@localhost");
    assert_eq!(
        r.unwrap(),
        vec![Delivery::Relay {
            action: "out".into(),
            address: "ext@remote.example".into()
        }]
    );
    assert_eq!(
        code(&run(conf, &world, "pipe@localhost").1),
        (550, "5.1.1".into())
    );
    assert_eq!(
        code(&run(conf, &world, "bob@localhost").1),
        (550, "5.1.1".into())
    );
    let eo = conf.replace("forward-only", "expand-only");
    assert_eq!(run(&eo, &world, "pipe@localhost").1.unwrap().len(), 1);
    assert_eq!(
        code(&run(&eo, &world, "bob@localhost").1),
        (550, "5.1.1".into())
    );
}

#[test]
fn unsafe_addresses_in_paths_are_refused() {
    let conf = "table v { \"@\" = vmail }\naction \"vm\" maildir \"/var/vmail/%{rcpt.user}\" virtual <v>\n\
                match from local for any action \"vm\"\n";
    let world = World::with_users(&["vmail"]);
    assert_eq!(
        code(&run(conf, &world, ".ssh@example.org").1),
        (550, "5.1.3".into())
    );
    let (_, r) = run(conf, &world, "a/b@example.org");
    let Delivery::Local(d) = &r.unwrap()[0] else {
        panic!()
    };
    assert_eq!(
        d.method,
        LocalMethod::Maildir {
            path: "/var/vmail/a:b".into(),
            junk: false
        }
    );
}

#[test]
fn misuse_is_reported() {
    let config = parse(MBOX);
    let ruleset = Ruleset::new(
        &config,
        LocalFacts {
            domains: vec!["localhost".into()],
            addresses: vec![],
        },
    )
    .unwrap();
    let session = SessionFacts::new(Source::LocalSocket);
    let request = ExpandRequest {
        session,
        sender: String::new(),
        recipient: "bob@localhost".into(),
        action: "mb".into(),
    };
    let mut ex = Expander::new(Arc::new(config), Arc::new(ruleset), request);
    let Some(ExpandAction::Ask(id, _)) = ex.poll_action() else {
        panic!()
    };
    assert_eq!(
        ex.handle(QueryId(99), Answer::User(UserLookup::NotFound)),
        Err(ExpandMisuse::UnexpectedAnswer(QueryId(99)))
    );
    assert_eq!(
        ex.handle(id, Answer::File(FileLookup::Absent)),
        Err(ExpandMisuse::WrongAnswer(id))
    );
    assert_eq!(ex.handle(id, Answer::User(UserLookup::NotFound)), Ok(()));
    assert!(matches!(ex.poll_action(), Some(ExpandAction::Done(Err(_)))));
    assert_eq!(
        ex.handle(id, Answer::User(UserLookup::NotFound)),
        Err(ExpandMisuse::UnexpectedAnswer(id))
    );
}

quickcheck! {
    fn arbitrary_recipients_and_aliases_always_finish(rcpt_user: String, keys: Vec<(u8, u8)>, fwd: String) -> bool {
        let names = ["a", "b", "c", "root", "bob"];
        let pairs: Vec<String> = keys.iter().take(12)
            .map(|(k, v)| format!("{} = \"{}, {}@localhost\"", names[*k as usize % 5], names[*v as usize % 5], names[(*k ^ *v) as usize % 5]))
            .collect();
        let table = if pairs.is_empty() { "x = y".to_string() } else { pairs.join(", ") };
        let conf = format!("table a {{ {table} }}\naction \"mb\" mbox alias <a>\nmatch from local for local action \"mb\"\n");
        let world = World::with_users(&["a", "bob"]).file("/home/bob/.forward", &fwd);
        let user: String = rcpt_user.chars().filter(|c| !c.is_whitespace() && *c != '@').take(64).collect();
        let rcpt = format!("{}@localhost", if user.is_empty() { "a" } else { &user });
        let (asked, _) = run(&conf, &world, &rcpt);
        asked.len() <= 2 * MAX_NODES
    }
}
