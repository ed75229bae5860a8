//! The DNS stub resolver: a pure machine that turns "what are the MX (A, AAAA) records of
//! this name" into datagrams for a runtime to move, and datagrams back into answers.
//!
//! Shape as every machine of the crate: [`Resolver::handle`] feeds an [`Input`],
//! [`Resolver::poll_action`] drains [`Action`]s, [`Resolver::poll_timeout`] says when to
//! feed [`Input::Tick`]. A runtime's duties: for [`Action::SendUdp`], send the datagram
//! from one socket and feed every datagram that comes back as [`Input::UdpReceived`] (with
//! its source); for [`Action::SendTcp`], connect, write the bytes (already length-prefixed,
//! RFC 1035 §4.2.2), read the 2-byte length and that many bytes, and feed the whole as
//! [`Input::TcpReceived`] (or [`Input::TcpFailed`]).
//!
//! Behaviour: recursive queries with random ids (RFC 5452 §9.2) from a seeded generator;
//! answers from the wrong server, with another id or another question are ignored; each
//! name server is tried in turn, [`ResolverConfig::attempts`] rounds, each try bounded by
//! [`ResolverConfig::timeout`]; a truncated answer is asked again over TCP (RFC 7766 §5);
//! SERVFAIL and the like move to the next server; when every try failed the lookup fails
//! temporarily. NXDOMAIN is final. Results are cached for their TTL in a bounded cache;
//! lookups of a name already in flight share its query.

mod cache;
mod resolv_conf;
#[cfg(test)]
mod tests;
mod wire;

pub use resolv_conf::{parse_resolv_conf, parse_resolver, DNS_PORT, MAX_NAME_SERVERS};
pub use wire::{
    decode_reply, encode_query, normalize_name, Answer, RecordKind, RecordValue, Reply,
    EDNS_PAYLOAD,
};

use std::collections::VecDeque;
use std::net::SocketAddr; // allow-impure: address values, no socket
use std::time::Duration;

use bytes::Bytes;
use thiserror::Error;

use crate::queue::SplitMix64;
use crate::time::UnixTime;
use cache::Cache;

/// Largest DNS message accepted (the TCP length prefix allows 65535).
const MAX_MESSAGE: usize = 65_535;

/// CNAME chains followed across queries at most this deep (RFC 1034 §5.3.3).
const MAX_CNAME_DEPTH: u8 = 8;

/// Settings of the stub resolver.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ResolverConfig {
    /// Name servers, asked in order (from `resolv.conf` or `mta resolver`).
    pub servers: Vec<SocketAddr>,
    /// How long one try waits for its answer (the C library's `timeout`, 5 s).
    pub timeout: Duration,
    /// Rounds over all servers before giving up (the C library's `attempts`, 2).
    pub attempts: u8,
    /// Cache entries at most.
    pub cache_entries: usize,
    /// Longest time an answer is cached, whatever its TTL says.
    pub max_ttl: Duration,
    /// Most lookups in flight at once; more fail temporarily at once.
    pub max_inflight: usize,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        ResolverConfig {
            servers: Vec::new(),
            timeout: Duration::from_secs(5),
            attempts: 2,
            cache_entries: 1024,
            max_ttl: Duration::from_secs(86_400),
            max_inflight: 1024,
        }
    }
}

impl ResolverConfig {
    /// Default settings with the name servers of `mta resolver "IP[:PORT]"` when given
    /// (and valid), else those of the `/etc/resolv.conf` text, else 127.0.0.1 as the C
    /// library assumes when the file names none.
    pub fn from_sources(mta_resolver: Option<&str>, resolv_conf: Option<&str>) -> Self {
        let mut servers: Vec<SocketAddr> =
            mta_resolver.and_then(parse_resolver).into_iter().collect();
        if servers.is_empty() {
            servers = resolv_conf.map(parse_resolv_conf).unwrap_or_default();
        }
        if servers.is_empty() {
            servers.push(SocketAddr::from(([127, 0, 0, 1], DNS_PORT)));
        }
        ResolverConfig {
            servers,
            ..ResolverConfig::default()
        }
    }
}

/// The caller's name for one lookup, echoed in its [`Action::Answer`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct LookupId(pub u64);

