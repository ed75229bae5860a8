//! The router machine (see the module documentation of [`crate::routing`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr; // allow-impure: address values, no socket
use std::time::Duration;

use smtp_proto::reply::EnhancedStatus;

use super::hosts::HostState;
use super::mx::{MxQuery, MxSet};
use super::select::{connection_order, preferred_over, Candidate};
use super::{Action, ConnId, Destination, Input, RouteKey, RouterConfig};
use crate::queue::{EnvelopeId, Failure, SplitMix64};
use crate::scheduler::Outcome;
use crate::time::UnixTime;

/// Resolutions kept at most (pending ones and unexpired sets).
const MAX_RESOLUTIONS: usize = 4096;

/// MX addresses remembered at most beyond those with sessions or failures.
const MAX_HOSTS: usize = 4096;

/// Routes remembered at most beyond those with envelopes or sessions.
const MAX_ROUTES: usize = 4096;

/// How long a route with nothing to do stays known (for `show routes` and its penalty).
const ROUTE_KEEP: Duration = Duration::from_secs(300);

/// Where a destination's resolution stands.
#[derive(Clone, Debug)]
pub(super) enum Resolution {
    /// Asked; every route of this destination waits for the one answer.
    Pending,
    /// Known until `expires`.
    Ready { set: MxSet, expires: UnixTime },
}

/// A route: its waiting envelopes, its sessions, and the order it tries addresses in.
#[derive(Clone, Debug)]
pub(super) struct Route {
    /// Its number in `show routes`, in order of creation.
    pub(super) id: u64,
    pub(super) queue: VecDeque<EnvelopeId>,
    pub(super) conns: BTreeSet<ConnId>,
    pub(super) candidates: Option<(Vec<Candidate>, UnixTime)>,
    /// Whether a session of it ever got through (OpenSMTPD's "new" flag when not).
    pub(super) established: bool,
    /// Times in a row it found no MX reachable; reset by a delivered message.
    pub(super) penalty: u32,
    /// Until when it was found with every MX broken (the end of the first cool-down).
    pub(super) disabled_until: Option<UnixTime>,
    /// The last time it had envelopes or sessions.
    pub(super) last_active: UnixTime,
}

impl Route {
    fn new(id: u64, now: UnixTime) -> Self {
        Route {
            id,
            queue: VecDeque::new(),
            conns: BTreeSet::new(),
            candidates: None,
            established: false,
            penalty: 0,
            disabled_until: None,
            last_active: now,
        }
    }
}

/// What a session is doing.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(super) enum ConnState {
    Connecting,
    Idle { since: UnixTime },
    Busy(Vec<EnvelopeId>),
    Closing,
}

/// A session of a route.
#[derive(Clone, Debug)]
pub(super) struct Conn {
    pub(super) route: RouteKey,
    pub(super) addr: SocketAddr,
    pub(super) host: String,
    pub(super) state: ConnState,
    pub(super) messages: usize,
}

/// What the next session of a route should be.
enum Choice {
    Connect(Candidate),
    Wait,
    AllBroken,
}

/// The router machine.
#[derive(Clone, Debug)]
pub struct Router {
    pub(super) config: RouterConfig,
    rng: SplitMix64,
    pub(super) routes: BTreeMap<RouteKey, Route>,
    pub(super) resolutions: BTreeMap<MxQuery, Resolution>,
    pub(super) hosts: BTreeMap<SocketAddr, HostState>,
    pub(super) conns: BTreeMap<ConnId, Conn>,
    actions: VecDeque<Action>,
    queued: usize,
    next_route: u64,
}

pub(super) fn query_of(route: &RouteKey) -> MxQuery {
    match &route.destination {
        Destination::Domain(domain) => MxQuery::domain(domain),
        Destination::Relay { host, .. } => MxQuery::host(host),
    }
}

fn temp_failure(text: String) -> Failure {
    Failure {
        status: EnhancedStatus::new(4, 4, 1),
        text,
        remote_mta: None,
    }
}

