//! Monkey mode: the runtime's effects failing on purpose, by a seeded fault plan
//! (DESIGN.md, "Faults by design"; the plan itself is [`mta_core::faults`]).
//!
//! A daemon started with `-M SEED:RATE` [`install`]s one process-wide plan before it
//! serves. Each effect seam then asks, once per effect, what happens to it:
//! - blocking seams (lookups, local deliveries, DNS and connects of the relay threads, the
//!   spool) call [`strike`]: a delay is slept through there, and `Some(reason)` means
//!   "fail temporarily with this reason, without attempting the effect";
//! - seams on an async executor call [`decide`] and wait for a [`Decision::Delay`] on
//!   their own timer instead of blocking the thread.
//!
//! Without a plan installed every call is one atomic load that says "proceed", so the
//! seams cost nothing in normal operation. Effects are numbered per kind in the order
//! the seams ask, which across threads depends on scheduling: a daemon's run is
//! reproducible in its fault rate and kinds, not exactly; the in-memory simulation
//! (mta-core/tests/simulation.rs) is the exact replay.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use mta_core::faults::{Fault, FaultPlan, Verdict};

use crate::spool::{Spool, SpoolFaults, SpoolOp};

/// What a seam must do with one effect.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Decision {
    /// Perform it now.
    Proceed,
    /// Wait this long, then perform it.
    Delay(Duration),
    /// Do not perform it: fail temporarily with this reason.
    Fail(String),
}

/// A fault plan with its effect counters, shared by every thread.
#[derive(Debug)]
pub struct Monkey {
    plan: FaultPlan,
    counts: [AtomicU64; Fault::ALL.len()],
}

