//! The start-up both daemons share (`smtpd-std` here, `smtpd` in runtime-smol): open
//! and recover the spool, start the fork server while the process has one thread, build
//! the engine, bind the listeners, start the group committer, the delivery pool, the
//! signal pipe and the engine host, open the control socket and the Prometheus endpoint
//! of `metrics listen on`, and reload the queue.
//!
//! Started as root, the daemon then becomes an unprivileged account (`_smtpd`, or `-u
//! USER`) before it reloads the queue: the queue is given to that account first, the
//! listeners, the fork server (which stays root), the control socket and the metrics
//! endpoint are set up while root, and the relay's client certificates are read (see
//! [`super::privdrop`]).
//! What differs between the runtimes (threads or tasks per connection) starts after.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mta_core::config::Config;
use mta_core::engine::{Engine, EngineFacts, Input};
use mta_core::queue::Envelope;

use super::conn::ConnContext;
use super::daemon_control::DaemonControl;
use super::delivery_worker::DeliveryPool;
use super::engine_host::{self, EngineHost};
use super::fork_server::ForkServer;
use super::listener::{self, Bound, SmtpPause};
use super::log::Log;
use super::privdrop::{self, RunAs};
use super::signals::StopSignal;
use super::trace::Subsystem;
use super::{hostname, local_session_config, session_config, ServeOptions};
use crate::control::metrics_server::MetricsServer;
use crate::control::{ControlServer, ControlTarget, EngineControl};
use crate::spool::{GroupCommitter, Spool};

/// A daemon ready to serve: what the runtime's accept loops and its shutdown need.
pub struct Prepared {
    /// The configuration the daemon started with.
    pub config: Arc<Config>,
    /// This host's name.
    pub hostname: String,
    /// The queue directory.
    pub queue_dir: PathBuf,
    /// The bound listening sockets, not accepting yet.
    pub bound: Vec<Bound>,
    /// SIGTERM and SIGINT.
    pub stop: StopSignal,
    /// The delivery pool, to drain at exit.
    pub pool: DeliveryPool,
    /// What every connection shares (engine host, spool, committer, log).
    pub conn: ConnContext,
    /// `smtpctl pause smtp`, for the accept loops.
    pub paused: Arc<SmtpPause>,
    /// The control socket (`None` when it could not be opened); drop it at exit to
    /// remove the socket file.
    pub control: Option<ControlServer>,
    /// The Prometheus endpoint of `metrics listen on`, if configured; dropping it stops it.
    pub metrics: Option<MetricsServer>,
    /// Envelopes reloaded from the queue.
    pub reloaded: usize,
}

