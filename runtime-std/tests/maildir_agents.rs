//! Maildir deliveries through the fork server's agents: many at once into one maildir,
//! all durable in `new/`, none left in `tmp/`, by a few long-lived agents instead of a
//! process per message. (Its own test binary: the fork server is forked from the test
//! process, which should have as few threads as possible then.)

mod maildir_agents_support;

use maildir_agents_support::{entries, Fixture};
use runtime_std::delivery::DeliveryOutcome;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

#[test]
fn two_hundred_concurrent_deliveries_land_in_new_through_a_few_agents() {
    let fixture = Arc::new(Fixture::start("many"));
    let maildir = fixture.maildir("Maildir");
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (fixture, job) = (Arc::clone(&fixture), fixture.job(&maildir));
            std::thread::spawn(move || {
                (0..25)
                    .map(|_| fixture.forker.deliver(&job))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for thread in threads {
        for outcome in thread.join().expect("thread") {
            assert_eq!(outcome, DeliveryOutcome::Delivered);
        }
    }
    let delivered = entries(&maildir.join("new"));
    assert_eq!(delivered.len(), 200);
    assert!(entries(&maildir.join("tmp")).is_empty());
    for file in &delivered {
        let meta = std::fs::metadata(file).expect("metadata");
        assert_eq!(meta.uid(), fixture.user.uid, "written as the recipient");
        assert_eq!(
            std::fs::read(file).expect("read"),
            b"Subject: agents\n\nHello.\n"
        );
    }
    let agents = fixture.children();
    assert!(
        (1..=4).contains(&agents.len()),
        "a few long-lived agents, not a child per message: {agents:?}"
    );
    for pid in agents {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        let uid_line = status.lines().find(|l| l.starts_with("Uid:")).expect("Uid");
        let uids: Vec<u32> = uid_line
            .split_whitespace()
            .skip(1)
            .map(|n| n.parse().expect("uid"))
            .collect();
        assert!(
            uids.iter().all(|&uid| uid == fixture.user.uid),
            "an agent runs as its user only: {uid_line}"
        );
    }
    // A maildir the agents have not seen, created on first delivery.
    let fresh = fixture.maildir("Fresh");
    assert_eq!(
        fixture.forker.deliver(&fixture.job(&fresh.join("sub"))),
        DeliveryOutcome::Delivered
    );
    assert_eq!(entries(&fresh.join("sub/new")).len(), 1);
}
