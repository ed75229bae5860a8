use std::time::Duration;

use quickcheck::QuickCheck;

use super::*;

fn kind(k: u8) -> Fault {
    Fault::ALL[usize::from(k) % Fault::ALL.len()]
}

fn verdicts(plan: &FaultPlan, kind: Fault, n: u64) -> Vec<Verdict> {
    (0..n).map(|i| plan.decide(kind, i)).collect()
}

#[test]
fn same_seed_same_decisions() {
    fn prop(seed: u64, ppm: u32, k: u8, start: u64) -> bool {
        let plan = FaultPlan::new(seed, Rate::from_ppm(ppm % 1_000_001));
        let kind = kind(k);
        let mut counter = FaultCounter::new(plan);
        let replayed: Vec<Verdict> = (0..50).map(|_| counter.next(kind)).collect();
        let direct = verdicts(&plan, kind, 50);
        let n = start % 1_000_000;
        replayed == direct && plan.decide(kind, n) == plan.clone().decide(kind, n)
    }
    QuickCheck::new()
        .tests(500)
        .quickcheck(prop as fn(u64, u32, u8, u64) -> bool);
}

#[test]
fn rate_zero_never_disturbs() {
    fn prop(seed: u64, k: u8, n: u64) -> bool {
        let plan = FaultPlan::new(seed, Rate::ZERO);
        (0..20).all(|i| plan.decide(kind(k), n.wrapping_add(i)) == Verdict::Proceed)
    }
    QuickCheck::new()
        .tests(500)
        .quickcheck(prop as fn(u64, u8, u64) -> bool);
}

#[test]
fn rate_one_always_fails() {
    fn prop(seed: u64, k: u8, n: u64) -> bool {
        let plan = FaultPlan::new(seed, Rate::ONE);
        (0..20).all(|i| plan.decide(kind(k), n.wrapping_add(i)) == Verdict::Fail)
    }
    QuickCheck::new()
        .tests(500)
        .quickcheck(prop as fn(u64, u8, u64) -> bool);
}

#[test]
fn rate_p_fails_about_p_of_the_time() {
    fn prop(seed: u64, ppm: u32, k: u8) -> bool {
        let rate = Rate::from_ppm(ppm % 1_000_001);
        let plan = FaultPlan::new(seed, rate);
        let n = 4000u32;
        let v = verdicts(&plan, kind(k), u64::from(n));
        let fails = v.iter().filter(|v| **v == Verdict::Fail).count();
        let delays = v.iter().filter(|v| matches!(v, Verdict::Delay(_))).count();
        let p = f64::from(rate.ppm()) / 1e6;
        let expected_fails = p * f64::from(n);
        let expected_delays = (1.0 - p) * p * f64::from(n);
        // Six standard deviations (and a floor of 40 for tiny rates).
        let close = |seen: usize, expected: f64, q: f64| {
            let sd = (f64::from(n) * q * (1.0 - q)).sqrt();
            (seen as f64 - expected).abs() <= (6.0 * sd).max(40.0)
        };
        close(fails, expected_fails, p) && close(delays, expected_delays, (1.0 - p) * p)
    }
    QuickCheck::new()
        .tests(100)
        .quickcheck(prop as fn(u64, u32, u8) -> bool);
}

#[test]
fn kinds_draw_independent_sequences() {
    let plan = FaultPlan::new(7, Rate::parse("0.5").unwrap());
    let user = verdicts(&plan, Fault::UserLookup, 64);
    let spool = verdicts(&plan, Fault::SpoolWrite, 64);
    assert_ne!(user, spool);
    let other_seed = FaultPlan::new(8, plan.rate());
    assert_ne!(verdicts(&other_seed, Fault::UserLookup, 64), user);
}

#[test]
fn only_the_chosen_kinds_are_disturbed() {
    let plan = FaultPlan::new(1, Rate::ONE).only(FaultKinds::of(&[Fault::Delivery]));
    assert_eq!(plan.decide(Fault::Delivery, 3), Verdict::Fail);
    for kind in Fault::ALL.into_iter().filter(|k| *k != Fault::Delivery) {
        assert_eq!(plan.decide(kind, 3), Verdict::Proceed, "{kind}");
    }
}

