//! MX resolution (RFC 5321 §5.1): the MX records of a domain, then the addresses of each
//! exchanger, reduced to an [`MxSet`]; a machine wrapping the DNS stub.
//!
//! No MX records means the domain itself is the exchanger (the implicit MX); a single
//! `0 .` MX is a Null MX (RFC 7505 §3) and a permanent failure; NXDOMAIN is permanent;
//! SERVFAIL and timeouts are temporary. An exchanger named `localhost` or resolving only to
//! loopback addresses is refused unless [`MxResolverConfig::allow_loopback`] (tests use
//! 127.0.0.x sinks); an explicit relay host (`relay host`) may be anything.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr; // allow-impure: address values, no socket

use smtp_proto::reply::EnhancedStatus;
use thiserror::Error;

use crate::dns::{
    self, Answer, DnsError, LookupId, RecordKind, RecordValue, Resolver, ResolverConfig,
};
use crate::queue::Failure;
use crate::time::UnixTime;

/// Exchangers considered per domain at most (bounds the address lookups).
pub const MAX_EXCHANGERS: usize = 16;

/// Addresses kept per exchanger at most.
pub const MAX_ADDRESSES: usize = 16;

/// What to resolve: a destination domain (MX lookup) or an explicit host (addresses only).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct MxQuery {
    /// The domain or host name (lower case, no trailing dot), or an IP literal.
    pub name: String,
    /// `true` for a `relay host`: no MX lookup, no loopback check.
    pub explicit: bool,
}

impl MxQuery {
    /// The MX lookup of a destination domain.
    pub fn domain(name: &str) -> Self {
        MxQuery {
            name: dns::normalize_name(name),
            explicit: false,
        }
    }

    /// The address lookup of an explicit relay host.
    pub fn host(name: &str) -> Self {
        MxQuery {
            name: dns::normalize_name(name.trim_start_matches('[').trim_end_matches(']')),
            explicit: true,
        }
    }
}

/// One exchanger and its addresses (A first, then AAAA).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MxHost {
    /// Its host name.
    pub name: String,
    /// Its addresses.
    pub addrs: Vec<IpAddr>,
}

/// The exchangers of one preference.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MxLevel {
    /// The MX preference (lower is tried first).
    pub preference: u16,
    /// Exchangers of this preference, in answer order.
    pub hosts: Vec<MxHost>,
}

/// Where mail for a domain goes: preference levels in increasing order, each with hosts
/// that have at least one address.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MxSet {
    /// Levels, most preferred first; never empty in a successful result.
    pub levels: Vec<MxLevel>,
    /// How long the set may be reused, in seconds (the smallest TTL involved).
    pub ttl: u32,
}

impl MxSet {
    /// A set of one host at preference 0 (a relay host, or a test).
    pub fn single(name: &str, addrs: Vec<IpAddr>, ttl: u32) -> Self {
        MxSet {
            levels: vec![MxLevel {
                preference: 0,
                hosts: vec![MxHost {
                    name: name.into(),
                    addrs,
                }],
            }],
            ttl,
        }
    }
}

/// Why a domain has no usable exchanger.
#[derive(Clone, PartialEq, Eq, Debug, Error)]
#[non_exhaustive]
pub enum MxError {
    /// The domain publishes a Null MX: it accepts no mail (RFC 7505 §3, status 5.1.10).
    #[error("domain {0} does not accept mail (null MX)")]
    NullMx(String),
    /// NXDOMAIN (status 5.1.2).
    #[error("domain {0} does not exist")]
    NoSuchDomain(String),
    /// The domain exists but has neither MX nor address records (status 5.1.2).
    #[error("domain {0} has no mail exchanger and no address")]
    NoMailExchanger(String),
    /// An exchanger is `localhost` or loopback only (status 5.4.4, a loop).
    #[error("MX for {0} points to loopback")]
    Loopback(String),
    /// DNS failed for now (SERVFAIL, timeouts) or no exchanger address could be found.
    #[error("temporary failure resolving {name}: {reason}")]
    Temporary {
        /// The domain.
        name: String,
        /// What went wrong.
        reason: String,
    },
}

impl MxError {
    /// Whether the failure is final (the message bounces).
    pub fn is_permanent(&self) -> bool {
        !matches!(self, MxError::Temporary { .. })
    }

