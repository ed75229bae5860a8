//! The fork server's loop (root, single-threaded): `poll(2)` over the daemon's socket and
//! the sockets of its maildir agents.
//!
//! A maildir delivery to a user ([`routes_to_agent`]) goes to one of that user's agents
//! ([`super::agent`], chosen by [`AgentTable::route`]), with the message file opened here
//! (the agent, running as the user, cannot read the spool). Every other request gets a
//! one-shot child, as before agents: it becomes the recipient (or stays root for the
//! shadow file and the control socket), answers on the daemon's socket and exits.
//!
//! Agents answer here, not on the daemon's socket, and their replies are passed on. That
//! costs one more packet per delivery (two system calls in a process otherwise asleep in
//! `poll`, nothing next to an fsync), and buys three things: this loop knows each
//! agent's load exactly, so it can route to the least busy one and retire only idle
//! ones; when an agent dies it knows which requests it owed and fails exactly those
//! (TempFail "delivery process died", never a lost reply); and an agent (running as an
//! ordinary user) can only answer requests that were sent to it, never forge the outcome
//! of another user's delivery. Idle agents are retired from here too, by closing their
//! socket once nothing is outstanding: an agent that decided to leave on its own could
//! race a request already on its way to it.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::time::Instant;

use mta_core::expand::{FileLookup, LocalMethod};

use super::agent;
use super::agents::{AgentId, AgentKey, AgentTable, Route, LIMITS};
use super::wire::{self, Received};
use crate::delivery::DeliveryOutcome;
use crate::server::delivery_worker::{deliver_local, LocalJob};
use crate::server::fork_request::{self, Reply, Request, MAX_PACKET};
use crate::spool::Spool;

/// Packets taken from the daemon's socket per wake, so that agents' replies wait little.
const DAEMON_BURST: usize = 64;

/// The reply for each request an agent owed when it died.
pub const AGENT_DIED: &str = "delivery process died";

/// Whether `job` goes to a maildir agent: a maildir delivery as a user other than root
/// (a delivery as root is refused, by a one-shot child as always).
pub fn routes_to_agent(job: &LocalJob) -> bool {
    matches!(job.method, LocalMethod::Maildir { .. })
        && job.user.as_ref().is_some_and(|u| u.uid != 0)
}

/// Serve the daemon's socket until it closes. The agents' sockets close with this
/// process, and the agents exit then.
pub fn serve(daemon: RawFd, spool: &Spool, control_socket: &Path) {
    // SAFETY: ignoring SIGCHLD makes the kernel reap the children; no preconditions.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    let mut server = Server {
        daemon,
        spool,
        control_socket,
        agents: AgentTable::new(LIMITS),
        buf: vec![0u8; MAX_PACKET],
    };
    while server.round() {}
}

struct Server<'a> {
    daemon: RawFd,
    spool: &'a Spool,
    control_socket: &'a Path,
    /// Each agent with our end of its socket.
    agents: AgentTable<RawFd>,
    buf: Vec<u8>,
}