/// Why a lookup failed.
#[derive(Clone, PartialEq, Eq, Debug, Error)]
#[non_exhaustive]
pub enum DnsError {
    /// NXDOMAIN: the name does not exist (permanent, RFC 1035 §4.1.1).
    #[error("no such domain")]
    NxDomain,
    /// Every server answered with an error code such as SERVFAIL (temporary).
    #[error("name server failure: {0}")]
    ServerFailure(String),
    /// No answer came in time from any server (temporary).
    #[error("name servers did not answer")]
    Timeout,
    /// No name server is configured (temporary: the configuration can be fixed).
    #[error("no name server configured")]
    NoServers,
    /// The name is not a valid domain name (permanent).
    #[error("invalid domain name")]
    BadName,
    /// Too many lookups in flight (temporary).
    #[error("too many DNS lookups in flight")]
    Busy,
}

impl DnsError {
    /// Whether the failure is final for this name (NXDOMAIN, a bad name).
    pub fn is_permanent(&self) -> bool {
        matches!(self, DnsError::NxDomain | DnsError::BadName)
    }
}

/// One input to the resolver.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Input {
    /// Look up the `kind` records of `name`.
    Lookup {
        /// Echoed in the answer.
        id: LookupId,
        /// A domain name, with or without the trailing dot.
        name: String,
        /// The record type.
        kind: RecordKind,
    },
    /// A UDP datagram arrived from `from`.
    UdpReceived {
        /// Its source.
        from: SocketAddr,
        /// Its payload.
        bytes: Bytes,
    },
    /// A TCP answer arrived from `from`: the 2-byte length prefix and the message.
    TcpReceived {
        /// The server the TCP query went to.
        from: SocketAddr,
        /// Length prefix and message.
        bytes: Bytes,
    },
    /// The TCP query to `from` failed (connect refused, reset, closed early).
    TcpFailed {
        /// The server the TCP query went to.
        from: SocketAddr,
    },
    /// Time passed (see [`Resolver::poll_timeout`]).
    Tick,
}

/// One action of the resolver.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Action {
    /// Send this datagram to `server` over UDP.
    SendUdp {
        /// A name server.
        server: SocketAddr,
        /// The encoded query.
        bytes: Bytes,
    },
    /// Open a TCP connection to `server`, send `bytes` (length-prefixed), read one answer.
    SendTcp {
        /// A name server.
        server: SocketAddr,
        /// The encoded query with its 2-byte length prefix.
        bytes: Bytes,
    },
    /// The result of a lookup.
    Answer {
        /// The caller's id.
        id: LookupId,
        /// Records, or why there are none.
        result: Result<Answer, DnsError>,
    },
}

/// A query in flight: what is asked, of which server, and who waits for it.
#[derive(Clone, Debug)]
struct Pending {
    waiting: Vec<LookupId>,
    asked: String,
    name: String,
    kind: RecordKind,
    try_index: usize,
    tcp: bool,
    message_id: u16,
    deadline: UnixTime,
    cname_depth: u8,
    last_error: Option<DnsError>,
}

/// The stub resolver machine.
#[derive(Clone, Debug)]
pub struct Resolver {
    config: ResolverConfig,
    rng: SplitMix64,
    cache: Cache,
    pending: Vec<Pending>,
    actions: VecDeque<Action>,
}

impl Resolver {
    /// A resolver with `config`; `seed` drives the query ids.
    pub fn new(config: ResolverConfig, seed: u64) -> Self {
        let cache = Cache::new(config.cache_entries);
        Resolver {
            config,
            rng: SplitMix64::new(seed),
            cache,
            pending: Vec::new(),
            actions: VecDeque::new(),
        }
    }

    /// Feeds one input.
    pub fn handle(&mut self, input: Input, now: UnixTime) {
        match input {
            Input::Lookup { id, name, kind } => self.lookup(id, &name, kind, now),
            Input::UdpReceived { from, bytes } => self.received(from, &bytes, false, now),
            Input::TcpReceived { from, bytes } => {
                let body = bytes.get(2..).unwrap_or_default();
                let declared = bytes
                    .get(..2)
                    .and_then(|prefix| <[u8; 2]>::try_from(prefix).ok())
                    .map(|prefix| usize::from(u16::from_be_bytes(prefix)));
                if declared == Some(body.len()) {
                    self.received(from, body, true, now);
                } else {
                    self.tcp_failed(from, now);
                }
            }
            Input::TcpFailed { from } => self.tcp_failed(from, now),
            Input::Tick => self.handle_timeout(now),
        }
    }

