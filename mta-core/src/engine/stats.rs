//! Statistics counters, named as OpenSMTPD names them (`smtpctl show stats`).

use std::collections::BTreeMap;

use super::input::PeerAddr;

/// The counters; gauges (open sessions, queued envelopes) go up and down.
#[derive(Clone, Debug, Default)]
pub(super) struct Stats {
    counters: BTreeMap<&'static str, i64>,
}

impl Stats {
    /// Adds `n` (possibly negative) to a counter.
    pub(super) fn add(&mut self, name: &'static str, n: i64) {
        let v = self.counters.entry(name).or_insert(0);
        *v = v.saturating_add(n);
    }

    fn family(peer: &PeerAddr) -> &'static str {
        match peer {
            PeerAddr::Inet(a) if a.is_ipv4() => "smtp.session.inet4",
            PeerAddr::Inet(_) => "smtp.session.inet6",
            PeerAddr::Local => "smtp.session.local",
        }
    }

    pub(super) fn session_opened(&mut self, peer: &PeerAddr) {
        self.add("smtp.session", 1);
        self.add(Stats::family(peer), 1);
    }

    pub(super) fn session_closed(&mut self, peer: &PeerAddr) {
        self.add("smtp.session", -1);
        self.add(Stats::family(peer), -1);
    }

    pub(super) fn snapshot(&self) -> BTreeMap<&'static str, i64> {
        self.counters.clone()
    }
}