    /// The failure as recorded on an envelope (RFC 3463 status and text).
    pub fn failure(&self) -> Failure {
        let status = match self {
            MxError::NullMx(_) => EnhancedStatus::new(5, 1, 10),
            MxError::NoSuchDomain(_) | MxError::NoMailExchanger(_) => EnhancedStatus::new(5, 1, 2),
            MxError::Loopback(_) => EnhancedStatus::new(5, 4, 4),
            MxError::Temporary { .. } => EnhancedStatus::new(4, 4, 3),
        };
        Failure {
            status,
            text: self.to_string(),
            remote_mta: None,
        }
    }
}

/// Settings of MX resolution.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct MxResolverConfig {
    /// The stub resolver's settings (name servers, timeouts, cache).
    pub dns: ResolverConfig,
    /// Accept exchangers on loopback addresses (test setups with 127.0.0.x sinks).
    pub allow_loopback: bool,
}

/// One input to MX resolution.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum MxInput {
    /// Resolve this query; the answer is one [`MxAction::Resolved`].
    Resolve(MxQuery),
    /// Something for the stub resolver (a datagram, a TCP answer).
    Dns(dns::Input),
    /// Time passed.
    Tick,
}

/// One action of MX resolution.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum MxAction {
    /// A datagram or TCP query for the runtime to send ([`dns::Action::SendUdp`] or
    /// [`dns::Action::SendTcp`]).
    Dns(dns::Action),
    /// The result of a [`MxInput::Resolve`].
    Resolved {
        /// The query.
        query: MxQuery,
        /// The exchangers, or why there are none.
        result: Result<MxSet, MxError>,
    },
}

/// One exchanger being resolved.
#[derive(Clone, Debug)]
struct Exchanger {
    preference: u16,
    name: String,
    v4: Vec<IpAddr>,
    v6: Vec<IpAddr>,
}

/// A resolution in progress.
#[derive(Clone, Debug)]
struct Job {
    implicit: bool,
    exchangers: Vec<Exchanger>,
    waiting: usize,
    ttl: u32,
    errors: Vec<DnsError>,
    definite_empty: usize,
}

/// What a DNS lookup was for.
#[derive(Clone, Debug)]
enum Step {
    Mx,
    Address { exchanger: usize, kind: RecordKind },
}

/// The MX resolution machine: same verbs as every machine of the crate.
#[derive(Clone, Debug)]
pub struct MxResolver {
    config: MxResolverConfig,
    dns: Resolver,
    jobs: BTreeMap<MxQuery, Job>,
    lookups: BTreeMap<LookupId, (MxQuery, Step)>,
    next_lookup: u64,
    actions: VecDeque<MxAction>,
}

impl MxResolver {
    /// A resolver with `config`; `seed` drives the DNS query ids.
    pub fn new(config: MxResolverConfig, seed: u64) -> Self {
        let dns = Resolver::new(config.dns.clone(), seed);
        MxResolver {
            config,
            dns,
            jobs: BTreeMap::new(),
            lookups: BTreeMap::new(),
            next_lookup: 0,
            actions: VecDeque::new(),
        }
    }

    /// Feeds one input.
    pub fn handle(&mut self, input: MxInput, now: UnixTime) {
        match input {
            MxInput::Resolve(query) => self.resolve(query, now),
            MxInput::Dns(input) => self.dns.handle(input, now),
            MxInput::Tick => self.dns.handle_timeout(now),
        }
        self.pump(now);
    }

    /// Next action; call until `None` after every [`MxResolver::handle`].
    pub fn poll_action(&mut self) -> Option<MxAction> {
        self.actions.pop_front()
    }

    /// When the resolver next needs an [`MxInput::Tick`].
    pub fn poll_timeout(&self) -> Option<UnixTime> {
        self.dns.poll_timeout()
    }

    /// Resolutions in progress.
    pub fn inflight(&self) -> usize {
        self.jobs.len()
    }