impl Router {
    /// A router with `config`; `seed` drives the shuffles and session ids.
    pub fn new(config: RouterConfig, seed: u64) -> Self {
        Router {
            config,
            rng: SplitMix64::new(seed),
            routes: BTreeMap::new(),
            resolutions: BTreeMap::new(),
            hosts: BTreeMap::new(),
            conns: BTreeMap::new(),
            actions: VecDeque::new(),
            queued: 0,
            next_route: 0,
        }
    }

    /// Feeds one input.
    pub fn handle(&mut self, input: Input, now: UnixTime) {
        match input {
            Input::Envelope { route, id } => self.envelope(route, id, now),
            Input::Resolved { query, result } => self.resolved(query, result, now),
            Input::ConnectResult { conn, result } => self.connect_result(conn, result, now),
            Input::SessionOutcome { conn, results } => self.session_outcome(conn, results, now),
            Input::ConnectionClosed { conn, error } => self.closed(conn, error, now),
            Input::Tick => self.tick(now),
            Input::RetryNow => self.retry_now(),
        }
        self.pump(now);
    }

    /// Moves time on: cool-downs end, idle sessions past their time are closed.
    pub fn handle_timeout(&mut self, now: UnixTime) {
        self.handle(Input::Tick, now);
    }

    /// Next action; call until `None` after every [`Router::handle`].
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When the router next needs an [`Input::Tick`]: the end of a cool-down or of an
    /// idle session's grace time.
    pub fn poll_timeout(&self) -> Option<UnixTime> {
        let cooldowns = self.hosts.values().filter_map(|h| h.broken_until);
        let idle = self.conns.values().filter_map(|c| match c.state {
            ConnState::Idle { since } => Some(since.saturating_add(self.config.idle_timeout)),
            _ => None,
        });
        cooldowns.chain(idle).min()
    }

    /// Envelopes waiting in the router (not yet handed to a session).
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Sessions open or opening.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    fn log(&mut self, line: String) {
        self.actions.push_back(Action::Log(line));
    }

    /// The route of `key`, created (numbered) when new.
    fn route_mut(&mut self, key: &RouteKey, now: UnixTime) -> &mut Route {
        let next = &mut self.next_route;
        let route = self.routes.entry(key.clone()).or_insert_with(|| {
            *next = next.saturating_add(1);
            Route::new(*next, now)
        });
        route.last_active = now;
        route
    }

    fn envelope(&mut self, route: RouteKey, id: EnvelopeId, now: UnixTime) {
        if self.queued >= self.config.max_queued {
            let failure = temp_failure("router queue full".into());
            self.actions.push_back(Action::EnvelopeTempFail {
                ids: vec![id],
                failure,
            });
            return;
        }
        self.queued = self.queued.saturating_add(1);
        self.route_mut(&route, now).queue.push_back(id);
    }

    fn resolved(&mut self, query: MxQuery, result: Result<MxSet, super::MxError>, now: UnixTime) {
        if !matches!(self.resolutions.get(&query), Some(Resolution::Pending)) {
            return;
        }
        let keys: Vec<RouteKey> = self
            .routes
            .keys()
            .filter(|k| query_of(k) == query)
            .cloned()
            .collect();
        match result {
            Ok(set) => {
                // At least a second, so that a zero TTL cannot make every pump ask again.
                let ttl =
                    Duration::from_secs(u64::from(set.ttl).max(1)).min(self.config.max_mx_ttl);
                let expires = now.saturating_add(ttl);
                for key in keys {
                    self.build_candidates(&key, &set, expires);
                }
                self.resolutions
                    .insert(query, Resolution::Ready { set, expires });
            }
            Err(error) => {
                self.resolutions.remove(&query);
                let failure = error.failure();
                self.log(format!(
                    "smtp-out: Failed to resolve {}: {error}",
                    query.name
                ));
                for key in keys {
                    let ids = self.take_queue(&key);
                    if ids.is_empty() {
                        continue;
                    }
                    let failure = failure.clone();
                    if error.is_permanent() {
                        self.actions
                            .push_back(Action::EnvelopePermFail { ids, failure });
                    } else {
                        self.actions
                            .push_back(Action::EnvelopeTempFail { ids, failure });
                    }
                }
            }
        }
    }

