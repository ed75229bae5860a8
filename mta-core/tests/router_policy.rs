//! The router in memory: fake clock, fake MX sets, scripted session results.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use mta_core::queue::{EnvelopeId, Failure};
use mta_core::routing::{
    Action, ConnId, Destination, Input, Limits, MxError, MxHost, MxLevel, MxQuery, MxSet, RouteKey,
    Router, RouterConfig, TlsPolicy,
};
use mta_core::scheduler::Outcome;
use mta_core::time::UnixTime;
use smtp_proto::reply::EnhancedStatus;

fn t(secs: u64) -> UnixTime {
    UnixTime::from_secs(2_000_000_000 + secs)
}

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
}

fn env(message: u32, n: u32) -> EnvelopeId {
    EnvelopeId::new((u64::from(message) << 32) | u64::from(n)).unwrap()
}

/// A set of levels: (preference, [(name, address byte)]).
fn set(levels: &[(u16, &[(&str, u8)])]) -> MxSet {
    MxSet {
        levels: levels
            .iter()
            .map(|(preference, hosts)| MxLevel {
                preference: *preference,
                hosts: hosts
                    .iter()
                    .map(|(n, a)| MxHost {
                        name: (*n).into(),
                        addrs: vec![ip(*a)],
                    })
                    .collect(),
            })
            .collect(),
        ttl: 300,
    }
}

struct Harness {
    router: Router,
    now: UnixTime,
    actions: Vec<Action>,
}

impl Harness {
    fn new(config: RouterConfig) -> Self {
        Harness {
            router: Router::new(config, 42),
            now: t(0),
            actions: Vec::new(),
        }
    }

    fn feed(&mut self, input: Input) -> Vec<Action> {
        self.router.handle(input, self.now);
        let new: Vec<Action> = std::iter::from_fn(|| self.router.poll_action()).collect();
        self.actions.extend(new.iter().cloned());
        new
    }

    fn envelope(&mut self, domain: &str, id: EnvelopeId) -> Vec<Action> {
        self.feed(Input::Envelope {
            route: RouteKey::mx(domain),
            id,
        })
    }

    fn resolved(&mut self, domain: &str, result: Result<MxSet, MxError>) -> Vec<Action> {
        self.feed(Input::Resolved {
            query: MxQuery::domain(domain),
            result,
        })
    }

    fn advance(&mut self, secs: u64) -> Vec<Action> {
        self.now = self.now.saturating_add(Duration::from_secs(secs));
        self.feed(Input::Tick)
    }
}

fn connects(actions: &[Action]) -> Vec<(ConnId, SocketAddr)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Connect { conn, addr, .. } => Some((*conn, *addr)),
            _ => None,
        })
        .collect()
}

fn sends(actions: &[Action]) -> Vec<(ConnId, Vec<EnvelopeId>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SendMessage { conn, envelopes } => Some((*conn, envelopes.clone())),
            _ => None,
        })
        .collect()
}

fn temp_failed(actions: &[Action]) -> Vec<EnvelopeId> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::EnvelopeTempFail { ids, .. } => Some(ids.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn resolves(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::Resolve(_)))
        .count()
}

