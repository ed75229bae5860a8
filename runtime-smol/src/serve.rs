//! Starting and stopping `smtpd`: the same start as `smtpd-std`
//! ([`runtime_std::server::prepare`]: spool recovery, engine host, delivery pool,
//! listeners, control socket), then one smol executor per core but one (at least one),
//! each on its own thread with an accept task per listening socket (on its own
//! descriptor of the socket) and a task per connection it accepted. The core left over
//! runs what the executors hand off: spool fsyncs and file work on smol's blocking pool,
//! deliveries, the group commit. A connection's task stays on its executor, so what wakes
//! it wakes no other executor. Fewer executors also means fewer hand-offs of async-io's
//! one reactor between threads: with a single executor it keeps the reactor and waits in
//! `epoll_wait` itself, where two pass it back and forth through async-io's own thread
//! (measured at one session: 22 futex calls per message with one executor, 50 with two).

use std::process::ExitCode;
use std::sync::Arc;

use mta_core::config::Config;
use runtime_std::server::prepare::prepare;
use runtime_std::server::trace::Subsystem;
use runtime_std::server::{log::Log, ServeOptions};
use std::net::TcpListener;
use std::rc::Rc;

use runtime_std::server::conn::{ConnContext, ListenerTls};
use runtime_std::server::listener::SmtpPause;
use smol::{Async, LocalExecutor, Task};
use smtp_proto::server::ServerConfig;

use crate::accept::{accept_loop, AcceptContext, Connections};
use crate::fd::RawBorrowed;

/// Connections served at once by default: an idle one costs a few KiB and two
/// descriptors, not a thread.
pub const MAX_CONNECTIONS: usize = 20_000;

/// Serve mail with `config` until SIGTERM or SIGINT on `threads` executor threads (one
/// per core but one when `None`, see the module docs). On a stop signal, sessions get 421, deliveries in flight get
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
/// connections it leaves room for (each holds its socket, and room is kept for the spool
/// and delivery files they open), so a client beyond gets `421` rather than waiting
/// unaccepted in the backlog.
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
    let threads = threads
        .or_else(|| {
            std::thread::available_parallelism()
                .ok()
                .map(|cores| usize::from(cores).saturating_sub(1))
        })
        .unwrap_or(1)
        .max(1);
    // The other executors get their own descriptor of each socket; this thread's
    // executor takes the bound sockets themselves.
    let mut worker_listeners: Vec<Vec<Listening>> = Vec::with_capacity(threads);
    for _ in 1..threads {
        let mut own = Vec::with_capacity(prepared.bound.len());
        for b in &prepared.bound {
            let socket = b.socket.try_clone().map_err(|e| format!("listen: {e}"))?;
            own.push(Listening {
                socket,
                index: b.index,
                config: Arc::clone(&b.session_config),
                tls: b.tls.clone(),
            });
        }
        worker_listeners.push(own);
    }
    let main_listeners: Vec<Listening> = prepared
        .bound
        .into_iter()
        .map(|b| Listening {
            socket: b.socket,
            index: b.index,
            config: b.session_config,
            tls: b.tls,
        })
        .collect();
    log.info(&format!(
        "smtpd: ready on {threads} executor threads, queue {} ({} envelopes reloaded)",
        prepared.queue_dir.display(),
        prepared.reloaded
    ));
    let shared = Shared {
        conn: prepared.conn,
        connections: Arc::new(Connections::default()),
        max_connections,
        paused: prepared.paused,
    };
    // Closed at the stop signal (executors stop accepting), then once the sessions
    // ended or the grace time passed (executors end).
    let (stop_accepting_tx, stop_accepting) = async_channel::bounded::<()>(1);
    let (done_tx, done) = async_channel::bounded::<()>(1);
    let mut workers = Vec::new();
    for (n, listening) in worker_listeners.into_iter().enumerate() {
        let shared = shared.clone();
        let (stop_accepting, done) = (stop_accepting.clone(), done.clone());
        let worker = std::thread::Builder::new()
            .name(format!("smol-{}", n + 1))
            .spawn(move || {
                let executor = Rc::new(LocalExecutor::new());
                smol::block_on(executor.run(async {
                    let accepting = accept_all(&executor, listening, &shared);
                    let _ = stop_accepting.recv().await;
                    drop(accepting);
                    let _ = done.recv().await;
                }));
            })
            .map_err(|e| format!("executor thread: {e}"))?;
        workers.push(worker);
    }
    let stop = prepared.stop;
    let stop_fd = Async::new(RawBorrowed(stop.fd())).map_err(|e| format!("signals: {e}"))?;
    let grace = opts.shutdown_grace;
    let executor = Rc::new(LocalExecutor::new());
    let all_ended = smol::block_on(executor.run(async {
        let accepting = accept_all(&executor, main_listeners, &shared);
        loop {
            let _ = stop_fd.readable().await;
            if stop.fired() {
                break;
            }
        }
        log.info("smtpd: stop signal received, shutting down");
        drop(accepting);
        drop(stop_accepting_tx);
        shared.connections.shutdown_all();
        shared.connections.wait_empty(grace).await
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
/// One listening socket as one executor accepts on it.
struct Listening {
    socket: TcpListener,
    index: usize,
    config: Arc<ServerConfig>,
    tls: Option<Arc<ListenerTls>>,
}

/// What every executor shares.
#[derive(Clone)]
struct Shared {
    conn: ConnContext,
    connections: Arc<Connections>,
    max_connections: usize,
    paused: Arc<SmtpPause>,
}

/// Start the accept tasks of one executor; dropping them stops accepting.
fn accept_all(
    executor: &Rc<LocalExecutor<'static>>,
    listening: Vec<Listening>,
    shared: &Shared,
) -> Vec<Task<()>> {
    let mut tasks = Vec::with_capacity(listening.len());
    for l in listening {
        let socket = match Async::new(l.socket) {
            Ok(socket) => socket,
            Err(e) => {
                shared.conn.log.warn(&format!("smtpd: listen: {e}"));
                continue;
            }
        };
        let ctx = AcceptContext {
            executor: Rc::clone(executor),
            conn: shared.conn.clone(),
            connections: Arc::clone(&shared.connections),
            max_connections: shared.max_connections,
            paused: Arc::clone(&shared.paused),
        };
        tasks.push(executor.spawn(accept_loop(socket, l.index, l.config, l.tls, ctx)));
    }
    tasks
}

pub fn serve_command(options: &runtime_std::cli::Options) -> ExitCode {
    let Some(mut c) = runtime_std::server::command(options) else {
        return ExitCode::FAILURE;
    };
    c.opts.max_connections = MAX_CONNECTIONS;
    run(c.config, &c.opts, None, &c.run_as)
}
