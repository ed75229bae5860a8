//! Tests of the stub resolver with hand-built `hickory-proto` answers.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use bytes::Bytes;
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, MX, SOA};
use hickory_proto::rr::{Name, RData, Record};

use super::*;

fn server(n: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, n)), 53)
}

fn resolver(servers: &[SocketAddr]) -> Resolver {
    let config = ResolverConfig {
        servers: servers.to_vec(),
        ..ResolverConfig::default()
    };
    Resolver::new(config, 7)
}

fn t(secs: u64) -> UnixTime {
    UnixTime::from_secs(1_000_000 + secs)
}

fn drain(resolver: &mut Resolver) -> Vec<Action> {
    std::iter::from_fn(|| resolver.poll_action()).collect()
}

fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap()
}

/// The query inside a send action, as the server would decode it.
fn query_of(action: &Action) -> (SocketAddr, Message, bool) {
    match action {
        Action::SendUdp { server, bytes } => (*server, Message::from_vec(bytes).unwrap(), false),
        Action::SendTcp { server, bytes } => {
            let length = usize::from(u16::from_be_bytes([bytes[0], bytes[1]]));
            assert_eq!(length, bytes.len() - 2);
            (*server, Message::from_vec(&bytes[2..]).unwrap(), true)
        }
        other => panic!("not a query: {other:?}"),
    }
}

/// A response to `query` with `code`, filled by `fill`.
fn respond(query: &Message, code: ResponseCode, fill: impl FnOnce(&mut Message)) -> Bytes {
    let mut response = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
    response.metadata.response_code = code;
    response.add_queries(query.queries.clone());
    fill(&mut response);
    Bytes::from(response.to_vec().unwrap())
}

fn lookup(resolver: &mut Resolver, id: u64, domain: &str, kind: RecordKind, now: UnixTime) {
    resolver.handle(
        Input::Lookup {
            id: LookupId(id),
            name: domain.into(),
            kind,
        },
        now,
    );
}

fn answer_of(actions: &[Action]) -> &Result<Answer, DnsError> {
    match actions {
        [Action::Answer { result, .. }] => result,
        other => panic!("expected one answer: {other:?}"),
    }
}

fn mx_record(owner: &str, preference: u16, exchange: &str, ttl: u32) -> Record {
    Record::from_rdata(
        name(owner),
        ttl,
        RData::MX(MX::new(preference, name(exchange))),
    )
}

fn a_record(owner: &str, ip: [u8; 4], ttl: u32) -> Record {
    Record::from_rdata(name(owner), ttl, RData::A(A(Ipv4Addr::from(ip))))
}

#[test]
fn mx_with_glue() {
    let mut r = resolver(&[server(1)]);
    lookup(&mut r, 1, "Example.ORG", RecordKind::Mx, t(0));
    let sent = drain(&mut r);
    assert_eq!(sent.len(), 1);
    let (to, query, tcp) = query_of(&sent[0]);
    assert_eq!((to, tcp), (server(1), false));
    assert!(query.metadata.recursion_desired);
    let reply = respond(&query, ResponseCode::NoError, |m| {
        m.add_answer(mx_record("example.org.", 10, "mx1.example.org.", 300));
        m.add_answer(mx_record("example.org.", 20, "mx2.example.org.", 600));
        m.add_additional(a_record("mx1.example.org.", [192, 0, 2, 10], 300));
    });
    r.handle(
        Input::UdpReceived {
            from: server(1),
            bytes: reply,
        },
        t(1),
    );
    let answer = answer_of(&drain(&mut r)).clone().unwrap();
    assert_eq!(
        answer.records,
        vec![
            RecordValue::Mx {
                preference: 10,
                exchange: "mx1.example.org".into()
            },
            RecordValue::Mx {
                preference: 20,
                exchange: "mx2.example.org".into()
            },
        ]
    );
    assert_eq!(
        answer.glue,
        vec![(
            "mx1.example.org".into(),
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10))
        )]
    );
    assert_eq!(answer.ttl, 300);
    assert_eq!(r.poll_timeout(), None);
}