fn logs(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Log(line) => Some(line.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn one_dns_query_serves_every_envelope_of_a_domain() {
    let mut h = Harness::new(RouterConfig::default());
    let mut first = Vec::new();
    for m in 1..=20 {
        first.extend(h.envelope("Example.org", env(m, 1)));
    }
    let other_src = RouteKey {
        src: Some(ip(200)),
        ..RouteKey::mx("example.org")
    };
    first.extend(h.feed(Input::Envelope {
        route: other_src,
        id: env(99, 1),
    }));
    assert_eq!(resolves(&first), 1);
    assert_eq!(first[0], Action::Resolve(MxQuery::domain("example.org")));
    assert!(
        connects(&first).is_empty(),
        "nothing is opened before the answer"
    );
    let after = h.resolved("example.org", Ok(set(&[(10, &[("mx1.example.org", 1)])])));
    assert_eq!(resolves(&after), 0);
    assert!(!connects(&after).is_empty());
    // The set is reused while its TTL runs, then asked again.
    h.advance(100);
    assert_eq!(resolves(&h.envelope("example.org", env(50, 1))), 0);
    let mut later = h.advance(300);
    later.extend(h.envelope("example.org", env(51, 1)));
    assert_eq!(resolves(&later), 1);
}

#[test]
fn equal_preference_sessions_spread_and_limits_hold() {
    let config = RouterConfig {
        limits: Limits {
            max_conn_per_host: 2,
            max_conn_per_route: 5,
            ..Limits::default()
        },
        ..RouterConfig::default()
    };
    let mut h = Harness::new(config);
    for m in 1..=50 {
        h.envelope("example.org", env(m, 1));
    }
    let actions = h.resolved(
        "example.org",
        Ok(set(&[
            (10, &[("a", 1), ("b", 2), ("c", 3)]),
            (20, &[("backup", 9)]),
        ])),
    );
    let opened = connects(&actions);
    assert_eq!(opened.len(), 5, "max-conn-per-route");
    let mut per_host: BTreeMap<SocketAddr, usize> = BTreeMap::new();
    for (_, addr) in &opened {
        *per_host.entry(*addr).or_default() += 1;
    }
    assert_eq!(
        per_host.len(),
        3,
        "spread over the three equal MXs: {per_host:?}"
    );
    assert!(per_host.values().all(|n| *n <= 2), "max-conn-per-host");
    assert!(
        !per_host.contains_key(&SocketAddr::new(ip(9), 25)),
        "the backup is not used"
    );
    assert_eq!(h.router.connections(), 5);
}

#[test]
fn sessions_are_reused_for_the_next_message() {
    let mut h = Harness::new(RouterConfig::default());
    h.envelope("example.org", env(1, 1));
    h.envelope("example.org", env(1, 2));
    h.envelope("example.org", env(2, 1));
    let opened = connects(&h.resolved("example.org", Ok(set(&[(0, &[("mx", 1)])]))));
    assert_eq!(opened.len(), 2, "one session per waiting message");
    let (conn, addr) = opened[0];
    assert_eq!(addr, SocketAddr::new(ip(1), 25));
    let sent = sends(&h.feed(Input::ConnectResult {
        conn,
        result: Ok(()),
    }));
    assert_eq!(
        sent,
        vec![(conn, vec![env(1, 1), env(1, 2)])],
        "the envelopes of one message go together"
    );
    let results = vec![
        (env(1, 1), Outcome::Delivered),
        (env(1, 2), Outcome::Delivered),
    ];
    let after = h.feed(Input::SessionOutcome { conn, results });
    assert!(after.contains(&Action::EnvelopeDelivered {
        ids: vec![env(1, 1), env(1, 2)]
    }));
    assert_eq!(
        sends(&after),
        vec![(conn, vec![env(2, 1)])],
        "the idle session takes the next message"
    );
    // The second session comes up with nothing left: it idles, then quits.
    let second = opened[1].0;
    assert!(sends(&h.feed(Input::ConnectResult {
        conn: second,
        result: Ok(())
    }))
    .is_empty());
    h.feed(Input::SessionOutcome {
        conn,
        results: vec![(env(2, 1), Outcome::Delivered)],
    });
    let quits = h.advance(10);
    assert!(quits.contains(&Action::Quit { conn }));
    assert!(quits.contains(&Action::Quit { conn: second }));
}

#[test]
fn per_recipient_outcomes_pass_through() {
    let mut h = Harness::new(RouterConfig::default());
    h.envelope("example.org", env(1, 1));
    h.envelope("example.org", env(1, 2));
    let (conn, _) = connects(&h.resolved("example.org", Ok(set(&[(0, &[("mx", 1)])]))))[0];
    h.feed(Input::ConnectResult {
        conn,
        result: Ok(()),
    });
    let failure = Failure {
        status: EnhancedStatus::new(5, 1, 1),
        text: "550 no such user".into(),
        remote_mta: None,
    };
    let after = h.feed(Input::SessionOutcome {
        conn,
        results: vec![
            (env(1, 1), Outcome::Delivered),
            (env(1, 2), Outcome::PermFail(failure)),
        ],
    });
    assert!(after.contains(&Action::EnvelopeDelivered {
        ids: vec![env(1, 1)]
    }));
    let perm = after.iter().find_map(|a| match a {
        Action::EnvelopePermFail { ids, failure } => Some((ids.clone(), failure.clone())),
        _ => None,
    });
    let (ids, failure) = perm.expect("a permanent failure");
    assert_eq!(ids, vec![env(1, 2)]);
    assert_eq!(failure.remote_mta.as_deref(), Some("mx"));
}

#[test]
fn a_broken_mx_is_skipped_then_retried_after_the_cooldown() {
    let config = RouterConfig {
        broken_after: 2,
        broken_cooldown: Duration::from_secs(60),
        ..RouterConfig::default()
    };
    let mut h = Harness::new(config);
    let bad = SocketAddr::new(ip(1), 25);
    for m in 1..=3 {
        h.envelope("example.org", env(m, 1));
    }
    let mut pending =
        connects(&h.resolved("example.org", Ok(set(&[(10, &[("bad", 1), ("good", 2)])]))));
    let mut bad_failures = 0;
    let mut delivered = 0;
    for _ in 0..100 {
        let Some((conn, addr)) = pending.pop() else {
            break;
        };
        let actions = if addr == bad {
            bad_failures += 1;
            h.feed(Input::ConnectResult {
                conn,
                result: Err("Connection refused".into()),
            })
        } else {
            let mut actions = h.feed(Input::ConnectResult {
                conn,
                result: Ok(()),
            });
            while let Some((_, ids)) = sends(&actions).pop() {
                delivered += ids.len();
                let results = ids.iter().map(|id| (*id, Outcome::Delivered)).collect();
                actions = h.feed(Input::SessionOutcome { conn, results });
            }
            actions
        };
        pending.extend(connects(&actions));
    }
    assert_eq!(delivered, 3, "everything went through the good MX");
    assert!(bad_failures >= 2);
    let broken_at = h
        .actions
        .iter()
        .position(|a| matches!(a, Action::Log(l) if l.starts_with("smtp-out: MX marked broken")))
        .expect("marked broken");
    assert!(
        connects(&h.actions[broken_at..])
            .iter()
            .all(|(_, a)| *a != bad),
        "no session to a broken MX"
    );
    assert!(logs(&h.actions)
        .iter()
        .any(|l| l.starts_with("smtp-out: MX marked broken: bad [192.0.2.1:25]")));
    assert!(logs(&h.actions)
        .iter()
        .any(|l| l.contains("Error on session") && l.ends_with("Connection refused")));
    assert!(mta_core::routing::show_hosts(&h.router, h.now)
        .iter()
        .any(|l| l.starts_with("192.0.2.1 bad ") && l.contains("broken until")));
    assert!(h.router.poll_timeout().is_some_and(|at| at <= t(60)));
    // During the cool-down new mail avoids it (the good MX's session is idle: reused).
    h.advance(30);
    let during = h.envelope("example.org", env(10, 1));
    assert!(connects(&during).iter().all(|(_, a)| *a != bad));
    // After the cool-down the bad MX is tried again.
    let mut seen_bad = false;
    h.advance(31);
    for m in 20..40 {
        let actions = h.envelope("example.org", env(m, 1));
        seen_bad |= connects(&actions).iter().any(|(_, a)| *a == bad);
    }
    assert!(seen_bad, "retried after the cool-down");
    assert!(mta_core::routing::show_routes(&h.router, h.now)
        .iter()
        .any(|l| l.starts_with("1. * -> [MX:example.org] smtp ")));
}

#[test]
fn the_backup_level_is_used_only_when_the_primary_is_down() {
    let config = RouterConfig {
        broken_after: 1,
        ..RouterConfig::default()
    };
    let mut h = Harness::new(config);
    h.envelope("example.org", env(1, 1));
    let mx = set(&[(10, &[("p1", 1), ("p2", 2)]), (20, &[("backup", 9)])]);
    let first = connects(&h.resolved("example.org", Ok(mx)));
    assert_eq!(first.len(), 1);
    assert!(first[0].1.ip() != ip(9), "a primary first");
    let second = connects(&h.feed(Input::ConnectResult {
        conn: first[0].0,
        result: Err("timeout".into()),
    }));
    assert_eq!(second.len(), 1);
    assert!(
        second[0].1.ip() != ip(9) && second[0].1 != first[0].1,
        "the other primary next"
    );
    let third = connects(&h.feed(Input::ConnectionClosed {
        conn: second[0].0,
        error: Some("421 busy".into()),
    }));
    assert_eq!(
        third.iter().map(|c| c.1.ip()).collect::<Vec<_>>(),
        vec![ip(9)],
        "then the backup"
    );
}

#[test]
fn everything_down_fails_temporarily_and_is_retried_later() {
    let config = RouterConfig {
        broken_after: 1,
        broken_cooldown: Duration::from_secs(60),
        ..RouterConfig::default()
    };
    let mut h = Harness::new(config);
    h.envelope("example.org", env(1, 1));
    h.envelope("example.org", env(2, 1));
    let mut pending = connects(&h.resolved(
        "example.org",
        Ok(set(&[(10, &[("a", 1)]), (20, &[("b", 2)])])),
    ));
    let mut failed = Vec::new();
    while let Some((conn, _)) = pending.pop() {
        let actions = h.feed(Input::ConnectResult {
            conn,
            result: Err("Connection refused".into()),
        });
        failed.extend(temp_failed(&actions));
        pending.extend(connects(&actions));
    }
    failed.sort();
    assert_eq!(failed, vec![env(1, 1), env(2, 1)]);
    assert!(logs(&h.actions)
        .iter()
        .any(|l| l.starts_with("smtp-out: route disabled: smtp://[MX:example.org]")));
    assert_eq!(h.router.queued(), 0);
    let reason = h.actions.iter().find_map(|a| match a {
        Action::EnvelopeTempFail { failure, .. } => Some(failure.status.class),
        _ => None,
    });
    assert_eq!(reason, Some(4), "an MX problem is never permanent");
    // The scheduler retries during the cool-down: still down, still temporary.
    h.advance(10);
    assert_eq!(
        temp_failed(&h.envelope("example.org", env(1, 1))),
        vec![env(1, 1)]
    );
    // After it, sessions are opened again.
    h.advance(60);
    assert_eq!(connects(&h.envelope("example.org", env(1, 1))).len(), 1);
}

#[test]
fn null_mx_and_nxdomain_bounce_servfail_defers() {
    let mut h = Harness::new(RouterConfig::default());
    h.envelope("nomail.example", env(1, 1));
    h.envelope("nomail.example", env(2, 1));
    let actions = h.resolved(
        "nomail.example",
        Err(MxError::NullMx("nomail.example".into())),
    );
    let perm = actions.iter().find_map(|a| match a {
        Action::EnvelopePermFail { ids, failure } => Some((ids.clone(), failure.status)),
        _ => None,
    });
    assert_eq!(
        perm,
        Some((vec![env(1, 1), env(2, 1)], EnhancedStatus::new(5, 1, 10)))
    );
    h.envelope("nowhere.example", env(3, 1));
    let actions = h.resolved(
        "nowhere.example",
        Err(MxError::NoSuchDomain("nowhere.example".into())),
    );
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::EnvelopePermFail { .. })));
    h.envelope("flaky.example", env(4, 1));
    let error = MxError::Temporary {
        name: "flaky.example".into(),
        reason: "SERVFAIL".into(),
    };
    assert_eq!(
        temp_failed(&h.resolved("flaky.example", Err(error))),
        vec![env(4, 1)]
    );
    // A failed resolution is asked again for the next envelope.
    assert_eq!(resolves(&h.envelope("flaky.example", env(5, 1))), 1);
}

