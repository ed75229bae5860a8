//! The fault plan of monkey mode (DESIGN.md, "Faults by design"): a seed and a rate decide,
//! for the n-th effect of each kind, whether it fails temporarily, is delayed, or goes
//! through.
//!
//! The plan is pure and stateless: [`FaultPlan::decide`] is a function of the seed, the
//! kind and the effect's number, so a run is replayed exactly from its seed. Whoever
//! performs effects numbers them: [`FaultCounter`] does it for a single-threaded driver
//! (the simulation tests); a runtime keeps one atomic counter per kind.
//!
//! Only temporary failures are ever injected: every kind here is an effect whose failure
//! the engine already answers with a 4xx or a retry (RFC 5321 §4.2.5 and §4.5.4.1), so
//! monkey mode may slow mail down but never refuses or loses it.

mod spec;
#[cfg(test)]
mod tests;

pub use spec::{Rate, SpecError};

use std::time::Duration;

use crate::queue::SplitMix64;

/// One kind of effect a runtime performs and monkey mode may disturb.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Fault {
    /// Creating or committing a message in the spool (the client gets 451; a report is
    /// queued again later).
    SpoolWrite,
    /// Looking up a user in the password database or a userbase (the recipient gets 451,
    /// a delivery is retried).
    UserLookup,
    /// Reading a `.forward` or `:include:` file.
    FileLookup,
    /// One local delivery attempt (retried by the scheduler).
    Delivery,
    /// One DNS query of the relay agent (the resolver retries, then defers the mail).
    DnsQuery,
    /// One outbound TCP connect (the router tries the next exchanger, then defers).
    Connect,
}

impl Fault {
    /// Every kind, in a fixed order (the bit order of [`FaultKinds`]).
    pub const ALL: [Fault; 6] = [
        Fault::SpoolWrite,
        Fault::UserLookup,
        Fault::FileLookup,
        Fault::Delivery,
        Fault::DnsQuery,
        Fault::Connect,
    ];

    /// The kind's name in a fault specification and in logs (`spool`, `user`, `file`,
    /// `delivery`, `dns`, `connect`).
    pub const fn name(self) -> &'static str {
        match self {
            Fault::SpoolWrite => "spool",
            Fault::UserLookup => "user",
            Fault::FileLookup => "file",
            Fault::Delivery => "delivery",
            Fault::DnsQuery => "dns",
            Fault::Connect => "connect",
        }
    }

    /// The kind named `name` (see [`Fault::name`]), case-insensitively.
    pub fn from_name(name: &str) -> Option<Fault> {
        Fault::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name))
    }

    /// The kind's position in [`Fault::ALL`].
    pub const fn index(self) -> usize {
        match self {
            Fault::SpoolWrite => 0,
            Fault::UserLookup => 1,
            Fault::FileLookup => 2,
            Fault::Delivery => 3,
            Fault::DnsQuery => 4,
            Fault::Connect => 5,
        }
    }

    /// A constant mixed into the seed so that each kind draws its own sequence.
    const fn salt(self) -> u64 {
        match self {
            Fault::SpoolWrite => 0x5350_4f4f_4c57_5254,
            Fault::UserLookup => 0x5553_4552_4c4f_4f4b,
            Fault::FileLookup => 0x4649_4c45_4c4f_4f4b,
            Fault::Delivery => 0x4445_4c49_5645_5259,
            Fault::DnsQuery => 0x444e_5351_5545_5259,
            Fault::Connect => 0x434f_4e4e_4543_5421,
        }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of [`Fault`] kinds.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct FaultKinds(u8);

impl FaultKinds {
    /// Every kind.
    pub const ALL: FaultKinds = FaultKinds(0b11_1111);
    /// No kind.
    pub const NONE: FaultKinds = FaultKinds(0);

    /// Exactly these kinds.
    pub fn of(kinds: &[Fault]) -> FaultKinds {
        kinds
            .iter()
            .fold(FaultKinds::NONE, |set, kind| set.with(*kind))
    }

    /// This set and `kind`.
    pub const fn with(self, kind: Fault) -> FaultKinds {
        FaultKinds(self.0 | (1 << kind.index()))
    }

    /// Whether `kind` is in the set.
    pub const fn contains(self, kind: Fault) -> bool {
        self.0 & (1 << kind.index()) != 0
    }

    /// The kinds of the set, in the order of [`Fault::ALL`].
    pub fn iter(self) -> impl Iterator<Item = Fault> {
        Fault::ALL.into_iter().filter(move |k| self.contains(*k))
    }
}

/// What happens to one effect.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Verdict {
    /// It runs as usual.
    Proceed,
    /// It runs, after this long (its answer comes late, other work overtakes it).
    Delay(Duration),
    /// It fails temporarily without being attempted.
    Fail,
}

