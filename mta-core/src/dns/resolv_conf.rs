//! Name servers from `/etc/resolv.conf` text and from `mta resolver "IP[:PORT]"`.
//!
//! Pure parsers: the runtime reads the file and hands its text in.

use std::net::{IpAddr, Ipv6Addr, SocketAddr}; // allow-impure: address values, no socket

/// The DNS port (RFC 1035 §4.2).
pub const DNS_PORT: u16 = 53;

/// At most this many `nameserver` lines are used, as the C library does (`MAXNS`).
pub const MAX_NAME_SERVERS: usize = 3;

/// The name servers of a `resolv.conf(5)` text: every `nameserver ADDRESS` line, in order,
/// at port 53, at most [`MAX_NAME_SERVERS`]. Comments (`#`, `;`), other keywords and
/// unparsable addresses are skipped; an IPv6 zone (`fe80::1%eth0`) is dropped.
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    let mut servers = Vec::new();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or("");
        let mut words = line.split_ascii_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(word) = words.next() else { continue };
        let address = word.split('%').next().unwrap_or(word);
        if let Ok(ip) = address.parse::<IpAddr>() {
            let server = SocketAddr::new(ip, DNS_PORT);
            if !servers.contains(&server) {
                servers.push(server);
            }
        }
        if servers.len() >= MAX_NAME_SERVERS {
            break;
        }
    }
    servers
}

/// The server of `mta resolver "IP[:PORT]"`: `192.0.2.1`, `192.0.2.1:5353`, `::1` or
/// `[::1]:5353`; the port defaults to 53. `None` when the text is not such an address.
pub fn parse_resolver(text: &str) -> Option<SocketAddr> {
    let text = text.trim();
    if let Ok(server) = text.parse::<SocketAddr>() {
        return Some(server);
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, DNS_PORT));
    }
    let inner = text.strip_prefix('[')?.strip_suffix(']')?;
    inner
        .parse::<Ipv6Addr>()
        .ok()
        .map(|ip| SocketAddr::new(IpAddr::V6(ip), DNS_PORT))
}