#[test]
fn relay_routes_use_their_port_and_policy() {
    let mut h = Harness::new(RouterConfig {
        mx_port: 2525,
        ..RouterConfig::default()
    });
    let route = RouteKey {
        destination: Destination::Relay {
            host: "smarthost.example".into(),
            port: 587,
        },
        src: Some(ip(100)),
        tls: TlsPolicy::Required { verify: true },
        auth: Some("label".into()),
        ..RouteKey::mx("unused.example")
    };
    let actions = h.feed(Input::Envelope {
        route: route.clone(),
        id: env(1, 1),
    });
    assert_eq!(
        actions,
        vec![Action::Resolve(MxQuery::host("smarthost.example"))]
    );
    let actions = h.feed(Input::Resolved {
        query: MxQuery::host("smarthost.example"),
        result: Ok(MxSet::single("smarthost.example", vec![ip(7)], 60)),
    });
    let connect = actions
        .iter()
        .find(|a| matches!(a, Action::Connect { .. }))
        .unwrap();
    let Action::Connect {
        addr,
        src,
        tls,
        auth,
        host,
        ..
    } = connect
    else {
        unreachable!()
    };
    assert_eq!(*addr, SocketAddr::new(ip(7), 587));
    assert_eq!(
        (*src, *tls, auth.as_deref(), host.as_str()),
        (Some(ip(100)), route.tls, Some("label"), "smarthost.example")
    );
    assert!(logs(&actions)[0].starts_with(
        "smtp-out: Connecting to smtp+tls://192.0.2.7:587 (smarthost.example) on session "
    ));
    // MX routes use the mx-port.
    h.envelope("example.org", env(2, 1));
    let opened = connects(&h.resolved("example.org", Ok(set(&[(0, &[("mx", 1)])]))));
    assert_eq!(opened[0].1.port(), 2525);
}

