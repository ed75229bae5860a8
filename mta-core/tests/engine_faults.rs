//! Monkey mode's invariant, on the engine alone (DESIGN.md "Faults by design"): runtime
//! effects that fail temporarily (user lookups, commits) never turn into a 5xx that the
//! same session would not get without them, and never lose a message answered 250.

#[path = "engine_harness.rs"]
mod harness;

use std::collections::{BTreeMap, BTreeSet};

use harness::{lookup_answer, Harness, CONF};
use mta_core::engine::Input;
use mta_core::expand::{Answer, FileLookup, Question as Lookup, UserLookup};
use mta_core::queue::MessageId;
use quickcheck::QuickCheck;
use smtp_proto::server::ReqId;

const RECIPIENTS: [&str; 4] = [
    "bob@example.org",
    "nobody@example.org",
    "x@elsewhere.test",
    "carol@example.org",
];
const KNOWN: [&str; 2] = ["bob", "carol"];

/// What one scripted run answered: per question kind and position, the reply code.
#[derive(Default)]
struct Outcome {
    /// (session number, question number) → code, for RCPT and end of data.
    codes: BTreeMap<(usize, usize), u16>,
    /// Messages answered 250 that were never handed to delivery.
    lost: Vec<MessageId>,
}

/// Plays `script` (per session, the recipients' indexes); `faults` says, in turn, whether
/// each lookup or commit fails temporarily (an empty list means no fault).
fn play(script: &[Vec<u8>], faults: &[bool]) -> Outcome {
    let mut h = Harness::new(CONF);
    let mut faults = faults.iter().copied().cycle();
    let mut fault = |enabled: bool| enabled && faults.next().unwrap_or(false);
    let enabled = !script.is_empty();
    let mut asked: Vec<(usize, usize, _, ReqId)> = Vec::new();
    let mut durable = BTreeSet::new();
    for (n, rcpts) in script.iter().enumerate() {
        let s = h.open();
        h.helo(s);
        h.mail(s, "alice@remote.test");
        for (k, r) in rcpts.iter().enumerate() {
            let req = h.rcpt(s, RECIPIENTS[usize::from(*r) % RECIPIENTS.len()]);
            asked.push((n, k, s, req));
        }
        while let Some((id, _, question)) = h.lookups.pop_front() {
            let answer = if fault(enabled) {
                match question {
                    Lookup::User { .. } => Answer::User(UserLookup::TempFail),
                    _ => Answer::File(FileLookup::TempFail),
                }
            } else {
                lookup_answer(&question, &KNOWN)
            };
            h.input(Input::LookupAnswer { id, answer });
        }
        h.data(s);
        let end = h.end(s, 10, 0);
        asked.push((n, usize::MAX, s, end));
        while let Some((msgid, _)) = h.commits.pop_front() {
            let ok = !fault(enabled);
            if ok {
                durable.insert(msgid);
            }
            let result = if ok { Ok(()) } else { Err("injected".into()) };
            h.input(Input::Committed { msgid, result });
        }
    }
    let mut out = Outcome::default();
    for (n, k, s, req) in asked {
        if let Some(reply) = h.answers_to(s, req).first() {
            out.codes.insert((n, k), reply.code);
        }
    }
    let delivered: BTreeSet<MessageId> = h.delivered_log.iter().map(|id| id.message_id()).collect();
    out.lost = durable.difference(&delivered).copied().collect();
    out
}

fn faults_never_add_a_permanent_refusal(script: Vec<Vec<u8>>, faults: Vec<bool>) -> bool {
    let script: Vec<Vec<u8>> = script
        .into_iter()
        .take(6)
        .map(|r| r.into_iter().take(5).collect())
        .collect();
    let clean = play(&script, &[]);
    let faulty = play(&script, &faults);
    assert!(faulty.lost.is_empty(), "lost {:?}", faulty.lost);
    for (key, code) in &faulty.codes {
        if (500..600).contains(code) {
            let without = clean.codes.get(key).copied();
            // Refused for good without faults too; or the end of a body the session
            // would never have sent, since every recipient was refused (for now) and
            // DATA with it.
            let no_recipient = !faulty
                .codes
                .iter()
                .any(|((n, k), c)| *n == key.0 && *k != usize::MAX && *c == 250);
            assert!(
                without.is_some_and(|c| c >= 500) || (key.1 == usize::MAX && no_recipient),
                "{key:?}: {code} with faults, {without:?} without"
            );
        }
    }
    true
}

#[test]
fn temporary_faults_give_temporary_answers() {
    QuickCheck::new()
        .tests(300)
        .quickcheck(faults_never_add_a_permanent_refusal as fn(Vec<Vec<u8>>, Vec<bool>) -> bool);
}
