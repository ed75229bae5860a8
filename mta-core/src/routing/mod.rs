//! The router: which host each relayed envelope goes to, over which connection, and when
//! to give up for now.
//!
//! Envelopes arrive on a [`RouteKey`]: what a connection must share (destination domain
//! or relay host, source address, TLS policy, credentials label). For a domain the router
//! asks for its MX set once ([`Action::Resolve`], answered by [`Input::Resolved`]; the
//! [`MxResolver`] machine does that from DNS) and every envelope queued meanwhile waits for
//! that one answer. It then opens sessions ([`Action::Connect`]) to the exchangers in
//! preference order (RFC 5321 §5.1), spreading them over the hosts of equal preference in a
//! seeded random order within the [`Limits`], and hands messages to idle sessions of the
//! route ([`Action::SendMessage`]), one message (all its envelopes on the route) at a time.
//! An MX whose sessions keep failing is marked broken for a cool-down that doubles with
//! every repeated break; when a whole preference level is broken the next level is used;
//! when all are, the envelopes go back to the scheduler as temporary failures. Errors that
//! concern an MX never fail a message permanently: only the per-recipient outcomes of a
//! session ([`Input::SessionOutcome`]) and definite DNS answers ([`MxError`]: Null MX,
//! NXDOMAIN, loopback) do.
//!
//! The route of an envelope comes from its `relay` action ([`route_for_envelope`]: relay
//! host or per-domain relay table, source address, EHLO name, TLS policy, CA, client
//! certificate, credentials label, MAIL FROM). [`show_routes`] and [`show_hosts`] render
//! the router's state for `smtpctl show routes` and `show hosts`.
//!
//! Machine shape: [`Router::handle`], [`Router::poll_action`], [`Router::poll_timeout`].
//! The engine wires [`Action::Resolve`] to [`MxResolver`] (`MxInput::Resolve`) and its
//! `MxAction::Resolved` back as [`Input::Resolved`]; it runs a client session per
//! [`Action::Connect`] and reports its life with [`Input::ConnectResult`],
//! [`Input::SessionOutcome`] and [`Input::ConnectionClosed`]; envelope results leave as
//! [`Action::EnvelopeDelivered`], [`Action::EnvelopeTempFail`] and
//! [`Action::EnvelopePermFail`] for the scheduler.
//!
//! The engine's loop, in outline:
//!
//! ```
//! use mta_core::routing::{Action, Input, MxAction, MxInput, MxResolver, Router};
//! use mta_core::time::UnixTime;
//!
//! fn drive(router: &mut Router, mx: &mut MxResolver, now: UnixTime) {
//!     loop {
//!         let mut progressed = false;
//!         while let Some(action) = router.poll_action() {
//!             progressed = true;
//!             match action {
//!                 Action::Resolve(query) => mx.handle(MxInput::Resolve(query), now),
//!                 // Connect: start a client session; SendMessage: hand it the message;
//!                 // Envelope*: tell the scheduler; Log: write the line.
//!                 _ => {}
//!             }
//!         }
//!         while let Some(action) = mx.poll_action() {
//!             progressed = true;
//!             match action {
//!                 MxAction::Resolved { query, result } => {
//!                     router.handle(Input::Resolved { query, result }, now)
//!                 }
//!                 // Send the datagram (or TCP query); answers come back as
//!                 // MxInput::Dns(dns::Input::UdpReceived { .. }).
//!                 MxAction::Dns(_send) => {}
//!             }
//!         }
//!         if !progressed {
//!             break;
//!         }
//!     }
//!     // Then sleep until the earlier of router.poll_timeout() and mx.poll_timeout().
//! }
//! ```

mod hosts;
mod mx;
mod route;
mod router;
mod select;
mod show;
#[cfg(test)]
mod tests;

