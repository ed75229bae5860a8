//! Harnesses for the router and the DNS stub: arbitrary event sequences through the
//! router (checking limits, session discipline and that no envelope is lost or reported
//! twice), and arbitrary bytes decoded as DNS answers.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr}; // allow-impure: address values, no socket
use std::time::Duration;

use bytes::Bytes;
use smtp_proto::reply::EnhancedStatus;

use crate::dns::{self, LookupId, RecordKind, Resolver, ResolverConfig};
use crate::queue::SplitMix64;
use crate::queue::{EnvelopeId, Failure};
use crate::routing::{
    connection_order, Action, ConnId, Destination, Input, Limits, MxError, MxHost, MxLevel,
    MxQuery, MxSet, RouteKey, Router, RouterConfig, TlsPolicy,
};
use crate::scheduler::Outcome;
use crate::time::UnixTime;

/// Choices drawn from the fuzz input; zeros once it is used up.
struct Script<'a> {
    data: &'a [u8],
}

impl Script<'_> {
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    fn below(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n.max(1)
    }

    fn done(&self) -> bool {
        self.data.is_empty()
    }
}

/// A session as the harness sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Session {
    Connecting,
    Idle,
    Busy(Vec<EnvelopeId>),
    Closing,
}

#[derive(Clone, Debug)]
struct Conn {
    addr: SocketAddr,
    state: Session,
}

struct Harness {
    router: Router,
    limits: Limits,
    now: UnixTime,
    pending: BTreeSet<MxQuery>,
    conns: BTreeMap<ConnId, Conn>,
    outstanding: BTreeSet<EnvelopeId>,
}

fn route(choice: usize) -> RouteKey {
    match choice % 4 {
        0 => RouteKey::mx("a.example"),
        1 => RouteKey::mx("b.example"),
        2 => RouteKey {
            src: Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))),
            ..RouteKey::mx("a.example")
        },
        _ => RouteKey {
            destination: Destination::Relay {
                host: "relay.example".into(),
                port: 587,
            },
            src: None,
            tls: TlsPolicy::Required { verify: true },
            auth: Some("label".into()),
            helo: Some("out.example".into()),
            ..RouteKey::mx("relay.example")
        },
    }
}

fn mx_set(script: &mut Script<'_>) -> MxSet {
    let levels = 1 + script.below(3);
    let mut set = MxSet {
        levels: Vec::new(),
        ttl: u32::from(script.byte()),
    };
    for level in 0..levels {
        let hosts = 1 + script.below(3);
        let hosts = (0..hosts)
            .map(|h| {
                let last = u8::try_from(level * 3 + h + 1).unwrap_or(1);
                MxHost {
                    name: format!("mx{last}"),
                    addrs: vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))],
                }
            })
            .collect();
        set.levels.push(MxLevel {
            preference: u16::try_from(level * 10).unwrap_or(0),
            hosts,
        });
    }
    set
}

fn failure(class: u8) -> Failure {
    Failure {
        status: EnhancedStatus::new(class, 0, 0),
        text: format!("{class}00 scripted"),
        remote_mta: None,
    }
}

impl Harness {
    fn new(seed: u8) -> Self {
        let limits = Limits {
            max_conn_per_host: 2,
            max_conn_per_route: 3,
            max_conn_per_domain: 4,
            max_mail_per_session: 3,
        };
        let config = RouterConfig {
            limits,
            broken_after: 2,
            ..RouterConfig::default()
        };
        Harness {
            router: Router::new(config, u64::from(seed)),
            limits,
            now: UnixTime::from_secs(1_700_000_000),
            pending: BTreeSet::new(),
            conns: BTreeMap::new(),
            outstanding: BTreeSet::new(),
        }
    }

    fn feed(&mut self, input: Input) {
        self.router.handle(input, self.now);
        while let Some(action) = self.router.poll_action() {
            self.check(action);
        }
        assert!(self
            .router
            .poll_timeout()
            .is_none_or(|t| t > UnixTime::EPOCH));
        self.check_listings();
    }

