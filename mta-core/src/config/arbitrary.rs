//! Arbitrary configurations for quickcheck, and the property that printing a configuration
//! and parsing the output gives it back. Only configurations the parser would accept are
//! generated: references point to declared names, tables have the shape their use needs.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr}; // allow-impure: address values, no socket
use std::time::Duration;

use quickcheck::{Arbitrary, Gen, QuickCheck};

use super::model::*;
use super::parse;
use crate::table::{Table, TableEntries, TableSource};

const NAMES: &[&str] = &["a", "b_1", "mail.example.org", "Z9", "local-x", "t0"];
const VALUES: &[&str] = &[
    "example.org",
    "with space",
    "quote\"inside",
    "back\\slash",
    "trailing\\",
    "local",
    "#hash",
    "{brace}",
    "$notamacro",
    "é",
    "%{rcpt.user}",
    "",
];

fn pick<T: Clone>(g: &mut Gen, items: &[T]) -> T {
    g.choose(items)
        .cloned()
        .unwrap_or_else(|| panic!("empty choice"))
}

fn value(g: &mut Gen) -> String {
    pick(g, VALUES).to_string()
}

fn non_empty_value(g: &mut Gen) -> String {
    let v = value(g);
    if v.is_empty() {
        "x".into()
    } else {
        v
    }
}

fn opt<T>(g: &mut Gen, f: impl FnOnce(&mut Gen) -> T) -> Option<T> {
    if bool::arbitrary(g) {
        Some(f(g))
    } else {
        None
    }
}

fn delay(g: &mut Gen) -> Duration {
    Duration::from_secs(u64::from(u32::arbitrary(g)) % 1_000_000 + 1)
}

fn entries(g: &mut Gen, map: bool) -> TableEntries {
    let n = usize::arbitrary(g) % 3 + 1;
    if map {
        TableEntries::Map((0..n).map(|_| (value(g), value(g))).collect())
    } else {
        TableEntries::List((0..n).map(|_| value(g)).collect())
    }
}

/// Names of declared tables of one shape.
fn tables_of(c: &Config, map: bool) -> Vec<String> {
    c.tables
        .iter()
        .filter(|(_, t)| matches!(t.entries, TableEntries::Map(_)) == map)
        .map(|(n, _)| n.clone())
        .collect()
}

fn some_table(g: &mut Gen, c: &Config, map: bool) -> Option<String> {
    let names = tables_of(c, map);
    if names.is_empty() {
        None
    } else {
        Some(pick(g, &names))
    }
}

fn table_match(g: &mut Gen, c: &Config) -> TableMatch {
    let regex = bool::arbitrary(g);
    let table = match (u8::arbitrary(g) % 3, some_table(g, c, false)) {
        (0, Some(n)) => TableRef::Named(n),
        (1, _) => TableRef::Inline(entries(g, false)),
        _ => TableRef::literal(&value(g)),
    };
    TableMatch { regex, table }
}

fn address(g: &mut Gen) -> ListenAddress {
    match u8::arbitrary(g) % 6 {
        5 => ListenAddress::Any,
        0 => ListenAddress::Localhost,
        1 => ListenAddress::Interface(pick(g, &["lo", "eth0", "egress"]).into()),
        2 => ListenAddress::Ip(IpAddr::V4(Ipv4Addr::from(u32::arbitrary(g)))),
        3 => ListenAddress::Ip(IpAddr::V6(Ipv6Addr::from(u128::arbitrary(g)))),
        _ => ListenAddress::Host("mail.example.org".into()),
    }
}