/// Start everything but the accept loops for `config`. `traceable` lists the
/// subsystems the runtime's sessions give trace output for (`smtpctl trace`). Started as
/// root, the daemon runs as the account `run_as` (normally
/// [`privdrop::DEFAULT_ACCOUNT`]) once this returns.
///
/// # Errors
/// A message for the log when the queue, the configuration, a listener, a thread or
/// the signal handlers cannot be set up, or, as root, when the account `run_as` does not
/// exist or cannot be switched to. A control socket that cannot be opened (or
/// that another running daemon holds) is logged and the daemon serves without it.
pub fn prepare(
    config: Config,
    opts: &ServeOptions,
    log: &Log,
    traceable: &[Subsystem],
    run_as: &str,
) -> Result<Prepared, String> {
    let queue_dir = opts.queue_dir(&config);
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let account = if euid == 0 {
        Some(privdrop::find_account(run_as)?)
    } else {
        None
    };
    let new_parent = queue_dir
        .parent()
        .filter(|parent| !parent.exists())
        .map(Path::to_path_buf);
    let (spool, envelopes) = open_spool(&queue_dir, log)?;
    if let Some(account) = &account {
        privdrop::take_over_queue(&queue_dir, new_parent.as_deref(), account).map_err(|e| {
            format!(
                "cannot give the queue {} to {}: {e}",
                queue_dir.display(),
                account.name
            )
        })?;
    }
    // Before any thread exists: the fork server must be a single-threaded copy.
    let forker = if euid == 0 {
        let forker = Arc::new(
            ForkServer::start(&spool, &opts.control_socket)
                .map_err(|e| format!("delivery fork server: {e}"))?,
        );
        forker.install();
        Some(forker)
    } else {
        None
    };
    let host = hostname();
    let mut facts = EngineFacts::new(&host, engine_host::os_seed());
    facts.local.domains.push("localhost.localdomain".to_owned());
    let config = Arc::new(config);
    let engine = Engine::new(Arc::clone(&config), facts, engine_host::unix_now())
        .map_err(|e| format!("configuration: {e}"))?;
    let bound = listener::bind_all(&config, |line| session_config(&config, line, &host))
        .map_err(|e| format!("listen: {e}"))?;
    let committer = GroupCommitter::start(spool.clone(), 64).map_err(|e| e.to_string())?;
    let pool = DeliveryPool::start(opts.delivery_threads).map_err(|e| e.to_string())?;
    let stop = StopSignal::install().map_err(|e| format!("signals: {e}"))?;
    if let Some(forker) = &forker {
        forker.start_reader().map_err(|e| e.to_string())?;
    }
    let engine_host = EngineHost::start(
        engine,
        spool.clone(),
        committer.clone(),
        pool.clone(),
        forker,
        log.clone(),
        host.clone(),
    )
    .map_err(|e| e.to_string())?;
    for b in &bound {
        if let Ok(addr) = b.socket.local_addr() {
            log.info(&format!("smtpd: listening on {addr}"));
        }
    }
    let reload_to = Arc::clone(&engine_host);
    let conn = ConnContext {
        backend: Arc::clone(&engine_host) as Arc<dyn super::conn::SessionBackend>,
        spool,
        committer,
        min_free_bytes: opts.min_free_bytes,
        log: log.clone(),
    };
    let paused = Arc::new(SmtpPause::default());
    let daemon = DaemonControl::new(
        engine_host,
        conn.clone(),
        local_session_config(&config, &host),
        Arc::clone(&paused),
        traceable,
    );
    let target: Arc<dyn ControlTarget> = Arc::new(EngineControl::new(
        Arc::new(daemon),
        engine_host::unix_now(),
    ));
    let control = open_control(opts, Arc::clone(&target), log);
    let metrics = start_metrics(&config, target, log)?;
    super::offline::start(&queue_dir, &config, &account, &reload_to, &conn, log);
    match &account {
        Some(account) => become_account(&config, account, &queue_dir, log)?,
        None => log.info(&format!(
            "smtpd: running as uid {euid} (not started as root: no privileges to drop)"
        )),
    }
    // Only now: no delivery or queue write may run as root before the drop.
    let reloaded = envelopes.len();
    reload_to.feed(Input::Reload(envelopes));
    Ok(Prepared {
        config,
        hostname: host,
        queue_dir,
        bound,
        stop,
        pool,
        conn,
        paused,
        control,
        metrics,
        reloaded,
    })
}

/// Close the control socket at a clean exit and remove its file: through the root fork
/// server when the daemon dropped its privileges and may no longer unlink it (only when
/// this daemon opened it: a socket another daemon holds is left alone).
pub fn close_control(control: Option<ControlServer>, log: &Log) {
    if control.is_none() {
        return;
    }
    drop(control);
    if let Some(forker) = super::fork_server::installed() {
        if let Err(e) = forker.remove_control_socket() {
            log.warn(&format!("smtpd: cannot remove the control socket: {e}"));
        }
    }
}

/// Read what only root can read and is needed later, then become `account`, and check
/// that the queue is still reachable (a directory above it may be closed to `account`).
fn become_account(
    config: &Config,
    account: &RunAs,
    queue_dir: &Path,
    log: &Log,
) -> Result<(), String> {
    privdrop::preload_client_tls(config);
    privdrop::drop_to(account).map_err(|e| format!("cannot run as {}: {e}", account.name))?;
    std::fs::read_dir(queue_dir).map_err(|e| {
        format!(
            "the queue {} cannot be reached by {}: {e} (a directory above it is closed to \
             that account)",
            queue_dir.display(),
            account.name
        )
    })?;
    log.info(&format!(
        "smtpd: running as {} (uid {})",
        account.name, account.uid
    ));
    Ok(())
}

