//! DNS messages on the wire: a query encoded and an answer decoded with `hickory-proto`
//! message types (RFC 1035 §4), reduced to what MX routing needs.

use std::net::IpAddr; // allow-impure: address values, no socket

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

/// The largest UDP answer we ask for with EDNS(0) (RFC 6891 §6.2.5; 1232 avoids IP
/// fragmentation, the DNS flag day 2020 value).
pub const EDNS_PAYLOAD: u16 = 1232;

/// How many CNAME links are followed inside one answer (RFC 1034 §3.6.2 chains).
const MAX_CNAME_LINKS: usize = 8;

/// The record types the MX router asks for.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum RecordKind {
    /// Mail exchangers (RFC 1035 §3.3.9, RFC 5321 §5.1).
    Mx,
    /// IPv4 addresses (RFC 1035 §3.4.1).
    A,
    /// IPv6 addresses (RFC 3596 §2.2).
    Aaaa,
}

impl RecordKind {
    fn record_type(self) -> RecordType {
        match self {
            RecordKind::Mx => RecordType::MX,
            RecordKind::A => RecordType::A,
            RecordKind::Aaaa => RecordType::AAAA,
        }
    }
}

/// One record of an answer, reduced to its data.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum RecordValue {
    /// An MX record: preference (lower is preferred) and exchanger name (lower case, no
    /// trailing dot; empty for the root, the Null MX of RFC 7505).
    Mx {
        /// Preference, lower first (RFC 5321 §5.1).
        preference: u16,
        /// The exchanger's host name.
        exchange: String,
    },
    /// An A or AAAA address.
    Addr(IpAddr),
}

/// A successful answer (RCODE NOERROR), possibly with no records (NODATA).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Answer {
    /// The records of the asked type for the asked name (after CNAMEs), in answer order.
    pub records: Vec<RecordValue>,
    /// Addresses of the additional section, by owner name (glue for MX exchangers).
    pub glue: Vec<(String, IpAddr)>,
    /// Where the CNAME chain ended when it ended without data: the name to ask next.
    pub cname: Option<String>,
    /// Seconds the answer may be cached: the smallest TTL of what was used (for NODATA,
    /// the SOA minimum of RFC 2308 §5 when an SOA came with it).
    pub ttl: u32,
}

/// What an incoming message means for a query.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Reply {
    /// Not an answer to this query (other id, other question, not a response, garbage):
    /// ignored, as RFC 5452 §9.1 asks of a resolver.
    Ignore,
    /// The TC bit: the answer did not fit, ask again over TCP (RFC 1035 §4.2.1).
    Truncated,
    /// NOERROR.
    Answer(Answer),
    /// NXDOMAIN: the name does not exist, cacheable for the given seconds (RFC 2308 §5).
    NxDomain {
        /// Negative-cache seconds (SOA minimum, or 0 when no SOA came).
        ttl: u32,
    },
    /// Any other RCODE (SERVFAIL, REFUSED, FORMERR...): this server cannot answer.
    ServerError(String),
}

/// A name in the form used across the router: lower case, no trailing dot.
pub fn normalize_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn name_text(name: &Name) -> String {
    normalize_name(&name.to_ascii())
}

/// Encodes a recursive query for `name`/`kind` with message id `id` and EDNS(0).
/// `None` when `name` is not a valid domain name.
pub fn encode_query(id: u16, name: &str, kind: RecordKind) -> Option<Vec<u8>> {
    let mut fqdn = Name::from_ascii(name).ok()?;
    fqdn.set_fqdn(true);
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    let mut query = Query::query(fqdn, kind.record_type());
    query.set_query_class(DNSClass::IN);
    message.add_query(query);
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_PAYLOAD);
    message.set_edns(edns);
    message.to_vec().ok()
}

/// Decodes `bytes` as the answer to query `id` for `name`/`kind`.
pub fn decode_reply(bytes: &[u8], id: u16, name: &str, kind: RecordKind) -> Reply {
    let Ok(message) = Message::from_vec(bytes) else {
        return Reply::Ignore;
    };
    let metadata = &message.metadata;
    if metadata.id != id || metadata.message_type != MessageType::Response {
        return Reply::Ignore;
    }
    let question_matches = message.queries.len() == 1
        && message.queries.iter().all(|q| {
            name_text(q.name()) == normalize_name(name)
                && q.query_type() == kind.record_type()
                && q.query_class() == DNSClass::IN
        });
    if !question_matches {
        return Reply::Ignore;
    }
    if metadata.truncation {
        return Reply::Truncated;
    }
    match metadata.response_code {
        ResponseCode::NoError => Reply::Answer(answer(&message, name, kind)),
        ResponseCode::NXDomain => Reply::NxDomain {
            ttl: soa_minimum(&message).unwrap_or(0),
        },
        other => Reply::ServerError(other.to_string()),
    }
}

fn soa_minimum(message: &Message) -> Option<u32> {
    message
        .authorities
        .iter()
        .find_map(|record| match &record.data {
            RData::SOA(soa) => Some(soa.minimum.min(record.ttl)),
            _ => None,
        })
}

fn answer(message: &Message, name: &str, kind: RecordKind) -> Answer {
    let mut target = normalize_name(name);
    let mut ttl = u32::MAX;
    let mut followed = false;
    for _ in 0..MAX_CNAME_LINKS {
        let next = message
            .answers
            .iter()
            .find_map(|record| match &record.data {
                RData::CNAME(cname) if name_text(&record.name) == target => {
                    Some((name_text(&cname.0), record.ttl))
                }
                _ => None,
            });
        match next {
            Some((next, record_ttl)) if next != target => {
                target = next;
                ttl = ttl.min(record_ttl);
                followed = true;
            }
            _ => break,
        }
    }
    let mut records = Vec::new();
    for record in message
        .answers
        .iter()
        .filter(|r| name_text(&r.name) == target)
    {
        if let Some(value) = value_of(record, kind) {
            ttl = ttl.min(record.ttl);
            records.push(value);
        }
    }
    let glue = message
        .additionals
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(a) => Some((name_text(&record.name), IpAddr::V4(a.0))),
            RData::AAAA(aaaa) => Some((name_text(&record.name), IpAddr::V6(aaaa.0))),
            _ => None,
        })
        .collect();
    let cname = (followed && records.is_empty()).then(|| target.clone());
    if records.is_empty() && cname.is_none() {
        ttl = ttl.min(soa_minimum(message).unwrap_or(0));
    }
    Answer {
        records,
        glue,
        cname,
        ttl: if ttl == u32::MAX { 0 } else { ttl },
    }
}

fn value_of(record: &Record, kind: RecordKind) -> Option<RecordValue> {
    match (&record.data, kind) {
        (RData::MX(mx), RecordKind::Mx) => Some(RecordValue::Mx {
            preference: mx.preference,
            exchange: name_text(&mx.exchange),
        }),
        (RData::A(a), RecordKind::A) => Some(RecordValue::Addr(IpAddr::V4(a.0))),
        (RData::AAAA(aaaa), RecordKind::Aaaa) => Some(RecordValue::Addr(IpAddr::V6(aaaa.0))),
        _ => None,
    }
}