#[test]
fn delays_stay_within_the_maximum() {
    let plan =
        FaultPlan::new(3, Rate::parse("0.5").unwrap()).with_max_delay(Duration::from_millis(30));
    let delays: Vec<Duration> = verdicts(&plan, Fault::Connect, 2000)
        .into_iter()
        .filter_map(|v| match v {
            Verdict::Delay(d) => Some(d),
            _ => None,
        })
        .collect();
    assert!(delays.len() > 300, "{}", delays.len());
    assert!(delays
        .iter()
        .all(|d| *d >= Duration::from_millis(1) && *d <= Duration::from_millis(30)));
    let none = plan.with_max_delay(Duration::ZERO);
    assert!(verdicts(&none, Fault::Connect, 2000)
        .iter()
        .all(|v| !matches!(v, Verdict::Delay(_))));
}

#[test]
fn counter_counts_per_kind() {
    let mut counter = FaultCounter::new(FaultPlan::new(5, Rate::parse("0.3").unwrap()));
    let first_user = counter.next(Fault::UserLookup);
    counter.next(Fault::SpoolWrite);
    counter.next(Fault::SpoolWrite);
    assert_eq!(counter.count(Fault::SpoolWrite), 2);
    assert_eq!(counter.count(Fault::UserLookup), 1);
    assert_eq!(counter.count(Fault::Connect), 0);
    assert_eq!(first_user, counter.plan().decide(Fault::UserLookup, 0));
}

#[test]
fn rates_parse_and_print() {
    for (text, ppm, shown) in [
        ("0.2", 200_000, "0.2"),
        (".05", 50_000, "0.05"),
        ("1", 1_000_000, "1"),
        ("1.0", 1_000_000, "1"),
        ("0", 0, "0"),
        ("20%", 200_000, "0.2"),
        ("0.000001", 1, "0.000001"),
        ("100%", 1_000_000, "1"),
    ] {
        let rate = Rate::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(rate.ppm(), ppm, "{text}");
        assert_eq!(rate.to_string(), shown, "{text}");
        assert_eq!(Rate::parse(&rate.to_string()), Ok(rate));
    }
    for bad in [
        "",
        ".",
        "1.5",
        "2",
        "-0.1",
        "0.2.1",
        "abc",
        "0.0000001",
        "101%",
        "1e-3",
    ] {
        assert!(Rate::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn rate_display_round_trips() {
    fn prop(ppm: u32) -> bool {
        let rate = Rate::from_ppm(ppm % 1_000_001);
        Rate::parse(&rate.to_string()) == Ok(rate)
    }
    QuickCheck::new().quickcheck(prop as fn(u32) -> bool);
}

#[test]
fn plans_parse_from_the_command_line_form() {
    let plan = FaultPlan::parse("42:0.2").unwrap();
    assert_eq!((plan.seed(), plan.rate().ppm()), (42, 200_000));
    assert_eq!(plan.kinds(), FaultKinds::ALL);
    assert_eq!(plan.spec(), "42:0.2");
    let plan = FaultPlan::parse("0x2a:5%:spool,Delivery").unwrap();
    assert_eq!(plan.seed(), 42);
    assert_eq!(
        plan.kinds(),
        FaultKinds::of(&[Fault::SpoolWrite, Fault::Delivery])
    );
    assert_eq!(plan.spec(), "42:0.05:spool,delivery");
    assert_eq!(FaultPlan::parse(&plan.spec()), Ok(plan));
    assert_eq!(plan.to_string(), "seed 42 rate 0.05 kinds spool,delivery");
    assert!(matches!(FaultPlan::parse("42"), Err(SpecError::Shape(_))));
    assert!(matches!(
        FaultPlan::parse("1:2:spool:x"),
        Err(SpecError::Shape(_))
    ));
    assert!(matches!(FaultPlan::parse("x:0.1"), Err(SpecError::Seed(_))));
    assert!(matches!(FaultPlan::parse("1:1.1"), Err(SpecError::Rate(_))));
    assert!(matches!(
        FaultPlan::parse("1:0.1:disk"),
        Err(SpecError::Kind(_))
    ));
}

#[test]
fn reasons_name_the_kind_and_the_plan() {
    let plan = FaultPlan::new(9, Rate::parse("0.25").unwrap());
    let reason = plan.reason(Fault::UserLookup, 4);
    assert!(reason.starts_with("monkey: "), "{reason}");
    assert!(reason.contains("user") && reason.contains("#4"), "{reason}");
    assert!(
        reason.contains("seed 9") && reason.contains("rate 0.25"),
        "{reason}"
    );
}

#[test]
fn names_round_trip() {
    for kind in Fault::ALL {
        assert_eq!(Fault::from_name(kind.name()), Some(kind));
        assert_eq!(Fault::ALL[kind.index()], kind);
    }
    assert_eq!(Fault::from_name("DNS"), Some(Fault::DnsQuery));
    assert_eq!(Fault::from_name("nope"), None);
}
