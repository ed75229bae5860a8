//! Timers of the session machines, a table indexed by an enum (RFC 5321 §4.5.3.2).
//!
//! A machine keeps one deadline per timer kind; `poll_timeout` is the earliest of them.
//! Durations come from [`Timeouts`], whose defaults are the minimums of RFC 5321
//! §4.5.3.2.

use std::time::{Duration, Instant};

/// The timeouts of RFC 5321 §4.5.3.2, all configurable.
///
/// The client values are how long a client waits for each reply; the server uses them
/// as the deadline for the engine's answer to the matching question (a reply later than
/// the client's patience is useless), and `server_idle`/`data_block` for the client's
/// own silence.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Timeouts {
    /// Initial 220 greeting (§4.5.3.2.1: 5 minutes); the server waits this long for the
    /// first command, and for a TLS handshake.
    pub initial: Duration,
    /// Reply to MAIL (§4.5.3.2.2: 5 minutes).
    pub mail: Duration,
    /// Reply to RCPT (§4.5.3.2.3: 5 minutes).
    pub rcpt: Duration,
    /// 354 reply to DATA (§4.5.3.2.4: 2 minutes).
    pub data_init: Duration,
    /// Each block of DATA (§4.5.3.2.5: 3 minutes): the longest silence inside a body.
    pub data_block: Duration,
    /// Reply to the final dot (§4.5.3.2.6: 10 minutes).
    pub data_end: Duration,
    /// Server waiting for the next command (§4.5.3.2.7: 5 minutes).
    pub server_idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        Timeouts {
            initial: minutes(5),
            mail: minutes(5),
            rcpt: minutes(5),
            data_init: minutes(2),
            data_block: minutes(3),
            data_end: minutes(10),
            server_idle: minutes(5),
        }
    }
}

/// `now + timeout`, saturating: an absurdly long configured timeout means "far away",
/// never a panic.
pub fn after(now: Instant, timeout: Duration) -> Instant {
    let mut timeout = timeout;
    loop {
        if let Some(at) = now.checked_add(timeout) {
            return at;
        }
        timeout /= 2;
    }
}

/// The server session's timers.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ServerTimer {
    /// Waiting for the client's next command (or the TLS handshake).
    Idle,
    /// Waiting for more bytes inside a DATA body or a BDAT chunk.
    DataBlock,
    /// Waiting for the engine's answer to a question.
    Answer,
}

impl ServerTimer {
    /// Every server timer, in table order.
    pub const ALL: [ServerTimer; 3] = [
        ServerTimer::Idle,
        ServerTimer::DataBlock,
        ServerTimer::Answer,
    ];

    fn index(self) -> usize {
        match self {
            ServerTimer::Idle => 0,
            ServerTimer::DataBlock => 1,
            ServerTimer::Answer => 2,
        }
    }
}

/// A deadline per [`ServerTimer`]; the earliest one is the machine's next timeout.
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct ServerTimers {
    deadlines: [Option<Instant>; 3],
}

impl ServerTimers {
    /// Arms `timer` to fire at `at`, replacing any earlier deadline.
    pub fn set(&mut self, timer: ServerTimer, at: Instant) {
        if let Some(slot) = self.deadlines.get_mut(timer.index()) {
            *slot = Some(at);
        }
    }

    /// Disarms `timer`.
    pub fn stop(&mut self, timer: ServerTimer) {
        if let Some(slot) = self.deadlines.get_mut(timer.index()) {
            *slot = None;
        }
    }

    /// The deadline of `timer`, if armed.
    pub fn get(&self, timer: ServerTimer) -> Option<Instant> {
        self.deadlines.get(timer.index()).copied().flatten()
    }

    /// Disarms every timer.
    pub fn stop_all(&mut self) {
        self.deadlines = [None; 3];
    }

    /// The earliest armed deadline.
    pub fn next(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// The first timer (in table order) whose deadline is at or before `now`.
    pub fn expired(&self, now: Instant) -> Option<ServerTimer> {
        ServerTimer::ALL
            .into_iter()
            .find(|t| self.get(*t).is_some_and(|at| at <= now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_saturates() {
        let t0 = crate::fuzzing::session::epoch();
        assert_eq!(
            after(t0, Duration::from_secs(5)),
            t0 + Duration::from_secs(5)
        );
        assert!(after(t0, Duration::MAX) > t0 + Duration::from_secs(1 << 40));
    }

    #[test]
    fn earliest_deadline_wins_and_stop_disarms() {
        let t0 = crate::fuzzing::session::epoch();
        let mut timers = ServerTimers::default();
        assert_eq!(timers.next(), None);
        timers.set(ServerTimer::Idle, t0 + Duration::from_secs(300));
        timers.set(ServerTimer::Answer, t0 + Duration::from_secs(10));
        assert_eq!(timers.next(), Some(t0 + Duration::from_secs(10)));
        assert_eq!(timers.expired(t0 + Duration::from_secs(9)), None);
        assert_eq!(
            timers.expired(t0 + Duration::from_secs(10)),
            Some(ServerTimer::Answer)
        );
        timers.stop(ServerTimer::Answer);
        assert_eq!(timers.next(), Some(t0 + Duration::from_secs(300)));
        timers.stop_all();
        assert_eq!(timers.next(), None);
    }
}
