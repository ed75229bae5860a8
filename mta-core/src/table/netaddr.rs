//! Network addresses of netaddr and source tables (table(5)): `192.168.1.1`, `::1`,
//! `ipv6:::1`, `192.168.1.0/24`, `2001:db8::/32`.

use std::fmt;
use std::net::IpAddr; // allow-impure: address values, no socket
use std::str::FromStr;

/// An address and a prefix length: one exact address (full prefix) or a CIDR network.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Netmask {
    /// The network address as written (host bits are ignored when matching).
    pub addr: IpAddr,
    /// The prefix length: 0..=32 for IPv4, 0..=128 for IPv6.
    pub prefix: u8,
}

/// A netaddr entry that is not an address or a CIDR network.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("invalid network address {0:?}")]
pub struct NetmaskError(pub String);

impl FromStr for Netmask {
    type Err = NetmaskError;

    /// Parses `ADDR`, `ADDR/PREFIX`, with an optional `ipv4:`/`ipv6:` family prefix and
    /// optional brackets around an IPv6 address.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || NetmaskError(text.to_string());
        let body = text.trim();
        let body = body
            .strip_prefix("ipv6:")
            .or_else(|| body.strip_prefix("ipv4:"))
            .unwrap_or(body);
        let (addr, prefix) = match body.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (body, None),
        };
        let addr = addr
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(addr);
        let addr = IpAddr::from_str(addr).map_err(|_| err())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok().filter(|&n| n <= max).ok_or_else(err)?
            }
            Some(_) => return Err(err()),
        };
        Ok(Netmask { addr, prefix })
    }
}

impl fmt::Display for Netmask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Netmask {
    /// Whether `ip` lies in this network. An IPv4-mapped IPv6 client (`::ffff:192.0.2.1`)
    /// matches IPv4 entries, as a dual-stack socket reports IPv4 clients that way.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr.to_canonical(), ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) if self.addr.is_ipv4() || self.prefix >= 96 => {
                let prefix = if self.addr.is_ipv4() {
                    self.prefix
                } else {
                    self.prefix.saturating_sub(96)
                };
                prefix_eq(
                    u128::from(u32::from(net)) << 96,
                    u128::from(u32::from(ip)) << 96,
                    prefix,
                )
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(u128::from(net), u128::from(ip), self.prefix)
            }
            _ => false,
        }
    }
}

/// Whether the first `prefix` bits of two left-aligned 128-bit values are equal.
fn prefix_eq(a: u128, b: u128, prefix: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let shift = 128u32.saturating_sub(u32::from(prefix.min(128)));
    a.checked_shr(shift).unwrap_or(0) == b.checked_shr(shift).unwrap_or(0)
}