/// Open (and recover) the queue at `queue_dir`; returns the spool and the envelopes to
/// reload. An envelope record that does not decode is moved to `corrupt/`.
fn open_spool(queue_dir: &std::path::Path, log: &Log) -> Result<(Spool, Vec<Envelope>), String> {
    if let Some(parent) = queue_dir.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let (spool, recovered) =
        Spool::open(queue_dir).map_err(|e| format!("queue {}: {e}", queue_dir.display()))?;
    // Monkey mode (-M) makes some spool writes fail temporarily; a no-op otherwise.
    let spool = crate::monkey::wrap_spool(spool);
    for msgid in &recovered.discarded_incoming {
        log.info(&format!("queue: discarded incomplete message {msgid}"));
    }
    for msgid in &recovered.corrupt {
        log.warn(&format!(
            "queue: message {msgid} has no message file, moved to corrupt/"
        ));
    }
    let mut envelopes = Vec::new();
    for message in &recovered.messages {
        for (evpid, record) in &message.envelopes {
            match mta_core::queue::decode(record) {
                Ok(envelope) => envelopes.push(envelope),
                Err(e) => match spool.set_aside_envelope(&message.msgid, evpid) {
                    Ok(()) => log.warn(&format!(
                        "queue: envelope {evpid} of message {} is unreadable ({e}), moved to corrupt/",
                        message.msgid
                    )),
                    Err(io) => log.warn(&format!(
                        "queue: envelope {evpid} of message {} is unreadable ({e}), left aside: \
                         cannot move it to corrupt/: {io}",
                        message.msgid
                    )),
                },
            }
        }
    }
    Ok((spool, envelopes))
}

/// Start the Prometheus endpoint of `metrics listen on` (none without the line),
/// answering from `target`, the control socket's.
///
/// # Errors
/// When its address cannot be bound: a start-up error naming the address.
fn start_metrics(
    config: &Config,
    target: Arc<dyn ControlTarget>,
    log: &Log,
) -> Result<Option<MetricsServer>, String> {
    let Some(listen) = config.options.metrics else {
        return Ok(None);
    };
    let addr = listen.socket_addr();
    let server = MetricsServer::start(addr, target)
        .map_err(|e| format!("metrics: cannot listen on {addr}: {e}"))?;
    log.info(&format!("metrics: listening on {}", server.local_addr()));
    Ok(Some(server))
}

/// Open the control socket at `opts.control_socket` for `target`; `None` (logged) when
/// it cannot be, so that mail is still served.
fn open_control(
    opts: &ServeOptions,
    target: Arc<dyn ControlTarget>,
    log: &Log,
) -> Option<ControlServer> {
    let path = &opts.control_socket;
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    match ControlServer::start(path, target) {
        Ok(server) => {
            log.info(&format!("smtpd: control socket {}", path.display()));
            Some(server)
        }
        Err(e) => {
            log.warn(&format!(
                "smtpd: no control socket at {}: {e}; serving without one",
                path.display()
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_undecodable_envelope_is_moved_to_corrupt() {
        let dir = std::env::temp_dir().join(format!("smtpd-prepare-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let (spool, _) = Spool::open(&dir).expect("spool");
            let mut message = spool.create_incoming("0000000b").expect("incoming");
            message
                .write_chunk(b"Subject: x\r\n\r\nbody\r\n")
                .expect("write");
            message
                .add_envelope("0000000b00000001", b"not an envelope record")
                .expect("envelope");
            message.commit().expect("commit");
        }
        let (_, envelopes) = open_spool(&dir, &Log::quiet()).expect("recovers");
        assert!(envelopes.is_empty());
        let aside = std::fs::read_dir(dir.join("corrupt"))
            .expect("corrupt/")
            .count();
        assert!(aside > 0, "the record is kept in corrupt/");
        let (_, again) = Spool::open(&dir).expect("reopens");
        assert!(
            again.messages.iter().all(|m| m.envelopes.is_empty()),
            "no longer queued"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
