//! Lookups by kind (table(5) "TABLE TYPES"): what a table means depends on where it is
//! used, so each use has its own method on [`Table`].

use std::net::IpAddr; // allow-impure: address values, no socket
use std::str::FromStr;

use super::alias::{split_alias_list, AliasError, AliasTarget};
use super::netaddr::Netmask;
use super::pattern::{host_matches, mailaddr_matches, split_address, strip_subaddress};
use super::{Table, TableEntries};

/// A table entry that does not have the shape its use requires.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("table {table}: invalid entry {entry:?}: {reason}")]
pub struct TableValueError {
    /// The table's name.
    pub table: String,
    /// The entry as written.
    pub entry: String,
    /// What is wrong with it.
    pub reason: String,
}

/// A userinfo entry (table(5) "Userinfo tables"): `uid:gid:directory`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct UserInfo {
    /// The system user id deliveries run as.
    pub uid: u32,
    /// The system group id.
    pub gid: u32,
    /// The home directory (where `~/.forward` and `~/Maildir` are).
    pub directory: String,
}

/// A relay credentials entry (table(5) "Credentials tables", relay context):
/// `label user:password`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RelayCredentials {
    /// The user name sent to the smarthost.
    pub user: String,
    /// The password, in clear.
    pub password: String,
}

impl Table {
    fn invalid(&self, entry: &str, reason: impl Into<String>) -> TableValueError {
        TableValueError {
            table: self.name.clone(),
            entry: entry.to_string(),
            reason: reason.into(),
        }
    }

    /// Domain table: whether `domain` is listed, exactly or through a `*` wildcard entry
    /// such as `*.example.org` (case-insensitive, see [`host_matches`]).
    pub fn contains_domain(&self, domain: &str) -> bool {
        self.entries
            .keys()
            .any(|pattern| host_matches(domain, pattern))
    }

    /// Mailaddr table: whether `address` matches an entry `user`, `@domain`,
    /// `user@domain` or `user@*.domain` (see [`mailaddr_matches`]).
    pub fn contains_mailaddr(&self, address: &str, sub_addr_delim: char) -> bool {
        self.entries
            .keys()
            .any(|entry| mailaddr_matches(address, entry, sub_addr_delim))
    }

    /// Netaddr table: the entries as networks.
    ///
    /// # Errors
    /// [`TableValueError`] for the first entry that is not an address or CIDR network.
    pub fn netmasks(&self) -> Result<Vec<Netmask>, TableValueError> {
        self.entries
            .keys()
            .map(|entry| Netmask::from_str(entry).map_err(|e| self.invalid(entry, e.to_string())))
            .collect()
    }

    /// Netaddr table: whether `ip` is one of the addresses or in one of the networks.
    /// Malformed entries match nothing (validate with [`Table::netmasks`]).
    pub fn contains_ip(&self, ip: IpAddr) -> bool {
        self.entries
            .keys()
            .filter_map(|entry| Netmask::from_str(entry).ok())
            .any(|net| net.contains(ip))
    }

    /// Source table (`relay src <table>`): the source addresses, in order.
    ///
    /// # Errors
    /// [`TableValueError`] for the first entry that is not an IP address.
    pub fn source_addresses(&self) -> Result<Vec<IpAddr>, TableValueError> {
        self.entries
            .keys()
            .map(|entry| match Netmask::from_str(entry) {
                Ok(net) if net.prefix == if net.addr.is_ipv4() { 32 } else { 128 } => Ok(net.addr),
                _ => Err(self.invalid(entry, "not an IP address")),
            })
            .collect()
    }

    /// Addrname table (`hostnames <table>`, `helo-src <table>`): the host name mapped to
    /// the local address `ip`.
    pub fn hostname_for(&self, ip: IpAddr) -> Option<&str> {
        let TableEntries::Map(pairs) = &self.entries else {
            return None;
        };
        pairs
            .iter()
            .find(|(key, _)| {
                Netmask::from_str(key).is_ok_and(|n| n.addr.to_canonical() == ip.to_canonical())
            })
            .map(|(_, name)| name.as_str())
    }

    /// Relay domain table (`relay domain <table>`): the relay URL for `domain`, keys being
    /// domains with optional `*` wildcards; the first matching key wins.
    pub fn relay_for_domain(&self, domain: &str) -> Option<&str> {
        let TableEntries::Map(pairs) = &self.entries else {
            return None;
        };
        pairs
            .iter()
            .find(|(key, _)| host_matches(domain, key))
            .map(|(_, url)| url.as_str())
    }