    /// `show routes` and `show hosts` agree with the router's counts: the routes' waiting
    /// envelopes and sessions, and the hosts' sessions.
    fn check_listings(&self) {
        let field = |line: &str, name: &str| -> usize {
            line.split(' ')
                .find_map(|word| word.strip_prefix(name))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in {line:?}"))
        };
        let routes = crate::routing::show_routes(&self.router, self.now);
        let queued: usize = routes.iter().map(|l| field(l, "queued=")).sum();
        let sessions: usize = routes.iter().map(|l| field(l, "nconn=")).sum();
        assert_eq!(queued, self.router.queued(), "{routes:?}");
        assert_eq!(sessions, self.router.connections(), "{routes:?}");
        let hosts = crate::routing::show_hosts(&self.router, self.now);
        let host_sessions: usize = hosts.iter().map(|l| field(l, "nconn=")).sum();
        assert_eq!(host_sessions, self.router.connections(), "{hosts:?}");
    }

    fn report(&mut self, ids: &[EnvelopeId]) {
        for id in ids {
            assert!(
                self.outstanding.remove(id),
                "{id:?} reported but not outstanding"
            );
            let in_session = self
                .conns
                .values()
                .any(|c| matches!(&c.state, Session::Busy(b) if b.contains(id)));
            assert!(!in_session, "{id:?} reported while a session carries it");
        }
    }

    fn check(&mut self, action: Action) {
        match action {
            Action::Resolve(query) => {
                assert!(self.pending.insert(query), "one resolution at a time")
            }
            Action::Connect { conn, addr, .. } => {
                assert!(!self.conns.contains_key(&conn), "session id reused");
                let per_host = self.conns.values().filter(|c| c.addr == addr).count();
                assert!(
                    per_host < self.limits.max_conn_per_host,
                    "max-conn-per-host"
                );
                self.conns.insert(
                    conn,
                    Conn {
                        addr,
                        state: Session::Connecting,
                    },
                );
            }
            Action::SendMessage { conn, envelopes } => {
                let entry = self.conns.get_mut(&conn).expect("send on a known session");
                assert_eq!(entry.state, Session::Idle, "send only on an idle session");
                assert!(!envelopes.is_empty());
                let message = envelopes[0].message_id();
                assert!(
                    envelopes.iter().all(|e| e.message_id() == message),
                    "one message per send"
                );
                assert!(envelopes.iter().all(|e| self.outstanding.contains(e)));
                entry.state = Session::Busy(envelopes);
            }
            Action::Quit { conn } => {
                let entry = self.conns.get_mut(&conn).expect("quit a known session");
                assert_eq!(entry.state, Session::Idle, "quit only an idle session");
                entry.state = Session::Closing;
            }
            Action::EnvelopeDelivered { ids } => self.report(&ids),
            Action::EnvelopeTempFail { ids, failure } => {
                assert_eq!(failure.status.class, 4);
                self.report(&ids);
            }
            Action::EnvelopePermFail { ids, .. } => self.report(&ids),
            Action::Log(line) => assert!(line.starts_with("smtp-out: ")),
        }
    }

