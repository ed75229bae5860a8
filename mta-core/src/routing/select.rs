//! The order in which a route tries its exchangers: preference levels in increasing order
//! (RFC 5321 §5.1), hosts of equal preference shuffled so that load spreads over them, and
//! `relay backup` keeping only the exchangers preferred over our own name.

use std::net::SocketAddr; // allow-impure: address values, no socket

use super::mx::MxSet;
use crate::queue::SplitMix64;

/// One address to connect to, with the exchanger it belongs to.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Candidate {
    /// The MX preference of its exchanger.
    pub preference: u16,
    /// The exchanger's host name (for logs and TLS verification).
    pub host: String,
    /// Address and port.
    pub addr: SocketAddr,
}

/// Every address of `set` at `port`, levels in preference order and the hosts of each level
/// in an order drawn from `rng`; the addresses of one host stay together in their order.
pub fn connection_order(set: &MxSet, port: u16, rng: &mut SplitMix64) -> Vec<Candidate> {
    let mut levels: Vec<_> = set.levels.iter().collect();
    levels.sort_by_key(|level| level.preference);
    let mut order = Vec::new();
    for level in levels {
        let mut hosts: Vec<_> = level.hosts.iter().collect();
        shuffle(&mut hosts, rng);
        for host in hosts {
            for ip in &host.addrs {
                order.push(Candidate {
                    preference: level.preference,
                    host: host.name.clone(),
                    addr: SocketAddr::new(*ip, port),
                });
            }
        }
    }
    order
}

/// Fisher–Yates shuffle driven by `rng`.
pub fn shuffle<T>(items: &mut [T], rng: &mut SplitMix64) {
    let mut i = items.len();
    while i > 1 {
        let bound = u64::try_from(i).unwrap_or(u64::MAX);
        let j = usize::try_from(rng.next_u64() % bound).unwrap_or(0);
        i -= 1;
        items.swap(i, j);
    }
}

/// For `relay backup [mx NAME]`: only the levels preferred (strictly lower preference) over
/// `own`, the name of this server. When `own` is not among the exchangers every level
/// stays; `None` when nothing is left (we are the best MX: sending would loop).
pub fn preferred_over(set: &MxSet, own: &str) -> Option<MxSet> {
    let own_preference = set
        .levels
        .iter()
        .filter(|level| {
            level
                .hosts
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case(own.trim_end_matches('.')))
        })
        .map(|level| level.preference)
        .min();
    let Some(limit) = own_preference else {
        return Some(set.clone());
    };
    let levels: Vec<_> = set
        .levels
        .iter()
        .filter(|l| l.preference < limit)
        .cloned()
        .collect();
    (!levels.is_empty()).then_some(MxSet {
        levels,
        ttl: set.ttl,
    })
}