fn listener(g: &mut Gen, c: &Config) -> Listener {
    let mut l = Listener::new(address(g));
    l.family = match l.address {
        ListenAddress::Ip(IpAddr::V4(_)) => pick(g, &[None, Some(Family::Inet4)]),
        ListenAddress::Ip(IpAddr::V6(_)) => pick(g, &[None, Some(Family::Inet6)]),
        _ => pick(g, &[None, Some(Family::Inet4), Some(Family::Inet6)]),
    };
    l.port = u16::arbitrary(g).max(1);
    l.tls = pick(
        g,
        &[
            ListenerTls::None,
            ListenerTls::StartTls,
            ListenerTls::TlsRequire { verify: true },
            ListenerTls::TlsRequire { verify: false },
            ListenerTls::Smtps,
        ],
    );
    let pkis: Vec<String> = c.pki.keys().cloned().collect();
    if !pkis.is_empty() && l.tls != ListenerTls::None && bool::arbitrary(g) {
        l.pki = Some(pick(g, &pkis));
    }
    let cas: Vec<String> = c.ca.keys().cloned().collect();
    if !cas.is_empty() && bool::arbitrary(g) {
        l.ca = Some(pick(g, &cas));
    }
    if l.tls != ListenerTls::None && bool::arbitrary(g) {
        let table = if bool::arbitrary(g) {
            some_table(g, c, true)
        } else {
            None
        };
        l.auth = Some(ListenerAuth {
            table,
            optional: bool::arbitrary(g),
        });
    }
    l.hostname = opt(g, non_empty_value);
    l.hostnames = if bool::arbitrary(g) {
        some_table(g, c, true)
    } else {
        None
    };
    l.tag = opt(g, non_empty_value);
    let filters: Vec<String> = c.filters.keys().cloned().collect();
    if !filters.is_empty() && bool::arbitrary(g) {
        l.filter = Some(pick(g, &filters));
    }
    if let Some(table) = some_table(g, c, true).filter(|_| bool::arbitrary(g)) {
        l.senders = Some(Senders {
            table,
            masquerade: bool::arbitrary(g),
        });
    }
    l.mask_src = bool::arbitrary(g);
    l.no_dsn = bool::arbitrary(g);
    l.proxy_v2 = bool::arbitrary(g);
    l.received_auth = bool::arbitrary(g);
    l
}

fn relay(g: &mut Gen, c: &Config) -> RelayOptions {
    let mut r = RelayOptions::default();
    if bool::arbitrary(g) {
        let scheme = pick(
            g,
            &[
                RelayScheme::Smtp,
                RelayScheme::SmtpTls,
                RelayScheme::SmtpNoTls,
                RelayScheme::Lmtp,
                RelayScheme::Smtps,
            ],
        );
        let host = pick(g, &["mx.example.org", "2001:db8::1", "192.0.2.1"]).to_string();
        let port = if scheme == RelayScheme::Lmtp {
            Some(u16::arbitrary(g).max(1))
        } else {
            opt(g, |g| u16::arbitrary(g).max(1))
        };
        r.host = Some(RelayUrl {
            scheme,
            label: opt(g, |g| pick(g, &["bob", "x_1"]).to_string()),
            host,
            port,
        });
        r.auth = if bool::arbitrary(g) {
            some_table(g, c, true)
        } else {
            None
        };
    }
    r.tls = opt(g, |g| RelayTls {
        no_verify: bool::arbitrary(g),
    });
    let pkis: Vec<String> = c.pki.keys().cloned().collect();
    if !pkis.is_empty() && bool::arbitrary(g) {
        r.pki = Some(pick(g, &pkis));
    }
    if r.host.is_none() {
        r.backup = opt(g, |g| Backup {
            mx: opt(g, non_empty_value),
        });
    }
    r.helo = opt(g, non_empty_value);
    r.helo_src = if bool::arbitrary(g) {
        some_table(g, c, true)
    } else {
        None
    };
    r.domain = if r.host.is_none() && r.backup.is_none() && bool::arbitrary(g) {
        some_table(g, c, true)
    } else {
        None
    };
    r.mail_from = opt(g, non_empty_value);
    r.src = match some_table(g, c, false) {
        Some(n) if bool::arbitrary(g) => Some(TableRef::Named(n)),
        _ => opt(g, |g| TableRef::literal(&non_empty_value(g))),
    };
    r.srs = c.options.srs.key.is_some() && bool::arbitrary(g);
    r
}