    fn pick_conn(&self, script: &mut Script<'_>, want: fn(&Session) -> bool) -> Option<ConnId> {
        let matching: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| want(&c.state))
            .map(|(id, _)| *id)
            .collect();
        matching.get(script.below(matching.len())).copied()
    }

    fn step(&mut self, script: &mut Script<'_>) {
        match script.below(8) {
            0 => {
                let id = EnvelopeId::new(
                    (u64::from(script.byte() % 8 + 1) << 32) | u64::from(script.byte() % 4 + 1),
                );
                let Some(id) = id else { return };
                if self.outstanding.contains(&id) {
                    return;
                }
                self.outstanding.insert(id);
                let route = route(script.below(4));
                self.feed(Input::Envelope { route, id });
            }
            1 => {
                let pending: Vec<MxQuery> = self.pending.iter().cloned().collect();
                let Some(query) = pending.get(script.below(pending.len())).cloned() else {
                    return;
                };
                self.pending.remove(&query);
                let result = match script.below(4) {
                    0 => Err(MxError::NullMx(query.name.clone())),
                    1 => Err(MxError::Temporary {
                        name: query.name.clone(),
                        reason: "scripted".into(),
                    }),
                    _ => Ok(mx_set(script)),
                };
                self.feed(Input::Resolved { query, result });
            }
            2 => {
                let Some(conn) = self.pick_conn(script, |s| *s == Session::Connecting) else {
                    return;
                };
                let ok = script.byte() & 1 == 0;
                if ok {
                    self.conns.get_mut(&conn).expect("known").state = Session::Idle;
                    self.feed(Input::ConnectResult {
                        conn,
                        result: Ok(()),
                    });
                } else {
                    self.conns.remove(&conn);
                    self.feed(Input::ConnectResult {
                        conn,
                        result: Err("Connection refused".into()),
                    });
                }
            }
            3 => {
                let Some(conn) = self.pick_conn(script, |s| matches!(s, Session::Busy(_))) else {
                    return;
                };
                let Some(Session::Busy(batch)) = self.conns.get(&conn).map(|c| c.state.clone())
                else {
                    return;
                };
                let mut results = Vec::new();
                for id in &batch {
                    let outcome = match script.below(4) {
                        0 => continue,
                        1 => Outcome::Delivered,
                        2 => Outcome::TempFail(failure(4)),
                        _ => Outcome::PermFail(failure(5)),
                    };
                    results.push((*id, outcome));
                }
                self.conns.get_mut(&conn).expect("known").state = Session::Idle;
                self.feed(Input::SessionOutcome { conn, results });
            }
            4 => {
                let Some(conn) = self.pick_conn(script, |s| *s != Session::Connecting) else {
                    return;
                };
                self.conns.remove(&conn);
                let error = (script.byte() & 1 == 0).then(|| "421 scripted".to_owned());
                self.feed(Input::ConnectionClosed { conn, error });
            }
            5 => {
                let step = script.byte();
                if step == 0xff {
                    self.feed(Input::RetryNow);
                } else {
                    self.now = self
                        .now
                        .saturating_add(Duration::from_secs(u64::from(step) * 4));
                    self.feed(Input::Tick);
                }
            }
            6 => {
                let Some(conn) = self.pick_conn(script, |s| *s == Session::Closing) else {
                    return;
                };
                self.conns.remove(&conn);
                self.feed(Input::ConnectionClosed { conn, error: None });
            }
            _ => {
                let conn = ConnId(u64::from(script.byte()));
                if self.conns.contains_key(&conn) {
                    return;
                }
                self.feed(Input::SessionOutcome {
                    conn,
                    results: vec![],
                });
                self.feed(Input::ConnectResult {
                    conn,
                    result: Ok(()),
                });
                self.feed(Input::Resolved {
                    query: MxQuery::domain("unasked.example"),
                    result: Ok(mx_set(script)),
                });
            }
        }
    }

    /// Everything goes well from now on: every envelope must end up reported.
    fn drain(&mut self) {
        for _ in 0..10_000 {
            if self.outstanding.is_empty() && self.conns.is_empty() {
                break;
            }
            if let Some(query) = self.pending.iter().next().cloned() {
                self.pending.remove(&query);
                let set =
                    MxSet::single("drain", vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 200))], 60);
                self.feed(Input::Resolved {
                    query,
                    result: Ok(set),
                });
                continue;
            }
            let next = self
                .conns
                .iter()
                .next()
                .map(|(id, c)| (*id, c.state.clone()));
            match next {
                Some((conn, Session::Connecting)) => {
                    self.conns.get_mut(&conn).expect("known").state = Session::Idle;
                    self.feed(Input::ConnectResult {
                        conn,
                        result: Ok(()),
                    });
                }
                Some((conn, Session::Busy(batch))) => {
                    self.conns.get_mut(&conn).expect("known").state = Session::Idle;
                    let results = batch.iter().map(|id| (*id, Outcome::Delivered)).collect();
                    self.feed(Input::SessionOutcome { conn, results });
                }
                Some((conn, Session::Closing)) => {
                    self.conns.remove(&conn);
                    self.feed(Input::ConnectionClosed { conn, error: None });
                }
                _ => {
                    self.now = self.now.saturating_add(Duration::from_secs(3600));
                    self.feed(Input::Tick);
                }
            }
        }
        assert!(
            self.outstanding.is_empty(),
            "envelopes lost: {:?}",
            self.outstanding
        );
        assert_eq!(self.router.queued(), 0);
    }
}

/// Runs an arbitrary event script through the router, then lets everything succeed:
/// no panic, limits and session discipline hold, and every envelope is reported once.
pub fn router(data: &[u8]) {
    let mut script = Script { data };
    let mut harness = Harness::new(script.byte());
    let mut steps = 0;
    while !script.done() && steps < 2000 {
        harness.step(&mut script);
        steps += 1;
    }
    harness.drain();
}

