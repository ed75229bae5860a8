//! Session-level policy of the engine: AUTH against a credentials table, `senders`,
//! SIZE, and what the `Received:` header says about TLS, AUTH and `mask-src`.

#[path = "engine_harness.rs"]
mod harness;

use bytes::Bytes;
use harness::Harness;
use mta_core::engine::Input;
use smtp_proto::params::MailParams;
use smtp_proto::server::{AuthMechanism, Question, ReqId};
use smtp_proto::types::ReversePath;

const AUTH_CONF: &str = r#"
table creds { "bob" = "$6$salt$hash" }
table sendertab { "bob" = "bob@example.org" }
pki mail.example.org cert "/etc/ssl/mx.crt"
pki mail.example.org key "/etc/ssl/mx.key"
listen on 127.0.0.1 tls pki mail.example.org auth <creds> senders <sendertab> received-auth
action "local" maildir
action "out" relay
match from any for domain "example.org" action "local"
match from any auth for any action "out"
"#;

fn auth(h: &mut Harness, s: mta_core::engine::SessionId, user: &str) -> ReqId {
    h.ask(
        s,
        Question::Auth {
            mechanism: AuthMechanism::Plain,
            authzid: Bytes::new(),
            authcid: Bytes::from(user.to_owned()),
            password: Bytes::from_static(b"secret"),
        },
    )
}

#[test]
fn auth_checks_the_table_hash_through_the_runtime() {
    let mut h = Harness::new(AUTH_CONF);
    let s = h.open();
    h.helo(s);
    // Mail before AUTH is refused on an `auth` (not `auth-optional`) listener.
    let early = h.mail(s, "bob@example.org");
    assert_eq!(h.code(s, early), 530);
    // An unknown user is checked against a decoy (the same work as a wrong password)
    // and refused whatever the check says.
    let unknown = auth(&mut h, s, "mallory");
    assert!(h.answers_to(s, unknown).is_empty());
    let (id, hash) = h.password_checks.pop_front().unwrap();
    let decoy = hash.unwrap();
    assert!(
        decoy.starts_with("$6$") && decoy != "$6$salt$hash",
        "{decoy}"
    );
    h.input(Input::PasswordChecked { id, ok: true });
    assert_eq!(h.code(s, unknown), 535);
    assert!(h
        .logs
        .iter()
        .any(|l| l.contains("authentication user=mallory result=permfail")));
    // A wrong password.
    let wrong = auth(&mut h, s, "bob");
    let (id, hash) = h.password_checks.pop_front().unwrap();
    assert_eq!(hash.as_deref(), Some("$6$salt$hash"));
    assert!(h.answers_to(s, wrong).is_empty());
    h.input(Input::PasswordChecked { id, ok: false });
    assert_eq!(h.code(s, wrong), 535);
    // The right one.
    let right = auth(&mut h, s, "bob");
    let (id, _) = h.password_checks.pop_front().unwrap();
    h.input(Input::PasswordChecked { id, ok: true });
    assert_eq!(h.code(s, right), 235);
    assert!(h
        .logs
        .iter()
        .any(|l| l.contains("authentication user=bob result=ok")));
    // `senders`: bob may only send as himself.
    let other = h.mail(s, "alice@example.org");
    assert_eq!(h.code(s, other), 550);
    let own = h.mail(s, "bob@example.org");
    assert_eq!(h.code(s, own), 250);
    // An authenticated client may relay (`match auth`).
    let rcpt = h.rcpt(s, "someone@remote.test");
    assert_eq!(h.code(s, rcpt), 250);
    h.data(s);
    let header = h.opened.values().next().unwrap();
    let header = std::str::from_utf8(header).unwrap();
    assert!(header.contains(" with ESMTPA id "), "{header}");
    assert!(header.contains("(authenticated as bob)"), "{header}");
    h.end(s, 10, 0);
    let (_, records) = h.commits.front().unwrap();
    let envelope = mta_core::queue::decode(&records[0].1).unwrap();
    assert!(envelope.flags.authenticated);
    assert_eq!(
        envelope.delivery,
        mta_core::queue::DeliveryKind::Relay {
            action: "out".into()
        }
    );
}