    fn resolve(&mut self, query: MxQuery, now: UnixTime) {
        if self.jobs.contains_key(&query) {
            return;
        }
        if query.explicit {
            if let Ok(ip) = query.name.parse::<IpAddr>() {
                let set = MxSet::single(&query.name, vec![ip], u32::MAX);
                self.actions.push_back(MxAction::Resolved {
                    query,
                    result: Ok(set),
                });
                return;
            }
        }
        let job = Job {
            implicit: false,
            exchangers: Vec::new(),
            waiting: 0,
            ttl: u32::MAX,
            errors: Vec::new(),
            definite_empty: 0,
        };
        self.jobs.insert(query.clone(), job);
        if query.explicit {
            self.start_exchanger(&query, 0, query.name.clone(), now);
        } else {
            let name = query.name.clone();
            self.lookup(&query, Step::Mx, &name, RecordKind::Mx, now);
        }
    }

    fn lookup(&mut self, query: &MxQuery, step: Step, name: &str, kind: RecordKind, now: UnixTime) {
        let id = LookupId(self.next_lookup);
        self.next_lookup = self.next_lookup.wrapping_add(1);
        if let Some(job) = self.jobs.get_mut(query) {
            job.waiting = job.waiting.saturating_add(1);
        }
        self.lookups.insert(id, (query.clone(), step));
        self.dns.handle(
            dns::Input::Lookup {
                id,
                name: name.into(),
                kind,
            },
            now,
        );
    }

    /// Adds an exchanger to the job and asks for its A and AAAA records.
    fn start_exchanger(&mut self, query: &MxQuery, preference: u16, name: String, now: UnixTime) {
        let Some(job) = self.jobs.get_mut(query) else {
            return;
        };
        let index = job.exchangers.len();
        job.exchangers.push(Exchanger {
            preference,
            name: name.clone(),
            v4: Vec::new(),
            v6: Vec::new(),
        });
        self.lookup(
            query,
            Step::Address {
                exchanger: index,
                kind: RecordKind::A,
            },
            &name,
            RecordKind::A,
            now,
        );
        self.lookup(
            query,
            Step::Address {
                exchanger: index,
                kind: RecordKind::Aaaa,
            },
            &name,
            RecordKind::Aaaa,
            now,
        );
    }

    /// Moves the stub's actions out: sends go to the runtime, answers advance the jobs.
    fn pump(&mut self, now: UnixTime) {
        while let Some(action) = self.dns.poll_action() {
            match action {
                dns::Action::Answer { id, result } => self.answered(id, result, now),
                send => self.actions.push_back(MxAction::Dns(send)),
            }
        }
    }

    fn answered(&mut self, id: LookupId, result: Result<Answer, DnsError>, now: UnixTime) {
        let Some((query, step)) = self.lookups.remove(&id) else {
            return;
        };
        let Some(job) = self.jobs.get_mut(&query) else {
            return;
        };
        job.waiting = job.waiting.saturating_sub(1);
        match step {
            Step::Mx => self.mx_answered(&query, result, now),
            Step::Address { exchanger, kind } => {
                match result {
                    Ok(answer) => {
                        // A NODATA answer (often without an SOA, TTL 0) does not shorten
                        // the life of the addresses that were found.
                        if answer.records.is_empty() {
                            job.definite_empty = job.definite_empty.saturating_add(1);
                        } else {
                            job.ttl = job.ttl.min(answer.ttl);
                        }
                        if let Some(entry) = job.exchangers.get_mut(exchanger) {
                            let list = if kind == RecordKind::A {
                                &mut entry.v4
                            } else {
                                &mut entry.v6
                            };
                            for record in answer.records {
                                if let RecordValue::Addr(ip) = record {
                                    if list.len() < MAX_ADDRESSES && !list.contains(&ip) {
                                        list.push(ip);
                                    }
                                }
                            }
                        }
                    }
                    Err(error) => job.errors.push(error),
                }
                if job.waiting == 0 {
                    self.complete(&query);
                }
            }
        }
    }