/// Decodes arbitrary bytes as the answer to a query, directly and through the stub (over
/// UDP with the query's id patched in, and over TCP): never a panic, and the stub always
/// ends with an answer once time runs out.
pub fn dns_answer(data: &[u8]) {
    let kinds = [RecordKind::Mx, RecordKind::A, RecordKind::Aaaa];
    let kind = kinds[usize::from(data.first().copied().unwrap_or(0)) % 3];
    let _ = dns::decode_reply(data, 0x1234, "example.org", kind);
    let server = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 53)), 53);
    let config = ResolverConfig {
        servers: vec![server],
        attempts: 1,
        ..ResolverConfig::default()
    };
    let mut resolver = Resolver::new(config, 9);
    let now = UnixTime::from_secs(1_700_000_000);
    resolver.handle(
        dns::Input::Lookup {
            id: LookupId(1),
            name: "example.org".into(),
            kind,
        },
        now,
    );
    let mut answered = false;
    for _ in 0..4 {
        let mut query_id = None;
        while let Some(action) = resolver.poll_action() {
            match action {
                dns::Action::SendUdp { bytes, .. } => query_id = Some((bytes[0], bytes[1], false)),
                dns::Action::SendTcp { bytes, .. } => query_id = Some((bytes[2], bytes[3], true)),
                dns::Action::Answer { .. } => answered = true,
            }
        }
        let Some((hi, lo, tcp)) = query_id else { break };
        let mut patched = data.to_vec();
        if patched.len() >= 2 {
            patched[0] = hi;
            patched[1] = lo;
        }
        if tcp {
            let mut framed = u16::try_from(patched.len())
                .unwrap_or(0)
                .to_be_bytes()
                .to_vec();
            framed.extend_from_slice(&patched);
            resolver.handle(
                dns::Input::TcpReceived {
                    from: server,
                    bytes: Bytes::from(framed),
                },
                now,
            );
        } else {
            resolver.handle(
                dns::Input::UdpReceived {
                    from: server,
                    bytes: Bytes::from(patched),
                },
                now,
            );
        }
    }
    if !answered {
        let mut time = now;
        for _ in 0..10 {
            while let Some(action) = resolver.poll_action() {
                answered |= matches!(action, dns::Action::Answer { .. });
            }
            let Some(next) = resolver.poll_timeout() else {
                break;
            };
            time = next.max(time);
            resolver.handle(dns::Input::Tick, time);
        }
        while let Some(action) = resolver.poll_action() {
            answered |= matches!(action, dns::Action::Answer { .. });
        }
    }
    assert!(answered, "a lookup always ends");
}

/// MX selection for one seed and set: every address exactly once, preferences never
/// decreasing, the addresses of a host together.
pub fn mx_selection(seed: u64, shape: &[(u8, u8)]) {
    let mut set = MxSet {
        levels: Vec::new(),
        ttl: 0,
    };
    let mut last = 0u8;
    for (preference, hosts) in shape.iter().take(5) {
        let hosts = (0..hosts % 5)
            .map(|_| {
                last = last.wrapping_add(1);
                MxHost {
                    name: format!("h{last}"),
                    addrs: vec![
                        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)),
                        IpAddr::V4(Ipv4Addr::new(10, 1, 0, last)),
                    ],
                }
            })
            .collect();
        set.levels.push(MxLevel {
            preference: u16::from(*preference),
            hosts,
        });
    }
    let order = connection_order(&set, 25, &mut SplitMix64::new(seed));
    let mut expected: Vec<SocketAddr> = set
        .levels
        .iter()
        .flat_map(|l| {
            l.hosts
                .iter()
                .flat_map(|h| h.addrs.iter().map(|a| SocketAddr::new(*a, 25)))
        })
        .collect();
    let mut got: Vec<SocketAddr> = order.iter().map(|c| c.addr).collect();
    expected.sort();
    got.sort();
    assert_eq!(got, expected, "a permutation of every address");
    assert!(
        order.windows(2).all(|w| w[0].preference <= w[1].preference),
        "preference order"
    );
    for pair in order.chunks(2) {
        assert_eq!(
            pair[0].host, pair[1].host,
            "a host's addresses stay together"
        );
    }
}

/// The `mx` fuzz target: the first byte picks the DNS answer decoder (odd) or the router
/// event script (even) for the rest.
pub fn mx(data: &[u8]) {
    match data.split_first() {
        Some((first, rest)) if first % 2 == 1 => dns_answer(rest),
        Some((_, rest)) => router(rest),
        None => router(data),
    }
}