#[test]
fn declared_size_above_the_limit_is_refused_at_mail() {
    let conf = format!("smtp max-message-size 1000\n{}", harness::CONF);
    let mut h = Harness::new(&conf);
    let s = h.open();
    h.helo(s);
    let path = ReversePath::parse(Bytes::from_static(b"<alice@remote.test>"), false).unwrap();
    let big = h.ask(
        s,
        Question::MailFrom {
            path: path.clone(),
            params: MailParams {
                size: Some(1001),
                ..MailParams::default()
            },
        },
    );
    assert_eq!(h.code(s, big), 552);
    let fits = h.ask(
        s,
        Question::MailFrom {
            path,
            params: MailParams {
                size: Some(1000),
                ..MailParams::default()
            },
        },
    );
    assert_eq!(h.code(s, fits), 250);
    h.rcpt(s, "bob@example.org");
    h.answer_lookups(&["bob"]);
    h.data(s);
    // A body larger than the limit is refused at its end too.
    let end = h.end(s, 1001, 0);
    assert_eq!(h.code(s, end), 552);
    assert_eq!(h.aborted.len(), 1);
}

#[test]
fn received_header_names_tls_and_hides_a_masked_source() {
    let mut h = Harness::new(harness::CONF);
    let s = h.open();
    h.input(Input::SessionTls {
        session: s,
        protocol: "TLSv1.3".into(),
        cipher: "TLS_AES_256_GCM_SHA384".into(),
    });
    h.helo(s);
    h.mail(s, "alice@remote.test");
    h.rcpt(s, "bob@example.org");
    h.rcpt(s, "carol@example.org");
    h.answer_lookups(&["bob", "carol"]);
    h.data(s);
    let header = h.opened.values().next().unwrap();
    let header = std::str::from_utf8(header).unwrap();
    assert!(header.contains(" with ESMTPS id "), "{header}");
    assert!(
        header.contains("\r\n\t(TLSv1.3:TLS_AES_256_GCM_SHA384)"),
        "{header}"
    );
    assert!(
        !header.contains(" for <"),
        "two recipients: no for clause\n{header}"
    );
    assert_eq!(h.engine.stats().get("smtp.tls"), Some(&1));

    let masked = "listen on 127.0.0.1 mask-src\naction \"local\" maildir\nmatch from any for domain \"example.org\" action \"local\"\n";
    let mut h = Harness::new(masked);
    let s = h.open();
    h.helo(s);
    h.mail(s, "alice@remote.test");
    h.rcpt(s, "bob@example.org");
    h.answer_lookups(&["bob"]);
    h.data(s);
    let header = h.opened.values().next().unwrap();
    let header = std::str::from_utf8(header).unwrap();
    assert!(
        header.starts_with("Received: from client.example.net\r\n\tby "),
        "{header}"
    );
    assert!(!header.contains("192.0.2.1"), "{header}");
}

#[test]
fn unrelated_inputs_are_ignored() {
    let mut h = Harness::new(harness::CONF);
    let ghost = mta_core::engine::SessionId(12345);
    h.ask(ghost, Question::DataStart { chunking: false });
    h.input(Input::BodyAborted { session: ghost });
    h.input(Input::SessionClosed { session: ghost });
    h.input(Input::PasswordChecked {
        id: mta_core::engine::LookupId(9),
        ok: true,
    });
    h.input(Input::Committed {
        msgid: mta_core::queue::MessageId::new(7).unwrap(),
        result: Ok(()),
    });
    h.input(Input::BounceQueued {
        msgid: mta_core::queue::MessageId::new(7).unwrap(),
        result: Ok(()),
    });
    assert!(h.answers.is_empty());
    assert_eq!(h.engine.session_count(), 0);
}

