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

/// What either daemon serves, from its command line: the configuration, loaded and
/// checked, the serving options, and the account to run as when started as root.
pub struct Command {
    /// The configuration (the built-in one without `-f`).
    pub config: Config,
    /// The options from `-v`, `-s` and the configuration.
    pub opts: ServeOptions,
    /// `-u`, else [`super::privdrop::DEFAULT_ACCOUNT`].
    pub run_as: String,
}

/// Load the configuration the command line names (the built-in one without `-f`) and
/// check its listen addresses; on the built-in configuration, make the shared maildir
/// directory. `None` when it cannot be served (every problem is printed).
pub fn command(options: &crate::cli::Options) -> Option<Command> {
    use crate::config_load::{check_listen_addresses, load, LoadError};
    let loaded = match load(options.file.as_deref(), &options.macros) {
        Ok(loaded) => loaded,
        Err(LoadError::Config(errors)) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            return None;
        }
        Err(e) => {
            eprintln!("{e}");
            return None;
        }
    };
    let problems = check_listen_addresses(&loaded);
    if !problems.is_empty() {
        for p in problems {
            eprintln!("{p}");
        }
        return None;
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
            mail.display()
        );
    }
    let run_as = options
        .user
        .clone()
        .unwrap_or_else(|| super::privdrop::DEFAULT_ACCOUNT.to_owned());
    Some(Command {
        config: loaded.config,
        opts,
        run_as,
    })
}

/// `smtpd-std` without `-n`: serve the configuration of [`command`] in the foreground,
/// logging to standard error, with or without `-d`.
pub fn serve_command(options: &crate::cli::Options) -> ExitCode {
    match command(options) {
        Some(c) => run(c.config, &c.opts, &c.run_as),
        None => ExitCode::FAILURE,
    }
}
