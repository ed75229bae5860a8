//! Rates and the textual form of a fault plan (`SEED:RATE[:KIND,...]`, as the daemons'
//! `-M` flag takes it).

use std::fmt;

use super::{Fault, FaultKinds, FaultPlan};

/// Parts per million in one.
const MILLION: u32 = 1_000_000;

/// A probability, in millionths: exact, comparable and the same on every machine.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Rate(u32);

impl Rate {
    /// Never.
    pub const ZERO: Rate = Rate(0);
    /// Always.
    pub const ONE: Rate = Rate(MILLION);

    /// `ppm` millionths, at most one.
    pub const fn from_ppm(ppm: u32) -> Rate {
        if ppm > MILLION {
            Rate(MILLION)
        } else {
            Rate(ppm)
        }
    }

    /// The rate in millionths.
    pub const fn ppm(self) -> u32 {
        self.0
    }

    /// Whether this is [`Rate::ZERO`].
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Whether a uniform 64-bit draw falls within the rate.
    pub(crate) fn hits(self, draw: u64) -> bool {
        draw % u64::from(MILLION) < u64::from(self.0)
    }

    /// Reads a decimal between 0 and 1 (`0.2`, `.05`, `1`) or a percentage (`20%`), to
    /// the millionth.
    ///
    /// # Errors
    /// [`SpecError::Rate`] for anything else, or a value above one.
    pub fn parse(text: &str) -> Result<Rate, SpecError> {
        let bad = || SpecError::Rate(text.to_owned());
        let (number, scale) = match text.strip_suffix('%') {
            Some(n) => (n, 100u64),
            None => (text, 1u64),
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if (whole.is_empty() && fraction.is_empty()) || !digits(whole) || !digits(fraction) {
            return Err(bad());
        }
        if whole.len() > 3 || fraction.len() > 6 {
            return Err(bad());
        }
        let whole: u64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad())?
        };
        let mut millionths = 0u64;
        for (i, b) in fraction.bytes().enumerate() {
            let place = 10u64.pow(5u32.saturating_sub(u32::try_from(i).unwrap_or(5)));
            millionths = millionths.saturating_add(u64::from(b - b'0').saturating_mul(place));
        }
        let ppm = whole
            .saturating_mul(u64::from(MILLION))
            .saturating_add(millionths)
            / scale;
        if ppm > u64::from(MILLION) {
            return Err(bad());
        }
        Ok(Rate(u32::try_from(ppm).map_err(|_| bad())?))
    }
}

impl fmt::Display for Rate {
    /// The shortest decimal that [`Rate::parse`] reads back as the same rate.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / MILLION;
        let fraction = self.0 % MILLION;
        if fraction == 0 {
            return write!(f, "{whole}");
        }
        let digits = format!("{fraction:06}");
        write!(f, "{whole}.{}", digits.trim_end_matches('0'))
    }
}

/// Why a fault specification was refused.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// Not `SEED:RATE` or `SEED:RATE:KIND,...`.
    #[error("expected SEED:RATE or SEED:RATE:KIND,... (kinds: spool, user, file, delivery, dns, connect), got {0:?}")]
    Shape(String),
    /// The seed is not a decimal or `0x` hexadecimal 64-bit number.
    #[error("invalid seed {0:?}")]
    Seed(String),
    /// The rate is not between 0 and 1.
    #[error("invalid rate {0:?}: expected a number from 0 to 1, like 0.2, or a percentage")]
    Rate(String),
    /// An unknown kind.
    #[error("unknown fault kind {0:?} (kinds: spool, user, file, delivery, dns, connect)")]
    Kind(String),
}

impl FaultPlan {
    /// Reads `SEED:RATE` (every kind) or `SEED:RATE:KIND,KIND...` (only those kinds),
    /// e.g. `42:0.2` or `0x2a:5%:spool,delivery`.
    ///
    /// # Errors
    /// A [`SpecError`] naming the part that is wrong.
    pub fn parse(text: &str) -> Result<FaultPlan, SpecError> {
        let mut parts = text.split(':');
        let (Some(seed), Some(rate)) = (parts.next(), parts.next()) else {
            return Err(SpecError::Shape(text.to_owned()));
        };
        let kinds = parts.next();
        if parts.next().is_some() {
            return Err(SpecError::Shape(text.to_owned()));
        }
        let seed = parse_seed(seed.trim())?;
        let rate = Rate::parse(rate.trim())?;
        let mut plan = FaultPlan::new(seed, rate);
        if let Some(kinds) = kinds {
            let mut set = FaultKinds::NONE;
            for name in kinds.split(',').map(str::trim) {
                let kind = Fault::from_name(name).ok_or_else(|| SpecError::Kind(name.into()))?;
                set = set.with(kind);
            }
            plan = plan.only(set);
        }
        Ok(plan)
    }
}

fn parse_seed(text: &str) -> Result<u64, SpecError> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.map_err(|_| SpecError::Seed(text.to_owned()))
}
