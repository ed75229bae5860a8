//! What `smtpctl show routes` and `smtpctl show hosts` print: the router's state, one
//! line per route and per MX address, in the spirit of OpenSMTPD's smtpctl(8) listings
//! (a numbered route with its flags, connection count, penalty and reactivation delay; a
//! host with its name, reference count, connection count and time since its last
//! connection), with what our router adds: the route's TLS policy, credentials label and
//! waiting envelopes, and each host's broken state with its end.

use std::fmt::Write as _;
use std::net::SocketAddr; // allow-impure: address values, no socket
use std::time::Duration;

use super::router::{query_of, ConnState, Resolution, Route};
use super::{Destination, RouteKey, Router, TlsPolicy};
use crate::time::UnixTime;

/// A duration as OpenSMTPD prints delays: days, hours, minutes and seconds, leading
/// zero units left out (`1h2m3s`, `45s`, `0s`).
pub fn duration_text(duration: Duration) -> String {
    let mut secs = duration.as_secs();
    let mut out = String::new();
    for (unit, size) in [('d', 86_400), ('h', 3600), ('m', 60)] {
        let count = secs / size;
        if count > 0 || !out.is_empty() {
            let _ = write!(out, "{count}{unit}");
        }
        secs %= size;
    }
    let _ = write!(out, "{secs}s");
    out
}

/// The TLS policy as a route shows it: the URL scheme, and `no-verify` when the
/// certificate is not checked.
fn tls_text(tls: TlsPolicy) -> String {
    match tls {
        TlsPolicy::Required { verify: false } | TlsPolicy::Implicit { verify: false } => {
            format!("{} no-verify", tls.scheme())
        }
        _ => tls.scheme().to_owned(),
    }
}

/// An address as hosts show it: the IP alone at the SMTP port, with the port otherwise.
fn addr_text(addr: SocketAddr) -> String {
    if addr.port() == 25 {
        addr.ip().to_string()
    } else {
        addr.to_string()
    }
}

/// One route's line.
fn route_line(router: &Router, key: &RouteKey, route: &Route, now: UnixTime) -> String {
    let resolving = matches!(
        router.resolutions.get(&query_of(key)),
        Some(Resolution::Pending)
    );
    let disabled_for = route
        .disabled_until
        .filter(|until| *until > now)
        .map(|until| until.saturating_duration_since(now));
    let kept = route.conns.iter().any(|c| {
        matches!(
            router.conns.get(c).map(|c| &c.state),
            Some(ConnState::Idle { .. })
        )
    });
    let flag = |on: bool, letter: char| if on { letter } else { '-' };
    let mut line = format!("{}. ", route.id);
    match key.src {
        Some(src) => {
            let _ = write!(line, "{src}");
        }
        None => line.push('*'),
    }
    line.push_str(" -> ");
    match &key.destination {
        Destination::Domain(domain) => {
            let _ = write!(line, "[MX:{domain}]");
        }
        Destination::Relay { host, port } => {
            let _ = write!(line, "{host}:{port}");
        }
    }
    let _ = write!(line, " {}", tls_text(key.tls));
    if let Some(label) = &key.auth {
        let _ = write!(line, " auth={label}");
    }
    for (word, value) in [
        ("backup", &key.backup_mx),
        ("helo", &key.helo),
        ("pki", &key.pki),
        ("ca", &key.ca),
        ("mail-from", &key.mail_from),
    ] {
        if let Some(value) = value {
            let _ = write!(line, " {word}={value}");
        }
    }
    let _ = write!(
        line,
        " {}{}{}{} nconn={} queued={} penalty={} timeout={}",
        flag(!route.established, 'N'),
        flag(disabled_for.is_some(), 'D'),
        flag(resolving, 'R'),
        flag(kept, 'K'),
        route.conns.len(),
        route.queue.len(),
        route.penalty,
        disabled_for.map_or_else(|| "-".to_owned(), duration_text),
    );
    line
}

/// `smtpctl show routes`: one line per route the router knows, in order of creation:
///
/// `ID. SRC -> DESTINATION TLS [auth=LABEL] [backup=NAME] [helo=NAME] [pki=NAME] [ca=NAME]
/// [mail-from=ADDRESS] FLAGS nconn=N queued=N penalty=N timeout=DELAY`
///
/// SRC is `*` when the kernel picks the source address; DESTINATION is `[MX:domain]` or
/// `host:port`; TLS is the URL scheme of the policy (`smtp`, `smtp+tls`, `smtps`,
/// `smtp+notls`), followed by `no-verify` when certificates are not checked. FLAGS are
/// four letters or `-`: `N` no session has been established yet, `D` disabled (every MX
/// was found broken), `R` waiting for its DNS answer, `K` a session is kept open for the
/// next message. `nconn` counts open sessions, `queued` envelopes waiting for one,
/// `penalty` the times in a row no MX was reachable, `timeout` how long the route stays
/// disabled.
pub fn show_routes(router: &Router, now: UnixTime) -> Vec<String> {
    let mut routes: Vec<(&RouteKey, &Route)> = router.routes.iter().collect();
    routes.sort_by_key(|(_, route)| route.id);
    routes
        .into_iter()
        .map(|(key, route)| route_line(router, key, route, now))
        .collect()
}

/// `smtpctl show hosts`: one line per MX address the router has opened sessions to:
///
/// `ADDRESS NAME refcount=N nconn=N lastconn=AGO failures=N [broken until DATE (DELAY)]
/// [error="TEXT"]`
///
/// ADDRESS is the IP (with its port when not 25); `refcount` counts the routes whose
/// current MX list holds it, `nconn` its open sessions, `lastconn` the time since the last
/// session was opened, `failures` the failed sessions since the last success. A host in
/// its cool-down shows when it ends; `error` is the last failure seen.
pub fn show_hosts(router: &Router, now: UnixTime) -> Vec<String> {
    router
        .hosts
        .iter()
        .map(|(addr, host)| {
            let refcount = router
                .routes
                .values()
                .filter(|route| {
                    route
                        .candidates
                        .as_ref()
                        .is_some_and(|(list, _)| list.iter().any(|c| c.addr == *addr))
                })
                .count();
            let lastconn = host.last_connect.map_or_else(
                || "-".to_owned(),
                |at| duration_text(now.saturating_duration_since(at)),
            );
            let mut line = format!(
                "{} {} refcount={refcount} nconn={} lastconn={lastconn} failures={}",
                addr_text(*addr),
                host.name,
                host.connections,
                host.failures
            );
            if let Some(until) = host.broken_until.filter(|_| host.is_broken(now)) {
                let _ = write!(
                    line,
                    " broken until {} ({})",
                    until.rfc5322(),
                    duration_text(until.saturating_duration_since(now))
                );
            }
            if let Some(error) = &host.last_error {
                let _ = write!(line, " error=\"{}\"", error.escape_debug());
            }
            line
        })
        .collect()
}

#[cfg(test)]
mod tests;
