//! What the router remembers of each MX address: open sessions, recent failures, and the
//! cool-down during which a broken MX gets no new session.

use std::time::Duration;

use crate::time::UnixTime;

/// The state of one MX address.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct HostState {
    /// The exchanger's name (the last one seen for this address).
    pub(crate) name: String,
    /// Sessions open or being opened to it.
    pub(crate) connections: usize,
    /// Failures since the last success.
    pub(crate) failures: u32,
    /// How many times in a row it was marked broken (the cool-down doubles each time).
    pub(crate) breaks: u32,
    /// Until when it gets no new session.
    pub(crate) broken_until: Option<UnixTime>,
    /// The last error seen, for `show hosts`.
    pub(crate) last_error: Option<String>,
    /// Sessions opened in total.
    pub(crate) sessions: u64,
    /// When the last session to it was opened.
    pub(crate) last_connect: Option<UnixTime>,
}

impl HostState {
    /// A host never tried yet.
    pub(crate) fn new(name: &str) -> Self {
        HostState {
            name: name.to_owned(),
            connections: 0,
            failures: 0,
            breaks: 0,
            broken_until: None,
            last_error: None,
            sessions: 0,
            last_connect: None,
        }
    }

    /// Whether it is in a cool-down at `now`.
    pub(crate) fn is_broken(&self, now: UnixTime) -> bool {
        self.broken_until.is_some_and(|until| until > now)
    }

    /// A session reached it and worked: forget past failures.
    pub(crate) fn succeeded(&mut self) {
        self.failures = 0;
        self.breaks = 0;
        self.broken_until = None;
        self.last_error = None;
    }

    /// A session to it failed; returns the cool-down when this failure marks it broken
    /// (`threshold` failures in a row; once broken, a failure of the first session after
    /// the cool-down breaks it again at once, for twice as long, up to `max`).
    pub(crate) fn failed(
        &mut self,
        error: &str,
        now: UnixTime,
        threshold: u32,
        base: Duration,
        max: Duration,
    ) -> Option<Duration> {
        self.failures = self.failures.saturating_add(1);
        self.last_error = Some(error.to_owned());
        if self.is_broken(now) || (self.failures < threshold.max(1) && self.breaks == 0) {
            return None;
        }
        let factor = 1u32.checked_shl(self.breaks.min(20)).unwrap_or(u32::MAX);
        let cooldown = base.saturating_mul(factor).min(max);
        self.breaks = self.breaks.saturating_add(1);
        self.broken_until = Some(now.saturating_add(cooldown));
        Some(cooldown)
    }
}