fn action(g: &mut Gen, c: &Config) -> Action {
    let method = match u8::arbitrary(g) % 7 {
        0 => DeliveryMethod::Mbox,
        1 => DeliveryMethod::Maildir {
            path: opt(g, non_empty_value),
            junk: bool::arbitrary(g),
        },
        2 => DeliveryMethod::Lmtp {
            dest: non_empty_value(g),
            rcpt_to: bool::arbitrary(g),
        },
        3 => DeliveryMethod::Mda {
            command: non_empty_value(g),
        },
        4 => DeliveryMethod::ForwardOnly,
        5 => DeliveryMethod::ExpandOnly,
        _ => DeliveryMethod::Relay(Box::new(relay(g, c))),
    };
    let mut local = LocalOptions {
        ttl: opt(g, delay),
        ..LocalOptions::default()
    };
    if !matches!(method, DeliveryMethod::Relay(_)) {
        if bool::arbitrary(g) {
            local.alias = some_table(g, c, true);
        } else {
            local.virtual_table = some_table(g, c, true);
        }
        local.userbase = if bool::arbitrary(g) {
            some_table(g, c, true)
        } else {
            None
        };
        if matches!(
            method,
            DeliveryMethod::Maildir { .. }
                | DeliveryMethod::Lmtp { .. }
                | DeliveryMethod::Mda { .. }
        ) {
            local.user = opt(g, non_empty_value);
        }
        let wrappers: Vec<String> = c.options.mda_wrappers.keys().cloned().collect();
        if !wrappers.is_empty() && bool::arbitrary(g) {
            local.wrapper = Some(pick(g, &wrappers));
        }
    }
    Action { method, local }
}

fn rule(g: &mut Gen, c: &Config) -> Rule {
    let from = match u8::arbitrary(g) % 7 {
        0 => FromCriterion::Any,
        1 => FromCriterion::Local,
        2 => FromCriterion::Socket,
        3 => FromCriterion::Src(table_match(g, c)),
        4 => FromCriterion::Auth(opt(g, |g| table_match(g, c))),
        5 => FromCriterion::Rdns(opt(g, |g| table_match(g, c))),
        _ => FromCriterion::MailFrom(table_match(g, c)),
    };
    let target = match u8::arbitrary(g) % 4 {
        0 => ForCriterion::Any,
        1 => ForCriterion::Local,
        2 => ForCriterion::Domain(table_match(g, c)),
        _ => ForCriterion::RcptTo(table_match(g, c)),
    };
    let mut criteria = vec![Criterion {
        negated: bool::arbitrary(g),
        kind: CriterionKind::From(from),
    }];
    let extras = [
        CriterionKind::Auth(opt(g, |g| table_match(g, c))),
        CriterionKind::Helo(table_match(g, c)),
        CriterionKind::MailFrom(table_match(g, c)),
        CriterionKind::RcptTo(table_match(g, c)),
        CriterionKind::Tag {
            regex: bool::arbitrary(g),
            tag: non_empty_value(g),
        },
        CriterionKind::Tls,
    ];
    let from_class = match criteria.first().map(|c| &c.kind) {
        Some(CriterionKind::From(FromCriterion::Auth(_))) => Some("auth"),
        Some(CriterionKind::From(FromCriterion::MailFrom(_))) => Some("mail-from"),
        _ => None,
    };
    for kind in extras {
        let clash = match kind {
            CriterionKind::Auth(_) => from_class == Some("auth"),
            CriterionKind::MailFrom(_) => from_class == Some("mail-from"),
            _ => false,
        };
        if clash {
            continue;
        }
        if u8::arbitrary(g) % 4 == 0 {
            criteria.push(Criterion {
                negated: bool::arbitrary(g),
                kind,
            });
        }
    }
    criteria.push(Criterion {
        negated: bool::arbitrary(g),
        kind: CriterionKind::For(target),
    });
    let actions: Vec<String> = c.actions.keys().cloned().collect();
    let decision = if actions.is_empty() || bool::arbitrary(g) {
        Decision::Reject
    } else {
        Decision::Action(pick(g, &actions))
    };
    Rule { criteria, decision }
}

