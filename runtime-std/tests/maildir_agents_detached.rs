//! Maildir deliveries sent to the fork server without a waiting thread: each completes
//! once, on the reply reader. (Its own test binary: the fork server is forked from the
//! test process, and a fork server forked while another test's socket pair is open would
//! keep that one's server alive.)

mod maildir_agents_support;

use maildir_agents_support::{entries, Fixture};
use runtime_std::delivery::DeliveryOutcome;

/// Deliveries sent without a waiting thread: every completion runs once, on the reply
/// reader, with the outcome; past the limit of outstanding ones the caller gets its
/// completion back to deliver on a thread.
#[test]
fn detached_deliveries_complete_once_each_on_the_reply_reader() {
    use runtime_std::server::fork_server::MAX_DETACHED;
    use std::sync::mpsc::channel;
    let here = std::thread::current().name().map(str::to_owned);
    let fixture = Fixture::start("detached");
    let maildir = fixture.maildir("Maildir");
    let job = fixture.job(&maildir);
    let (tx, rx) = channel();
    let mut sent = 0;
    let mut returned = 0;
    for n in 0..(MAX_DETACHED + 100) {
        let tx = tx.clone();
        let done = Box::new(move |outcome: DeliveryOutcome| {
            let reader = std::thread::current().name().map(str::to_owned);
            tx.send((n, outcome, reader)).expect("send");
        });
        match fixture.forker.try_deliver_then(&job, done) {
            Ok(()) => sent += 1,
            Err(done) => {
                returned += 1;
                done(fixture.forker.deliver(&job));
            }
        }
    }
    drop(tx);
    let mut seen = std::collections::HashSet::new();
    for (n, outcome, thread) in rx {
        assert_eq!(outcome, DeliveryOutcome::Delivered, "delivery {n}");
        assert!(seen.insert(n), "delivery {n} completed twice");
        // Sent detached: on the reply reader; given back: delivered here, on this thread.
        if thread != here {
            assert_eq!(thread.as_deref(), Some("fork-server-replies"));
        }
    }
    assert_eq!(seen.len(), MAX_DETACHED + 100);
    assert!(sent > 0, "none was sent detached");
    assert_eq!(sent + returned, MAX_DETACHED + 100);
    assert_eq!(entries(&maildir.join("new")).len(), MAX_DETACHED + 100);
}
