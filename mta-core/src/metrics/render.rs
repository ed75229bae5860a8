//! The counters of `smtpctl show stats` in the Prometheus text exposition format 0.0.4:
//! for each key a `# HELP` line, a `# TYPE` line and one sample.

use std::collections::BTreeSet;
use std::fmt::Write;

use crate::engine::{StatKind, STAT_KEYS};

/// The prefix of every metric name.
pub const PREFIX: &str = "smtpd_";

/// The key `show stats` gives the daemon's uptime under, in seconds.
const UPTIME: &str = "uptime";

/// The metric name of a `show stats` key: [`PREFIX`] then the key with every character
/// outside `[a-zA-Z0-9_]` made `_` (`smtp.session.inet4` gives `smtpd_smtp_session_inet4`);
/// `uptime` gives `smtpd_uptime_seconds`, the unit in the name as Prometheus names it.
/// Always a valid Prometheus metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`): the prefix starts it.
pub fn metric_name(key: &str) -> String {
    if key == UPTIME {
        return format!("{PREFIX}uptime_seconds");
    }
    let mut name = String::with_capacity(PREFIX.len().saturating_add(key.len()));
    name.push_str(PREFIX);
    name.extend(key.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        }
    }));
    name
}

/// The Prometheus type of a key: `counter` for the statistics the engine only ever
/// increases ([`StatKind::Counter`] in [`STAT_KEYS`]: sessions opened, messages accepted,
/// deliveries that succeeded...), `gauge` for everything else. OpenSMTPD's statistics
/// are mostly levels that go up and down (open sessions, queued envelopes), so a key the
/// engine does not describe is a gauge too; so is `uptime`, a measured duration rather
/// than a count of events.
/// Counter names keep the key's name (no `_total` suffix) so that each metric maps back
/// to its `show stats` line.
pub fn metric_type(key: &str) -> &'static str {
    match STAT_KEYS.iter().find(|k| k.name == key).map(|k| k.kind) {
        Some(StatKind::Counter) => "counter",
        Some(StatKind::Gauge) | None => "gauge",
    }
}

/// The help text of a key: the engine's description, or a generic one.
fn help(key: &str) -> String {
    if key == UPTIME {
        return "seconds since the daemon started".to_owned();
    }
    match STAT_KEYS.iter().find(|k| k.name == key) {
        Some(k) => k.help.to_owned(),
        None => format!("the statistic {key} of smtpctl show stats"),
    }
}

/// Escapes a help text as the format requires: `\` as `\\`, a line feed as `\n`.
fn escape_help(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Renders `stats` (as [`Response::Stats`](crate::control::Response::Stats) carries
/// them) in the text exposition format 0.0.4, in the order given. Two keys that give the
/// same metric name (`a.b` and `a_b`) would make the output invalid: the later one is
/// left out.
pub fn render(stats: &[(String, i64)]) -> String {
    let mut out = String::with_capacity(stats.len().saturating_mul(128));
    let mut seen = BTreeSet::new();
    for (key, value) in stats {
        let name = metric_name(key);
        if !seen.insert(name.clone()) {
            continue;
        }
        // Writing to a String cannot fail.
        let _ = writeln!(out, "# HELP {name} {}", escape_help(&help(key)));
        let _ = writeln!(out, "# TYPE {name} {}", metric_type(key));
        let _ = writeln!(out, "{name} {value}");
    }
    out
}
