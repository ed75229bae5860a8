//! MX resolution through the DNS stub against a fake name server built on hickory-proto.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::Bytes;
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, MX};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use mta_core::dns::{self, ResolverConfig};
use mta_core::routing::{
    MxAction, MxError, MxHost, MxInput, MxLevel, MxQuery, MxResolver, MxResolverConfig, MxSet,
};
use mta_core::time::UnixTime;

const SERVER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 53)), 53);

fn now() -> UnixTime {
    UnixTime::from_secs(1_800_000_000)
}

/// What the fake server answers for a (name, type).
#[derive(Clone)]
enum Zone {
    Records {
        answers: Vec<Record>,
        glue: Vec<Record>,
    },
    Code(ResponseCode),
    Silent,
}

fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap()
}

fn mx(owner: &str, preference: u16, exchange: &str) -> Record {
    Record::from_rdata(
        name(owner),
        300,
        RData::MX(MX::new(preference, name(exchange))),
    )
}

fn a(owner: &str, ip: [u8; 4]) -> Record {
    Record::from_rdata(name(owner), 120, RData::A(A(Ipv4Addr::from(ip))))
}

fn aaaa(owner: &str, ip: Ipv6Addr) -> Record {
    Record::from_rdata(name(owner), 120, RData::AAAA(AAAA(ip)))
}

struct Fake {
    zone: BTreeMap<(String, RecordType), Zone>,
    queries: usize,
}

impl Fake {
    fn new() -> Self {
        Fake {
            zone: BTreeMap::new(),
            queries: 0,
        }
    }

    fn set(&mut self, owner: &str, rtype: RecordType, zone: Zone) -> &mut Self {
        self.zone.insert((owner.to_ascii_lowercase(), rtype), zone);
        self
    }

    fn records(&mut self, owner: &str, rtype: RecordType, answers: Vec<Record>) -> &mut Self {
        self.set(
            owner,
            rtype,
            Zone::Records {
                answers,
                glue: Vec::new(),
            },
        )
    }

    fn answer(&mut self, bytes: &[u8]) -> Option<Bytes> {
        self.queries += 1;
        let query = Message::from_vec(bytes).unwrap();
        let question = &query.queries[0];
        let key = (
            question.name().to_ascii().to_ascii_lowercase(),
            question.query_type(),
        );
        let mut response = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
        response.add_queries(query.queries.clone());
        match self.zone.get(&key).cloned().unwrap_or(Zone::Records {
            answers: vec![],
            glue: vec![],
        }) {
            Zone::Records { answers, glue } => {
                response.add_answers(answers);
                response.add_additionals(glue);
            }
            Zone::Code(code) => response.metadata.response_code = code,
            Zone::Silent => return None,
        }
        Some(Bytes::from(response.to_vec().unwrap()))
    }

