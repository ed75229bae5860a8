//! Properties of the router and the DNS stub, through the shared fuzzing harnesses.

use quickcheck::{QuickCheck, TestResult};

use crate::fuzzing::router::{dns_answer, mx_selection, router};

#[test]
fn mx_selection_is_a_preference_respecting_permutation_for_every_seed() {
    fn prop(seed: u64, shape: Vec<(u8, u8)>) -> TestResult {
        mx_selection(seed, &shape);
        TestResult::passed()
    }
    QuickCheck::new()
        .tests(500)
        .quickcheck(prop as fn(u64, Vec<(u8, u8)>) -> TestResult);
}

#[test]
fn equal_preference_hosts_are_shuffled_by_the_seed() {
    let shape = [(10, 4)];
    let firsts: std::collections::BTreeSet<String> = (0..64u64)
        .map(|seed| {
            let set = crate::routing::MxSet {
                levels: vec![crate::routing::MxLevel {
                    preference: 10,
                    hosts: (1..=4u8)
                        .map(|n| crate::routing::MxHost {
                            name: format!("h{n}"),
                            addrs: vec![std::net::IpAddr::from([10, 0, 0, n])],
                        })
                        .collect(),
                }],
                ttl: 0,
            };
            let order = crate::routing::connection_order(
                &set,
                25,
                &mut crate::queue::SplitMix64::new(seed),
            );
            order[0].host.clone()
        })
        .collect();
    assert_eq!(firsts.len(), 4, "every host comes first for some seed");
    mx_selection(1, &shape);
}

#[test]
fn arbitrary_event_sequences_never_break_the_router() {
    fn prop(data: Vec<u8>) -> TestResult {
        router(&data);
        TestResult::passed()
    }
    QuickCheck::new()
        .tests(300)
        .quickcheck(prop as fn(Vec<u8>) -> TestResult);
}

#[test]
fn long_scripted_runs() {
    let mut rng = crate::queue::SplitMix64::new(77);
    for _ in 0..50 {
        let data: Vec<u8> = (0..2000)
            .map(|_| u8::try_from(rng.next_u64() >> 56).unwrap())
            .collect();
        router(&data);
    }
}

#[test]
fn arbitrary_bytes_as_dns_answers() {
    fn prop(data: Vec<u8>) -> TestResult {
        dns_answer(&data);
        TestResult::passed()
    }
    QuickCheck::new()
        .tests(500)
        .quickcheck(prop as fn(Vec<u8>) -> TestResult);
    dns_answer(&[]);
    dns_answer(&[0; 12]);
}