#[test]
fn no_mx_is_an_empty_answer_and_a_records_follow() {
    let mut r = resolver(&[server(1)]);
    lookup(&mut r, 1, "example.net", RecordKind::Mx, t(0));
    let (_, query, _) = query_of(&drain(&mut r)[0]);
    r.handle(
        Input::UdpReceived {
            from: server(1),
            bytes: respond(&query, ResponseCode::NoError, |_| {}),
        },
        t(0),
    );
    assert_eq!(answer_of(&drain(&mut r)).clone().unwrap().records, vec![]);
    lookup(&mut r, 2, "example.net", RecordKind::A, t(0));
    let (_, query, _) = query_of(&drain(&mut r)[0]);
    let reply = respond(&query, ResponseCode::NoError, |m| {
        m.add_answer(a_record("example.net.", [198, 51, 100, 1], 60));
    });
    r.handle(
        Input::UdpReceived {
            from: server(1),
            bytes: reply,
        },
        t(0),
    );
    let records = answer_of(&drain(&mut r)).clone().unwrap().records;
    assert_eq!(
        records,
        vec![RecordValue::Addr(IpAddr::V4(Ipv4Addr::new(
            198, 51, 100, 1
        )))]
    );
}

#[test]
fn null_mx_decodes_to_an_empty_exchange() {
    let mut r = resolver(&[server(1)]);
    lookup(&mut r, 1, "nomail.example", RecordKind::Mx, t(0));
    let (_, query, _) = query_of(&drain(&mut r)[0]);
    let reply = respond(&query, ResponseCode::NoError, |m| {
        m.add_answer(mx_record("nomail.example.", 0, ".", 3600));
    });
    r.handle(
        Input::UdpReceived {
            from: server(1),
            bytes: reply,
        },
        t(0),
    );
    let records = answer_of(&drain(&mut r)).clone().unwrap().records;
    assert_eq!(
        records,
        vec![RecordValue::Mx {
            preference: 0,
            exchange: String::new()
        }]
    );
}

#[test]
fn nxdomain_is_permanent_and_negatively_cached() {
    let mut r = resolver(&[server(1), server(2)]);
    lookup(&mut r, 1, "nowhere.example", RecordKind::Mx, t(0));
    let (_, query, _) = query_of(&drain(&mut r)[0]);
    let reply = respond(&query, ResponseCode::NXDomain, |m| {
        let soa = SOA::new(
            name("ns.example."),
            name("root.example."),
            1,
            3600,
            600,
            86400,
            120,
        );
        m.add_authority(Record::from_rdata(name("example."), 900, RData::SOA(soa)));
    });
    r.handle(
        Input::UdpReceived {
            from: server(1),
            bytes: reply,
        },
        t(0),
    );
    let error = answer_of(&drain(&mut r)).clone().unwrap_err();
    assert_eq!(error, DnsError::NxDomain);
    assert!(error.is_permanent());
    lookup(&mut r, 2, "nowhere.example", RecordKind::Mx, t(119));
    assert_eq!(
        answer_of(&drain(&mut r)).clone().unwrap_err(),
        DnsError::NxDomain
    );
    lookup(&mut r, 3, "nowhere.example", RecordKind::Mx, t(121));
    assert!(matches!(drain(&mut r)[..], [Action::SendUdp { .. }]));
}

#[test]
fn servfail_moves_to_the_next_server_then_fails_temporarily() {
    let mut r = Resolver::new(
        ResolverConfig {
            servers: vec![server(1), server(2)],
            attempts: 1,
            ..ResolverConfig::default()
        },
        3,
    );
    lookup(&mut r, 1, "example.org", RecordKind::Mx, t(0));
    let (to, query, _) = query_of(&drain(&mut r)[0]);
    assert_eq!(to, server(1));
    r.handle(
        Input::UdpReceived {
            from: server(1),
            bytes: respond(&query, ResponseCode::ServFail, |_| {}),
        },
        t(0),
    );
    let (to, query, _) = query_of(&drain(&mut r)[0]);
    assert_eq!(to, server(2));
    r.handle(
        Input::UdpReceived {
            from: server(2),
            bytes: respond(&query, ResponseCode::ServFail, |_| {}),
        },
        t(0),
    );
    let error = answer_of(&drain(&mut r)).clone().unwrap_err();
    assert!(matches!(error, DnsError::ServerFailure(_)));
    assert!(!error.is_permanent());
    lookup(&mut r, 2, "example.org", RecordKind::Mx, t(1));
    assert!(
        matches!(drain(&mut r)[..], [Action::SendUdp { .. }]),
        "failures are not cached"
    );
}

