//! Starting and stopping `smtpd`: the same start as `smtpd-std` (spool recovery, engine
//! host, delivery pool, listeners), then one smol executor shared by one thread per core,
//! an accept task per listening socket and a task per connection.

use std::process::ExitCode;
use std::sync::Arc;

use mta_core::config::Config;
use mta_core::engine::{Engine, EngineFacts};
use runtime_std::server::conn::ConnContext;
use runtime_std::server::delivery_worker::DeliveryPool;
use runtime_std::server::engine_host::{self, EngineHost};
use runtime_std::server::fork_server::ForkServer;
use runtime_std::server::signals::StopSignal;
use runtime_std::server::{hostname, listener, log::Log, session_config, ServeOptions};
use runtime_std::spool::{GroupCommitter, Spool};
use smol::{Async, Executor};

use crate::accept::{accept_loop, AcceptContext, Connections};
use crate::fd::RawBorrowed;

/// Connections served at once by default: an idle one costs a few KiB and two
/// descriptors, not a thread.
pub const MAX_CONNECTIONS: usize = 20_000;

/// Serve mail with `config` until SIGTERM or SIGINT on `threads` executor threads (one
/// per core when `None`). On a stop signal, sessions get 421, deliveries in flight get
/// `shutdown_grace` to finish, and the exit status is success.
pub fn run(config: Config, opts: &ServeOptions, threads: Option<usize>) -> ExitCode {
    let log = Log::stderr(opts.verbose);
    match start(config, opts, threads, &log) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log.info(&format!("smtpd: {e}"));
            ExitCode::FAILURE
        }
    }
}

/// Descriptors kept for everything but connections (listeners, spool, deliveries).
const RESERVED_DESCRIPTORS: u64 = 256;

/// Raise the soft limit of open descriptors to the hard one and return how many
/// connections it leaves room for: each holds two (its socket and its mailbox's eventfd),
/// so a client beyond gets `421` rather than waiting unaccepted in the backlog.
pub fn raise_descriptor_limit() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct we own.
    let soft = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return usize::MAX;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
        limit.rlim_cur
    };
    usize::try_from(soft.saturating_sub(RESERVED_DESCRIPTORS) / 2).unwrap_or(usize::MAX)
}

fn open_spool(
    config: &Config,
    opts: &ServeOptions,
    log: &Log,
) -> Result<(Spool, Vec<mta_core::queue::Envelope>, std::path::PathBuf), String> {
    let queue_dir = opts.queue_dir(config);
    if let Some(parent) = queue_dir.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let (spool, recovered) =
        Spool::open(&queue_dir).map_err(|e| format!("queue {}: {e}", queue_dir.display()))?;
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
                Err(e) => log.warn(&format!(
                    "queue: envelope {evpid} of message {} is unreadable, left aside: {e}",
                    message.msgid
                )),
            }
        }
    }
    Ok((spool, envelopes, queue_dir))
}

fn start(
    config: Config,
    opts: &ServeOptions,
    threads: Option<usize>,
    log: &Log,
) -> Result<(), String> {
    let room = raise_descriptor_limit();
    let max_connections = opts.max_connections.min(room).max(1);
    if max_connections < opts.max_connections {
        log.info(&format!(
            "smtpd: at most {max_connections} connections at once (descriptor limit)"
        ));
    }
    let (spool, envelopes, queue_dir) = open_spool(&config, opts, log)?;
    // Before any thread exists: the fork server must be a single-threaded copy.
    // SAFETY: geteuid has no preconditions.
    let forker = if unsafe { libc::geteuid() } == 0 {
        Some(Arc::new(
            ForkServer::start(&spool).map_err(|e| format!("delivery fork server: {e}"))?,
        ))
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
    let reloaded = envelopes.len();
    engine_host.feed(mta_core::engine::Input::Reload(envelopes));
    let mut sockets = Vec::new();
    for b in bound {
        if let Ok(addr) = b.socket.local_addr() {
            log.info(&format!("smtpd: listening on {addr}"));
        }
        let socket = Async::new(b.socket).map_err(|e| format!("listen: {e}"))?;
        sockets.push((socket, b.index, b.session_config, b.tls));
    }
    let threads = threads
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1)
        .max(1);
    log.info(&format!(
        "smtpd: ready on {threads} executor threads, queue {} ({reloaded} envelopes reloaded)",
        queue_dir.display()
    ));
    let executor = Arc::new(Executor::new());
    let ctx = AcceptContext {
        executor: Arc::clone(&executor),
        conn: ConnContext {
            backend: engine_host,
            spool,
            committer,
            min_free_bytes: opts.min_free_bytes,
            log: log.clone(),
        },
        connections: Arc::new(Connections::default()),
        max_connections,
    };
    let (done_tx, done_rx) = async_channel::bounded::<()>(1);
    let mut workers = Vec::new();
    for n in 1..threads {
        let executor = Arc::clone(&executor);
        let done = done_rx.clone();
        let worker = std::thread::Builder::new()
            .name(format!("smol-{n}"))
            .spawn(move || smol::block_on(executor.run(done.recv())))
            .map_err(|e| format!("executor thread: {e}"))?;
        workers.push(worker);
    }
    let stop_fd = Async::new(RawBorrowed(stop.fd())).map_err(|e| format!("signals: {e}"))?;
    let grace = opts.shutdown_grace;
    let all_ended = smol::block_on(executor.run(async {
        let accepting: Vec<_> = sockets
            .into_iter()
            .map(|(socket, index, config, tls)| {
                executor.spawn(accept_loop(socket, index, config, tls, ctx.clone()))
            })
            .collect();
        loop {
            let _ = stop_fd.readable().await;
            if stop.fired() {
                break;
            }
        }
        log.info("smtpd: stop signal received, shutting down");
        drop(accepting);
        ctx.connections.shutdown_all();
        ctx.connections.wait_empty(grace).await
    }));
    drop(done_tx);
    for worker in workers {
        let _ = worker.join();
    }
    if !all_ended {
        log.warn("smtpd: sessions still open at exit");
    }
    if !pool.drain(grace) {
        log.warn("smtpd: deliveries still running at exit; they stay queued");
    }
    drop(stop_fd);
    log.info("smtpd: exiting");
    Ok(())
}

/// `smtpd` without `-n`: load the configuration the command line names (the built-in one
/// without `-f`), check its listen addresses, and serve it in the foreground, logging to
/// standard error, with or without `-d`.
pub fn serve_command(options: &runtime_std::cli::Options) -> ExitCode {
    use runtime_std::config_load::{check_listen_addresses, load, LoadError};
    let loaded = match load(options.file.as_deref(), &options.macros) {
        Ok(loaded) => loaded,
        Err(LoadError::Config(errors)) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let problems = check_listen_addresses(&loaded);
    if !problems.is_empty() {
        for p in problems {
            eprintln!("smtpd: {p}");
        }
        return ExitCode::FAILURE;
    }
    let mut opts = ServeOptions::new(loaded.state_dir.clone());
    opts.verbose = options.verbose;
    opts.max_connections = MAX_CONNECTIONS;
    if loaded.builtin {
        // Maildirs of every user go below one shared directory, sticky like /tmp so that
        // each user creates (and owns) only their own.
        let mail = loaded.state_dir.join("mail");
        if std::fs::create_dir_all(&mail).is_ok() {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&mail, std::fs::Permissions::from_mode(0o1777));
        }
        eprintln!(
            "smtpd: using the built-in configuration; mail goes to maildirs under {}",
            mail.display()
        );
    }
    run(loaded.config, &opts, None)
}