impl Monkey {
    /// Counting from zero for every kind.
    pub fn new(plan: FaultPlan) -> Monkey {
        Monkey {
            plan,
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// The plan.
    pub fn plan(&self) -> &FaultPlan {
        &self.plan
    }

    /// How many effects of `kind` were decided so far.
    pub fn count(&self, kind: Fault) -> u64 {
        self.counts
            .get(kind.index())
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Decide the next effect of `kind`.
    pub fn decide(&self, kind: Fault) -> Decision {
        let n = self
            .counts
            .get(kind.index())
            .map_or(0, |c| c.fetch_add(1, Ordering::Relaxed));
        match self.plan.decide(kind, n) {
            Verdict::Proceed => Decision::Proceed,
            Verdict::Delay(d) => Decision::Delay(d),
            Verdict::Fail => Decision::Fail(self.plan.reason(kind, n)),
        }
    }

    /// Decide the next effect of `kind` on a thread that may block: sleep through a
    /// delay; `Some(reason)` when the effect must fail temporarily.
    pub fn strike(&self, kind: Fault) -> Option<String> {
        match self.decide(kind) {
            Decision::Proceed => None,
            Decision::Delay(d) => {
                std::thread::sleep(d);
                None
            }
            Decision::Fail(reason) => Some(reason),
        }
    }
}

static MONKEY: OnceLock<Monkey> = OnceLock::new();

/// Install the process's plan, once, before serving. A second call changes nothing and
/// returns the plan it was given back.
///
/// # Errors
/// The plan, when one is installed already.
pub fn install(plan: FaultPlan) -> Result<(), FaultPlan> {
    MONKEY.set(Monkey::new(plan)).map_err(|m| m.plan)
}

/// The installed plan and its counters, if monkey mode is on.
pub fn installed() -> Option<&'static Monkey> {
    MONKEY.get()
}

/// The line the daemons log at start in monkey mode.
pub fn banner(plan: &FaultPlan) -> String {
    format!(
        "smtpd: monkey mode on: {plan} (spec {}); some effects fail temporarily or are delayed by up to {} ms",
        plan.spec(),
        plan.max_delay().as_millis()
    )
}

/// What the next effect of `kind` must do (always [`Decision::Proceed`] without a plan).
/// For seams that cannot block their thread (async tasks).
pub fn decide(kind: Fault) -> Decision {
    match installed() {
        Some(monkey) => monkey.decide(kind),
        None => Decision::Proceed,
    }
}

/// For blocking seams: sleeps through a delay, and returns `Some(reason)` when the next
/// effect of `kind` must fail temporarily (the caller then answers as it does for a
/// transient failure of that effect, with `reason` in the log).
pub fn strike(kind: Fault) -> Option<String> {
    installed().and_then(|monkey| monkey.strike(kind))
}

/// The spool's fault hook in monkey mode: creating an incoming message and committing
/// one ([`Fault::SpoolWrite`]) fail temporarily (the client gets 451; a report is queued
/// again later). Writes inside a message (body chunks, envelope records) and the
/// rewrites and removals of queued envelopes are left alone: their failure is not
/// retried by anyone, so injecting it would test a loss the design accepts (a removal
/// that fails delivers twice after a restart), not a temporary fault.
#[derive(Debug)]
pub struct MonkeySpool {
    monkey: &'static Monkey,
}

impl MonkeySpool {
    /// A hook over `monkey` (usually [`installed`]).
    pub fn new(monkey: &'static Monkey) -> MonkeySpool {
        MonkeySpool { monkey }
    }
}

impl SpoolFaults for MonkeySpool {
    fn check(&self, op: SpoolOp, msgid: &str) -> io::Result<()> {
        if !matches!(op, SpoolOp::CreateIncoming | SpoolOp::Commit) {
            return Ok(());
        }
        match self.monkey.strike(Fault::SpoolWrite) {
            Some(reason) => Err(io::Error::other(format!("{reason} ({op:?} {msgid})"))),
            None => Ok(()),
        }
    }
}

/// The spool hook of the installed plan, if monkey mode is on.
pub fn spool_faults() -> Option<Arc<dyn SpoolFaults>> {
    installed().map(|monkey| Arc::new(MonkeySpool::new(monkey)) as Arc<dyn SpoolFaults>)
}

/// `spool` with the installed plan's hook, or `spool` itself when monkey mode is off:
/// call it right after [`Spool::open`].
pub fn wrap_spool(spool: Spool) -> Spool {
    match spool_faults() {
        Some(faults) => spool.with_faults(faults),
        None => spool,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mta_core::faults::{FaultKinds, Rate};

    fn leak(plan: FaultPlan) -> &'static Monkey {
        Box::leak(Box::new(Monkey::new(plan)))
    }

    #[test]
    fn a_monkey_follows_its_plan_in_order() {
        let plan = FaultPlan::new(11, Rate::parse("0.4").unwrap()).with_max_delay(Duration::ZERO);
        let monkey = Monkey::new(plan);
        for n in 0..200 {
            let expected = match plan.decide(Fault::UserLookup, n) {
                Verdict::Fail => Some(plan.reason(Fault::UserLookup, n)),
                _ => None,
            };
            assert_eq!(monkey.strike(Fault::UserLookup), expected, "effect {n}");
        }
        assert_eq!(monkey.count(Fault::UserLookup), 200);
        assert_eq!(monkey.count(Fault::Delivery), 0);
    }

    #[test]
    fn delays_are_slept_through_and_reported_to_async_callers() {
        let plan = FaultPlan::new(2, Rate::parse("0.5").unwrap())
            .only(FaultKinds::of(&[Fault::Connect]))
            .with_max_delay(Duration::from_millis(3));
        let monkey = Monkey::new(plan);
        let decisions: Vec<Decision> = (0..100).map(|_| monkey.decide(Fault::Connect)).collect();
        assert!(decisions.iter().any(|d| matches!(d, Decision::Delay(_))));
        assert!(decisions
            .iter()
            .any(|d| matches!(d, Decision::Fail(r) if r.contains("connect"))));
        assert!(decisions.iter().all(|d| match d {
            Decision::Delay(d) => *d <= Duration::from_millis(3),
            _ => true,
        }));
        assert_eq!(monkey.decide(Fault::DnsQuery), Decision::Proceed);
    }

    #[test]
    fn spool_hook_fails_creates_and_commits_only() {
        let hook = MonkeySpool::new(leak(FaultPlan::new(1, Rate::ONE)));
        for op in [SpoolOp::CreateIncoming, SpoolOp::Commit] {
            let err = hook.check(op, "0123abcd").unwrap_err();
            assert!(err.to_string().starts_with("monkey: "), "{err}");
        }
        for op in [
            SpoolOp::WriteChunk,
            SpoolOp::AddEnvelope,
            SpoolOp::UpdateEnvelope,
            SpoolOp::RemoveEnvelope,
            SpoolOp::RemoveMessage,
            SpoolOp::ReadMessage,
        ] {
            assert!(hook.check(op, "0123abcd").is_ok(), "{op:?}");
        }
    }

    #[test]
    fn a_faulty_spool_refuses_new_messages_and_keeps_nothing() {
        let dir = std::env::temp_dir().join(format!("monkey-spool-{}", std::process::id()));
        let (spool, _) = Spool::open(&dir).unwrap();
        let spool = spool.with_faults(Arc::new(MonkeySpool::new(leak(FaultPlan::new(
            4,
            Rate::ONE,
        )))));
        assert!(spool.create_incoming("0000beef").is_err());
        let (clean, recovered) = Spool::open(&dir).unwrap();
        assert!(recovered.messages.is_empty() && recovered.discarded_incoming.is_empty());
        let mut message = clean.create_incoming("0000beef").unwrap();
        message.write_chunk(b"Subject: x\r\n\r\nbody\r\n").unwrap();
        message.add_envelope("0000beef00000001", b"record").unwrap();
        message.commit().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn without_a_plan_everything_proceeds() {
        // No test installs a process-wide plan: the spool tests of this crate share it.
        assert!(installed().is_none());
        assert_eq!(decide(Fault::Delivery), Decision::Proceed);
        assert_eq!(strike(Fault::SpoolWrite), None);
        assert!(spool_faults().is_none());
    }

    #[test]
    fn the_banner_says_seed_and_rate() {
        let line = banner(&FaultPlan::parse("42:0.2").unwrap());
        assert!(line.contains("monkey mode on: seed 42 rate 0.2"), "{line}");
    }
}
