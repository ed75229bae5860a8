use super::*;

fn key(uid: u32) -> AgentKey {
    AgentKey {
        uid,
        gid: uid,
        home: format!("/home/u{uid}"),
    }
}

const LIMITS: AgentLimits = AgentLimits {
    per_user: 2,
    spill_at: 2,
    spill_bytes: 1000,
    total: 3,
    idle: Duration::from_secs(30),
};

#[test]
fn a_user_without_agent_gets_one_started() {
    let table: AgentTable<()> = AgentTable::new(LIMITS);
    assert_eq!(table.route(&key(1)), Route::Start);
}

#[test]
fn a_busy_agent_takes_more_until_a_batch_waits_then_another_starts() {
    let now = Instant::now();
    let mut table = AgentTable::new(LIMITS);
    let a = table.add(key(1), "a", now);
    assert_eq!(table.route(&key(1)), Route::Agent(a));
    table.sent(a, 10, 0);
    assert_eq!(
        table.route(&key(1)),
        Route::Agent(a),
        "one outstanding, below spill_at: joins its next batch"
    );
    table.sent(a, 13, 0);
    assert_eq!(
        table.route(&key(1)),
        Route::Start,
        "a whole batch waits, below the cap"
    );
    let b = table.add(key(1), "b", now);
    assert_eq!(table.route(&key(1)), Route::Agent(b));
    table.sent(b, 11, 0);
    table.sent(b, 12, 0);
    table.sent(b, 14, 0);
    assert_eq!(
        table.route(&key(1)),
        Route::Agent(a),
        "at the cap: the least loaded"
    );
    for id in [11, 12, 14] {
        assert!(table.answered(b, id, now));
    }
    assert_eq!(table.route(&key(1)), Route::Agent(b), "b is idle again");
}

#[test]
fn big_messages_spill_to_another_agent_before_a_batch_is_counted_full() {
    let now = Instant::now();
    let mut table = AgentTable::new(LIMITS);
    let a = table.add(key(1), "a", now);
    table.sent(a, 1, 999);
    assert_eq!(table.route(&key(1)), Route::Agent(a), "below spill_bytes");
    assert!(table.answered(a, 1, now));
    table.sent(a, 2, 1000);
    assert_eq!(
        table.route(&key(1)),
        Route::Start,
        "one request, but its bytes fill it"
    );
    assert!(table.answered(a, 2, now));
    assert_eq!(
        table.route(&key(1)),
        Route::Agent(a),
        "the bytes went with the reply"
    );
}

#[test]
fn agents_serve_only_their_own_key() {
    let now = Instant::now();
    let mut table = AgentTable::new(LIMITS);
    let a = table.add(key(1), (), now);
    assert_eq!(table.route(&key(2)), Route::Start);
    let other_home = AgentKey {
        home: "/elsewhere".into(),
        ..key(1)
    };
    assert_eq!(table.route(&other_home), Route::Start);
    let other_group = AgentKey { gid: 7, ..key(1) };
    assert_eq!(table.route(&other_group), Route::Start);
    assert_eq!(table.route(&key(1)), Route::Agent(a));
}

#[test]
fn past_the_total_a_new_user_gets_a_one_shot_child() {
    let now = Instant::now();
    let mut table = AgentTable::new(LIMITS);
    for uid in 1..=3 {
        let id = table.add(key(uid), (), now);
        table.sent(id, u64::from(uid), 0);
    }
    assert_eq!(table.route(&key(4)), Route::OneShot);
    assert!(matches!(table.route(&key(1)), Route::Agent(_)));
}

#[test]
fn only_outstanding_requests_are_answered() {
    let now = Instant::now();
    let mut table = AgentTable::new(LIMITS);
    let a = table.add(key(1), (), now);
    let b = table.add(key(2), (), now);
    table.sent(a, 5, 0);
    assert!(!table.answered(b, 5, now), "b never had request 5");
    assert!(table.answered(a, 5, now));
    assert!(!table.answered(a, 5, now), "answered once");
}

#[test]
fn a_dead_agent_gives_back_every_outstanding_request() {
    let now = Instant::now();
    let mut table = AgentTable::new(LIMITS);
    let a = table.add(key(1), "socket-a", now);
    for id in [3, 1, 2] {
        table.sent(a, id, 0);
    }
    assert!(table.answered(a, 2, now));
    assert_eq!(table.outstanding(a), 2);
    assert_eq!(table.remove(a), Some(("socket-a", vec![1, 3])));
    assert_eq!(table.remove(a), None);
    assert!(table.is_empty());
    assert_eq!(table.route(&key(1)), Route::Start);
}

#[test]
fn idle_agents_expire_busy_ones_do_not() {
    let start = Instant::now();
    let mut table = AgentTable::new(LIMITS);
    let a = table.add(key(1), "a", start);
    let b = table.add(key(2), "b", start);
    table.sent(b, 1, 0);
    assert_eq!(table.next_expiry(), Some(start + LIMITS.idle));
    assert!(table.expire(start + Duration::from_secs(29)).is_empty());
    let later = start + Duration::from_secs(40);
    assert_eq!(table.expire(later), vec!["a"]);
    assert_eq!(table.len(), 1);
    assert_eq!(table.next_expiry(), None, "b is busy");
    assert!(table.answered(b, 1, later));
    assert_eq!(table.next_expiry(), Some(later + LIMITS.idle));
    assert!(table.expire(later + Duration::from_secs(10)).is_empty());
    assert_eq!(table.expire(later + LIMITS.idle), vec!["b"]);
    assert_eq!(table.outstanding(a), 0);
}
