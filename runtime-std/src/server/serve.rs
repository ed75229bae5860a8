//! Starting and stopping the daemon: spool recovery, engine, listeners, accept loop.

use std::process::ExitCode;
use std::sync::Arc;

use mta_core::config::Config;
use mta_core::engine::{Engine, EngineFacts};

use super::conn::ConnContext;
use super::delivery_worker::DeliveryPool;
use super::engine_host::{self, EngineHost};
use super::fork_server::ForkServer;
use super::{hostname, listener, log, session_config, signals, ServeOptions};
use crate::spool::{GroupCommitter, Spool};

/// Serve mail with `config` until SIGTERM or SIGINT: open (and recover) the spool,
/// reload its envelopes into the engine, bind the listeners and accept connections. On
/// a stop signal, sessions get 421, deliveries in flight get `shutdown_grace` to finish,
/// and the exit status is success. Errors at start are logged and give a failure status.
pub fn run(config: Config, opts: &ServeOptions) -> ExitCode {
    let log = log::Log::stderr(opts.verbose);
    match start(config, opts, &log) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log.info(&format!("smtpd: {e}"));
            ExitCode::FAILURE
        }
    }
}

fn start(config: Config, opts: &ServeOptions, log: &log::Log) -> Result<(), String> {
    let queue_dir = opts.queue_dir(&config);
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
    let stop = signals::StopSignal::install().map_err(|e| format!("signals: {e}"))?;
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
    for b in &bound {
        if let Ok(addr) = b.socket.local_addr() {
            log.info(&format!("smtpd: listening on {addr}"));
        }
    }
    log.info(&format!(
        "smtpd: ready, queue {} ({reloaded} envelopes reloaded)",
        queue_dir.display()
    ));
    let ctx = ConnContext {
        backend: engine_host,
        spool,
        committer,
        min_free_bytes: opts.min_free_bytes,
        log: log.clone(),
    };
    let connections = Arc::new(listener::Connections::default());
    listener::accept_loop(&bound, &stop, &ctx, &connections, opts.max_connections);
    drop(bound);
    if !connections.wait_empty(opts.shutdown_grace) {
        log.warn("smtpd: sessions still open at exit");
    }
    if !pool.drain(opts.shutdown_grace) {
        log.warn("smtpd: deliveries still running at exit; they stay queued");
    }
    log.info("smtpd: exiting");
    Ok(())
}

/// `smtpd-std` without `-n`: load the configuration the command line names (the built-in
/// one without `-f`), check its listen addresses, and serve it. The daemon stays in the
/// foreground and logs to standard error, with or without `-d`.
pub fn serve_command(options: &crate::cli::Options) -> ExitCode {
    use crate::config_load::{check_listen_addresses, load, LoadError};
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
            eprintln!("{p}");
        }
        return ExitCode::FAILURE;
    }
    let mut opts = ServeOptions::new(loaded.state_dir.clone());
    opts.verbose = options.verbose;
    if loaded.builtin {
        // Maildirs of every user go below one shared directory, sticky like /tmp so
        // that each user creates (and owns) only their own.
        let mail = loaded.state_dir.join("mail");
        if std::fs::create_dir_all(&mail).is_ok() {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&mail, std::fs::Permissions::from_mode(0o1777));
        }
        eprintln!(
            "smtpd: using the built-in configuration; mail goes to maildirs under {}",
            loaded.state_dir.join("mail").display()
        );
    }
    run(loaded.config, &opts)
}