    /// Gives the route its own shuffled order of the set (the backup filter applied).
    fn build_candidates(&mut self, key: &RouteKey, set: &MxSet, expires: UnixTime) {
        let port = match &key.destination {
            Destination::Domain(_) => self.config.mx_port,
            Destination::Relay { port, .. } => *port,
        };
        let filtered = match &key.backup_mx {
            Some(own) => preferred_over(set, own),
            None => Some(set.clone()),
        };
        let candidates = filtered
            .map(|set| connection_order(&set, port, &mut self.rng))
            .unwrap_or_default();
        if let Some(route) = self.routes.get_mut(key) {
            route.candidates = Some((candidates, expires));
        }
    }

    fn take_queue(&mut self, key: &RouteKey) -> Vec<EnvelopeId> {
        let Some(route) = self.routes.get_mut(key) else {
            return Vec::new();
        };
        let ids: Vec<EnvelopeId> = route.queue.drain(..).collect();
        self.queued = self.queued.saturating_sub(ids.len());
        ids
    }

    fn requeue(&mut self, key: &RouteKey, ids: Vec<EnvelopeId>, now: UnixTime) {
        let count = ids.len();
        let route = self.route_mut(key, now);
        for id in ids.into_iter().rev() {
            route.queue.push_front(id);
        }
        self.queued = self.queued.saturating_add(count);
    }

    fn connect_result(&mut self, conn: ConnId, result: Result<(), String>, now: UnixTime) {
        let Some(entry) = self.conns.get_mut(&conn) else {
            return;
        };
        if entry.state != ConnState::Connecting {
            return;
        }
        match result {
            Ok(()) => {
                entry.state = ConnState::Idle { since: now };
                let key = entry.route.clone();
                if let Some(route) = self.routes.get_mut(&key) {
                    route.established = true;
                }
            }
            Err(error) => self.drop_conn(conn, Some(error), now),
        }
    }

    fn session_outcome(
        &mut self,
        conn: ConnId,
        results: Vec<(EnvelopeId, Outcome)>,
        now: UnixTime,
    ) {
        let Some(entry) = self.conns.get_mut(&conn) else {
            return;
        };
        let ConnState::Busy(batch) =
            std::mem::replace(&mut entry.state, ConnState::Idle { since: now })
        else {
            return;
        };
        let route = entry.route.clone();
        let addr = entry.addr;
        let host_name = entry.host.clone();
        let mut delivered = Vec::new();
        let mut missing = batch;
        for (id, outcome) in results {
            let Some(position) = missing.iter().position(|m| *m == id) else {
                continue;
            };
            missing.swap_remove(position);
            match outcome {
                Outcome::Delivered => delivered.push(id),
                Outcome::TempFail(mut failure) => {
                    failure.remote_mta.get_or_insert_with(|| host_name.clone());
                    self.actions.push_back(Action::EnvelopeTempFail {
                        ids: vec![id],
                        failure,
                    });
                }
                Outcome::PermFail(mut failure) => {
                    failure.remote_mta.get_or_insert_with(|| host_name.clone());
                    self.actions.push_back(Action::EnvelopePermFail {
                        ids: vec![id],
                        failure,
                    });
                }
            }
        }
        if !delivered.is_empty() {
            self.actions
                .push_back(Action::EnvelopeDelivered { ids: delivered });
            if let Some(route) = self.routes.get_mut(&route) {
                route.penalty = 0;
                route.disabled_until = None;
                route.last_active = now;
            }
        }
        if !missing.is_empty() {
            self.requeue(&route, missing, now);
        }
        if let Some(host) = self.hosts.get_mut(&addr) {
            host.succeeded();
        }
    }

