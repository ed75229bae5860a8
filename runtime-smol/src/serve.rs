//! Starting and stopping `smtpd`: the same start as `smtpd-std`
//! ([`runtime_std::server::prepare`]: spool recovery, engine host, delivery pool,
//! listeners, control socket), then one smol executor shared by one thread per core, an
//! accept task per listening socket and a task per connection.

use std::process::ExitCode;
use std::sync::Arc;

use mta_core::config::Config;
use runtime_std::server::prepare::prepare;
use runtime_std::server::trace::Subsystem;
use runtime_std::server::{log::Log, ServeOptions};
use smol::{Async, Executor};

use crate::accept::{accept_loop, AcceptContext, Connections};
use crate::fd::RawBorrowed;

/// Connections served at once by default: an idle one costs a few KiB and two
/// descriptors, not a thread.
pub const MAX_CONNECTIONS: usize = 20_000;

/// Serve mail with `config` until SIGTERM or SIGINT on `threads` executor threads (one
/// per core when `None`). On a stop signal, sessions get 421, deliveries in flight get
/// `shutdown_grace` to finish, and the exit status is success. Started as root, the
/// daemon runs as the account `run_as` after binding
/// ([`runtime_std::server::privdrop`]).
pub fn run(config: Config, opts: &ServeOptions, threads: Option<usize>, run_as: &str) -> ExitCode {
    let log = Log::stderr(opts.verbose);
    match start(config, opts, threads, run_as, &log) {
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

fn start(
    config: Config,
    opts: &ServeOptions,
    threads: Option<usize>,
    run_as: &str,
    log: &Log,
) -> Result<(), String> {
    let room = raise_descriptor_limit();
    let max_connections = opts.max_connections.min(room).max(1);
    if max_connections < opts.max_connections {
        log.info(&format!(
            "smtpd: at most {max_connections} connections at once (descriptor limit)"
        ));
    }
    let prepared = prepare(config, opts, log, Subsystem::ALL, run_as)?;
    let mut sockets = Vec::new();
    for b in prepared.bound {
        let socket = Async::new(b.socket).map_err(|e| format!("listen: {e}"))?;
        sockets.push((socket, b.index, b.session_config, b.tls));
    }
    let threads = threads
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1)
        .max(1);
    log.info(&format!(
        "smtpd: ready on {threads} executor threads, queue {} ({} envelopes reloaded)",
        prepared.queue_dir.display(),
        prepared.reloaded
    ));
    let executor = Arc::new(Executor::new());
    let ctx = AcceptContext {
        executor: Arc::clone(&executor),
        conn: prepared.conn,
        connections: Arc::new(Connections::default()),
        max_connections,
        paused: prepared.paused,
    };
    let stop = prepared.stop;
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
    runtime_std::server::prepare::close_control(prepared.control, log);
    if !all_ended {
        log.warn("smtpd: sessions still open at exit");
    }
    if !prepared.pool.drain(grace) {
        log.warn("smtpd: deliveries still running at exit; they stay queued");
    }
    drop(stop_fd);
    log.info("smtpd: exiting");
    Ok(())
}

/// `smtpd` without `-n`: serve the configuration the command line names
/// ([`runtime_std::server::command`]) in the foreground, logging to standard
/// error, with or without `-d`.
pub fn serve_command(options: &runtime_std::cli::Options) -> ExitCode {
    let Some(mut c) = runtime_std::server::command(options) else {
        return ExitCode::FAILURE;
    };
    c.opts.max_connections = MAX_CONNECTIONS;
    run(c.config, &c.opts, None, &c.run_as)
}
