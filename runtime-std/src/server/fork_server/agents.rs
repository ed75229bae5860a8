//! The fork server's book of maildir agents: which long-lived child delivers as which
//! user, how many requests each has outstanding, where the next request goes, and which
//! agents have been idle long enough to retire. Pure bookkeeping (no sockets, no clock:
//! the time comes in as an argument), so that the routing rules are tested on their own.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mta_core::expand::LocalUser;

/// Whom an agent delivers as. A request only ever goes to an agent of exactly its
/// recipient's key: an agent never writes as anyone else.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct AgentKey {
    /// The user id the agent runs as (never 0).
    pub uid: u32,
    /// Its group.
    pub gid: u32,
    /// Its home directory (its working directory: relative maildir paths start there).
    pub home: String,
}

impl AgentKey {
    /// The key of deliveries to `user`.
    pub fn of(user: &LocalUser) -> AgentKey {
        AgentKey {
            uid: user.uid,
            gid: user.gid,
            home: user.directory.clone(),
        }
    }

    /// Whether `user` is the user this key stands for.
    pub fn is(&self, user: &LocalUser) -> bool {
        self.uid == user.uid && self.gid == user.gid && self.home == user.directory
    }
}

/// An agent's number, unique for the life of its table.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct AgentId(u64);

/// How many agents, and for how long.
#[derive(Clone, Copy, Debug)]
pub struct AgentLimits {
    /// Agents per user: deliveries to one user still run in parallel, up to this many.
    pub per_user: usize,
    /// Requests an agent may have outstanding before another starts for its user. An
    /// agent delivers what waits for it as one batch under one flush, so one busy agent
    /// per user costs fewer cache flushes than several with small batches; a second one
    /// starts only when a whole batch is already waiting.
    pub spill_at: usize,
    /// Bytes of messages an agent may have outstanding before another starts: big
    /// messages keep one agent busy copying, and a second one then runs beside it.
    pub spill_bytes: u64,
    /// Agents in all: past it, users without an agent get one-shot children.
    pub total: usize,
    /// An agent with nothing outstanding for this long is retired.
    pub idle: Duration,
}

/// The limits of a running daemon.
pub const LIMITS: AgentLimits = AgentLimits {
    per_user: 4,
    spill_at: super::agent::MAX_BATCH,
    spill_bytes: 1024 * 1024,
    total: 64,
    idle: Duration::from_secs(30),
};

/// Where one delivery goes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Route {
    /// To this running agent.
    Agent(AgentId),
    /// To a new agent of the key, to be started and [`AgentTable::add`]ed.
    Start,
    /// To a one-shot child, as before agents: the table is full.
    OneShot,
}

struct Agent<H> {
    id: AgentId,
    key: AgentKey,
    /// The requests it owes, with the size of each one's message.
    outstanding: BTreeMap<u64, u64>,
    /// When the last outstanding request was answered (or the agent started).
    idle_since: Instant,
    handle: H,
}

impl<H> Agent<H> {
    /// Whether it owes less than a whole batch, in requests and in bytes.
    fn takes_more(&self, limits: &AgentLimits) -> bool {
        let bytes = self
            .outstanding
            .values()
            .fold(0u64, |sum, bytes| sum.saturating_add(*bytes));
        self.outstanding.len() < limits.spill_at && bytes < limits.spill_bytes
    }
}

/// The agents of a fork server, each with the caller's handle `H` on it (its socket and
/// process id).
pub struct AgentTable<H> {
    agents: Vec<Agent<H>>,
    limits: AgentLimits,
    next: u64,
}

impl<H> AgentTable<H> {
    /// No agent yet.
    pub fn new(limits: AgentLimits) -> AgentTable<H> {
        AgentTable {
            agents: Vec::new(),
            limits,
            next: 0,
        }
    }

    /// Where a delivery for `key` goes: the key's agent with the fewest requests
    /// outstanding while it owes fewer than [`AgentLimits::spill_at`] requests and
    /// [`AgentLimits::spill_bytes`] bytes, or no more may start; a new agent when all
    /// owe that much and the limits allow it; a one-shot child when the key has no agent
    /// and none may start.
    pub fn route(&self, key: &AgentKey) -> Route {
        let mine = self.agents.iter().filter(|a| &a.key == key);
        let count = mine.clone().count();
        let least = mine.min_by_key(|a| (a.outstanding.len(), a.id));
        let may_start = count < self.limits.per_user && self.agents.len() < self.limits.total;
        match least {
            Some(agent) if agent.takes_more(&self.limits) || !may_start => Route::Agent(agent.id),
            _ if may_start => Route::Start,
            _ => Route::OneShot,
        }
    }

    /// Enter a newly started agent of `key`.
    pub fn add(&mut self, key: AgentKey, handle: H, now: Instant) -> AgentId {
        let id = AgentId(self.next);
        self.next = self.next.wrapping_add(1);
        self.agents.push(Agent {
            id,
            key,
            outstanding: BTreeMap::new(),
            idle_since: now,
            handle,
        });
        id
    }

    /// Request `request`, for a message of `bytes`, was sent to `agent`: it owes a
    /// reply.
    pub fn sent(&mut self, agent: AgentId, request: u64, bytes: u64) {
        if let Some(a) = self.agents.iter_mut().find(|a| a.id == agent) {
            a.outstanding.insert(request, bytes);
        }
    }

    /// `agent` answered `request`: true when that request was outstanding at that agent
    /// (only such a reply may be passed on: an agent cannot answer for another's).
    pub fn answered(&mut self, agent: AgentId, request: u64, now: Instant) -> bool {
        let Some(a) = self.agents.iter_mut().find(|a| a.id == agent) else {
            return false;
        };
        let owed = a.outstanding.remove(&request).is_some();
        if owed && a.outstanding.is_empty() {
            a.idle_since = now;
        }
        owed
    }

    /// Forget `agent` (its process ended or its socket failed): its handle and the
    /// requests it still owed, each of which needs a failure reply.
    pub fn remove(&mut self, agent: AgentId) -> Option<(H, Vec<u64>)> {
        let at = self.agents.iter().position(|a| a.id == agent)?;
        let gone = self.agents.swap_remove(at);
        Some((gone.handle, gone.outstanding.into_keys().collect()))
    }

    /// Retire the agents idle (nothing outstanding) since `limits.idle` before `now`:
    /// their handles, for the caller to close (an agent exits when its socket closes).
    pub fn expire(&mut self, now: Instant) -> Vec<H> {
        let idle = self.limits.idle;
        let mut retired = Vec::new();
        let mut at = 0;
        while let Some(agent) = self.agents.get(at) {
            let expired = agent.outstanding.is_empty()
                && now.saturating_duration_since(agent.idle_since) >= idle;
            if expired {
                retired.push(self.agents.swap_remove(at).handle);
            } else {
                at += 1;
            }
        }
        retired
    }

    /// When [`AgentTable::expire`] next has something to do.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.agents
            .iter()
            .filter(|a| a.outstanding.is_empty())
            .map(|a| a.idle_since + self.limits.idle)
            .min()
    }

    /// Every agent with its handle.
    pub fn handles(&self) -> impl Iterator<Item = (AgentId, &H)> {
        self.agents.iter().map(|a| (a.id, &a.handle))
    }

    /// How many requests `agent` owes.
    pub fn outstanding(&self, agent: AgentId) -> usize {
        self.agents
            .iter()
            .find(|a| a.id == agent)
            .map_or(0, |a| a.outstanding.len())
    }

    /// How many agents there are.
    pub fn len(&self) -> usize {
        self.agents.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }
}

#[cfg(test)]
mod tests;
