//! The route of a relayed envelope: what its `relay` action's options say about the
//! connection it needs (destination, source address, EHLO name, TLS policy, CA, client
//! certificate, credentials label) and the MAIL FROM it leaves with.

use std::borrow::Cow;
use std::net::IpAddr; // allow-impure: address values, no socket

use super::{Destination, RouteKey, TlsPolicy};
use crate::config::{Config, RelayOptions, RelayScheme, RelayUrl, TableRef};
use crate::dns::normalize_name;

/// Why the route of an envelope cannot be built: a table of the action is missing or
/// holds something unusable. The envelope fails temporarily (a fixed configuration,
/// reloaded, brings it back).
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// The action names a table the configuration does not declare.
    #[error("no table \"{0}\" in the configuration")]
    NoTable(String),
    /// `relay domain <table>` maps the domain to something that is not a relay URL.
    #[error("table {table}: relay URL {url:?} for {domain}: {reason}")]
    BadRelayUrl {
        /// The table.
        table: String,
        /// The recipient domain.
        domain: String,
        /// The value found.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `src` holds an entry that is not an IP address.
    #[error("src: {0}")]
    BadSource(String),
    /// `src <table>` holds no address.
    #[error("src: table \"{0}\" holds no address")]
    NoSource(String),
}

/// The route of an envelope for `domain` under a `relay` action with these options
/// alone (no table): the relay host of `host URL` (port from the URL, else 465 for
/// `smtps://`, else 25; TLS from the scheme and `tls [no-verify]`; the credentials label
/// of the URL), or the MXs of `domain`. `relay backup` without `mx NAME` compares with
/// `hostname`, our own name. `helo`, `ca`, `pki` and `mail-from` are copied; the source
/// address and `helo-src` need the tables: see [`route_for_envelope`].
pub fn route_for(relay: &RelayOptions, domain: &str, hostname: &str) -> RouteKey {
    let verify = !relay.tls.is_some_and(|tls| tls.no_verify);
    let requested = if relay.tls.is_some() {
        TlsPolicy::Required { verify }
    } else {
        TlsPolicy::Opportunistic
    };
    let backup_mx = relay
        .backup
        .as_ref()
        .map(|backup| normalize_name(backup.mx.as_deref().unwrap_or(hostname)));
    let base = RouteKey {
        helo: relay.helo.clone(),
        ca: relay.ca.clone(),
        pki: relay.pki.clone(),
        mail_from: relay.mail_from.clone(),
        ..RouteKey::mx(domain)
    };
    match &relay.host {
        Some(url) => {
            let (tls, default_port) = match url.scheme {
                RelayScheme::Smtp | RelayScheme::Lmtp => (requested, 25),
                RelayScheme::SmtpTls => (TlsPolicy::Required { verify }, 25),
                RelayScheme::SmtpNoTls => (TlsPolicy::Disabled, 25),
                RelayScheme::Smtps => (TlsPolicy::Implicit { verify }, 465),
            };
            RouteKey {
                destination: Destination::Relay {
                    host: normalize_name(&url.host),
                    port: url.port.unwrap_or(default_port),
                },
                tls,
                auth: url.label.clone(),
                ..base
            }
        }
        None => RouteKey {
            tls: requested,
            backup_mx,
            ..base
        },
    }
}

/// The route of an envelope for `domain` under a `relay` action, with the action's
/// tables looked up in `config`:
///
/// - `domain <table>`: the relay URL the table maps the recipient domain to (keys may
///   hold `*` wildcards, the first match wins) replaces `host`; a domain the table does
///   not hold goes where the action sends it without the table (its `host`, or the
///   domain's MXs).
/// - `src <address | table>`: the source address, one of the table's, chosen by `spread`
///   (the caller passes the message id, so that every envelope of a message shares one
///   source and successive messages take the addresses in turn).
/// - `helo-src <table>`: the EHLO name mapped to that source address, when `helo NAME`
///   does not give one.
///
/// # Errors
/// A missing table or an unusable entry ([`RouteError`]).
pub fn route_for_envelope(
    config: &Config,
    relay: &RelayOptions,
    domain: &str,
    hostname: &str,
    spread: u64,
) -> Result<RouteKey, RouteError> {
    let mut options = Cow::Borrowed(relay);
    if let Some(name) = &relay.domain {
        let table = config
            .tables
            .get(name)
            .ok_or_else(|| RouteError::NoTable(name.clone()))?;
        let domain = normalize_name(domain);
        if let Some(url) = table.relay_for_domain(&domain) {
            let parsed = RelayUrl::parse(url).map_err(|reason| RouteError::BadRelayUrl {
                table: name.clone(),
                domain: domain.clone(),
                url: url.to_owned(),
                reason,
            })?;
            options.to_mut().host = Some(parsed);
        }
    }
    let mut key = route_for(&options, domain, hostname);
    key.src = match &relay.src {
        Some(reference) => Some(source(config, reference, spread)?),
        None => None,
    };
    if key.helo.is_none() {
        if let Some(name) = &relay.helo_src {
            let table = config
                .tables
                .get(name)
                .ok_or_else(|| RouteError::NoTable(name.clone()))?;
            key.helo = key
                .src
                .and_then(|ip| table.hostname_for(ip))
                .map(str::to_owned);
        }
    }
    Ok(key)
}

/// One address of `src`, the `spread`-th in turn.
fn source(config: &Config, reference: &TableRef, spread: u64) -> Result<IpAddr, RouteError> {
    let name = match reference {
        TableRef::Named(name) => name.clone(),
        TableRef::Inline(_) => "src".to_owned(),
    };
    let table = config
        .table_for(reference)
        .ok_or_else(|| RouteError::NoTable(name.clone()))?;
    let addresses = table
        .source_addresses()
        .map_err(|e| RouteError::BadSource(e.to_string()))?;
    let count = u64::try_from(addresses.len()).unwrap_or(u64::MAX).max(1);
    usize::try_from(spread % count)
        .ok()
        .and_then(|index| addresses.get(index))
        .copied()
        .ok_or(RouteError::NoSource(name))
}

#[cfg(test)]
mod tests;