    /// Credentials table, listener context: the password hash of `user`.
    pub fn password_hash(&self, user: &str) -> Option<&str> {
        self.entries.get(user)
    }

    /// Credentials table, relay context: the `user:password` pair of `label`.
    ///
    /// # Errors
    /// [`TableValueError`] when the value has no `:` or an empty user.
    pub fn relay_credentials(
        &self,
        label: &str,
    ) -> Result<Option<RelayCredentials>, TableValueError> {
        let Some(value) = self.entries.get(label) else {
            return Ok(None);
        };
        match value.split_once(':') {
            Some((user, password)) if !user.is_empty() => Ok(Some(RelayCredentials {
                user: user.into(),
                password: password.into(),
            })),
            _ => Err(self.invalid(value, "expected user:password")),
        }
    }

    /// Userinfo table (`userbase <table>`): the `uid:gid:directory` of `user`.
    ///
    /// # Errors
    /// [`TableValueError`] when the value is not `uid:gid:directory` with numeric ids and a
    /// non-empty directory.
    pub fn user_info(&self, user: &str) -> Result<Option<UserInfo>, TableValueError> {
        let Some(value) = self.entries.get(user) else {
            return Ok(None);
        };
        let mut parts = value.splitn(3, ':');
        let uid = parts.next().and_then(|s| s.trim().parse::<u32>().ok());
        let gid = parts.next().and_then(|s| s.trim().parse::<u32>().ok());
        let dir = parts.next().map(str::trim).filter(|d| !d.is_empty());
        match (uid, gid, dir) {
            (Some(uid), Some(gid), Some(dir)) => Ok(Some(UserInfo {
                uid,
                gid,
                directory: dir.into(),
            })),
            _ => Err(self.invalid(value, "expected uid:gid:directory")),
        }
    }

    /// Mailaddrmap table (`senders <table>`): whether the authenticated `user` may send as
    /// `sender`. The value of `user` is a comma list of mailaddr entries.
    pub fn sender_allowed(&self, user: &str, sender: &str, sub_addr_delim: char) -> bool {
        self.entries.get(user).is_some_and(|value| {
            split_alias_list(value)
                .into_iter()
                .any(|entry| mailaddr_matches(sender, entry, sub_addr_delim))
        })
    }

    /// Alias table, primary-domain context (`alias <table>`): the targets of `user`. The key
    /// is tried with its sub-address first, then without (aliases(5)).
    ///
    /// # Errors
    /// [`AliasError`] for a value element that is no valid target.
    pub fn alias_targets(
        &self,
        user: &str,
        sub_addr_delim: char,
    ) -> Result<Option<Vec<AliasTarget>>, AliasError> {
        let stripped = strip_subaddress(user, sub_addr_delim);
        let value = self
            .entries
            .get(user)
            .or_else(|| self.entries.get(stripped));
        value.map(parse_targets).transpose()
    }

    /// Alias table, virtual-domain context (`virtual <table>`): the targets of `address`,
    /// trying in order the address with its sub-address, the address without it, the user
    /// part alone, the `@domain` catch-all, then the global `@` catch-all (table(5),
    /// "Aliasing tables"). The catch-alls are not tried for an address without a domain.
    ///
    /// # Errors
    /// [`AliasError`] for a value element that is no valid target.
    pub fn virtual_targets(
        &self,
        address: &str,
        sub_addr_delim: char,
    ) -> Result<Option<Vec<AliasTarget>>, AliasError> {
        let (user, domain) = split_address(address);
        let stripped = strip_subaddress(user, sub_addr_delim);
        let mut keys: Vec<String> = Vec::with_capacity(5);
        if stripped != user {
            keys.push(address.to_string());
        }
        if domain.is_empty() {
            keys.push(stripped.to_string());
        } else {
            keys.push(format!("{stripped}@{domain}"));
            keys.push(stripped.to_string());
            keys.push(format!("@{domain}"));
            keys.push("@".to_string());
        }
        let value = keys.iter().find_map(|key| self.entries.get(key));
        value.map(parse_targets).transpose()
    }
}

/// Parses every element of an alias value.
///
/// # Errors
/// [`AliasError`] for the first element that is no valid target.
pub fn parse_targets(value: &str) -> Result<Vec<AliasTarget>, AliasError> {
    split_alias_list(value)
        .into_iter()
        .map(AliasTarget::parse)
        .collect()
}