pub use mx::{
    MxAction, MxError, MxHost, MxInput, MxLevel, MxQuery, MxResolver, MxResolverConfig, MxSet,
    MAX_ADDRESSES, MAX_EXCHANGERS,
};
pub use route::{route_for, route_for_envelope, RouteError};
pub use router::Router;
pub use show::{duration_text, show_hosts, show_routes};

pub use select::{connection_order, preferred_over, shuffle, Candidate};

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr}; // allow-impure: address values, no socket
use std::time::Duration;

use crate::config::MtaOptions;
use crate::queue::{EnvelopeId, Failure};
use crate::scheduler::Outcome;

/// How a route uses TLS (from the relay URL scheme and `tls [no-verify]`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum TlsPolicy {
    /// `smtp://`: STARTTLS when offered, plain text otherwise (RFC 3207).
    Opportunistic,
    /// `smtp+tls://` or `tls`: STARTTLS or fail; `verify` checks the certificate.
    Required {
        /// Check the server certificate (false with `no-verify`).
        verify: bool,
    },
    /// `smtps://`: TLS from the first byte (RFC 8314 §3.3).
    Implicit {
        /// Check the server certificate.
        verify: bool,
    },
    /// `smtp+notls://`: never TLS.
    Disabled,
}

impl TlsPolicy {
    /// The URL scheme of this policy, as OpenSMTPD logs it.
    pub fn scheme(self) -> &'static str {
        match self {
            TlsPolicy::Opportunistic => "smtp",
            TlsPolicy::Required { .. } => "smtp+tls",
            TlsPolicy::Implicit { .. } => "smtps",
            TlsPolicy::Disabled => "smtp+notls",
        }
    }
}

/// Where a route delivers.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Destination {
    /// The MXs of a domain (lower case), at the configured MX port.
    Domain(String),
    /// `relay host`: one host (name or IP literal) at a port; no MX lookup.
    Relay {
        /// Host name or address.
        host: String,
        /// TCP port.
        port: u16,
    },
}

impl Destination {
    /// The name limits and logs refer to.
    pub fn name(&self) -> &str {
        match self {
            Destination::Domain(domain) => domain,
            Destination::Relay { host, .. } => host,
        }
    }
}

/// What connections must share to carry each other's messages.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct RouteKey {
    /// Domain or relay host.
    pub destination: Destination,
    /// `src`: the local address to connect from.
    pub src: Option<IpAddr>,
    /// TLS policy.
    pub tls: TlsPolicy,
    /// Credentials label of `auth` (a key of the auth table).
    pub auth: Option<String>,
    /// `relay backup [mx NAME]`: use only the MXs preferred over this name (the engine
    /// puts our host name here when `mx NAME` is absent).
    pub backup_mx: Option<String>,
    /// The EHLO name of its sessions (`helo NAME`, or `helo-src` by source address);
    /// `None` for the server's host name.
    pub helo: Option<String>,
    /// `ca NAME`: the CA the server certificate must chain to instead of the system roots.
    pub ca: Option<String>,
    /// `pki NAME`: the client certificate its sessions present.
    pub pki: Option<String>,
    /// `mail-from ADDRESS`: the MAIL FROM of its messages instead of their sender (part of
    /// the key so that messages sent with different ones are never batched together).
    pub mail_from: Option<String>,
}

impl RouteKey {
    /// A plain MX route to `domain`: opportunistic TLS, no source, no credentials.
    pub fn mx(domain: &str) -> Self {
        RouteKey {
            destination: Destination::Domain(crate::dns::normalize_name(domain)),
            src: None,
            tls: TlsPolicy::Opportunistic,
            auth: None,
            backup_mx: None,
            helo: None,
            ca: None,
            pki: None,
            mail_from: None,
        }
    }
}