    fn closed(&mut self, conn: ConnId, error: Option<String>, now: UnixTime) {
        let busy = matches!(
            self.conns.get(&conn).map(|c| &c.state),
            Some(ConnState::Busy(_))
        );
        let error =
            error.or_else(|| busy.then(|| "connection closed during a transaction".to_owned()));
        self.drop_conn(conn, error, now);
    }

    /// Forgets a session; an error counts against its MX and may mark it broken.
    fn drop_conn(&mut self, conn: ConnId, error: Option<String>, now: UnixTime) {
        let Some(entry) = self.conns.remove(&conn) else {
            return;
        };
        if let Some(route) = self.routes.get_mut(&entry.route) {
            route.conns.remove(&conn);
        }
        if let ConnState::Busy(batch) = entry.state {
            self.requeue(&entry.route, batch, now);
        }
        let (threshold, base, max) = (
            self.config.broken_after,
            self.config.broken_cooldown,
            self.config.broken_cooldown_max,
        );
        let Some(host) = self.hosts.get_mut(&entry.addr) else {
            return;
        };
        host.connections = host.connections.saturating_sub(1);
        let Some(error) = error else { return };
        let broken = host.failed(&error, now, threshold, base, max);
        let failures = host.failures;
        self.log(format!("smtp-out: Error on session {conn}: {error}"));
        if let Some(cooldown) = broken {
            self.log(format!(
                "smtp-out: MX marked broken: {} [{}] after {failures} failures, for {}s",
                entry.host,
                entry.addr,
                cooldown.as_secs()
            ));
        }
    }

    fn tick(&mut self, now: UnixTime) {
        for host in self.hosts.values_mut() {
            if host.broken_until.is_some_and(|until| until <= now) {
                host.broken_until = None;
            }
        }
        let idle_timeout = self.config.idle_timeout;
        let mut quit = Vec::new();
        for (id, conn) in &mut self.conns {
            if let ConnState::Idle { since } = conn.state {
                if since.saturating_add(idle_timeout) <= now {
                    conn.state = ConnState::Closing;
                    quit.push(*id);
                }
            }
        }
        for conn in quit {
            self.actions.push_back(Action::Quit { conn });
        }
    }

    /// Gives every route with waiting envelopes what it can have now.
    fn pump(&mut self, now: UnixTime) {
        let keys: Vec<RouteKey> = self
            .routes
            .iter()
            .filter(|(_, r)| !r.queue.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            self.dispatch(&key, now);
        }
        self.forget_routes(now);
        if self.hosts.len() > MAX_HOSTS {
            self.hosts
                .retain(|_, h| h.connections > 0 || h.failures > 0 || h.is_broken(now));
        }
        if self.resolutions.len() > MAX_RESOLUTIONS {
            self.resolutions.retain(|_, r| match r {
                Resolution::Pending => true,
                Resolution::Ready { expires, .. } => *expires > now,
            });
        }
    }

    /// Forgets routes with nothing to do once they are no longer disabled and have been
    /// quiet for [`ROUTE_KEEP`], or at once beyond [`MAX_ROUTES`].
    fn forget_routes(&mut self, now: UnixTime) {
        let busy = |r: &Route| !r.queue.is_empty() || !r.conns.is_empty();
        self.routes.retain(|_, r| {
            busy(r)
                || r.disabled_until.is_some_and(|until| until > now)
                || r.last_active.saturating_add(ROUTE_KEEP) > now
        });
        if self.routes.len() > MAX_ROUTES {
            self.routes.retain(|_, r| busy(r));
        }
    }

