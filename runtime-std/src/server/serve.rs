//! Starting and stopping `smtpd-std`: the shared start-up ([`prepare`]), then the
//! accept loop on the main thread, one thread per connection.

use std::process::ExitCode;
use std::sync::Arc;

use mta_core::config::Config;

use super::prepare::prepare;
use super::trace::Subsystem;
use super::{listener, log, ServeOptions};

/// Serve mail with `config` until SIGTERM or SIGINT: open (and recover) the spool,
/// reload its envelopes into the engine, bind the listeners, open the control socket
/// and accept connections. On a stop signal, sessions get 421, deliveries in flight get
/// `shutdown_grace` to finish, the control socket is removed and the exit status is
/// success. Errors at start are logged and give a failure status. Started as root, the
/// daemon runs as the account `run_as` after binding (see [`super::privdrop`]).
pub fn run(config: Config, opts: &ServeOptions, run_as: &str) -> ExitCode {
    let log = log::Log::stderr(opts.verbose);
    match start(config, opts, run_as, &log) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log.info(&format!("smtpd: {e}"));
            ExitCode::FAILURE
        }
    }
}

fn start(config: Config, opts: &ServeOptions, run_as: &str, log: &log::Log) -> Result<(), String> {
    let prepared = prepare(config, opts, log, Subsystem::ALL, run_as)?;
    log.info(&format!(
        "smtpd: ready, queue {} ({} envelopes reloaded)",
        prepared.queue_dir.display(),
        prepared.reloaded
    ));
    let connections = Arc::new(listener::Connections::default());
    listener::accept_loop(
        &prepared.bound,
        &prepared.stop,
        &prepared.conn,
        &connections,
        opts.max_connections,
        &prepared.paused,
    );
    drop(prepared.bound);
    super::prepare::close_control(prepared.control, log);
    if !connections.wait_empty(opts.shutdown_grace) {
        log.warn("smtpd: sessions still open at exit");
    }
    if !prepared.pool.drain(opts.shutdown_grace) {
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
    let opts = ServeOptions::for_command(&loaded, options);
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
    let run_as = options
        .user
        .as_deref()
        .unwrap_or(super::privdrop::DEFAULT_ACCOUNT);
    run(loaded.config, &opts, run_as)
}