#[test]
fn helo_reply_names_the_listener_host() {
    let conf = "table names { \"127.0.0.1\" = \"mx.one.test\" }\nlisten on 127.0.0.1 hostnames <names>\nlisten on 127.0.0.1 port 2525 hostname mx.two.test\naction \"l\" mbox\nmatch for local action \"l\"\n";
    let mut h = Harness::new(conf);
    for (listener, expected) in [(0, "mx.one.test"), (1, "mx.two.test")] {
        let info = mta_core::engine::SessionInfo {
            listener: Some(listener),
            peer: mta_core::engine::PeerAddr::Inet("192.0.2.1:1".parse().unwrap()),
            local: Some("127.0.0.1:25".parse().unwrap()),
            rdns: None,
            tls: false,
        };
        let s = h.engine.open_session(info, h.now);
        h.drain();
        let helo = h.helo(s);
        let reply = h.answer(s, helo);
        assert!(
            reply.lines[0].starts_with(format!("{expected} Hello").as_bytes()),
            "{reply:?}"
        );
    }
    // The local enqueuer gets the engine's own name.
    let s = h.engine.open_session(
        mta_core::engine::SessionInfo {
            listener: None,
            peer: mta_core::engine::PeerAddr::Local,
            local: None,
            rdns: None,
            tls: false,
        },
        h.now,
    );
    let helo = h.helo(s);
    assert!(h.answer(s, helo).lines[0].starts_with(b"mx.example.org Hello"));
    assert_eq!(h.engine.stats().get("smtp.session.local"), Some(&1));
}

#[test]
fn a_full_spool_refuses_new_mail_for_now() {
    let mut h = Harness::new(harness::CONF);
    let s = h.open();
    h.helo(s);
    h.input(Input::SpoolSpace { available: false });
    let refused = h.mail(s, "alice@remote.test");
    let reply = h.answer(s, refused);
    assert_eq!(
        (reply.code, reply.status),
        (452, Some(smtp_proto::reply::EnhancedStatus::new(4, 3, 1)))
    );
    h.input(Input::SpoolSpace { available: true });
    let accepted = h.mail(s, "alice@remote.test");
    assert_eq!(h.code(s, accepted), 250);
    assert!(h.logs.iter().any(|l| l == "queue: spool full"));
}

#[test]
fn unknown_users_are_refused_even_if_the_decoy_check_says_yes_and_count_as_failures() {
    let mut h = Harness::new(AUTH_CONF);
    let s = h.open();
    h.helo(s);
    let mut codes = Vec::new();
    for user in ["mallory", "eve", "trudy"] {
        let req = auth(&mut h, s, user);
        let (id, hash) = h.password_checks.pop_front().unwrap();
        assert!(hash.is_some_and(|d| d.starts_with("$6$")));
        h.input(Input::PasswordChecked { id, ok: true });
        codes.push(h.code(s, req));
    }
    // The third failure closes the session, as for wrong passwords.
    assert_eq!(codes, [535, 535, 421]);
    assert!(!h.logs.iter().any(|l| l.contains("result=ok")));
}

#[test]
fn the_decoy_of_a_bcrypt_table_has_the_tables_cost() {
    let conf = AUTH_CONF.replace(
        "\"$6$salt$hash\"",
        "\"$2b$12$0123456789012345678901uMZhTDZCLGeplUuLLhCCk2k1a4qTxNvnS\"",
    );
    let mut h = Harness::new(&conf);
    let s = h.open();
    h.helo(s);
    let req = auth(&mut h, s, "mallory");
    let (id, hash) = h.password_checks.pop_front().unwrap();
    let decoy = hash.unwrap();
    assert!(decoy.starts_with("$2b$12$") && decoy.len() == 60, "{decoy}");
    h.input(Input::PasswordChecked { id, ok: false });
    assert_eq!(h.code(s, req), 535);
}
