//! Tables (`table NAME ...` in smtpd.conf): their contents, however they were declared, and
//! the lookups of smtpd.conf(5) and table(5) over them.
//!
//! A table is either a list of values or a map of keys to values. Which lookup applies
//! depends on where the table is used (a domain list for `for domain`, a netaddr list for
//! `from src`, an alias map for `alias`...): each kind has its method here, in
//! [`lookup`]. Keys compare ASCII case-insensitively, because OpenSMTPD folds lookup keys
//! to lower case (aliases(5): "key is always folded to lowercase").

pub mod alias;
pub mod file;
pub mod lookup;
pub mod netaddr;
pub mod pattern;
pub mod regex;

#[cfg(test)]
mod tests;

pub use alias::{split_alias_list, AliasError, AliasTarget};
pub use file::TableFileError;
pub use lookup::{RelayCredentials, TableValueError, UserInfo};
pub use netaddr::Netmask;
pub use regex::{RegexError, RegexList};

/// Where a table's contents came from.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum TableSource {
    /// `{ ... }` written in the configuration.
    Inline,
    /// `file:PATH` (contents handed in by the runtime).
    File(String),
}

/// A table's contents: a list of values or a map of keys to values.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum TableEntries {
    /// `{ "a", "b" }` or a file whose lines hold one value each.
    List(Vec<String>),
    /// `{ "k" => "v" }` or a file whose lines hold `key value`.
    Map(Vec<(String, String)>),
}

/// A named table.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Table {
    /// The name used as `<name>`.
    pub name: String,
    /// Where the contents came from.
    pub source: TableSource,
    /// The contents.
    pub entries: TableEntries,
}

impl TableEntries {
    /// The keys of a map, or the values of a list: what membership lookups compare with
    /// (OpenSMTPD stores a list as keys without values).
    pub fn keys(&self) -> impl Iterator<Item = &str> + '_ {
        let (list, map) = match self {
            TableEntries::List(values) => (Some(values), None),
            TableEntries::Map(pairs) => (None, Some(pairs)),
        };
        let list = list.into_iter().flatten().map(String::as_str);
        let map = map.into_iter().flatten().map(|(k, _)| k.as_str());
        list.chain(map)
    }

    /// The value of `key` in a map, keys compared ASCII case-insensitively; the first
    /// entry wins when a key repeats. A stored key that kept the colon of the aliases(5)
    /// `key: value` form still matches. A list has no values: always `None`.
    pub fn get(&self, key: &str) -> Option<&str> {
        match self {
            TableEntries::List(_) => None,
            TableEntries::Map(pairs) => pairs
                .iter()
                .find(|(k, _)| {
                    k.eq_ignore_ascii_case(key)
                        || k.strip_suffix(':')
                            .is_some_and(|k| !k.is_empty() && k.eq_ignore_ascii_case(key))
                })
                .map(|(_, v)| v.as_str()),
        }
    }

    /// Whether `key` is a key of the map or a value of the list, ASCII case-insensitively.
    pub fn contains_key(&self, key: &str) -> bool {
        self.keys().any(|k| k.eq_ignore_ascii_case(key))
    }

    /// How many entries the table holds.
    pub fn len(&self) -> usize {
        match self {
            TableEntries::List(values) => values.len(),
            TableEntries::Map(pairs) => pairs.len(),
        }
    }

    /// Whether the table holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