impl Server<'_> {
    /// Wait for something to do and do it; false once the daemon is gone.
    fn round(&mut self) -> bool {
        let now = Instant::now();
        for socket in self.agents.expire(now) {
            wire::close(socket);
        }
        let timeout = self.agents.next_expiry().map_or(-1, |at| {
            let wait = at
                .saturating_duration_since(now)
                .as_millis()
                .saturating_add(1);
            libc::c_int::try_from(wait).unwrap_or(libc::c_int::MAX)
        });
        let watch = |fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ids: Vec<AgentId> = self.agents.handles().map(|(id, _)| id).collect();
        let mut fds: Vec<libc::pollfd> = std::iter::once(watch(self.daemon))
            .chain(self.agents.handles().map(|(_, &socket)| watch(socket)))
            .collect();
        if wire::poll(&mut fds, timeout).is_err() {
            return false;
        }
        for (id, fd) in ids.iter().zip(fds.iter().skip(1)) {
            if fd.revents != 0 {
                self.read_agent(*id);
            }
        }
        fds.first().is_none_or(|fd| fd.revents == 0) || self.read_daemon()
    }

    /// Take the requests waiting on the daemon's socket; false when it closed.
    fn read_daemon(&mut self) -> bool {
        for _ in 0..DAEMON_BURST {
            let n = match wire::receive(self.daemon, &mut self.buf, false) {
                Ok(Received::Packet(n, _)) => n,
                Ok(Received::Empty) => return true,
                Ok(Received::Closed) | Err(_) => return false,
            };
            let packet = self.buf.get(..n).unwrap_or_default().to_vec();
            if let Some((id, request)) = fork_request::decode_request(&packet) {
                self.handle(id, request, &packet);
            }
        }
        true
    }

    fn handle(&mut self, id: u64, request: Request, packet: &[u8]) {
        let job = match &request {
            Request::Deliver(job) if routes_to_agent(job) => job,
            _ => return self.one_shot(id, request),
        };
        let Some(key) = job.user.as_ref().map(AgentKey::of) else {
            return self.one_shot(id, request);
        };
        // The agent finds the message in the file (and checks it) itself.
        let message = match self.spool.message_file(&job.msgid) {
            Ok(file) => file,
            Err(e) => {
                let text = format!("spool read: {e}");
                return self.reply(id, &Reply::TempFail(text));
            }
        };
        let agent = match self.agents.route(&key) {
            Route::Agent(agent) => agent,
            Route::OneShot => return self.one_shot(id, request),
            Route::Start => match self.start_agent(key) {
                Ok(agent) => agent,
                Err(e) => {
                    let text = format!("cannot start a delivery agent: {e}");
                    return self.reply(id, &Reply::TempFail(text));
                }
            },
        };
        let Some(socket) = self.socket_of(agent) else {
            return self.one_shot(id, request);
        };
        match wire::send_file(socket, packet, message.as_raw_fd(), false) {
            Ok(()) => {
                let bytes = message.metadata().map_or(0, |m| m.len());
                self.agents.sent(agent, id, bytes);
            }
            Err(e) => {
                if e.kind() != io::ErrorKind::WouldBlock {
                    self.agent_gone(agent);
                }
                // As before agents: this delivery does not wait for another.
                self.one_shot(id, request);
            }
        }
    }

    /// The socket of a live agent.
    fn socket_of(&self, agent: AgentId) -> Option<RawFd> {
        self.agents
            .handles()
            .find(|(a, _)| *a == agent)
            .map(|(_, s)| *s)
    }

    /// Pass on the replies waiting on an agent's socket; at its end, fail what it owed.
    fn read_agent(&mut self, agent: AgentId) {
        let Some(socket) = self.socket_of(agent) else {
            return;
        };
        loop {
            match wire::receive(socket, &mut self.buf, false) {
                Ok(Received::Packet(n, _)) => {
                    let packet = self.buf.get(..n).unwrap_or_default();
                    let Some((id, reply)) = fork_request::decode_reply(packet) else {
                        continue;
                    };
                    if self.agents.answered(agent, id, Instant::now()) {
                        self.reply(id, &reply);
                    }
                }
                Ok(Received::Empty) => return,
                Ok(Received::Closed) | Err(_) => return self.agent_gone(agent),
            }
        }
    }

    /// An agent ended (or its socket failed): forget it and fail what it owed.
    fn agent_gone(&mut self, agent: AgentId) {
        if let Some((socket, owed)) = self.agents.remove(agent) {
            wire::close(socket);
            for id in owed {
                self.reply(id, &Reply::TempFail(AGENT_DIED.to_owned()));
            }
        }
    }

    fn reply(&self, id: u64, reply: &Reply) {
        let _ = wire::send(self.daemon, &fork_request::encode_reply(id, reply), true);
    }

    /// Fork an agent for `key` and enter it in the table.
    fn start_agent(&mut self, key: AgentKey) -> io::Result<AgentId> {
        let [ours, theirs] = wire::socket_pair()?;
        // SAFETY: this process is single-threaded; the child runs the agent and exits.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            let e = io::Error::last_os_error();
            wire::close(ours);
            wire::close(theirs);
            return Err(e);
        }
        if pid == 0 {
            // SAFETY: the agent forks nothing; plain signal disposition.
            unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
            // A long-lived process as a user keeps nothing of root's: not the daemon's
            // socket, not the other agents', not what the daemon had open.
            close_all_but(theirs);
            let spool = self.spool;
            agent::run(theirs, &key, &|| !spool.owner_alive());
        }
        wire::close(theirs);
        Ok(self.agents.add(key, ours, Instant::now()))
    }

    /// Answer `request` in a child of its own (as before agents), on the daemon's socket.
    fn one_shot(&self, id: u64, request: Request) {
        // SAFETY: this process is single-threaded; the child answers once and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: the child may wait for its own children: restore SIGCHLD.
            unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
            for (_, &socket) in self.agents.handles() {
                wire::close(socket);
            }
            // This child serves one request and exits: a delivery becomes the recipient
            // here instead of forking once more.
            crate::delivery::user::drop_in_place();
            let reply = answer(self.spool, self.control_socket, request);
            self.reply(id, &reply);
            // SAFETY: leave at once, without the fork server's destructors.
            unsafe { libc::_exit(0) };
        }
        if pid < 0 {
            let text = format!(
                "cannot fork a delivery process: {}",
                io::Error::last_os_error()
            );
            self.reply(id, &Reply::TempFail(text));
        }
    }
}

