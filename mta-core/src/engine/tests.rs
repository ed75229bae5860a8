//! Unit tests of the engine's pure helpers.

use super::*;
use crate::expand::{LocalMethod, LocalUser};

#[test]
fn method_spec_round_trips() {
    let user = LocalUser {
        name: "bob".into(),
        uid: 1000,
        gid: 100,
        directory: "/home/b:ob".into(),
    };
    let methods = [
        LocalMethod::Mbox,
        LocalMethod::Maildir {
            path: "/home/bob/Maildir".into(),
            junk: false,
        },
        LocalMethod::Maildir {
            path: "/x:y".into(),
            junk: true,
        },
        LocalMethod::Mda {
            command: "/usr/bin/procmail -f -".into(),
        },
        LocalMethod::Lmtp {
            dest: "127.0.0.1:24".into(),
            rcpt: "bob@example.org".into(),
        },
        LocalMethod::File {
            path: "/var/log/mail:copy".into(),
        },
        LocalMethod::Command {
            command: "cat > /dev/null".into(),
        },
    ];
    for method in methods {
        for user in [None, Some(user.clone())] {
            let spec = LocalMethodSpec {
                user,
                method: method.clone(),
            };
            let (u, m) = spec.format();
            assert_eq!(LocalMethodSpec::parse(&u, &m), Ok(spec));
        }
    }
}

#[test]
fn method_spec_refuses_garbage() {
    assert_eq!(
        LocalMethodSpec::parse("", "carrier-pigeon:x"),
        Err(MethodSpecError::Method)
    );
    assert_eq!(
        LocalMethodSpec::parse("", "mboxx"),
        Err(MethodSpecError::Method)
    );
    assert_eq!(
        LocalMethodSpec::parse("", "lmtp:no-tab"),
        Err(MethodSpecError::Method)
    );
    assert_eq!(
        LocalMethodSpec::parse("bob:x:1:/h", "mbox"),
        Err(MethodSpecError::User)
    );
    assert_eq!(
        LocalMethodSpec::parse("bob", "mbox"),
        Err(MethodSpecError::User)
    );
}

#[test]
fn received_counter_counts_header_fields_only() {
    let msg = b"Received: a\r\nreceived : b\r\n c\r\nX-Received: d\r\nRECEIVED:e\r\n\r\nReceived: body\r\n";
    let mut counter = ReceivedCounter::new();
    counter.feed(msg);
    assert_eq!(counter.count(), 3);
    assert!(counter.header_done());
    assert_eq!(crate::bounce::count_received_headers(msg), 3);
}

quickcheck::quickcheck! {
    fn received_counter_agrees_with_bounce(parts: Vec<(u8, Vec<u8>)>, cuts: Vec<usize>) -> bool {
        let pieces: [&[u8]; 8] = [b"Received", b"rECEIVED", b":", b" ", b"\r\n", b"\n", b"\r", b"x"];
        let mut msg = Vec::new();
        for (k, extra) in &parts {
            msg.extend_from_slice(pieces.get(usize::from(*k) % pieces.len()).copied().unwrap_or_default());
            if extra.len().is_multiple_of(5) {
                msg.extend_from_slice(extra);
            }
        }
        let mut counter = ReceivedCounter::new();
        let mut rest: &[u8] = &msg;
        for cut in cuts {
            let at = if rest.is_empty() { 0 } else { cut % rest.len() };
            let (a, b) = rest.split_at(at);
            counter.feed(a);
            rest = b;
        }
        counter.feed(rest);
        counter.count() == crate::bounce::count_received_headers(&msg)
    }
}

quickcheck::quickcheck! {
    fn method_spec_round_trips_arbitrary_text(
        name: String, uid: u32, gid: u32, directory: String, kind: u8, text: String, rcpt: String
    ) -> bool {
        // What the format relies on: user names hold no colon, addresses no tab.
        let name = name.replace(':', "");
        let rcpt = rcpt.replace('\t', "");
        let method = match kind % 7 {
            0 => LocalMethod::Mbox,
            1 => LocalMethod::Maildir { path: text, junk: false },
            2 => LocalMethod::Maildir { path: text, junk: true },
            3 => LocalMethod::Mda { command: text },
            4 => LocalMethod::Lmtp { dest: text, rcpt },
            5 => LocalMethod::File { path: text },
            _ => LocalMethod::Command { command: text },
        };
        let user = (!name.is_empty()).then_some(LocalUser { name, uid, gid, directory });
        let spec = LocalMethodSpec { user, method };
        let (u, m) = spec.format();
        LocalMethodSpec::parse(&u, &m) == Ok(spec)
    }
}

#[test]
fn the_engine_can_be_shared_between_threads() {
    // The thread-per-connection runtime keeps one engine behind a mutex.
    use std::marker::PhantomData;
    fn shareable<T: Send + 'static>(_: PhantomData<T>) -> bool {
        true
    }
    assert!(shareable(PhantomData::<Engine>));
    assert!(shareable(PhantomData::<Action>));
    assert!(shareable(PhantomData::<Input>));
}

#[test]
fn replace_table_swaps_contents_and_refuses_unknown_names() {
    let text = "table users { \"alice\" }\nlisten on 127.0.0.1\naction \"d\" maildir\nmatch from any for rcpt-to <users> action \"d\"\n";
    let config = crate::config::parse(text, "t.conf", &[], &mut |p| Err(p.to_owned())).unwrap();
    let start = UnixTime::from_millis(0);
    let mut engine = Engine::new(Arc::new(config), EngineFacts::new("mx.test", 7), start).unwrap();
    let mut users = engine.config().tables["users"].clone();
    users.entries = crate::table::TableEntries::List(vec!["bob".to_owned()]);
    engine.replace_table(users).unwrap();
    assert!(engine.config().tables["users"].entries.contains_key("bob"));
    assert!(!engine.config().tables["users"]
        .entries
        .contains_key("alice"));
    let mut ghost = engine.config().tables["users"].clone();
    ghost.name = "ghost".to_owned();
    assert_eq!(
        engine.replace_table(ghost),
        Err("no such table: ghost".to_owned())
    );
}