fn filter(g: &mut Gen, c: &Config) -> Filter {
    let procs: Vec<String> = c.procs.keys().cloned().collect();
    let plain: Vec<String> = c
        .filters
        .iter()
        .filter(|(_, f)| !matches!(f, Filter::Chain(_)))
        .map(|(n, _)| n.clone())
        .collect();
    match u8::arbitrary(g) % 4 {
        0 if !procs.is_empty() => Filter::Proc(pick(g, &procs)),
        1 if !plain.is_empty() => {
            let mut members: Vec<String> = Vec::new();
            for _ in 0..usize::arbitrary(g) % 3 + 1 {
                let m = pick(g, &plain);
                if !members.contains(&m) {
                    members.push(m);
                }
            }
            Filter::Chain(members)
        }
        2 => Filter::ProcExec(ProcExec {
            command: non_empty_value(g),
            user: opt(g, non_empty_value),
            group: opt(g, non_empty_value),
            chroot: opt(g, non_empty_value),
        }),
        _ => {
            let phase = pick(
                g,
                &[
                    FilterPhase::Connect,
                    FilterPhase::Helo,
                    FilterPhase::Ehlo,
                    FilterPhase::MailFrom,
                    FilterPhase::RcptTo,
                    FilterPhase::Data,
                    FilterPhase::Commit,
                ],
            );
            let tm = |g: &mut Gen| TableMatch {
                regex: bool::arbitrary(g),
                table: TableRef::Named(some_table(g, c, false).unwrap_or_default()),
            };
            let has_list = !tables_of(c, false).is_empty();
            let kind = match (u8::arbitrary(g) % 7, has_list) {
                (1, _) => FilterConditionKind::Rdns(if has_list { opt(g, tm) } else { None }),
                (2, _) => FilterConditionKind::Auth(if has_list { opt(g, tm) } else { None }),
                (3, true) => FilterConditionKind::Src(tm(g)),
                (4, true) => FilterConditionKind::Helo(tm(g)),
                (5, true) => FilterConditionKind::MailFrom(tm(g)),
                (6, true) => FilterConditionKind::RcptTo(tm(g)),
                _ => FilterConditionKind::Fcrdns,
            };
            let known_from = match kind {
                FilterConditionKind::Helo(_) => 1,
                FilterConditionKind::Auth(_) | FilterConditionKind::MailFrom(_) => 3,
                FilterConditionKind::RcptTo(_) => 4,
                _ => 0,
            };
            let phases = [
                FilterPhase::Connect,
                FilterPhase::Helo,
                FilterPhase::Ehlo,
                FilterPhase::MailFrom,
                FilterPhase::RcptTo,
                FilterPhase::Data,
                FilterPhase::Commit,
            ];
            let phase = if known_from == 4 {
                FilterPhase::RcptTo
            } else if phases.get(known_from..).is_some_and(|p| p.contains(&phase)) {
                phase
            } else {
                FilterPhase::Data
            };
            let message = || "550 go away".to_string();
            let decision = match u8::arbitrary(g) % 5 {
                0 if phase != FilterPhase::Commit => FilterDecision::Bypass,
                1 if phase != FilterPhase::Commit => FilterDecision::Junk,
                2 => FilterDecision::Disconnect(message()),
                3 => FilterDecision::Rewrite(non_empty_value(g)),
                _ => FilterDecision::Reject(message()),
            };
            Filter::Builtin(BuiltinFilter {
                phase,
                condition: FilterCondition {
                    negated: bool::arbitrary(g),
                    kind,
                },
                decision,
            })
        }
    }
}

fn options(g: &mut Gen) -> GlobalOptions {
    let queue = QueueOptions {
        ttl: opt(g, delay),
        compression: bool::arbitrary(g),
        encryption: opt(g, |g| opt(g, non_empty_value)),
        path: opt(g, non_empty_value),
    };
    let bounce_warn_interval = (0..usize::arbitrary(g) % 5).map(|_| delay(g)).collect();
    let smtp = SmtpOptions {
        max_message_size: opt(g, |g| u64::from(u32::arbitrary(g))),
        max_mails: opt(g, |g| u64::from(u32::arbitrary(g))),
        max_rcpt: opt(g, |g| u64::from(u32::arbitrary(g))),
        sub_addr_delim: opt(g, |g| pick(g, &['+', '-', '"', '#', '%'])),
        ciphers: opt(g, non_empty_value),
    };
    let mta = MtaOptions {
        max_deferred: opt(g, |g| u64::from(u32::arbitrary(g))),
        limits: (0..usize::arbitrary(g) % 3)
            .map(|_| MtaLimit {
                domain: opt(g, non_empty_value),
                key: "max-conn-per-host".into(),
                value: u64::from(u32::arbitrary(g)),
            })
            .collect(),
        resolver: opt(g, non_empty_value),
        mx_port: opt(g, |g| u16::arbitrary(g).max(1)),
    };
    let srs = SrsOptions {
        key: opt(g, non_empty_value),
        backup_key: opt(g, non_empty_value),
        ttl: opt(g, |g| delay(g) + Duration::from_secs(86_400)),
    };
    let admd = opt(g, |g| {
        pick(g, &["example.org", "with space", "#hash", "x"]).to_string()
    });
    let mut mda_wrappers = BTreeMap::new();
    if bool::arbitrary(g) {
        mda_wrappers.insert(pick(g, NAMES).into(), non_empty_value(g));
    }
    let control_socket = opt(g, non_empty_value);
    let metrics = opt(g, |g| MetricsListener {
        address: match u8::arbitrary(g) % 4 {
            0 => IpAddr::V4(Ipv4Addr::LOCALHOST),
            1 => IpAddr::V6(Ipv6Addr::LOCALHOST),
            2 => IpAddr::V4(Ipv4Addr::from(u32::arbitrary(g))),
            _ => IpAddr::V6(Ipv6Addr::from(u128::arbitrary(g))),
        },
        port: opt(g, |g| u16::arbitrary(g).max(1)),
    });
    GlobalOptions {
        queue,
        bounce_warn_interval,
        smtp,
        mta,
        srs,
        admd,
        mda_wrappers,
        control_socket,
        metrics,
    }
}