    fn mx_answered(&mut self, query: &MxQuery, result: Result<Answer, DnsError>, now: UnixTime) {
        let name = query.name.clone();
        let answer = match result {
            Ok(answer) => answer,
            Err(DnsError::NxDomain) => return self.fail(query, MxError::NoSuchDomain(name)),
            Err(error) => {
                return self.fail(
                    query,
                    MxError::Temporary {
                        name,
                        reason: error.to_string(),
                    },
                );
            }
        };
        let mut mxs: Vec<(u16, String)> = answer
            .records
            .iter()
            .filter_map(|r| match r {
                RecordValue::Mx {
                    preference,
                    exchange,
                } => Some((*preference, exchange.clone())),
                RecordValue::Addr(_) => None,
            })
            .collect();
        if let [(_, exchange)] = mxs.as_slice() {
            if exchange.is_empty() {
                return self.fail(query, MxError::NullMx(name));
            }
        }
        mxs.retain(|(_, exchange)| !exchange.is_empty());
        mxs.sort();
        mxs.dedup_by(|a, b| a.1 == b.1);
        mxs.truncate(MAX_EXCHANGERS);
        if !self.config.allow_loopback
            && mxs
                .iter()
                .any(|(_, e)| e == "localhost" || e.ends_with(".localhost"))
        {
            return self.fail(query, MxError::Loopback(name));
        }
        let Some(job) = self.jobs.get_mut(query) else {
            return;
        };
        if mxs.is_empty() {
            job.implicit = true;
            self.start_exchanger(query, 0, name, now);
            return;
        }
        job.ttl = job.ttl.min(answer.ttl);
        for (preference, exchange) in mxs {
            let glue: Vec<IpAddr> = answer
                .glue
                .iter()
                .filter(|(owner, _)| *owner == exchange)
                .map(|(_, ip)| *ip)
                .take(MAX_ADDRESSES)
                .collect();
            if glue.is_empty() {
                self.start_exchanger(query, preference, exchange, now);
            } else if let Some(job) = self.jobs.get_mut(query) {
                let (v4, v6) = glue.into_iter().partition(IpAddr::is_ipv4);
                job.exchangers.push(Exchanger {
                    preference,
                    name: exchange,
                    v4,
                    v6,
                });
            }
        }
        if self.jobs.get(query).is_some_and(|job| job.waiting == 0) {
            self.complete(query);
        }
    }

    fn fail(&mut self, query: &MxQuery, error: MxError) {
        self.finish(query, Err(error));
    }

    fn finish(&mut self, query: &MxQuery, result: Result<MxSet, MxError>) {
        if self.jobs.remove(query).is_some() {
            self.lookups.retain(|_, (q, _)| q != query);
            self.actions.push_back(MxAction::Resolved {
                query: query.clone(),
                result,
            });
        }
    }

    /// Every lookup of the job answered: build the set.
    fn complete(&mut self, query: &MxQuery) {
        let Some(job) = self.jobs.get(query) else {
            return;
        };
        let check_loopback = !self.config.allow_loopback && !query.explicit;
        let mut levels: Vec<MxLevel> = Vec::new();
        let mut loopback_only = false;
        for exchanger in &job.exchangers {
            let mut addrs: Vec<IpAddr> = exchanger
                .v4
                .iter()
                .chain(exchanger.v6.iter())
                .copied()
                .collect();
            if check_loopback {
                let before = addrs.len();
                addrs.retain(|ip| !ip.is_loopback() && !ip.is_unspecified());
                loopback_only |= before > 0 && addrs.is_empty();
            }
            if addrs.is_empty() {
                continue;
            }
            let host = MxHost {
                name: exchanger.name.clone(),
                addrs,
            };
            match levels.last_mut() {
                Some(level) if level.preference == exchanger.preference => level.hosts.push(host),
                _ => levels.push(MxLevel {
                    preference: exchanger.preference,
                    hosts: vec![host],
                }),
            }
        }
        let name = query.name.clone();
        let result = if !levels.is_empty() {
            Ok(MxSet {
                levels,
                ttl: job.ttl,
            })
        } else if loopback_only {
            Err(MxError::Loopback(name))
        } else if job.errors.iter().any(|e| !e.is_permanent()) {
            let reason = job
                .errors
                .iter()
                .find(|e| !e.is_permanent())
                .map(ToString::to_string)
                .unwrap_or_default();
            Err(MxError::Temporary { name, reason })
        } else if job.implicit && job.definite_empty >= 2 {
            Err(MxError::NoMailExchanger(name))
        } else {
            Err(MxError::Temporary {
                name,
                reason: "no address found for any MX".into(),
            })
        };
        self.finish(query, result);
    }
}