/// The longest delay a plan gives unless told otherwise.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_millis(200);

/// The seeded plan: which effects fail or are delayed. Cheap to copy; it holds no state.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FaultPlan {
    seed: u64,
    rate: Rate,
    kinds: FaultKinds,
    max_delay: Duration,
}

impl FaultPlan {
    /// A plan over every kind: each effect fails with probability `rate`; of the others,
    /// a share `rate` is delayed by up to [`DEFAULT_MAX_DELAY`].
    pub const fn new(seed: u64, rate: Rate) -> FaultPlan {
        FaultPlan {
            seed,
            rate,
            kinds: FaultKinds::ALL,
            max_delay: DEFAULT_MAX_DELAY,
        }
    }

    /// The same plan, disturbing only `kinds` (the others always proceed).
    pub const fn only(self, kinds: FaultKinds) -> FaultPlan {
        FaultPlan { kinds, ..self }
    }

    /// The same plan with delays of at most `max` (zero: no delays at all).
    pub const fn with_max_delay(self, max: Duration) -> FaultPlan {
        FaultPlan {
            max_delay: max,
            ..self
        }
    }

    /// The seed.
    pub const fn seed(&self) -> u64 {
        self.seed
    }

    /// The rate.
    pub const fn rate(&self) -> Rate {
        self.rate
    }

    /// The kinds disturbed.
    pub const fn kinds(&self) -> FaultKinds {
        self.kinds
    }

    /// The longest delay.
    pub const fn max_delay(&self) -> Duration {
        self.max_delay
    }

    /// What happens to the `n`-th effect (counting from 0) of kind `kind`: the same
    /// arguments always give the same verdict.
    pub fn decide(&self, kind: Fault, n: u64) -> Verdict {
        if !self.kinds.contains(kind) || self.rate.is_zero() {
            return Verdict::Proceed;
        }
        let mut rng =
            SplitMix64::new(self.seed ^ kind.salt() ^ n.wrapping_mul(0xd605_bbb5_8c8a_bbb3));
        if self.rate.hits(rng.next_u64()) {
            return Verdict::Fail;
        }
        let max = u64::try_from(self.max_delay.as_millis()).unwrap_or(u64::MAX);
        if max == 0 || !self.rate.hits(rng.next_u64()) {
            return Verdict::Proceed;
        }
        let millis = rng.next_u64() % max.saturating_add(1);
        Verdict::Delay(Duration::from_millis(millis.max(1)))
    }

    /// The reason logged and returned for the `n`-th effect of `kind` when it fails.
    pub fn reason(&self, kind: Fault, n: u64) -> String {
        format!(
            "monkey: injected temporary {kind} failure #{n} (seed {}, rate {})",
            self.seed, self.rate
        )
    }

    /// The plan written as [`FaultPlan::parse`] reads it (`SEED:RATE[:KIND,...]`).
    pub fn spec(&self) -> String {
        let mut out = format!("{}:{}", self.seed, self.rate);
        if self.kinds != FaultKinds::ALL {
            let names: Vec<&str> = self.kinds.iter().map(Fault::name).collect();
            out.push(':');
            out.push_str(&names.join(","));
        }
        out
    }
}

impl std::fmt::Display for FaultPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "seed {} rate {}", self.seed, self.rate)?;
        if self.kinds != FaultKinds::ALL {
            let names: Vec<&str> = self.kinds.iter().map(Fault::name).collect();
            write!(f, " kinds {}", names.join(","))?;
        }
        Ok(())
    }
}

/// A plan with a counter per kind, for a driver that performs effects one at a time.
#[derive(Clone, Debug)]
pub struct FaultCounter {
    plan: FaultPlan,
    counts: [u64; 6],
}

impl FaultCounter {
    /// Counting from zero for every kind.
    pub const fn new(plan: FaultPlan) -> FaultCounter {
        FaultCounter {
            plan,
            counts: [0; 6],
        }
    }

    /// The plan.
    pub const fn plan(&self) -> &FaultPlan {
        &self.plan
    }

    /// The verdict for the next effect of `kind`.
    pub fn next(&mut self, kind: Fault) -> Verdict {
        let n = self.take(kind);
        self.plan.decide(kind, n)
    }

    /// How many effects of `kind` were decided so far.
    pub fn count(&self, kind: Fault) -> u64 {
        self.counts.get(kind.index()).copied().unwrap_or(0)
    }

    fn take(&mut self, kind: Fault) -> u64 {
        match self.counts.get_mut(kind.index()) {
            Some(count) => {
                let n = *count;
                *count = n.saturating_add(1);
                n
            }
            None => 0,
        }
    }
}
