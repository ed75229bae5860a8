//! The retry policy: how long an envelope waits after a temporary failure.

use std::time::Duration;

use crate::time::UnixTime;

/// Quadratic backoff in the manner of OpenSMTPD: after the n-th failed attempt an envelope
/// waits `base · n²`, never more than `max_interval`, and never past its expiry.
///
/// Local deliveries fail temporarily for local reasons (a lock, a full disk, a quota) that
/// clear quickly, so they start at 10 s (10 s, 40 s, 90 s, … up to 1 h). Remote deliveries
/// start at 400 s (≈ 7 min, 27 min, 1 h, 1.8 h, 2.8 h, then every 4 h) so that an
/// unreachable host is not hammered. With the default 4-day ttl a remote envelope gets
/// about 28 attempts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RetryPolicy {
    /// The wait after the first failed attempt.
    pub base: Duration,
    /// The longest wait between two attempts.
    pub max_interval: Duration,
}

impl RetryPolicy {
    /// The default for local deliveries: 10 s · n², at most 1 h.
    pub const LOCAL: RetryPolicy = RetryPolicy {
        base: Duration::from_secs(10),
        max_interval: Duration::from_secs(3600),
    };

    /// The default for relayed deliveries: 400 s · n², at most 4 h.
    pub const REMOTE: RetryPolicy = RetryPolicy {
        base: Duration::from_secs(400),
        max_interval: Duration::from_secs(4 * 3600),
    };

    /// The wait after the `tries`-th failed attempt (`tries` >= 1; 0 counts as 1).
    pub fn delay(&self, tries: u32) -> Duration {
        let n = tries.max(1);
        self.base
            .checked_mul(n.saturating_mul(n))
            .unwrap_or(Duration::MAX)
            .min(self.max_interval)
    }

    /// When to try again after the `tries`-th attempt failed at `now`: never later than
    /// `expires`, and `None` when the envelope has already expired.
    pub fn next_try(&self, tries: u32, now: UnixTime, expires: UnixTime) -> Option<UnixTime> {
        if now >= expires {
            return None;
        }
        Some(now.saturating_add(self.delay(tries)).min(expires))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quadratic_and_capped() {
        let r = RetryPolicy::REMOTE;
        let secs: Vec<u64> = (1..=7).map(|n| r.delay(n).as_secs()).collect();
        assert_eq!(secs, [400, 1600, 3600, 6400, 10_000, 14_400, 14_400]);
        assert_eq!(RetryPolicy::LOCAL.delay(0).as_secs(), 10);
        assert_eq!(RetryPolicy::LOCAL.delay(3).as_secs(), 90);
        assert_eq!(RetryPolicy::LOCAL.delay(u32::MAX).as_secs(), 3600);
    }

    #[test]
    fn never_past_expiry() {
        let r = RetryPolicy::REMOTE;
        let now = UnixTime::from_secs(1000);
        assert_eq!(
            r.next_try(1, now, UnixTime::from_secs(1200)),
            Some(UnixTime::from_secs(1200))
        );
        assert_eq!(
            r.next_try(1, now, UnixTime::from_secs(5000)),
            Some(UnixTime::from_secs(1400))
        );
        assert_eq!(r.next_try(1, now, now), None);
    }
}
