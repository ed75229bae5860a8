//! Statistics counters, named as OpenSMTPD names them (`smtpctl show stats`,
//! `smtpctl monitor`), plus the few cumulative counts `monitor` derives in OpenSMTPD from
//! the ups and downs of its gauges.

use std::collections::BTreeMap;

use super::input::PeerAddr;

/// Whether a statistic goes up and down or only up.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum StatKind {
    /// How many there are now (open sessions, queued envelopes).
    Gauge,
    /// How many there were since the start.
    Counter,
}

/// One statistic the engine keeps: its name, kind and meaning.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct StatKey {
    /// The name, in OpenSMTPD's naming where OpenSMTPD has one.
    pub name: &'static str,
    /// Gauge or counter.
    pub kind: StatKind,
    /// What it counts, for `show stats` readers and metric help texts.
    pub help: &'static str,
}

const fn gauge(name: &'static str, help: &'static str) -> StatKey {
    StatKey {
        name,
        kind: StatKind::Gauge,
        help,
    }
}

const fn counter(name: &'static str, help: &'static str) -> StatKey {
    StatKey {
        name,
        kind: StatKind::Counter,
        help,
    }
}

/// Every statistic [`Engine::stats`](super::Engine::stats) reports, all present from the
/// start (at 0), sorted by name.
pub const STAT_KEYS: &[StatKey] = &[
    gauge("mda.envelope", "local deliveries in flight"),
    gauge("mta.envelope", "relayed deliveries in flight"),
    counter(
        "queue.bounce",
        "reports (bounces, delay and success notices) queued",
    ),
    counter(
        "scheduler.delivery.expired",
        "envelopes that ran out of time (as scheduler.envelope.expired)",
    ),
    counter(
        "scheduler.delivery.loop",
        "deliveries that failed because the mail loops (5.4.6)",
    ),
    counter("scheduler.delivery.ok", "deliveries that succeeded"),
    counter(
        "scheduler.delivery.permfail",
        "deliveries that failed for good",
    ),
    counter(
        "scheduler.delivery.tempfail",
        "deliveries that failed temporarily",
    ),
    gauge("scheduler.envelope", "envelopes in the queue"),
    counter(
        "scheduler.envelope.dequeued",
        "envelopes that left the queue",
    ),
    counter(
        "scheduler.envelope.enqueued",
        "envelopes that entered the queue",
    ),
    counter(
        "scheduler.envelope.expired",
        "envelopes that ran out of time",
    ),
    gauge(
        "scheduler.envelope.incoming",
        "envelopes of messages being committed to the queue",
    ),
    gauge("scheduler.envelope.inflight", "envelopes being delivered"),
    counter(
        "scheduler.envelope.removed",
        "envelopes removed by smtpctl remove",
    ),
    counter(
        "smtp.loop",
        "messages refused at end of data for too many Received: headers",
    ),
    counter("smtp.message", "messages accepted"),
    gauge("smtp.session", "open SMTP sessions"),
    counter("smtp.session.closed", "SMTP sessions closed"),
    gauge("smtp.session.inet4", "open SMTP sessions from IPv4 clients"),
    gauge("smtp.session.inet6", "open SMTP sessions from IPv6 clients"),
    gauge("smtp.session.local", "open sessions of the local enqueuer"),
    counter("smtp.session.new", "SMTP sessions opened"),
    counter("smtp.smtps", "TLS handshakes completed on smtps listeners"),
    counter("smtp.tls", "STARTTLS handshakes completed"),
];

/// The counters; gauges (open sessions, queued envelopes) go up and down.
#[derive(Clone, Debug)]
pub(super) struct Stats {
    counters: BTreeMap<&'static str, i64>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            counters: STAT_KEYS.iter().map(|k| (k.name, 0)).collect(),
        }
    }
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
        self.add("smtp.session.new", 1);
        self.add(Stats::family(peer), 1);
    }

    pub(super) fn session_closed(&mut self, peer: &PeerAddr) {
        self.add("smtp.session", -1);
        self.add("smtp.session.closed", 1);
        self.add(Stats::family(peer), -1);
    }

    /// An envelope entered the queue.
    pub(super) fn enqueued(&mut self) {
        self.add("scheduler.envelope", 1);
        self.add("scheduler.envelope.enqueued", 1);
    }

    /// An envelope left the queue.
    pub(super) fn dequeued(&mut self) {
        self.add("scheduler.envelope", -1);
        self.add("scheduler.envelope.dequeued", 1);
    }

    /// A delivery was handed out (`started`) or ended; `local` for a local delivery
    /// agent, else a relay.
    pub(super) fn delivery(&mut self, local: bool, started: bool) {
        let agent = if local {
            "mda.envelope"
        } else {
            "mta.envelope"
        };
        let n = if started { 1 } else { -1 };
        self.add(agent, n);
        self.add("scheduler.envelope.inflight", n);
    }

    pub(super) fn snapshot(&self) -> BTreeMap<&'static str, i64> {
        self.counters.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sorted_unique_and_present_from_the_start() {
        let names: Vec<&str> = STAT_KEYS.iter().map(|k| k.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
        let snapshot = Stats::default().snapshot();
        assert_eq!(snapshot.keys().copied().collect::<Vec<_>>(), names);
        assert!(snapshot.values().all(|&v| v == 0));
    }
}