#[test]
fn relay_backup_uses_only_better_mxs() {
    let mut h = Harness::new(RouterConfig::default());
    let route = RouteKey {
        backup_mx: Some("backup.example.org".into()),
        ..RouteKey::mx("example.org")
    };
    h.feed(Input::Envelope {
        route: route.clone(),
        id: env(1, 1),
    });
    let mx = set(&[
        (10, &[("primary.example.org", 1)]),
        (20, &[("backup.example.org", 2)]),
        (30, &[("worse", 3)]),
    ]);
    let opened = connects(&h.resolved("example.org", Ok(mx.clone())));
    assert_eq!(
        opened.iter().map(|c| c.1.ip()).collect::<Vec<_>>(),
        vec![ip(1)]
    );
    // Only ourselves or worse: nothing to send to, a temporary failure.
    let mut h = Harness::new(RouterConfig::default());
    let route = RouteKey {
        backup_mx: Some("primary.example.org".into()),
        ..RouteKey::mx("example.org")
    };
    h.feed(Input::Envelope {
        route,
        id: env(1, 1),
    });
    assert_eq!(
        temp_failed(&h.resolved("example.org", Ok(mx))),
        vec![env(1, 1)]
    );
}

#[test]
fn a_dropped_session_requeues_its_message() {
    let mut h = Harness::new(RouterConfig::default());
    h.envelope("example.org", env(1, 1));
    let (conn, _) = connects(&h.resolved("example.org", Ok(set(&[(0, &[("a", 1), ("b", 2)])]))))[0];
    h.feed(Input::ConnectResult {
        conn,
        result: Ok(()),
    });
    let next = h.feed(Input::ConnectionClosed { conn, error: None });
    assert!(temp_failed(&next).is_empty());
    assert_eq!(
        connects(&next).len(),
        1,
        "the message goes out on a new session"
    );
    assert!(logs(&next)
        .iter()
        .any(|l| l.contains("connection closed during a transaction")));
}