#[test]
fn truncation_falls_back_to_tcp() {
    let mut r = resolver(&[server(1)]);
    lookup(&mut r, 1, "big.example", RecordKind::Mx, t(0));
    let (_, query, _) = query_of(&drain(&mut r)[0]);
    let reply = respond(&query, ResponseCode::NoError, |m| {
        m.metadata.truncation = true
    });
    r.handle(
        Input::UdpReceived {
            from: server(1),
            bytes: reply,
        },
        t(0),
    );
    let sent = drain(&mut r);
    let (to, query, tcp) = query_of(&sent[0]);
    assert_eq!((to, tcp), (server(1), true));
    let reply = respond(&query, ResponseCode::NoError, |m| {
        m.add_answer(mx_record("big.example.", 5, "mx.big.example.", 60));
    });
    let mut framed = u16::try_from(reply.len()).unwrap().to_be_bytes().to_vec();
    framed.extend_from_slice(&reply);
    r.handle(
        Input::UdpReceived {
            from: server(1),
            bytes: reply.clone(),
        },
        t(0),
    );
    assert!(
        drain(&mut r).is_empty(),
        "a UDP copy of a TCP answer is not the answer"
    );
    r.handle(
        Input::TcpReceived {
            from: server(1),
            bytes: Bytes::from(framed),
        },
        t(0),
    );
    assert_eq!(answer_of(&drain(&mut r)).clone().unwrap().records.len(), 1);
}

#[test]
fn mismatched_answers_are_ignored() {
    let mut r = resolver(&[server(1)]);
    lookup(&mut r, 1, "example.org", RecordKind::Mx, t(0));
    let (_, query, _) = query_of(&drain(&mut r)[0]);
    let good = |m: &mut Message| {
        m.add_answer(mx_record("example.org.", 1, "mx.example.org.", 60))
            .to_owned()
    };
    let mut other_id = query.clone();
    other_id.metadata.id = query.metadata.id.wrapping_add(1);
    let wrong_id = respond(&other_id, ResponseCode::NoError, |m| {
        good(m);
    });
    r.handle(
        Input::UdpReceived {
            from: server(1),
            bytes: wrong_id,
        },
        t(0),
    );
    let mut other_question = query.clone();
    other_question.queries[0].set_name(name("evil.example."));
    let wrong_question = respond(&other_question, ResponseCode::NoError, |m| {
        good(m);
    });
    r.handle(
        Input::UdpReceived {
            from: server(1),
            bytes: wrong_question,
        },
        t(0),
    );
    let right = respond(&query, ResponseCode::NoError, |m| {
        good(m);
    });
    r.handle(
        Input::UdpReceived {
            from: server(9),
            bytes: right.clone(),
        },
        t(0),
    );
    r.handle(
        Input::UdpReceived {
            from: server(1),
            bytes: Bytes::from_static(b"\x00garbage"),
        },
        t(0),
    );
    assert!(drain(&mut r).is_empty());
    r.handle(
        Input::UdpReceived {
            from: server(1),
            bytes: right,
        },
        t(0),
    );
    assert!(answer_of(&drain(&mut r)).is_ok());
}

