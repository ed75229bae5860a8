//! Properties of the client session over generated servers: the harnesses of
//! [`crate::fuzzing::client`] under quickcheck, and a sweep that checks they reach the
//! paths they claim to.

use quickcheck::{QuickCheck, TestResult};

use crate::client::{Action, RecipientResult};
use crate::fuzzing::client::{client_session, raw, run, Scenario};

#[test]
fn scripted_runs_hold_their_invariants_under_any_cut() {
    fn prop(data: Vec<u8>) -> TestResult {
        let mut input = vec![0u8];
        input.extend_from_slice(&data);
        client_session(&input);
        TestResult::passed()
    }
    QuickCheck::new()
        .tests(2000)
        .quickcheck(prop as fn(Vec<u8>) -> TestResult);
}

#[test]
fn arbitrary_server_bytes_never_panic_and_stay_bounded() {
    fn prop(data: Vec<u8>) -> TestResult {
        raw(&data);
        TestResult::passed()
    }
    QuickCheck::new()
        .tests(2000)
        .quickcheck(prop as fn(Vec<u8>) -> TestResult);
}

#[test]
fn arbitrary_replies_in_smtp_shape_never_panic() {
    fn prop(lines: Vec<(u16, bool, String)>, flags: u8, cut: u8) -> TestResult {
        let mut data = vec![flags, cut];
        for (code, more, text) in lines {
            let code = 200 + code % 400;
            let sep = if more { '-' } else { ' ' };
            data.extend_from_slice(format!("{code}{sep}{text}\r\n").as_bytes());
        }
        raw(&data);
        TestResult::passed()
    }
    QuickCheck::new()
        .tests(1000)
        .quickcheck(prop as fn(Vec<(u16, bool, String)>, u8, u8) -> TestResult);
}

/// A small deterministic generator, so the sweep covers the same ground every time.
fn scenario_bytes(seed: u64) -> Vec<u8> {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) & 0xff) as u8
    };
    // Configuration, extensions, then messages: credentials and a required TLS that
    // cannot work only now and then, so that most runs get to send.
    let mut data = vec![next() & !(8 | 4 | 128), next(), next() & !4, next()];
    if seed.is_multiple_of(4) {
        data[0] |= next() & (128 | 12);
    }
    let messages = usize::from(data[3] % 4);
    data.extend((0..3 * messages).map(|_| next()));
    let cuts = next() % 16;
    data.push(cuts);
    data.extend((0..cuts).map(|_| next() % 24));
    // Mostly positive answers, so that runs get far; now and then anything.
    data.extend((0..60).map(|i| {
        if (seed + i).is_multiple_of(7) {
            next()
        } else {
            next() % 150
        }
    }));
    data
}

#[test]
fn sweep_reaches_every_outcome() {
    let (mut delivered, mut temp, mut perm, mut errors, mut bdat) = (0, 0, 0, 0, 0);
    let mut streamed = 0;
    let mut reasons = std::collections::BTreeMap::new();
    for seed in 0..3000 {
        let scenario = Scenario::parse(&scenario_bytes(seed));
        let transcript = run(&scenario, &[]);
        if !scenario.cuts.is_empty() {
            assert_eq!(transcript, run(&scenario, &scenario.cuts), "seed {seed}");
        }
        bdat += transcript.delivered.iter().filter(|d| d.2).count();
        for action in &transcript.actions {
            match action {
                Action::Outcome(outcome) => {
                    for result in &outcome.recipients {
                        match result {
                            RecipientResult::Delivered(_) => delivered += 1,
                            RecipientResult::TempFail(_) => temp += 1,
                            RecipientResult::PermFail(_) => perm += 1,
                        }
                    }
                }
                Action::BodyWanted { .. } => streamed += 1,
                Action::SessionError(e) => {
                    errors += 1;
                    let key = format!("{:?}", e.reason);
                    *reasons
                        .entry(key.chars().take(40).collect::<String>())
                        .or_insert(0) += 1;
                }
                _ => {}
            }
        }
    }
    assert!(delivered > 300, "only {delivered} delivered");
    assert!(bdat > 30, "only {bdat} delivered with BDAT");
    assert!(streamed > 100, "only {streamed} bodies streamed");
    assert!(temp > 300 && perm > 300, "temp {temp}, perm {perm}");
    assert!(errors > 300, "only {errors} session errors");
    assert!(
        reasons.len() > 12,
        "few kinds of session errors: {reasons:#?}"
    );
}