#[test]
fn limits_from_smtpd_conf() {
    let options = mta_core::config::MtaOptions {
        limits: vec![
            mta_core::config::MtaLimit {
                domain: None,
                key: "max-conn-per-host".into(),
                value: 3,
            },
            mta_core::config::MtaLimit {
                domain: Some("Big.example".into()),
                key: "max-conn-per-route".into(),
                value: 50,
            },
        ],
        mx_port: Some(2525),
        ..Default::default()
    };
    let config = RouterConfig::from_options(&options);
    assert_eq!(config.mx_port, 2525);
    assert_eq!(config.limits.max_conn_per_host, 3);
    assert_eq!(config.limits_for("big.example").max_conn_per_route, 50);
    assert_eq!(config.limits_for("big.example").max_conn_per_host, 3);
    assert_eq!(config.limits_for("other.example").max_conn_per_route, 5);
}

#[test]
fn routes_from_relay_actions() {
    use mta_core::config::{Backup, RelayOptions, RelayScheme, RelayTls, RelayUrl};
    use mta_core::routing::route_for;
    let mx = route_for(&RelayOptions::default(), "Example.ORG", "us.example");
    assert_eq!(mx, RouteKey::mx("example.org"));
    let backup = RelayOptions {
        backup: Some(Backup { mx: None }),
        ..RelayOptions::default()
    };
    assert_eq!(
        route_for(&backup, "example.org", "us.example")
            .backup_mx
            .as_deref(),
        Some("us.example")
    );
    let url = |scheme, port| RelayUrl {
        scheme,
        label: Some("creds".into()),
        host: "Smart.example".into(),
        port,
    };
    let smtps = RelayOptions {
        host: Some(url(RelayScheme::Smtps, None)),
        ..RelayOptions::default()
    };
    let key = route_for(&smtps, "example.org", "us.example");
    assert_eq!(
        key.destination,
        Destination::Relay {
            host: "smart.example".into(),
            port: 465
        }
    );
    assert_eq!(
        (key.tls, key.auth.as_deref()),
        (TlsPolicy::Implicit { verify: true }, Some("creds"))
    );
    let plain = RelayOptions {
        host: Some(url(RelayScheme::Smtp, Some(2525))),
        tls: Some(RelayTls { no_verify: true }),
        ..RelayOptions::default()
    };
    let key = route_for(&plain, "example.org", "us.example");
    assert_eq!(key.tls, TlsPolicy::Required { verify: false });
    assert_eq!(
        key.destination,
        Destination::Relay {
            host: "smart.example".into(),
            port: 2525
        }
    );
    let notls = RelayOptions {
        host: Some(url(RelayScheme::SmtpNoTls, None)),
        ..RelayOptions::default()
    };
    assert_eq!(
        route_for(&notls, "example.org", "us.example").tls,
        TlsPolicy::Disabled
    );
}

