//! Wall-clock time as a value, handed in by the runtime.
//!
//! The core crates never read a clock: the runtime passes the current [`UnixTime`] into
//! every machine call. Persisted times (envelope creation, next try, expiry) and the
//! dates written into headers (`Received:`, bounce `Date:`) are all `UnixTime`.

use std::fmt;
use std::ops::Add;
use std::time::Duration;

/// A point in wall-clock time: milliseconds since 1970-01-01T00:00:00Z.
///
/// Milliseconds (not seconds) so that a fake clock in tests can step through short
/// windows exactly; the spool and headers use whole seconds where that is the convention.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct UnixTime(u64);

impl UnixTime {
    /// The epoch itself.
    pub const EPOCH: UnixTime = UnixTime(0);

    /// A time from whole seconds since the epoch (saturating at the far future).
    pub const fn from_secs(secs: u64) -> Self {
        UnixTime(secs.saturating_mul(1000))
    }

    /// A time from milliseconds since the epoch.
    pub const fn from_millis(millis: u64) -> Self {
        UnixTime(millis)
    }

    /// Whole seconds since the epoch (rounded down).
    pub const fn as_secs(self) -> u64 {
        self.0 / 1000
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// The milliseconds past the last whole second, 0..=999.
    pub const fn subsec_millis(self) -> u64 {
        self.0 % 1000
    }

    /// `self + d`, or `None` past the representable range.
    pub fn checked_add(self, d: Duration) -> Option<Self> {
        let ms = u64::try_from(d.as_millis()).ok()?;
        self.0.checked_add(ms).map(UnixTime)
    }

    /// `self + d`, stopping at the largest representable time.
    pub fn saturating_add(self, d: Duration) -> Self {
        self.checked_add(d).unwrap_or(UnixTime(u64::MAX))
    }

    /// `self - d`, stopping at the epoch.
    pub fn saturating_sub(self, d: Duration) -> Self {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        UnixTime(self.0.saturating_sub(ms))
    }

    /// How long after `earlier` this time is; zero when `earlier` is later (a clock that
    /// stepped back must never make a duration negative).
    pub fn saturating_duration_since(self, earlier: UnixTime) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    /// This time as an RFC 5322 §3.3 date-time in UTC, e.g.
    /// `Sat, 28 Nov 2026 20:09:28 +0000`, for `Date:` and `Received:` headers.
    pub fn rfc5322(self) -> Rfc5322Date {
        Rfc5322Date(self)
    }
}

impl Add<Duration> for UnixTime {
    type Output = UnixTime;

    /// Saturating addition: the far future stays the far future.
    fn add(self, d: Duration) -> UnixTime {
        self.saturating_add(d)
    }
}

/// A [`UnixTime`] displayed as an RFC 5322 §3.3 date-time (`day, dd Mon yyyy hh:mm:ss +0000`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Rfc5322Date(UnixTime);

const DAY_NAMES: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTH_NAMES: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The proleptic Gregorian (year, month 1..=12, day 1..=31) of a day count since
/// 1970-01-01, by the usual era/day-of-era decomposition (400-year cycles of 146097 days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01 so leap days fall at the end of each year.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

impl fmt::Display for Rfc5322Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        let days = secs / 86_400;
        let in_day = secs % 86_400;
        let (year, month, day) = civil_from_days(days);
        // 1970-01-01 was a Thursday.
        let weekday = DAY_NAMES
            .get(usize::try_from((days + 4) % 7).unwrap_or(0))
            .unwrap_or(&"Sun");
        let month_name = MONTH_NAMES
            .get(usize::try_from(month.saturating_sub(1)).unwrap_or(0))
            .unwrap_or(&"Jan");
        write!(
            f,
            "{weekday}, {day:02} {month_name} {year:04} {:02}:{:02}:{:02} +0000",
            in_day / 3600,
            in_day % 3600 / 60,
            in_day % 60
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_dates() {
        assert_eq!(
            UnixTime::EPOCH.rfc5322().to_string(),
            "Thu, 01 Jan 1970 00:00:00 +0000"
        );
        assert_eq!(
            UnixTime::from_secs(1_795_896_568).rfc5322().to_string(),
            "Sat, 28 Nov 2026 20:09:28 +0000"
        );
        // A leap day and the last second of a leap year.
        assert_eq!(
            UnixTime::from_secs(951_782_400).rfc5322().to_string(),
            "Tue, 29 Feb 2000 00:00:00 +0000"
        );
        assert_eq!(
            UnixTime::from_secs(1_735_689_599).rfc5322().to_string(),
            "Tue, 31 Dec 2024 23:59:59 +0000"
        );
    }

    #[test]
    fn far_future_does_not_panic() {
        let s = UnixTime::from_millis(u64::MAX).rfc5322().to_string();
        assert!(s.ends_with(" +0000"), "{s}");
    }

    #[test]
    fn arithmetic_saturates() {
        let t = UnixTime::from_secs(10);
        assert_eq!(
            t + Duration::from_millis(1500),
            UnixTime::from_millis(11_500)
        );
        assert_eq!(
            UnixTime::from_millis(u64::MAX) + Duration::from_secs(1),
            UnixTime::from_millis(u64::MAX)
        );
        assert_eq!(t.saturating_sub(Duration::from_secs(20)), UnixTime::EPOCH);
        assert_eq!(
            t.saturating_duration_since(UnixTime::from_secs(20)),
            Duration::ZERO
        );
        assert_eq!(
            UnixTime::from_secs(20).saturating_duration_since(t),
            Duration::from_secs(10)
        );
        assert_eq!(UnixTime::from_millis(12_345).subsec_millis(), 345);
    }

    /// Day-by-day check of the calendar against a naive month walk over 1970..2100.
    #[test]
    fn calendar_matches_naive_walk() {
        let mut days = 0u64;
        for year in 1970u64..2100 {
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
            for month in 1u64..=12 {
                let len = match month {
                    2 if leap => 29,
                    2 => 28,
                    4 | 6 | 9 | 11 => 30,
                    _ => 31,
                };
                for day in 1..=len {
                    assert_eq!(civil_from_days(days), (year, month, day));
                    days += 1;
                }
            }
        }
    }
}