    /// Next action to perform; call until `None` after every [`Resolver::handle`].
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When the resolver next needs an [`Input::Tick`]: the earliest try deadline.
    pub fn poll_timeout(&self) -> Option<UnixTime> {
        self.pending.iter().map(|p| p.deadline).min()
    }

    /// Moves every try whose deadline has passed to the next server (or gives up).
    pub fn handle_timeout(&mut self, now: UnixTime) {
        let mut index = 0;
        while index < self.pending.len() {
            let expired = self.pending.get(index).is_some_and(|p| p.deadline <= now);
            if expired {
                if let Some(pending) = self.pending.get_mut(index) {
                    pending.last_error.get_or_insert(DnsError::Timeout);
                }
                if !self.next_try(index, now) {
                    continue;
                }
            }
            index += 1;
        }
    }

    /// Lookups in flight (queries not yet answered).
    pub fn inflight(&self) -> usize {
        self.pending.len()
    }

    /// Entries in the answer cache.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    fn lookup(&mut self, id: LookupId, name: &str, kind: RecordKind, now: UnixTime) {
        let name = normalize_name(name);
        if let Some(result) = self.cache.get(&name, kind, now) {
            self.actions.push_back(Action::Answer { id, result });
            return;
        }
        if let Some(pending) = self
            .pending
            .iter_mut()
            .find(|p| p.asked == name && p.kind == kind)
        {
            pending.waiting.push(id);
            return;
        }
        let error = if self.config.servers.is_empty() {
            Some(DnsError::NoServers)
        } else if self.pending.len() >= self.config.max_inflight {
            Some(DnsError::Busy)
        } else if encode_query(0, &name, kind).is_none() {
            Some(DnsError::BadName)
        } else {
            None
        };
        if let Some(error) = error {
            self.actions.push_back(Action::Answer {
                id,
                result: Err(error),
            });
            return;
        }
        self.pending.push(Pending {
            waiting: vec![id],
            asked: name.clone(),
            name,
            kind,
            try_index: 0,
            tcp: false,
            message_id: 0,
            deadline: now,
            cname_depth: 0,
            last_error: None,
        });
        let index = self.pending.len().saturating_sub(1);
        self.send(index, now);
    }

    fn server_of(&self, try_index: usize) -> Option<SocketAddr> {
        let count = self.config.servers.len();
        if count == 0 || try_index >= count.saturating_mul(usize::from(self.config.attempts.max(1)))
        {
            return None;
        }
        self.config.servers.get(try_index % count).copied()
    }

    /// Sends the current try of query `index` (with a fresh id).
    fn send(&mut self, index: usize, now: UnixTime) {
        // A fresh id unlike the others in flight; after a few draws a duplicate is still
        // told apart by its question (and `max_inflight` keeps collisions rare).
        let mut id = 0;
        for _ in 0..16 {
            id = u16::try_from(self.rng.next_u64() >> 48).unwrap_or(0);
            if !self.pending.iter().any(|p| p.message_id == id) {
                break;
            }
        }
        let timeout = self.config.timeout;
        let Some(pending) = self.pending.get_mut(index) else {
            return;
        };
        let Some(server) = self
            .config
            .servers
            .get(pending.try_index % self.config.servers.len().max(1))
            .copied()
        else {
            return;
        };
        pending.message_id = id;
        pending.deadline = now.saturating_add(timeout);
        let Some(query) = encode_query(id, &pending.name, pending.kind) else {
            return;
        };
        if pending.tcp {
            let length = u16::try_from(query.len()).unwrap_or(u16::MAX).to_be_bytes();
            let mut framed = Vec::with_capacity(query.len().saturating_add(2));
            framed.extend_from_slice(&length);
            framed.extend_from_slice(&query);
            self.actions.push_back(Action::SendTcp {
                server,
                bytes: Bytes::from(framed),
            });
        } else {
            self.actions.push_back(Action::SendUdp {
                server,
                bytes: Bytes::from(query),
            });
        }
    }

    /// Moves query `index` to its next try; returns false when it was finished (removed).
    fn next_try(&mut self, index: usize, now: UnixTime) -> bool {
        let Some(pending) = self.pending.get_mut(index) else {
            return false;
        };
        pending.try_index = pending.try_index.saturating_add(1);
        pending.tcp = false;
        let try_index = pending.try_index;
        if self.server_of(try_index).is_some() {
            self.send(index, now);
            return true;
        }
        let error = self
            .pending
            .get(index)
            .and_then(|p| p.last_error.clone())
            .unwrap_or(DnsError::Timeout);
        self.finish(index, Err(error), None, now);
        false
    }

    fn received(&mut self, from: SocketAddr, bytes: &[u8], tcp: bool, now: UnixTime) {
        if bytes.len() > MAX_MESSAGE {
            return;
        }
        let found = self.pending.iter().enumerate().find_map(|(index, p)| {
            if p.tcp != tcp || self.server_of(p.try_index) != Some(from) {
                return None;
            }
            match decode_reply(bytes, p.message_id, &p.name, p.kind) {
                Reply::Ignore => None,
                reply => Some((index, reply)),
            }
        });
        let Some((index, reply)) = found else { return };
        match reply {
            Reply::Ignore => {}
            Reply::Truncated => {
                if let Some(pending) = self.pending.get_mut(index) {
                    if pending.tcp {
                        pending.last_error =
                            Some(DnsError::ServerFailure("truncated over TCP".into()));
                        self.next_try(index, now);
                    } else {
                        pending.tcp = true;
                        self.send(index, now);
                    }
                }
            }
            Reply::ServerError(code) => {
                if let Some(pending) = self.pending.get_mut(index) {
                    pending.last_error = Some(DnsError::ServerFailure(code));
                }
                self.next_try(index, now);
            }
            Reply::NxDomain { ttl } => self.finish(index, Err(DnsError::NxDomain), Some(ttl), now),
            Reply::Answer(answer) => match answer.cname.clone() {
                Some(target) => self.follow(index, target, now),
                None => {
                    let ttl = answer.ttl;
                    self.finish(index, Ok(answer), Some(ttl), now);
                }
            },
        }
    }

    /// The answer was a CNAME to `target` without its records: ask again for the target.
    fn follow(&mut self, index: usize, target: String, now: UnixTime) {
        let Some(pending) = self.pending.get_mut(index) else {
            return;
        };
        if pending.cname_depth >= MAX_CNAME_DEPTH {
            let error = DnsError::ServerFailure("CNAME chain too long".into());
            self.finish(index, Err(error), None, now);
            return;
        }
        pending.cname_depth = pending.cname_depth.saturating_add(1);
        pending.name = target;
        pending.try_index = 0;
        pending.tcp = false;
        self.send(index, now);
    }

    fn tcp_failed(&mut self, from: SocketAddr, now: UnixTime) {
        let index = self
            .pending
            .iter()
            .position(|p| p.tcp && self.server_of(p.try_index) == Some(from));
        if let Some(index) = index {
            if let Some(pending) = self.pending.get_mut(index) {
                pending.last_error = Some(DnsError::ServerFailure("TCP query failed".into()));
            }
            self.next_try(index, now);
        }
    }

    /// Ends query `index` with `result`, caching it for `ttl` seconds when given.
    fn finish(
        &mut self,
        index: usize,
        result: Result<Answer, DnsError>,
        ttl: Option<u32>,
        now: UnixTime,
    ) {
        if index >= self.pending.len() {
            return;
        }
        let pending = self.pending.swap_remove(index);
        if let Some(ttl) = ttl {
            let keep = Duration::from_secs(u64::from(ttl)).min(self.config.max_ttl);
            self.cache.insert(
                &pending.asked,
                pending.kind,
                now.saturating_add(keep),
                result.clone(),
                now,
            );
        }
        for id in pending.waiting {
            self.actions.push_back(Action::Answer {
                id,
                result: result.clone(),
            });
        }
    }
}
