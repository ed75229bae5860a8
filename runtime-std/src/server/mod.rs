//! The serving runtime of `smtpd-std`: TCP listeners, one thread per connection driving
//! smtp-proto's server session, the engine of `mta-core` behind a mutex, the spool, a pool
//! of delivery threads, a timer thread for the engine's deadlines, logs and signals.
//!
//! Threads:
//! - the main thread accepts connections until SIGTERM or SIGINT;
//! - one thread per connection ([`conn`]) reads, writes, streams bodies into the spool and
//!   commits them (the commit's fsyncs never run under the engine lock);
//! - whichever thread feeds the engine drains its actions ([`engine_host`]): answers and
//!   message notes go to the sessions' [`mailbox::Mailbox`]es in the engine's order,
//!   lookups run at once outside the lock, deliveries go to the [`delivery_worker`] pool,
//!   envelope updates, removals and bounces go, in order, to one spool thread;
//! - a timer thread feeds `Tick` at the engine's deadline.
//!
//! Every effect goes through one narrow function per kind (spool calls in [`conn`] and
//! [`engine_host`], lookups in [`engine_host`], [`delivery_worker::deliver_local`]), the
//! seams where monkey mode will wrap faults.

pub mod conn;
mod conn_threads;
pub mod daemon_control;
pub mod delivery_worker;
pub mod engine_host;
pub mod fork_request;
pub mod fork_server;
pub mod listener;
pub mod log;
pub mod mailbox;
pub mod offline;
pub mod prepare;
pub mod privdrop;
mod serve;
pub mod signals;
#[cfg(test)]
mod tests;
pub mod trace;

pub use serve::{command, run, serve_command, Command};

use std::path::PathBuf;
use std::time::Duration;

use mta_core::config::{Config, Listener, ListenerTls};
use smtp_proto::server::ServerConfig;

/// The default `smtp max-message-size`: 35 MB, as OpenSMTPD.
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 35 * 1024 * 1024;

/// How the daemon serves, beyond the configuration file.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The state directory (`$state_dir`): the queue lives in `queue/` below it unless
    /// the configuration says `queue path`.
    pub state_dir: PathBuf,
    /// `-v`: log the lines meant for debugging too.
    pub verbose: bool,
    /// Connections served at once; the next client gets `421 4.3.2`.
    pub max_connections: usize,
    /// Delivery threads: each waits for one local delivery at a time, so this is how
    /// many are in flight, and how many a maildir agent can take in one batch.
    pub delivery_threads: usize,
    /// Free bytes the queue's file system must keep; below, MAIL gets `452 4.3.1`.
    pub min_free_bytes: u64,
    /// How long a stop waits for sessions and deliveries to finish.
    pub shutdown_grace: Duration,
    /// The control socket `smtpctl` talks to (`-s`): [`crate::control::ROOT_SOCKET`] for
    /// root, else `smtpd.sock` in the state directory, where `smtpctl` looks by default.
    pub control_socket: PathBuf,
}

impl ServeOptions {
    /// The defaults for a state directory: 512 connections, 8 delivery threads, 64 MiB
    /// free space, 10 s of grace at shutdown, the control socket where `smtpctl` looks.
    pub fn new(state_dir: PathBuf) -> ServeOptions {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let control_socket = if unsafe { libc::geteuid() } == 0 {
            PathBuf::from(crate::control::ROOT_SOCKET)
        } else {
            state_dir.join("smtpd.sock")
        };
        ServeOptions {
            control_socket,
            state_dir,
            verbose: false,
            max_connections: 512,
            delivery_threads: 32,
            min_free_bytes: 64 * 1024 * 1024,
            shutdown_grace: Duration::from_secs(10),
        }
    }

    /// The defaults for a daemon started with `options` on `loaded`: its state
    /// directory, `-v`, and the control socket of `-s`, else of the configuration's
    /// `control socket "PATH"`, else the default of [`ServeOptions::new`].
    pub fn for_command(
        loaded: &crate::config_load::Loaded,
        options: &crate::cli::Options,
    ) -> ServeOptions {
        let mut opts = ServeOptions::new(loaded.state_dir.clone());
        opts.verbose = options.verbose;
        if let Some(socket) = options.socket.clone().or_else(|| {
            loaded
                .config
                .options
                .control_socket
                .as_ref()
                .map(PathBuf::from)
        }) {
            opts.control_socket = socket;
        }
        opts
    }

    /// The queue directory: `queue path` of the configuration, else `$state_dir/queue`.
    pub fn queue_dir(&self, config: &Config) -> PathBuf {
        config
            .options
            .queue
            .path
            .as_ref()
            .map(PathBuf::from)
            .unwrap_or_else(|| self.state_dir.join("queue"))
    }
}

/// This host's name (gethostname(2)), or `localhost` when it has none.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into the buffer we own.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".to_owned();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(buf.get(..end).unwrap_or_default()) {
        Ok(name) if !name.is_empty() => name.to_owned(),
        _ => "localhost".to_owned(),
    }
}

/// The session configuration of one `listen on` line: its `hostname` (or the host's),
/// the `smtp` limits of the configuration, DSN unless `no-dsn`; STARTTLS with `tls` or
/// `tls-require` (RFC 3207, MAIL refused before it with the latter); AUTH PLAIN and LOGIN
/// with `auth` or `auth-optional`, only over TLS (RFC 4954 §4: plaintext passwords are
/// never asked for; on `smtps` the whole connection is TLS), MAIL refused before it with
/// `auth`.
pub fn session_config(config: &Config, listener: &Listener, host: &str) -> ServerConfig {
    let mut session = ServerConfig {
        hostname: listener.hostname.clone().unwrap_or_else(|| host.to_owned()),
        greeting: "ESMTP smtpd-rs".to_owned(),
        ..ServerConfig::default()
    };
    let smtp = &config.options.smtp;
    session.limits.message_size = smtp.max_message_size.unwrap_or(DEFAULT_MAX_MESSAGE_SIZE);
    if let Some(n) = smtp.max_rcpt {
        session.limits.recipients = usize::try_from(n).unwrap_or(usize::MAX);
    }
    if let Some(n) = smtp.max_mails {
        session.limits.transactions = usize::try_from(n).unwrap_or(usize::MAX);
    }
    session.extensions.dsn = !listener.no_dsn;
    match listener.tls {
        ListenerTls::None | ListenerTls::Smtps => {}
        ListenerTls::StartTls => session.tls_available = true,
        ListenerTls::TlsRequire { .. } => {
            session.tls_available = true;
            session.tls_required = true;
        }
    }
    if let Some(auth) = &listener.auth {
        session.auth = true;
        session.auth_plaintext = listener.tls == ListenerTls::Smtps;
        session.auth_required = !auth.optional;
    }
    session
}

/// The session configuration of the local enqueuer (`sendmail`, `smtpctl sendmail`):
/// that of a plain `listen on` line (this host's name, the `smtp` limits, DSN), without
/// TLS or AUTH since the socket pair never leaves the daemon.
pub fn local_session_config(config: &Config, host: &str) -> ServerConfig {
    let plain = Listener::new(mta_core::config::ListenAddress::Localhost);
    session_config(config, &plain, host)
}