#[test]
fn the_domain_limit_spans_routes() {
    let limits = Limits {
        max_conn_per_domain: 3,
        max_conn_per_route: 5,
        ..Limits::default()
    };
    let mut h = Harness::new(RouterConfig {
        limits,
        ..RouterConfig::default()
    });
    for m in 1..=10 {
        h.envelope("example.org", env(m, 1));
        let route = RouteKey {
            src: Some(ip(50)),
            ..RouteKey::mx("example.org")
        };
        h.feed(Input::Envelope {
            route,
            id: env(100 + m, 1),
        });
    }
    let opened = connects(&h.resolved("example.org", Ok(set(&[(0, &[("a", 1), ("b", 2)])]))));
    assert_eq!(opened.len(), 3, "max-conn-per-domain over both routes");
    // A session ending frees a slot for the waiting route.
    let more = h.feed(Input::ConnectResult {
        conn: opened[0].0,
        result: Err("refused".into()),
    });
    assert_eq!(connects(&more).len(), 1);
}

#[test]
fn the_cooldown_doubles_with_repeated_breaks_and_resets_on_success() {
    let config = RouterConfig {
        broken_after: 1,
        broken_cooldown: Duration::from_secs(60),
        ..RouterConfig::default()
    };
    let mut h = Harness::new(config);
    let mut cooldowns = Vec::new();
    for round in 0..3u32 {
        let mut actions = h.envelope("example.org", env(round + 1, 1));
        if round == 0 {
            actions = h.resolved("example.org", Ok(set(&[(0, &[("mx", 1)])])));
        }
        let (conn, _) = connects(&actions)[0];
        let failed = h.feed(Input::ConnectResult {
            conn,
            result: Err("Connection refused".into()),
        });
        let line = logs(&failed)
            .into_iter()
            .find(|l| l.contains("MX marked broken"))
            .expect("broken");
        cooldowns.push(line.rsplit(' ').next().unwrap().to_owned());
        assert_eq!(temp_failed(&failed), vec![env(round + 1, 1)]);
        let wait = 60u64 << round;
        h.advance(wait + 1);
    }
    assert_eq!(cooldowns, vec!["60s", "120s", "240s"]);
    // A working session forgets the history: the next break is short again.
    // (The route is still known: its old MX list serves while DNS is asked again.)
    let mut actions = h.envelope("example.org", env(9, 1));
    if resolves(&actions) > 0 {
        actions.extend(h.resolved("example.org", Ok(set(&[(0, &[("mx", 1)])]))));
    }
    let (conn, _) = connects(&actions)[0];
    h.feed(Input::ConnectResult {
        conn,
        result: Ok(()),
    });
    h.feed(Input::SessionOutcome {
        conn,
        results: vec![(env(9, 1), Outcome::Delivered)],
    });
    h.feed(Input::ConnectionClosed { conn, error: None });
    let (conn, _) = connects(&h.envelope("example.org", env(10, 1)))[0];
    let failed = h.feed(Input::ConnectResult {
        conn,
        result: Err("Connection refused".into()),
    });
    assert!(logs(&failed)
        .iter()
        .any(|l| l.contains("MX marked broken") && l.ends_with("for 60s")));
}