    /// Resolves `query` to its end, answering every datagram; time jumps over timeouts.
    fn resolve(&mut self, resolver: &mut MxResolver, query: MxQuery) -> Result<MxSet, MxError> {
        let mut time = now();
        resolver.handle(MxInput::Resolve(query.clone()), time);
        for _ in 0..1000 {
            let mut progressed = false;
            while let Some(action) = resolver.poll_action() {
                progressed = true;
                match action {
                    MxAction::Resolved {
                        query: done,
                        result,
                    } => {
                        assert_eq!(done, query);
                        return result;
                    }
                    MxAction::Dns(dns::Action::SendUdp { server, bytes }) => {
                        assert_eq!(server, SERVER);
                        if let Some(reply) = self.answer(&bytes) {
                            resolver.handle(
                                MxInput::Dns(dns::Input::UdpReceived {
                                    from: server,
                                    bytes: reply,
                                }),
                                time,
                            );
                        }
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            if !progressed {
                time = resolver.poll_timeout().expect("waiting for something");
                resolver.handle(MxInput::Tick, time);
            }
        }
        panic!("no result");
    }
}

fn resolver(allow_loopback: bool) -> MxResolver {
    let dns = ResolverConfig {
        servers: vec![SERVER],
        ..ResolverConfig::default()
    };
    MxResolver::new(
        MxResolverConfig {
            dns,
            allow_loopback,
        },
        5,
    )
}

fn v4(ip: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(ip))
}

#[test]
fn mx_then_addresses_with_glue() {
    let mut fake = Fake::new();
    fake.set(
        "example.org.",
        RecordType::MX,
        Zone::Records {
            answers: vec![
                mx("example.org.", 20, "backup.example.net."),
                mx("example.org.", 10, "mx1.example.org."),
                mx("example.org.", 10, "mx2.example.org."),
            ],
            glue: vec![a("mx1.example.org.", [192, 0, 2, 1])],
        },
    );
    fake.records(
        "mx2.example.org.",
        RecordType::A,
        vec![a("mx2.example.org.", [192, 0, 2, 2])],
    );
    fake.records(
        "mx2.example.org.",
        RecordType::AAAA,
        vec![aaaa("mx2.example.org.", "2001:db8::2".parse().unwrap())],
    );
    fake.records(
        "backup.example.net.",
        RecordType::A,
        vec![a("backup.example.net.", [198, 51, 100, 9])],
    );
    let set = fake
        .resolve(&mut resolver(false), MxQuery::domain("example.org"))
        .unwrap();
    let expected = MxSet {
        levels: vec![
            MxLevel {
                preference: 10,
                hosts: vec![
                    MxHost {
                        name: "mx1.example.org".into(),
                        addrs: vec![v4([192, 0, 2, 1])],
                    },
                    MxHost {
                        name: "mx2.example.org".into(),
                        addrs: vec![v4([192, 0, 2, 2]), "2001:db8::2".parse().unwrap()],
                    },
                ],
            },
            MxLevel {
                preference: 20,
                hosts: vec![MxHost {
                    name: "backup.example.net".into(),
                    addrs: vec![v4([198, 51, 100, 9])],
                }],
            },
        ],
        ttl: 120,
    };
    assert_eq!(set, expected);
    // mx1 came with glue: no A/AAAA query for it (1 MX + 2 for mx2 + 2 for backup).
    assert_eq!(fake.queries, 5);
}

#[test]
fn no_mx_means_the_domain_itself() {
    let mut fake = Fake::new();
    fake.records(
        "plain.example.",
        RecordType::A,
        vec![a("plain.example.", [203, 0, 113, 7])],
    );
    let set = fake
        .resolve(&mut resolver(false), MxQuery::domain("plain.example"))
        .unwrap();
    assert_eq!(set.levels.len(), 1);
    assert_eq!(
        set.levels[0].hosts,
        vec![MxHost {
            name: "plain.example".into(),
            addrs: vec![v4([203, 0, 113, 7])]
        }]
    );
}

#[test]
fn no_mx_and_no_address_is_permanent() {
    let mut fake = Fake::new();
    let error = fake
        .resolve(&mut resolver(false), MxQuery::domain("empty.example"))
        .unwrap_err();
    assert_eq!(error, MxError::NoMailExchanger("empty.example".into()));
    assert!(error.is_permanent());
}

#[test]
fn null_mx_is_permanent_5_1_10() {
    let mut fake = Fake::new();
    fake.records(
        "nomail.example.",
        RecordType::MX,
        vec![mx("nomail.example.", 0, ".")],
    );
    let error = fake
        .resolve(&mut resolver(false), MxQuery::domain("nomail.example"))
        .unwrap_err();
    assert_eq!(error, MxError::NullMx("nomail.example".into()));
    let failure = error.failure();
    assert_eq!(
        (
            failure.status.class,
            failure.status.subject,
            failure.status.detail
        ),
        (5, 1, 10)
    );
}

#[test]
fn nxdomain_is_permanent_servfail_and_silence_temporary() {
    let mut fake = Fake::new();
    fake.set(
        "gone.example.",
        RecordType::MX,
        Zone::Code(ResponseCode::NXDomain),
    );
    fake.set(
        "broken.example.",
        RecordType::MX,
        Zone::Code(ResponseCode::ServFail),
    );
    fake.set("silent.example.", RecordType::MX, Zone::Silent);
    let mut r = resolver(false);
    assert_eq!(
        fake.resolve(&mut r, MxQuery::domain("gone.example")),
        Err(MxError::NoSuchDomain("gone.example".into()))
    );
    let servfail = fake
        .resolve(&mut r, MxQuery::domain("broken.example"))
        .unwrap_err();
    assert!(
        matches!(servfail, MxError::Temporary { .. }),
        "{servfail:?}"
    );
    assert_eq!(servfail.failure().status.class, 4);
    let silent = fake
        .resolve(&mut r, MxQuery::domain("silent.example"))
        .unwrap_err();
    assert!(matches!(silent, MxError::Temporary { .. }), "{silent:?}");
}

#[test]
fn loopback_exchangers_are_refused_unless_allowed() {
    let mut fake = Fake::new();
    fake.records(
        "loop.example.",
        RecordType::MX,
        vec![mx("loop.example.", 10, "localhost.")],
    );
    fake.records(
        "sink.test.",
        RecordType::MX,
        vec![mx("sink.test.", 10, "mx.sink.test.")],
    );
    fake.records(
        "mx.sink.test.",
        RecordType::A,
        vec![a("mx.sink.test.", [127, 0, 0, 2])],
    );
    let mut strict = resolver(false);
    assert_eq!(
        fake.resolve(&mut strict, MxQuery::domain("loop.example")),
        Err(MxError::Loopback("loop.example".into()))
    );
    assert_eq!(
        fake.resolve(&mut strict, MxQuery::domain("sink.test")),
        Err(MxError::Loopback("sink.test".into()))
    );
    let mut tests = resolver(true);
    let set = fake
        .resolve(&mut tests, MxQuery::domain("sink.test"))
        .unwrap();
    assert_eq!(set.levels[0].hosts[0].addrs, vec![v4([127, 0, 0, 2])]);
}

#[test]
fn relay_hosts_resolve_addresses_only() {
    let mut fake = Fake::new();
    fake.records(
        "smarthost.example.",
        RecordType::MX,
        vec![mx("smarthost.example.", 10, "elsewhere.example.")],
    );
    fake.records(
        "smarthost.example.",
        RecordType::A,
        vec![a("smarthost.example.", [127, 0, 0, 1])],
    );
    let set = fake
        .resolve(&mut resolver(false), MxQuery::host("smarthost.example"))
        .unwrap();
    assert_eq!(
        set,
        MxSet::single("smarthost.example", vec![v4([127, 0, 0, 1])], 120)
    );
    let literal = fake
        .resolve(&mut resolver(false), MxQuery::host("[192.0.2.25]"))
        .unwrap();
    assert_eq!(literal.levels[0].hosts[0].addrs, vec![v4([192, 0, 2, 25])]);
}

#[test]
fn router_and_resolver_wired_share_one_lookup() {
    use mta_core::queue::EnvelopeId;
    use mta_core::routing::{Action, Input, RouteKey, Router, RouterConfig};
    let mut fake = Fake::new();
    fake.records(
        "example.org.",
        RecordType::MX,
        vec![mx("example.org.", 10, "mx.example.org.")],
    );
    fake.records(
        "mx.example.org.",
        RecordType::A,
        vec![a("mx.example.org.", [127, 0, 0, 2])],
    );
    let mut mx_resolver = resolver(true);
    let mut router = Router::new(
        RouterConfig {
            mx_port: 2525,
            ..RouterConfig::default()
        },
        1,
    );
    for m in 1..=20u64 {
        let id = EnvelopeId::new((m << 32) | 1).unwrap();
        router.handle(
            Input::Envelope {
                route: RouteKey::mx("example.org"),
                id,
            },
            now(),
        );
    }
    let mut connects = Vec::new();
    loop {
        let mut progressed = false;
        while let Some(action) = router.poll_action() {
            progressed = true;
            match action {
                Action::Resolve(query) => mx_resolver.handle(MxInput::Resolve(query), now()),
                Action::Connect { addr, .. } => connects.push(addr),
                _ => {}
            }
        }
        while let Some(action) = mx_resolver.poll_action() {
            progressed = true;
            match action {
                MxAction::Resolved { query, result } => {
                    router.handle(Input::Resolved { query, result }, now())
                }
                MxAction::Dns(dns::Action::SendUdp { server, bytes }) => {
                    if let Some(reply) = fake.answer(&bytes) {
                        let input = dns::Input::UdpReceived {
                            from: server,
                            bytes: reply,
                        };
                        mx_resolver.handle(MxInput::Dns(input), now());
                    }
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        if !progressed {
            break;
        }
    }
    assert_eq!(
        fake.queries, 3,
        "one MX query, one A and one AAAA for twenty envelopes"
    );
    assert_eq!(connects.len(), 5, "max-conn-per-route sessions");
    assert!(connects
        .iter()
        .all(|addr| *addr == "127.0.0.2:2525".parse().unwrap()));
}
