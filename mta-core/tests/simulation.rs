//! Layer 3 of DESIGN.md's tests: the engine, many scripted SMTP clients and a runtime
//! whose every effect is decided by monkey mode's seeded fault plan
//! ([`mta_core::faults`]), on a fake clock, for thousands of seeds.
//!
//! Each seed draws a scenario (clients, transactions, recipients) and a fault plan (rate,
//! kinds, delays). The scenario is played twice, without faults and with them, and the
//! faulty run must keep the invariants of "Faults by design":
//! - no 5xx that the run without faults does not give at the same step of the script;
//! - every message answered 250 ends delivered, bounced, or still queued (never lost);
//! - nothing delivered twice, nothing both delivered and bounced, at most one report per
//!   failed envelope, never a report to `<>`.
//!
//! A failing seed prints itself; add it to [`REPLAY`] to replay it with a trace of every
//! event.

#[path = "engine_harness.rs"]
#[allow(unused_imports)]
mod harness;

mod simulation {
    #[path = "client.rs"]
    pub mod client;
    #[path = "record.rs"]
    pub mod record;
    #[path = "scenario.rs"]
    pub mod scenario;
    #[path = "world.rs"]
    pub mod world;
}

use mta_core::faults::{FaultPlan, Rate};
use simulation::record::{Record, StepKey};
use simulation::scenario::Scenario;
use simulation::world::World;

/// Seeds that once failed, replayed with a trace on every run.
///
/// 66: a report whose sender's lookups always fail waits in the spool (not lost).
const REPLAY: &[u64] = &[66];

/// Seeds per `cargo test`: thousands in release, fewer in debug builds.
const SEEDS: u64 = if cfg!(debug_assertions) { 300 } else { 3000 };

/// The outcome of one seed: the clean record, the faulty one, and what went wrong.
struct Played {
    clean: Record,
    faulty: Record,
    plan: FaultPlan,
    problems: Vec<String>,
    trace: Vec<String>,
}

fn play_one(
    scenario: &Scenario,
    plan: FaultPlan,
    trace: bool,
) -> (Record, Vec<String>, Vec<String>) {
    let mut world = World::new(scenario, plan, trace);
    let mut problems = Vec::new();
    if let Err(e) = world.run() {
        problems.push(e);
    }
    if !world.clients_done() {
        problems.push("a client did not finish its script".into());
    }
    problems.extend(world.record.check(world.engine(), world.now()));
    let trace = world.trace.take().unwrap_or_default();
    (std::mem::take(&mut world.record), problems, trace)
}

/// Plays `seed` without and with faults and checks everything.
fn play(seed: u64, trace: bool) -> Played {
    let scenario = Scenario::generate(seed);
    let plan = scenario.fault_plan();
    let (clean, clean_problems, _) =
        play_one(&scenario, FaultPlan::new(plan.seed(), Rate::ZERO), false);
    let (faulty, faulty_problems, trace) = play_one(&scenario, plan, trace);
    let mut problems: Vec<String> = clean_problems
        .into_iter()
        .map(|p| format!("without faults: {p}"))
        .collect();
    problems.extend(faulty_problems);
    problems.extend(compare(&clean, &faulty));
    Played {
        clean,
        faulty,
        plan,
        problems,
        trace,
    }
}

/// Faults may turn answers into 4xx, never into a 5xx the clean run does not give.
fn compare(clean: &Record, faulty: &Record) -> Vec<String> {
    let mut problems = Vec::new();
    for (key, codes) in &faulty.answers {
        for code in codes.iter().filter(|c| **c >= 500) {
            let without = clean.answers.get(key).cloned().unwrap_or_default();
            if !without.contains(code) {
                problems.push(format!(
                    "client {} {:?}: {code} with faults, {without:?} without",
                    key.0, key.1
                ));
            }
        }
    }
    problems
}

fn report(seed: u64, played: &Played) -> String {
    format!(
        "simulation seed {seed} ({}) failed:\n  {}\nreplay: add {seed} to REPLAY in mta-core/tests/simulation.rs",
        played.plan,
        played.problems.join("\n  ")
    )
}

#[test]
fn thousands_of_seeded_runs_keep_the_invariants() {
    let mut stats = [0usize; 4];
    for seed in 0..SEEDS {
        let played = play(seed, false);
        assert!(played.problems.is_empty(), "{}", report(seed, &played));
        stats[0] += played.faulty.accepted.len();
        stats[1] += played
            .faulty
            .delivered
            .values()
            .map(|n| *n as usize)
            .sum::<usize>();
        stats[2] += played.faulty.bounced.len();
        stats[3] += played.clean.accepted.len();
    }
    // The runs did something: mail was accepted, delivered and bounced under faults.
    assert!(stats[0] > SEEDS as usize / 2, "{stats:?}");
    assert!(stats[1] > SEEDS as usize / 2, "{stats:?}");
    assert!(stats[2] > 0, "{stats:?}");
    assert!(stats[3] >= stats[0], "{stats:?}");
}

#[test]
fn replayed_seeds_keep_the_invariants() {
    for seed in REPLAY {
        let played = play(*seed, true);
        if !played.problems.is_empty() {
            for line in &played.trace {
                eprintln!("{line}");
            }
        }
        assert!(played.problems.is_empty(), "{}", report(*seed, &played));
    }
}

#[test]
fn a_seed_replays_exactly() {
    for seed in [1, 17, 4242] {
        let first = play(seed, true);
        let second = play(seed, true);
        assert!(!first.trace.is_empty());
        assert_eq!(first.trace, second.trace, "seed {seed}");
        assert_eq!(
            format!("{:?}", first.faulty),
            format!("{:?}", second.faulty)
        );
    }
}

#[test]
fn faults_show_up_as_temporary_answers_and_retries() {
    // Over many seeds, faults produce 4xx answers the clean runs never give, and the
    // clients' retries get most of that mail accepted anyway.
    let mut temporary = 0;
    for seed in 0..200 {
        let played = play(seed, false);
        let count = |r: &Record| -> usize {
            r.answers
                .values()
                .flatten()
                .filter(|c| (400..500).contains(*c))
                .count()
        };
        temporary += count(&played.faulty).saturating_sub(count(&played.clean));
    }
    assert!(temporary > 100, "{temporary}");
}

#[test]
fn the_checks_catch_a_lost_message() {
    // The checker itself: a run whose record claims a durable envelope that was never
    // delivered, bounced or queued is reported as a loss.
    let scenario = Scenario::generate(3);
    let mut world = World::new(&scenario, FaultPlan::new(0, Rate::ZERO), false);
    world.run().unwrap();
    let mut record = std::mem::take(&mut world.record);
    let Some((id, _)) = record.delivered.iter().next().map(|(k, v)| (*k, *v)) else {
        panic!("seed 3 delivers something");
    };
    record.delivered.remove(&id);
    let problems = record.check(world.engine(), world.now());
    assert!(problems.iter().any(|p| p.contains("lost")), "{problems:?}");
    record.delivered.insert(id, 2);
    let problems = record.check(world.engine(), world.now());
    assert!(
        problems.iter().any(|p| p.contains("delivered 2 times")),
        "{problems:?}"
    );
    // And a 5xx the clean run did not give.
    let mut faulty = Record::default();
    faulty.answer(0, StepKey::Rcpt(0, 0), 550);
    let mut clean = Record::default();
    clean.answer(0, StepKey::Rcpt(0, 0), 250);
    assert_eq!(compare(&clean, &faulty).len(), 1);
    clean.answer(0, StepKey::Rcpt(0, 0), 550);
    assert!(compare(&clean, &faulty).is_empty());
}
