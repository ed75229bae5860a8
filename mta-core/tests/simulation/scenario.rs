//! Scenarios of the simulation: who connects when, and what each client sends, drawn from
//! a seed. The same seed always gives the same scenario; faults are drawn apart (by the
//! fault plan), so one scenario can be played with and without them.

use std::time::Duration;

use mta_core::faults::{Fault, FaultKinds, FaultPlan, Rate};
use mta_core::queue::SplitMix64;

/// The configuration the simulated daemon runs: local maildirs for example.org, relay to
/// remote.test, nothing else.
pub const CONF: &str = r#"
listen on 127.0.0.1
action "local" maildir
action "out" relay
match from any for domain "example.org" action "local"
match from any for domain "remote.test" action "out"
"#;

/// Local accounts: `carol` forwards to `bob`, `dave`'s mailbox refuses mail for good.
pub const USERS: [&str; 3] = ["bob", "carol", "dave"];

/// Recipients the clients choose from, with what the clean run answers them.
pub const RECIPIENTS: [&str; 9] = [
    "bob@example.org",    // 250, delivered
    "carol@example.org",  // 250, forwarded to bob
    "dave@example.org",   // 250, then a permanent delivery failure: bounced
    "nobody@example.org", // 550 no such user
    "ok@remote.test",     // 250, relayed
    "reject@remote.test", // 250, the remote MX refuses it for good: bounced
    "defer@remote.test",  // 250, the remote MX defers it until it expires: bounced
    "BOB@example.org",    // 250, the same mailbox as bob
    "x@elsewhere.test",   // 550 relaying denied
];

/// Senders: a remote one (bounces are relayed), a local one (bounces are delivered to
/// bob), and the null sender (never bounced).
pub const SENDERS: [Option<&str>; 3] = [Some("alice@remote.test"), Some("bob@example.org"), None];

/// One mail transaction a client wants done.
#[derive(Clone, Debug)]
pub struct Transaction {
    /// Index into [`SENDERS`].
    pub sender: usize,
    /// Indexes into [`RECIPIENTS`] (may repeat).
    pub recipients: Vec<usize>,
    /// Body size.
    pub size: u64,
    /// `Received:` headers already in the body (over 100: refused as a loop).
    pub received_headers: usize,
}

/// One client connection.
#[derive(Clone, Debug)]
pub struct SessionScript {
    /// When it connects, after the start.
    pub start: Duration,
    /// What it sends, in order.
    pub transactions: Vec<Transaction>,
}

/// A whole run: the clients, and the engine's id seed.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The seed it was drawn from.
    pub seed: u64,
    /// The clients.
    pub sessions: Vec<SessionScript>,
}

fn below(rng: &mut SplitMix64, n: u64) -> u64 {
    rng.next_u64() % n.max(1)
}

fn pick(rng: &mut SplitMix64, n: usize) -> usize {
    usize::try_from(below(rng, u64::try_from(n).unwrap_or(1))).unwrap_or(0)
}

impl Scenario {
    /// The scenario of `seed`: 1 to 6 clients, each with 1 to 3 transactions of 1 to 4
    /// recipients, a mail loop now and then.
    pub fn generate(seed: u64) -> Scenario {
        let mut rng = SplitMix64::new(seed ^ 0x5ce0_a210_0000_0001);
        let sessions = (0..1 + below(&mut rng, 6))
            .map(|_| SessionScript {
                start: Duration::from_millis(below(&mut rng, 5_000)),
                transactions: (0..1 + below(&mut rng, 3))
                    .map(|_| Transaction {
                        sender: pick(&mut rng, SENDERS.len()),
                        recipients: (0..1 + below(&mut rng, 4))
                            .map(|_| pick(&mut rng, RECIPIENTS.len()))
                            .collect(),
                        size: 100 + below(&mut rng, 10_000),
                        received_headers: if below(&mut rng, 25) == 0 { 101 } else { 3 },
                    })
                    .collect(),
            })
            .collect();
        Scenario { seed, sessions }
    }

    /// The fault plan played against this scenario: a rate from 5% to 100%, every kind
    /// or a few, delays of up to 3 s.
    pub fn fault_plan(&self) -> FaultPlan {
        let mut rng = SplitMix64::new(self.seed ^ 0xfa17_0000_0000_0002);
        const RATES: [u32; 8] = [
            50_000, 100_000, 200_000, 300_000, 500_000, 500_000, 800_000, 1_000_000,
        ];
        let rate = Rate::from_ppm(RATES[pick(&mut rng, RATES.len())]);
        let mut plan = FaultPlan::new(rng.next_u64(), rate)
            .with_max_delay(Duration::from_millis(below(&mut rng, 3_000)));
        if below(&mut rng, 4) == 0 {
            let kinds = Fault::ALL
                .into_iter()
                .filter(|_| below(&mut rng, 2) == 0)
                .fold(FaultKinds::NONE, FaultKinds::with);
            plan = plan.only(kinds);
        }
        plan
    }
}