    fn dispatch(&mut self, key: &RouteKey, now: UnixTime) {
        self.feed_idle(key);
        if !self.ensure_candidates(key, now) {
            return;
        }
        loop {
            let Some(route) = self.routes.get(key) else {
                return;
            };
            if route.queue.is_empty() {
                return;
            }
            let connecting = route
                .conns
                .iter()
                .filter(|c| {
                    matches!(
                        self.conns.get(c).map(|c| &c.state),
                        Some(ConnState::Connecting)
                    )
                })
                .count();
            if !self.more_messages_than(key, connecting) {
                return;
            }
            match self.choose(key, now) {
                Choice::Connect(candidate) => self.connect(key, candidate, now),
                Choice::Wait => return,
                Choice::AllBroken => {
                    if route.conns.is_empty() {
                        self.disable(key, now);
                        let ids = self.take_queue(key);
                        self.log(format!("smtp-out: route disabled: {key}: no MX reachable"));
                        let failure =
                            temp_failure(format!("no MX reachable for {}", key.destination.name()));
                        self.actions
                            .push_back(Action::EnvelopeTempFail { ids, failure });
                    }
                    return;
                }
            }
        }
    }

    /// Ends every cool-down and every route disabling ([`Input::RetryNow`]).
    fn retry_now(&mut self) {
        for host in self.hosts.values_mut() {
            host.broken_until = None;
        }
        for route in self.routes.values_mut() {
            route.disabled_until = None;
        }
        self.log("smtp-out: retry requested: MX cool-downs and disabled routes lifted".to_owned());
    }

    /// Records that the route found every MX broken: one more penalty, and disabled
    /// until the first of its MXs comes out of its cool-down.
    fn disable(&mut self, key: &RouteKey, now: UnixTime) {
        let Some(route) = self.routes.get_mut(key) else {
            return;
        };
        let hosts = &self.hosts;
        let until = route
            .candidates
            .iter()
            .flat_map(|(candidates, _)| candidates.iter())
            .filter_map(|c| hosts.get(&c.addr).and_then(|h| h.broken_until))
            .filter(|until| *until > now)
            .min();
        route.penalty = route.penalty.saturating_add(1);
        route.disabled_until = until;
        route.last_active = now;
    }

    /// Whether more than `count` messages (not envelopes) wait on a route, that is
    /// whether `count` sessions in the making are too few to serve them at once. Stops at
    /// the first `count + 1` distinct messages: `count` is at most a route's connection
    /// limit, while the queue may hold many thousand envelopes, and this runs at every
    /// input.
    fn more_messages_than(&self, key: &RouteKey, count: usize) -> bool {
        let Some(route) = self.routes.get(key) else {
            return false;
        };
        let mut seen = Vec::with_capacity(count.saturating_add(1).min(64));
        for id in &route.queue {
            let message = id.message_id();
            if !seen.contains(&message) {
                if seen.len() >= count {
                    return true;
                }
                seen.push(message);
            }
        }
        false
    }

    /// Hands the next message of the route to each idle session.
    fn feed_idle(&mut self, key: &RouteKey) {
        let max_mail = self
            .config
            .limits_for(key.destination.name())
            .max_mail_per_session;
        let Some(route) = self.routes.get(key) else {
            return;
        };
        let idle: Vec<ConnId> = route
            .conns
            .iter()
            .filter(|c| {
                matches!(
                    self.conns.get(c).map(|c| &c.state),
                    Some(ConnState::Idle { .. })
                )
            })
            .copied()
            .collect();
        for conn in idle {
            let Some(entry) = self.conns.get_mut(&conn) else {
                continue;
            };
            if entry.messages >= max_mail {
                entry.state = ConnState::Closing;
                self.actions.push_back(Action::Quit { conn });
                continue;
            }
            let Some(route) = self.routes.get_mut(key) else {
                return;
            };
            let Some(first) = route.queue.front().copied() else {
                return;
            };
            let message = first.message_id();
            let mut batch = Vec::new();
            route.queue.retain(|id| {
                let same = id.message_id() == message;
                if same {
                    batch.push(*id);
                }
                !same
            });
            self.queued = self.queued.saturating_sub(batch.len());
            entry.messages = entry.messages.saturating_add(1);
            entry.state = ConnState::Busy(batch.clone());
            self.actions.push_back(Action::SendMessage {
                conn,
                envelopes: batch,
            });
        }
    }