impl fmt::Display for RouteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.tls.scheme())?;
        if let Some(label) = &self.auth {
            write!(f, "{label}@")?;
        }
        match &self.destination {
            Destination::Domain(domain) => write!(f, "[MX:{domain}]")?,
            Destination::Relay { host, port } => write!(f, "{host}:{port}")?,
        }
        if let Some(src) = self.src {
            write!(f, " src={src}")?;
        }
        if let Some(name) = &self.backup_mx {
            write!(f, " backup={name}")?;
        }
        for (word, value) in [
            ("helo", &self.helo),
            ("pki", &self.pki),
            ("ca", &self.ca),
            ("mail-from", &self.mail_from),
        ] {
            if let Some(value) = value {
                write!(f, " {word}={value}")?;
            }
        }
        Ok(())
    }
}

/// A session the router opened, named by a random 64-bit id (OpenSMTPD's session ids).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Connection limits (`mta limit [for domain D] KEY VALUE`), defaults as OpenSMTPD's.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Limits {
    /// `max-conn-per-host`: sessions to one MX address (default 10).
    pub max_conn_per_host: usize,
    /// `max-conn-per-route`: sessions of one route (default 5).
    pub max_conn_per_route: usize,
    /// `max-conn-per-domain`: sessions to one destination domain (default 100).
    pub max_conn_per_domain: usize,
    /// `max-mail-per-session`: messages sent over one session before a new one (default 100).
    pub max_mail_per_session: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_conn_per_host: 10,
            max_conn_per_route: 5,
            max_conn_per_domain: 100,
            max_mail_per_session: 100,
        }
    }
}

impl Limits {
    /// Sets the limit named `key`; false when the key is not one the router knows.
    pub fn set(&mut self, key: &str, value: u64) -> bool {
        let value = usize::try_from(value).unwrap_or(usize::MAX).max(1);
        match key {
            "max-conn-per-host" => self.max_conn_per_host = value,
            "max-conn-per-route" => self.max_conn_per_route = value,
            "max-conn-per-domain" => self.max_conn_per_domain = value,
            "max-mail-per-session" => self.max_mail_per_session = value,
            _ => return false,
        }
        true
    }
}

/// Settings of the router.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RouterConfig {
    /// Limits for every destination.
    pub limits: Limits,
    /// Limits of `mta limit for domain D`, by lower-case domain.
    pub domain_limits: BTreeMap<String, Limits>,
    /// Port of MX hosts (`mta mx-port`, 25).
    pub mx_port: u16,
    /// Failures in a row after which an MX is marked broken.
    pub broken_after: u32,
    /// First cool-down of a broken MX; doubled at every break in a row.
    pub broken_cooldown: Duration,
    /// Longest cool-down.
    pub broken_cooldown_max: Duration,
    /// How long an idle session is kept for the next message of its route.
    pub idle_timeout: Duration,
    /// Longest time an MX set is reused, whatever its TTL.
    pub max_mx_ttl: Duration,
    /// Envelopes waiting in the router at most; more fail temporarily at once.
    pub max_queued: usize,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            limits: Limits::default(),
            domain_limits: BTreeMap::new(),
            mx_port: 25,
            broken_after: 3,
            broken_cooldown: Duration::from_secs(60),
            broken_cooldown_max: Duration::from_secs(4 * 3600),
            idle_timeout: Duration::from_secs(5),
            max_mx_ttl: Duration::from_secs(3600),
            max_queued: 100_000,
        }
    }
}

impl RouterConfig {
    /// The router settings of smtpd.conf's `mta` options (`mta limit`, `mta mx-port`);
    /// unknown limit keys are left to others (they are OpenSMTPD's and not the router's).
    pub fn from_options(options: &MtaOptions) -> Self {
        let mut config = RouterConfig {
            mx_port: options.mx_port.unwrap_or(25),
            ..RouterConfig::default()
        };
        for limit in options.limits.iter().filter(|l| l.domain.is_none()) {
            config.limits.set(&limit.key, limit.value);
        }
        for limit in &options.limits {
            if let Some(domain) = &limit.domain {
                let base = config.limits;
                let entry = config
                    .domain_limits
                    .entry(crate::dns::normalize_name(domain))
                    .or_insert(base);
                entry.set(&limit.key, limit.value);
            }
        }
        config
    }

