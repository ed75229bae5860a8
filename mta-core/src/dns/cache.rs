//! A bounded cache of DNS results, keyed by name and record type, each kept for its TTL
//! (RFC 1035 §3.2.1; negative answers per RFC 2308 §5).

use std::collections::BTreeMap;

use super::wire::{Answer, RecordKind};
use super::DnsError;
use crate::time::UnixTime;

/// Cached results by (lower-case name, type), each with the time it stops being valid.
#[derive(Clone, Debug)]
pub(crate) struct Cache {
    entries: BTreeMap<(String, RecordKind), (UnixTime, Result<Answer, DnsError>)>,
    capacity: usize,
}

impl Cache {
    /// An empty cache holding at most `capacity` entries.
    pub(crate) fn new(capacity: usize) -> Self {
        Cache {
            entries: BTreeMap::new(),
            capacity,
        }
    }

    /// The unexpired result for `name`/`kind`.
    pub(crate) fn get(
        &self,
        name: &str,
        kind: RecordKind,
        now: UnixTime,
    ) -> Option<Result<Answer, DnsError>> {
        let (expires, result) = self.entries.get(&(name.to_owned(), kind))?;
        (*expires > now).then(|| result.clone())
    }

    /// Keeps `result` until `expires`; when full, drops expired entries, then the one that
    /// expires first.
    pub(crate) fn insert(
        &mut self,
        name: &str,
        kind: RecordKind,
        expires: UnixTime,
        result: Result<Answer, DnsError>,
        now: UnixTime,
    ) {
        if self.capacity == 0 || expires <= now {
            return;
        }
        let key = (name.to_owned(), kind);
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            self.entries.retain(|_, (until, _)| *until > now);
            if self.entries.len() >= self.capacity {
                let soonest = self
                    .entries
                    .iter()
                    .min_by_key(|(_, (until, _))| *until)
                    .map(|(key, _)| key.clone());
                if let Some(soonest) = soonest {
                    self.entries.remove(&soonest);
                }
            }
        }
        self.entries.insert(key, (expires, result));
    }

    /// How many entries are held (expired ones included until evicted).
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}