    /// Makes sure the route has an address order, asking DNS once per destination when
    /// its set expired (the old order serves meanwhile); false while it has none.
    fn ensure_candidates(&mut self, key: &RouteKey, now: UnixTime) -> bool {
        let old = match self.routes.get(key) {
            Some(Route {
                candidates: Some((_, expires)),
                ..
            }) if *expires > now => return true,
            Some(Route {
                candidates: Some(_),
                ..
            }) => true,
            _ => false,
        };
        let query = query_of(key);
        match self.resolutions.get(&query) {
            Some(Resolution::Pending) => old,
            Some(Resolution::Ready { set, expires }) if *expires > now => {
                let (set, expires) = (set.clone(), *expires);
                self.build_candidates(key, &set, expires);
                true
            }
            _ => {
                self.resolutions.insert(query.clone(), Resolution::Pending);
                self.actions.push_back(Action::Resolve(query));
                old
            }
        }
    }

    /// The next address to open a session to, within the limits.
    fn choose(&self, key: &RouteKey, now: UnixTime) -> Choice {
        let limits = self.config.limits_for(key.destination.name());
        let Some(route) = self.routes.get(key) else {
            return Choice::Wait;
        };
        let Some((candidates, _)) = &route.candidates else {
            return Choice::Wait;
        };
        let domain_conns = self
            .conns
            .values()
            .filter(|c| c.route.destination == key.destination)
            .count();
        let route_full = route.conns.len() >= limits.max_conn_per_route
            || domain_conns >= limits.max_conn_per_domain;
        let mut start = 0;
        while let Some(first) = candidates.get(start) {
            let level: Vec<&Candidate> = candidates
                .iter()
                .skip(start)
                .take_while(|c| c.preference == first.preference)
                .collect();
            start = start.saturating_add(level.len());
            let usable: Vec<&Candidate> = level
                .into_iter()
                .filter(|c| !self.hosts.get(&c.addr).is_some_and(|h| h.is_broken(now)))
                .collect();
            if usable.is_empty() {
                continue;
            }
            if route_full {
                return Choice::Wait;
            }
            let load = |c: &&Candidate| self.hosts.get(&c.addr).map_or(0, |h| h.connections);
            return usable
                .into_iter()
                .filter(|c| load(c) < limits.max_conn_per_host)
                .min_by_key(load)
                .map_or(Choice::Wait, |c| Choice::Connect(c.clone()));
        }
        Choice::AllBroken
    }

    fn connect(&mut self, key: &RouteKey, candidate: Candidate, now: UnixTime) {
        let conn = loop {
            let id = ConnId(self.rng.next_u64());
            if id.0 != 0 && !self.conns.contains_key(&id) {
                break id;
            }
        };
        let host = self
            .hosts
            .entry(candidate.addr)
            .or_insert_with(|| HostState::new(&candidate.host));
        host.name.clone_from(&candidate.host);
        host.last_connect = Some(now);
        host.connections = host.connections.saturating_add(1);
        host.sessions = host.sessions.saturating_add(1);
        self.conns.insert(
            conn,
            Conn {
                route: key.clone(),
                addr: candidate.addr,
                host: candidate.host.clone(),
                state: ConnState::Connecting,
                messages: 0,
            },
        );
        if let Some(route) = self.routes.get_mut(key) {
            route.conns.insert(conn);
        }
        self.log(format!(
            "smtp-out: Connecting to {}://{} ({}) on session {conn}",
            key.tls.scheme(),
            candidate.addr,
            candidate.host
        ));
        self.actions.push_back(Action::Connect {
            conn,
            addr: candidate.addr,
            host: candidate.host,
            src: key.src,
            tls: key.tls,
            auth: key.auth.clone(),
            helo: key.helo.clone(),
            ca: key.ca.clone(),
            pki: key.pki.clone(),
        });
    }
}