#[test]
fn an_administrator_retry_lifts_the_cooldown_but_keeps_the_break_count() {
    let config = RouterConfig {
        broken_after: 1,
        broken_cooldown: Duration::from_secs(60),
        ..RouterConfig::default()
    };
    let mut h = Harness::new(config);
    h.envelope("example.org", env(1, 1));
    let mut pending = connects(&h.resolved("example.org", Ok(set(&[(10, &[("a", 1)])]))));
    while let Some((conn, _)) = pending.pop() {
        let actions = h.feed(Input::ConnectResult {
            conn,
            result: Err("Connection refused".into()),
        });
        pending.extend(connects(&actions));
    }
    // Within the cool-down the route stays disabled...
    h.advance(5);
    assert_eq!(
        temp_failed(&h.envelope("example.org", env(1, 1))),
        vec![env(1, 1)]
    );
    // ...until `smtpctl schedule` asks for a retry now.
    h.feed(Input::RetryNow);
    assert!(logs(&h.actions)
        .iter()
        .any(|l| l.starts_with("smtp-out: retry requested")));
    let retried = connects(&h.envelope("example.org", env(1, 1)));
    assert_eq!(retried.len(), 1);
    // Failing again breaks it at once, for twice as long.
    let actions = h.feed(Input::ConnectResult {
        conn: retried[0].0,
        result: Err("Connection refused".into()),
    });
    assert_eq!(temp_failed(&actions), vec![env(1, 1)]);
    h.advance(100);
    assert_eq!(
        temp_failed(&h.envelope("example.org", env(1, 1))),
        vec![env(1, 1)],
        "the second break lasts 120 s"
    );
}