#[test]
fn timeouts_walk_the_servers_then_fail_temporarily() {
    let mut r = resolver(&[server(1), server(2)]);
    lookup(&mut r, 1, "slow.example", RecordKind::A, t(0));
    let mut order = vec![query_of(&drain(&mut r)[0]).0];
    let mut now;
    loop {
        now = r.poll_timeout().expect("a try is pending");
        r.handle(Input::Tick, now);
        let actions = drain(&mut r);
        match &actions[..] {
            [Action::Answer { result, .. }] => {
                assert_eq!(result, &Err(DnsError::Timeout));
                break;
            }
            [send] => order.push(query_of(send).0),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(order, vec![server(1), server(2), server(1), server(2)]);
    assert_eq!(now, t(20));
    r.handle(Input::Tick, now);
    assert!(drain(&mut r).is_empty(), "a repeated tick is a no-op");
}

#[test]
fn answers_are_cached_for_their_ttl_and_shared_in_flight() {
    let mut r = resolver(&[server(1)]);
    lookup(&mut r, 1, "example.org", RecordKind::A, t(0));
    lookup(&mut r, 2, "EXAMPLE.org.", RecordKind::A, t(0));
    let sent = drain(&mut r);
    assert_eq!(sent.len(), 1, "one query serves both lookups");
    let (_, query, _) = query_of(&sent[0]);
    let reply = respond(&query, ResponseCode::NoError, |m| {
        m.add_answer(a_record("example.org.", [192, 0, 2, 80], 30));
    });
    r.handle(
        Input::UdpReceived {
            from: server(1),
            bytes: reply,
        },
        t(1),
    );
    let answers = drain(&mut r);
    assert_eq!(answers.len(), 2);
    lookup(&mut r, 3, "example.org", RecordKind::A, t(30));
    assert!(answer_of(&drain(&mut r)).is_ok(), "served from the cache");
    lookup(&mut r, 4, "example.org", RecordKind::A, t(31));
    assert!(
        matches!(drain(&mut r)[..], [Action::SendUdp { .. }]),
        "expired after its TTL"
    );
}

#[test]
fn the_cache_is_bounded() {
    let config = ResolverConfig {
        servers: vec![server(1)],
        cache_entries: 2,
        ..ResolverConfig::default()
    };
    let mut r = Resolver::new(config, 1);
    for (i, domain) in ["a.example", "b.example", "c.example"].iter().enumerate() {
        lookup(&mut r, i as u64, domain, RecordKind::Mx, t(0));
        let (_, query, _) = query_of(&drain(&mut r)[0]);
        let reply = respond(&query, ResponseCode::NoError, |_| {});
        r.handle(
            Input::UdpReceived {
                from: server(1),
                bytes: reply,
            },
            t(0),
        );
        drain(&mut r);
    }
    assert!(r.cached() <= 2);
}

#[test]
fn cname_without_data_is_followed() {
    let mut r = resolver(&[server(1)]);
    lookup(&mut r, 1, "alias.example", RecordKind::A, t(0));
    let (_, query, _) = query_of(&drain(&mut r)[0]);
    let reply = respond(&query, ResponseCode::NoError, |m| {
        let cname = hickory_proto::rr::rdata::CNAME(name("real.example."));
        m.add_answer(Record::from_rdata(
            name("alias.example."),
            60,
            RData::CNAME(cname),
        ));
    });
    r.handle(
        Input::UdpReceived {
            from: server(1),
            bytes: reply,
        },
        t(0),
    );
    let (_, query, _) = query_of(&drain(&mut r)[0]);
    assert_eq!(query.queries[0].name(), &name("real.example."));
    let reply = respond(&query, ResponseCode::NoError, |m| {
        m.add_answer(a_record("real.example.", [192, 0, 2, 5], 60));
    });
    r.handle(
        Input::UdpReceived {
            from: server(1),
            bytes: reply,
        },
        t(0),
    );
    assert_eq!(answer_of(&drain(&mut r)).clone().unwrap().records.len(), 1);
}

#[test]
fn no_servers_fails_temporarily_at_once() {
    let mut r = resolver(&[]);
    lookup(&mut r, 1, "example.org", RecordKind::Mx, t(0));
    assert_eq!(answer_of(&drain(&mut r)), &Err(DnsError::NoServers));
}

#[test]
fn resolv_conf_and_resolver_option() {
    let text = "# comment\nsearch example.org\nnameserver 192.0.2.53\nnameserver ::1 ; local\n\
                nameserver fe80::1%eth0\nnameserver bogus\nnameserver 192.0.2.54\n";
    let servers = parse_resolv_conf(text);
    assert_eq!(
        servers,
        vec![
            "192.0.2.53:53".parse().unwrap(),
            "[::1]:53".parse().unwrap(),
            "[fe80::1]:53".parse().unwrap(),
        ]
    );
    assert_eq!(
        parse_resolver("127.0.0.1:5353"),
        Some("127.0.0.1:5353".parse().unwrap())
    );
    assert_eq!(
        parse_resolver("127.0.0.1"),
        Some("127.0.0.1:53".parse().unwrap())
    );
    assert_eq!(parse_resolver("[::1]"), Some("[::1]:53".parse().unwrap()));
    assert_eq!(
        parse_resolver("[::1]:54"),
        Some("[::1]:54".parse().unwrap())
    );
    assert_eq!(parse_resolver("dns.example"), None);
}

#[test]
fn servers_from_the_option_the_file_or_localhost() {
    let conf = "nameserver 192.0.2.53\n";
    let servers = |option, file| ResolverConfig::from_sources(option, file).servers;
    assert_eq!(
        servers(Some("127.0.0.1:5353"), Some(conf)),
        vec!["127.0.0.1:5353".parse().unwrap()]
    );
    assert_eq!(
        servers(Some("bogus"), Some(conf)),
        vec!["192.0.2.53:53".parse().unwrap()]
    );
    assert_eq!(servers(None, None), vec!["127.0.0.1:53".parse().unwrap()]);
}