/// A configuration the parser accepts, built in declaration order.
#[derive(Clone, Debug)]
pub(crate) struct ArbitraryConfig(pub(crate) Config);

impl Arbitrary for ArbitraryConfig {
    fn arbitrary(g: &mut Gen) -> Self {
        let mut c = Config {
            options: options(g),
            ..Config::default()
        };
        for _ in 0..usize::arbitrary(g) % 4 {
            let name = pick(g, NAMES).to_string();
            let map = bool::arbitrary(g);
            let e = entries(g, map);
            c.tables.insert(
                name.clone(),
                Table {
                    name,
                    source: TableSource::Inline,
                    entries: e,
                },
            );
        }
        for _ in 0..usize::arbitrary(g) % 2 {
            let pki = Pki {
                cert: Some(non_empty_value(g)),
                key: Some(non_empty_value(g)),
                dhe: pick(
                    g,
                    &[None, Some(Dhe::None), Some(Dhe::Legacy), Some(Dhe::Auto)],
                ),
            };
            c.pki.insert(pick(g, NAMES).into(), pki);
        }
        if bool::arbitrary(g) {
            c.ca.insert(pick(g, NAMES).into(), non_empty_value(g));
        }
        if bool::arbitrary(g) {
            c.procs.insert(pick(g, NAMES).into(), non_empty_value(g));
        }
        for _ in 0..usize::arbitrary(g) % 4 {
            let f = filter(g, &c);
            let name = pick(g, NAMES).to_string();
            let used_in_chain = c
                .filters
                .values()
                .any(|x| matches!(x, Filter::Chain(m) if m.contains(&name)));
            if !used_in_chain && !c.filters.contains_key(&name) {
                c.filters.insert(name, f);
            }
        }
        c.listeners = (0..usize::arbitrary(g) % 3)
            .map(|_| listener(g, &c))
            .collect();
        if bool::arbitrary(g) {
            let filters: Vec<String> = c.filters.keys().cloned().collect();
            let filter = if filters.is_empty() {
                None
            } else {
                opt(g, |g| pick(g, &filters))
            };
            c.socket_listener = Some(SocketListener {
                filter,
                mask_src: bool::arbitrary(g),
                tag: opt(g, non_empty_value),
            });
        }
        let mut actions = BTreeMap::new();
        for _ in 0..usize::arbitrary(g) % 4 {
            actions.insert(pick(g, NAMES).to_string(), action(g, &c));
        }
        c.actions = actions;
        c.rules = (0..usize::arbitrary(g) % 5 + 1)
            .map(|_| rule(g, &c))
            .collect();
        ArbitraryConfig(c)
    }
}

fn no_files(path: &str) -> Result<String, String> {
    Err(format!("no file {path}"))
}

#[test]
fn printing_then_parsing_gives_the_same_config() {
    fn prop(c: ArbitraryConfig) -> bool {
        let printed = c.0.to_modern_string();
        match parse(&printed, "printed.conf", &[], &mut no_files) {
            Ok(again) if again == c.0 => true,
            Ok(again) => panic!(
                "printed:\n{printed}\nparsed back differently:\n{again:#?}\nexpected:\n{:#?}",
                c.0
            ),
            Err(e) => panic!("printed:\n{printed}\ndoes not parse:\n{e}"),
        }
    }
    QuickCheck::new()
        .tests(300)
        .quickcheck(prop as fn(ArbitraryConfig) -> bool);
}