    /// The limits that apply to `destination`.
    pub fn limits_for(&self, destination: &str) -> Limits {
        self.domain_limits
            .get(destination)
            .copied()
            .unwrap_or(self.limits)
    }
}

/// One input to the router.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Input {
    /// The scheduler hands this envelope to the route.
    Envelope {
        /// The route it takes.
        route: RouteKey,
        /// The envelope.
        id: EnvelopeId,
    },
    /// The answer to an [`Action::Resolve`].
    Resolved {
        /// What was resolved.
        query: MxQuery,
        /// The MX set, or why there is none.
        result: Result<MxSet, MxError>,
    },
    /// The TCP connection (and TLS for `smtps`) of a [`Action::Connect`] is up, or failed.
    ConnectResult {
        /// The session.
        conn: ConnId,
        /// `Err(reason)`: refused, unreachable, timed out.
        result: Result<(), String>,
    },
    /// The session finished the message of an [`Action::SendMessage`]: one outcome per
    /// envelope (a 5xx to RCPT is `PermFail`, a 4xx `TempFail`).
    SessionOutcome {
        /// The session.
        conn: ConnId,
        /// Outcome per envelope.
        results: Vec<(EnvelopeId, Outcome)>,
    },
    /// The session ended: after a `Quit` (`error: None`), or on an error such as a 421
    /// greeting, a TLS failure or a timeout.
    ConnectionClosed {
        /// The session.
        conn: ConnId,
        /// What went wrong, if anything.
        error: Option<String>,
    },
    /// Time passed (see [`Router::poll_timeout`]).
    Tick,
    /// An administrator asked for the queue to be tried now (`smtpctl schedule`): every
    /// MX cool-down and route disabling ends, so the next envelopes try every MX again.
    /// The count of breaks is kept: an MX that fails again is broken for twice as long.
    RetryNow,
}

/// One action of the router.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Action {
    /// Resolve this destination (MX set or relay host addresses), once for all its routes.
    Resolve(MxQuery),
    /// Open a session: TCP to `addr` from `src`, then a client session with this policy;
    /// report with [`Input::ConnectResult`].
    Connect {
        /// The session's id.
        conn: ConnId,
        /// Address and port.
        addr: SocketAddr,
        /// The exchanger's name (SNI and certificate verification).
        host: String,
        /// Local address to bind.
        src: Option<IpAddr>,
        /// TLS policy.
        tls: TlsPolicy,
        /// Credentials label.
        auth: Option<String>,
        /// EHLO name; `None` for the server's host name.
        helo: Option<String>,
        /// CA name (`ca NAME`) to verify the server with instead of the system roots.
        ca: Option<String>,
        /// Client certificate name (`pki NAME`).
        pki: Option<String>,
    },
    /// Send one message, to these envelopes' recipients, over an idle session.
    SendMessage {
        /// The session.
        conn: ConnId,
        /// Envelopes of one message.
        envelopes: Vec<EnvelopeId>,
    },
    /// End the session (QUIT); it answers with [`Input::ConnectionClosed`].
    Quit {
        /// The session.
        conn: ConnId,
    },
    /// These envelopes were delivered.
    EnvelopeDelivered {
        /// Envelopes.
        ids: Vec<EnvelopeId>,
    },
    /// These envelopes failed for now: back to the scheduler with the reason.
    EnvelopeTempFail {
        /// Envelopes.
        ids: Vec<EnvelopeId>,
        /// Why.
        failure: Failure,
    },
    /// These envelopes failed for good (Null MX, NXDOMAIN, a 5xx): bounce.
    EnvelopePermFail {
        /// Envelopes.
        ids: Vec<EnvelopeId>,
        /// Why.
        failure: Failure,
    },
    /// A log line in OpenSMTPD's words (`smtp-out: ...`).
    Log(String),
}