/// Close every descriptor of this process but the standard ones and `keep`.
fn close_all_but(keep: RawFd) {
    let keep = u32::try_from(keep).unwrap_or(0);
    // SAFETY: close_range only closes descriptors; nothing else of ours is in use.
    unsafe {
        if keep > 3 {
            libc::close_range(3, keep - 1, 0);
        }
        libc::close_range(keep.saturating_add(1).max(3), u32::MAX, 0);
    }
}

/// In a one-shot child of the server (root): answer one request.
fn answer(spool: &Spool, control_socket: &Path, request: Request) -> Reply {
    match request {
        Request::Deliver(job) => match deliver_local(spool, &job) {
            DeliveryOutcome::Delivered => Reply::Delivered,
            DeliveryOutcome::TempFail(text) => Reply::TempFail(text),
            DeliveryOutcome::PermFail(text) => Reply::PermFail(text),
        },
        Request::CheckPassword { user, password } => {
            let shadow = std::path::Path::new(crate::auth::SHADOW_PATH);
            match crate::auth::check_account(shadow, &user, &password) {
                Ok(true) => Reply::Yes,
                Ok(false) => Reply::No,
                Err(e) => Reply::TempFail(e.to_string()),
            }
        }
        Request::ReadForward {
            uid,
            gid,
            directory,
        } => {
            // SAFETY: geteuid has no preconditions.
            if uid != 0 && unsafe { libc::geteuid() } == 0 {
                if let Err(e) = crate::server::privdrop::switch_ids(uid, gid) {
                    return Reply::TempFail(e);
                }
            }
            let path = Path::new(&directory).join(".forward");
            match fork_request::read_forward(&path, uid) {
                FileLookup::Content(text) => Reply::Content(text),
                FileLookup::Absent => Reply::Absent,
                FileLookup::TempFail => Reply::TempFail(format!("cannot read {}", path.display())),
            }
        }
        Request::RemoveControlSocket => match std::fs::symlink_metadata(control_socket) {
            Ok(meta) if meta.file_type().is_socket() => {
                match std::fs::remove_file(control_socket) {
                    Ok(()) => Reply::Yes,
                    Err(e) => Reply::TempFail(format!("{}: {e}", control_socket.display())),
                }
            }
            _ => Reply::No,
        },
    }
}
