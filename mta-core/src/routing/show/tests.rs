//! The `show routes` and `show hosts` lines over router states reached through its inputs.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::{duration_text, show_hosts, show_routes};
use crate::queue::EnvelopeId;
use crate::routing::{
    Action, ConnId, Destination, Input, MxHost, MxLevel, MxQuery, MxSet, RouteKey, Router,
    RouterConfig, TlsPolicy,
};
use crate::scheduler::Outcome;
use crate::time::UnixTime;

fn t(secs: u64) -> UnixTime {
    UnixTime::from_secs(2_000_000_000 + secs)
}

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
}

fn env(message: u32) -> EnvelopeId {
    EnvelopeId::new((u64::from(message) << 32) | 1).unwrap()
}

fn two_mx() -> MxSet {
    MxSet {
        levels: vec![MxLevel {
            preference: 10,
            hosts: vec![
                MxHost {
                    name: "mx1.example.org".into(),
                    addrs: vec![ip(1)],
                },
                MxHost {
                    name: "mx2.example.org".into(),
                    addrs: vec![ip(2)],
                },
            ],
        }],
        ttl: 300,
    }
}

fn drain(router: &mut Router) -> Vec<Action> {
    std::iter::from_fn(|| router.poll_action()).collect()
}

fn connects(actions: &[Action]) -> Vec<ConnId> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Connect { conn, .. } => Some(*conn),
            _ => None,
        })
        .collect()
}

#[test]
fn durations_print_like_smtpctl() {
    assert_eq!(duration_text(Duration::ZERO), "0s");
    assert_eq!(duration_text(Duration::from_secs(45)), "45s");
    assert_eq!(duration_text(Duration::from_secs(3723)), "1h2m3s");
    assert_eq!(duration_text(Duration::from_secs(86_400 + 5)), "1d0h0m5s");
}

#[test]
fn a_new_route_waits_for_its_mx_answer() {
    let mut router = Router::new(RouterConfig::default(), 7);
    router.handle(
        Input::Envelope {
            route: RouteKey::mx("Example.ORG"),
            id: env(1),
        },
        t(0),
    );
    drain(&mut router);
    assert_eq!(
        show_routes(&router, t(0)),
        ["1. * -> [MX:example.org] smtp N-R- nconn=0 queued=1 penalty=0 timeout=-"]
    );
    assert!(show_hosts(&router, t(0)).is_empty());
}

#[test]
fn a_delivering_route_keeps_its_session_and_shows_its_host() {
    let mut router = Router::new(RouterConfig::default(), 7);
    router.handle(
        Input::Envelope {
            route: RouteKey::mx("example.org"),
            id: env(1),
        },
        t(0),
    );
    router.handle(
        Input::Resolved {
            query: MxQuery::domain("example.org"),
            result: Ok(two_mx()),
        },
        t(0),
    );
    let conn = connects(&drain(&mut router))[0];
    router.handle(
        Input::ConnectResult {
            conn,
            result: Ok(()),
        },
        t(1),
    );
    drain(&mut router);
    router.handle(
        Input::SessionOutcome {
            conn,
            results: vec![(env(1), Outcome::Delivered)],
        },
        t(2),
    );
    drain(&mut router);
    assert_eq!(
        show_routes(&router, t(3)),
        ["1. * -> [MX:example.org] smtp ---K nconn=1 queued=0 penalty=0 timeout=-"]
    );
    let hosts = show_hosts(&router, t(3));
    assert_eq!(hosts.len(), 1);
    assert!(
        hosts[0].ends_with(".example.org refcount=1 nconn=1 lastconn=3s failures=0"),
        "{hosts:?}"
    );
}

#[test]
fn every_mx_broken_disables_the_route_until_the_first_cooldown_ends() {
    let config = RouterConfig {
        broken_after: 1,
        ..RouterConfig::default()
    };
    let mut router = Router::new(config, 7);
    router.handle(
        Input::Envelope {
            route: RouteKey::mx("example.org"),
            id: env(1),
        },
        t(0),
    );
    router.handle(
        Input::Resolved {
            query: MxQuery::domain("example.org"),
            result: Ok(two_mx()),
        },
        t(0),
    );
    let mut pending = connects(&drain(&mut router));
    let mut at = 0;
    while let Some(conn) = pending.pop() {
        at += 10;
        router.handle(
            Input::ConnectResult {
                conn,
                result: Err("Connection refused".into()),
            },
            t(at),
        );
        pending.extend(connects(&drain(&mut router)));
    }
    // The first MX broke at t(10) for 60 s, the second at t(20): disabled until t(70).
    assert_eq!(
        show_routes(&router, t(30)),
        ["1. * -> [MX:example.org] smtp ND-- nconn=0 queued=0 penalty=1 timeout=40s"]
    );
    let hosts = show_hosts(&router, t(30));
    assert_eq!(hosts.len(), 2);
    for line in &hosts {
        assert!(line.contains("refcount=1 nconn=0 lastconn="), "{line}");
        assert!(line.contains("failures=1 broken until "), "{line}");
        assert!(line.ends_with(" error=\"Connection refused\""), "{line}");
    }
    assert!(hosts.iter().any(|l| l.contains("(40s)")), "{hosts:?}");
    // Once the cool-downs are over nothing is shown broken or disabled.
    router.handle(Input::Tick, t(90));
    drain(&mut router);
    assert!(show_routes(&router, t(90))[0].contains(" N--- "));
    assert!(show_hosts(&router, t(90))
        .iter()
        .all(|l| !l.contains("broken")));
}

#[test]
fn a_relay_route_shows_its_source_policy_and_label() {
    let mut router = Router::new(RouterConfig::default(), 7);
    let route = RouteKey {
        destination: Destination::Relay {
            host: "smarthost.example.net".into(),
            port: 465,
        },
        src: Some(ip(9)),
        tls: TlsPolicy::Implicit { verify: false },
        auth: Some("office".into()),
        helo: Some("out.example".into()),
        pki: Some("client".into()),
        ..RouteKey::mx("unused.example")
    };
    router.handle(Input::Envelope { route, id: env(1) }, t(0));
    router.handle(
        Input::Envelope {
            route: RouteKey {
                backup_mx: Some("me.example.org".into()),
                tls: TlsPolicy::Required { verify: true },
                ..RouteKey::mx("example.com")
            },
            id: env(2),
        },
        t(0),
    );
    drain(&mut router);
    let lines = show_routes(&router, t(0));
    assert_eq!(
        lines,
        [
            "1. 192.0.2.9 -> smarthost.example.net:465 smtps no-verify auth=office \
             helo=out.example pki=client N-R- \
             nconn=0 queued=1 penalty=0 timeout=-",
            "2. * -> [MX:example.com] smtp+tls backup=me.example.org N-R- nconn=0 queued=1 \
             penalty=0 timeout=-",
        ]
    );
}

#[test]
fn quiet_routes_are_forgotten_after_a_while() {
    let mut router = Router::new(RouterConfig::default(), 7);
    router.handle(
        Input::Envelope {
            route: RouteKey::mx("example.org"),
            id: env(1),
        },
        t(0),
    );
    router.handle(
        Input::Resolved {
            query: MxQuery::domain("example.org"),
            result: Err(crate::routing::MxError::NoSuchDomain("example.org".into())),
        },
        t(0),
    );
    drain(&mut router);
    assert_eq!(show_routes(&router, t(1)).len(), 1);
    router.handle(Input::Tick, t(400));
    assert!(show_routes(&router, t(400)).is_empty());
}
