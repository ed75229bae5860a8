//! Tests of table files and lookups, one group per table kind of table(5).

use std::net::IpAddr;

use super::pattern::{host_matches, mailaddr_matches, strip_subaddress};
use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn list(values: &[&str]) -> Table {
    Table {
        name: "t".into(),
        source: TableSource::Inline,
        entries: TableEntries::List(values.iter().map(|v| v.to_string()).collect()),
    }
}

fn map(pairs: &[(&str, &str)]) -> Table {
    Table {
        name: "t".into(),
        source: TableSource::Inline,
        entries: TableEntries::Map(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
    }
}

#[test]
fn file_list_with_comments_and_blanks() {
    let text = "# domains\nexample.org\n\n  *.example.net   # wildcard\n::1\nipv6:::1\n";
    let t = Table::parse_file("d", "/etc/mail/domains", text).unwrap();
    assert_eq!(t.name, "d");
    assert_eq!(t.source, TableSource::File("/etc/mail/domains".into()));
    assert_eq!(
        t.entries,
        TableEntries::List(vec![
            "example.org".into(),
            "*.example.net".into(),
            "::1".into(),
            "ipv6:::1".into()
        ])
    );
}

#[test]
fn file_map_forms() {
    let text = "root: bob, alice\npostmaster\troot\nbob user:secret\njoe 1000:100:/home/virtual/joe\n::1 localhost\n";
    let t = Table::parse_file("m", "/f", text).unwrap();
    assert_eq!(
        t.entries,
        TableEntries::Map(vec![
            ("root".into(), "bob, alice".into()),
            ("postmaster".into(), "root".into()),
            ("bob".into(), "user:secret".into()),
            ("joe".into(), "1000:100:/home/virtual/joe".into()),
            ("::1".into(), "localhost".into()),
        ])
    );
}

#[test]
fn file_mixed_is_refused_with_line() {
    let err = Table::parse_file("m", "/f", "a b\n\n# c\nlonely\n").unwrap_err();
    assert_eq!(err.line, 4);
    let err = Table::parse_file("m", "/f", "lonely\na b\n").unwrap_err();
    assert_eq!(err.line, 2);
    assert_eq!(
        Table::parse_file("m", "/f", "a\n: b\n").unwrap_err().line,
        2
    );
    assert_eq!(Table::parse_file("m", "/f", ":\n").unwrap_err().line, 1);
}

#[test]
fn file_empty_is_empty_list() {
    let t = Table::parse_file("e", "/f", "# nothing\n\n").unwrap();
    assert_eq!(t.entries, TableEntries::List(vec![]));
    assert!(t.entries.is_empty());
}

#[test]
fn file_too_long_line() {
    let text = format!("ok\n{}\n", "a".repeat(file::MAX_LINE_LEN + 1));
    assert_eq!(Table::parse_file("e", "/f", &text).unwrap_err().line, 2);
}

#[test]
fn domain_lookups() {
    let t = list(&["example.org", "*.example.net"]);
    assert!(t.contains_domain("example.org"));
    assert!(t.contains_domain("EXAMPLE.ORG"));
    assert!(t.contains_domain("example.org."));
    assert!(!t.contains_domain("www.example.org"));
    assert!(t.contains_domain("mx.example.net"));
    assert!(t.contains_domain("a.b.Example.Net"));
    assert!(!t.contains_domain("example.net"));
    assert!(!t.contains_domain("badexample.net"));
    assert!(!t.contains_domain(""));
}

#[test]
fn glob_patterns() {
    assert!(host_matches("mx1.example.org", "mx*.example.org"));
    assert!(!host_matches("www.example.org", "mx*.example.org"));
    assert!(host_matches("anything", "*"));
    assert!(host_matches("a.b.c", "*.*"));
    assert!(!host_matches("abc", "*.*"));
    // Many stars on a long text stay fast and correct.
    let long = "a".repeat(2000);
    assert!(!host_matches(&long, "*a*a*a*a*a*a*b"));
}

#[test]
fn mailaddr_lookups() {
    let t = list(&[
        "bob",
        "@example.org",
        "alice@example.net",
        "carol@*.example.com",
    ]);
    let d = '+';
    assert!(t.contains_mailaddr("bob@anywhere.test", d));
    assert!(t.contains_mailaddr("BOB+tag@anywhere.test", d));
    assert!(t.contains_mailaddr("anyone@EXAMPLE.org", d));
    assert!(t.contains_mailaddr("alice@example.net", d));
    assert!(t.contains_mailaddr("alice+x@example.net", d));
    assert!(!t.contains_mailaddr("alice@other.net", d));
    assert!(t.contains_mailaddr("carol@mx.example.com", d));
    assert!(!t.contains_mailaddr("carol@example.com", d));
    assert!(!t.contains_mailaddr("", d));
    assert!(mailaddr_matches("", "@", d));
    assert!(mailaddr_matches("bob-x@h", "bob", '-'));
    assert_eq!(strip_subaddress("+tag", '+'), "+tag");
    assert_eq!(strip_subaddress("u+a+b", '+'), "u");
}

#[test]
fn netaddr_lookups() {
    let t = list(&[
        "192.168.1.1",
        "10.0.0.0/8",
        "::1",
        "ipv6:2001:db8::/32",
        "[fe80::1]",
    ]);
    assert!(t.contains_ip(ip("192.168.1.1")));
    assert!(!t.contains_ip(ip("192.168.1.2")));
    assert!(t.contains_ip(ip("10.200.3.4")));
    assert!(!t.contains_ip(ip("11.0.0.1")));
    assert!(t.contains_ip(ip("::1")));
    assert!(t.contains_ip(ip("2001:db8:ffff::5")));
    assert!(!t.contains_ip(ip("2001:db9::5")));
    assert!(t.contains_ip(ip("fe80::1")));
    assert!(
        t.contains_ip(ip("::ffff:10.1.2.3")),
        "IPv4-mapped clients match IPv4 networks"
    );
    assert_eq!(t.netmasks().unwrap().len(), 5);
    assert!(list(&["0.0.0.0/0"]).contains_ip(ip("203.0.113.9")));
    assert!(list(&["::ffff:192.0.2.0/120"]).contains_ip(ip("192.0.2.77")));
}

#[test]
fn netaddr_invalid_entries() {
    for bad in [
        "10.0.0.0/33",
        "::/129",
        "1.2.3",
        "10.0.0.0/",
        "10.0.0.0/x",
        "host.example",
    ] {
        let t = list(&[bad]);
        assert!(t.netmasks().is_err(), "{bad}");
        assert!(!t.contains_ip(ip("10.0.0.1")));
    }
}

#[test]
fn source_and_addrname() {
    let t = list(&["192.168.1.2", "ipv6:::3"]);
    assert_eq!(
        t.source_addresses().unwrap(),
        vec![ip("192.168.1.2"), ip("::3")]
    );
    assert!(list(&["10.0.0.0/8"]).source_addresses().is_err());
    let names = map(&[
        ("::1", "localhost"),
        ("127.0.0.1", "localhost4"),
        ("88.190.23.165", "www.opensmtpd.org"),
    ]);
    assert_eq!(
        names.hostname_for(ip("88.190.23.165")),
        Some("www.opensmtpd.org")
    );
    assert_eq!(names.hostname_for(ip("127.0.0.1")), Some("localhost4"));
    assert_eq!(
        names.hostname_for(ip("::ffff:127.0.0.1")),
        Some("localhost4")
    );
    assert_eq!(names.hostname_for(ip("127.0.0.2")), None);
}

#[test]
fn credentials() {
    let listener = map(&[("user1", "$2b$10$hIJ4QfMcp.90nJ")]);
    assert_eq!(
        listener.password_hash("USER1"),
        Some("$2b$10$hIJ4QfMcp.90nJ")
    );
    assert_eq!(listener.password_hash("user2"), None);
    let relay = map(&[("label1", "user:pass:word"), ("bad", "nocolon")]);
    assert_eq!(
        relay.relay_credentials("label1").unwrap(),
        Some(RelayCredentials {
            user: "user".into(),
            password: "pass:word".into()
        })
    );
    assert!(relay.relay_credentials("bad").is_err());
    assert_eq!(relay.relay_credentials("none").unwrap(), None);
}

#[test]
fn userinfo() {
    let t = map(&[
        ("joe", "1000:100:/home/virtual/joe"),
        ("bad", "x:100:/h"),
        ("nodir", "1:2:"),
    ]);
    assert_eq!(
        t.user_info("joe").unwrap(),
        Some(UserInfo {
            uid: 1000,
            gid: 100,
            directory: "/home/virtual/joe".into()
        })
    );
    assert!(t.user_info("bad").is_err());
    assert!(t.user_info("nodir").is_err());
    assert_eq!(t.user_info("jack").unwrap(), None);
}

#[test]
fn relay_domains_and_senders() {
    let t = map(&[
        ("example.org", "smtp://mx.example.org"),
        ("*.example.net", "smtps://relay.example.net"),
    ]);
    assert_eq!(
        t.relay_for_domain("EXAMPLE.org"),
        Some("smtp://mx.example.org")
    );
    assert_eq!(
        t.relay_for_domain("a.example.net"),
        Some("smtps://relay.example.net")
    );
    assert_eq!(t.relay_for_domain("example.com"), None);
    let senders = map(&[("bob", "bob@example.org, @example.net")]);
    assert!(senders.sender_allowed("bob", "bob+x@example.org", '+'));
    assert!(senders.sender_allowed("bob", "anyone@example.net", '+'));
    assert!(!senders.sender_allowed("bob", "alice@example.org", '+'));
    assert!(!senders.sender_allowed("eve", "bob@example.org", '+'));
}

#[test]
fn alias_values() {
    let t = map(&[
        (
            "root",
            "bob, \"|/usr/bin/vacation -a x,y\", /var/log/root.mail",
        ),
        ("list", ":include:/etc/mail/list, carol@example.org"),
        ("gone", "error:550 5.1.1 user has moved"),
        ("bob", "bob"),
    ]);
    assert_eq!(
        t.alias_targets("root", '+').unwrap().unwrap(),
        vec![
            AliasTarget::User("bob".into()),
            AliasTarget::Command("/usr/bin/vacation -a x,y".into()),
            AliasTarget::File("/var/log/root.mail".into()),
        ]
    );
    assert_eq!(
        t.alias_targets("LIST+x", '+').unwrap().unwrap(),
        vec![
            AliasTarget::Include("/etc/mail/list".into()),
            AliasTarget::Address {
                user: "carol".into(),
                domain: "example.org".into()
            },
        ]
    );
    assert_eq!(
        t.alias_targets("gone", '+').unwrap().unwrap(),
        vec![AliasTarget::Error {
            code: 550,
            message: "5.1.1 user has moved".into()
        }]
    );
    assert_eq!(t.alias_targets("nobody", '+').unwrap(), None);
}

#[test]
fn alias_target_errors() {
    for bad in [
        "",
        "error:250 ok",
        "error:550",
        "error:55x no",
        ":include:relative",
        "a b",
        "@example.org",
        "u@",
        "|",
        "a\nb",
        "x/y",
    ] {
        assert!(AliasTarget::parse(bad).is_err(), "{bad:?}");
    }
    assert_eq!(
        AliasTarget::parse("error:451 try later")
            .unwrap()
            .to_string(),
        "error:451 try later"
    );
    assert_eq!(
        split_alias_list(" a ,, b,\"c,d\" "),
        vec!["a", "b", "\"c,d\""]
    );
}

#[test]
fn virtual_lookup_order() {
    let t = map(&[
        ("bob+vip@example.org", "vip"),
        ("bob@example.org", "bob-exact"),
        ("carol", "carol-user"),
        ("@example.org", "domain-catchall"),
        ("@", "global-catchall"),
    ]);
    let first = |a: &str| t.virtual_targets(a, '+').unwrap().map(|v| v[0].to_string());
    assert_eq!(first("bob+vip@example.org").as_deref(), Some("vip"));
    assert_eq!(first("bob+other@example.org").as_deref(), Some("bob-exact"));
    assert_eq!(first("carol@example.net").as_deref(), Some("carol-user"));
    assert_eq!(
        first("dave@example.org").as_deref(),
        Some("domain-catchall")
    );
    assert_eq!(
        first("dave@example.com").as_deref(),
        Some("global-catchall")
    );
    let no_catchall = map(&[("carol", "c")]);
    assert_eq!(
        no_catchall
            .virtual_targets("dave@example.org", '+')
            .unwrap(),
        None
    );
}

#[test]
fn regex_lists() {
    let re = RegexList::compile([
        "^mx[0-9]+\\.example\\.(org|net)$",
        "[[:digit:]]{1,3}-[[:digit:]]+",
    ])
    .unwrap();
    assert!(re.is_match("mx12.example.net"));
    assert!(!re.is_match("mx.example.net"));
    assert!(re.is_match("host-192-0.dyn.example"));
    assert!(
        !re.is_match("MX1.EXAMPLE.ORG"),
        "case matters as with regexec(3)"
    );
    assert!(RegexList::compile(["(?i)^mx"]).unwrap().is_match("MX1"));
    assert!(RegexList::compile(["(unclosed"]).is_err());
    assert!(RegexList::compile([&*"a".repeat(regex::MAX_PATTERN_LEN + 1)]).is_err());
    assert!(
        RegexList::compile(["(a{1,1000}){1,1000}"]).is_err(),
        "compiled size is bounded"
    );
}

#[test]
fn entries_helpers() {
    let t = map(&[("Key", "v1"), ("key", "v2")]);
    assert_eq!(t.entries.get("KEY"), Some("v1"));
    assert!(t.entries.contains_key("kEy"));
    assert_eq!(t.entries.len(), 2);
    assert_eq!(list(&["a"]).entries.get("a"), None);
    assert_eq!(map(&[("root:", "bob")]).entries.get("ROOT"), Some("bob"));
    assert_eq!(map(&[(":", "x")]).entries.get(""), None);
}

quickcheck::quickcheck! {
    fn parse_file_never_panics(text: String) -> bool {
        match Table::parse_file("q", "/q", &text) {
            Ok(t) => t.entries.keys().all(|k| !k.is_empty() && !k.contains('#')),
            Err(e) => e.line >= 1,
        }
    }

    fn list_files_round_trip(values: Vec<String>) -> bool {
        let values: Vec<String> = values
            .into_iter()
            .map(|v| v.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '@' | '-')).collect::<String>())
            .filter(|v| !v.is_empty())
            .collect();
        let text: String = values.iter().map(|v| format!("{v}  # comment\n")).collect();
        Table::parse_file("q", "/q", &text).unwrap().entries == TableEntries::List(values)
    }

    fn hosts_match_themselves_and_star(host: String) -> bool {
        let host: String = host.chars().filter(|&c| c != '*').collect();
        host_matches(&host, &host.to_ascii_uppercase()) && host_matches(&host, "*")
    }

    fn netmask_contains_its_address(a: u32, b: u128, prefix: u8) -> bool {
        let v4 = Netmask { addr: IpAddr::from(a.to_be_bytes()), prefix: prefix % 33 };
        let v6 = Netmask { addr: IpAddr::from(b.to_be_bytes()), prefix: prefix % 129 };
        v4.contains(v4.addr) && v6.contains(v6.addr) && v4.to_string().parse::<Netmask>() == Ok(v4)
    }
}
