//! An agent killed with a delivery outstanding: the delivery fails temporarily (it will
//! be retried), it does not hang, and the next delivery gets a new agent.

mod maildir_agents_support;

use maildir_agents_support::{entries, Fixture};
use runtime_std::delivery::DeliveryOutcome;
use std::sync::mpsc::channel;
use std::time::Duration;

#[test]
fn a_killed_agent_fails_what_it_owed_and_is_replaced() {
    let fixture = std::sync::Arc::new(Fixture::start("kill"));
    let maildir = fixture.maildir("Maildir");
    let job = fixture.job(&maildir);
    assert_eq!(fixture.forker.deliver(&job), DeliveryOutcome::Delivered);
    let agents = fixture.children();
    assert_eq!(agents.len(), 1, "{agents:?}");
    let agent = agents[0];
    // Stopped, the agent takes the next request (it is idle, so it gets it) but never
    // answers it.
    // SAFETY: signalling our own fork server's child.
    assert_eq!(unsafe { libc::kill(agent, libc::SIGSTOP) }, 0);
    let (tx, rx) = channel();
    let waiting = {
        let (fixture, job) = (std::sync::Arc::clone(&fixture), job.clone());
        std::thread::spawn(move || tx.send(fixture.forker.deliver(&job)))
    };
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "the stopped agent does not answer"
    );
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(agent, libc::SIGKILL) }, 0);
    let outcome = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("an answer, not a hang");
    waiting.join().expect("thread").expect("sent");
    match outcome {
        DeliveryOutcome::TempFail(text) => assert!(text.contains("died"), "{text}"),
        other => panic!("a temporary failure, not {other:?}"),
    }
    assert_eq!(fixture.forker.deliver(&job), DeliveryOutcome::Delivered);
    assert_eq!(entries(&maildir.join("new")).len(), 2);
    assert!(entries(&maildir.join("tmp")).is_empty());
    let now = fixture.children();
    assert!(!now.contains(&agent), "the killed agent is gone: {now:?}");
    assert_eq!(now.len(), 1, "a new agent: {now:?}");
}
