//! The control socket: the daemon's side ([`ControlServer`]) and the client's
//! ([`ControlClient`]) of the protocol of [`mta_core::control`], over a UNIX socket.
//!
//! Access follows OpenSMTPD: anyone who can reach the socket may submit mail and read
//! the counters and the status; other requests (which change the daemon or reveal other
//! users' mail) are answered only for root and for the daemon's own user, as the peer's
//! credentials (`SO_PEERCRED`) say. The socket is mode 0666 when the daemon runs as root
//! (so local users can submit) and 0600 otherwise.

mod accept_thread;
mod client;
pub mod engine_target;
pub mod metrics_server;
pub mod offline;
pub mod sendmail;
mod server;
pub mod smtpctl;
pub mod submit;

pub use client::ControlClient;
pub use engine_target::{show_message, DaemonAccess, EngineControl};
pub use server::{permitted, ControlServer, ControlTarget, MAX_CLIENTS};

use std::path::{Path, PathBuf};

/// The socket OpenSMTPD uses, for a daemon running as root.
pub const ROOT_SOCKET: &str = "/var/run/smtpd.sock";

/// Where the control socket is by default: [`ROOT_SOCKET`] for root; for another user,
/// `smtpd.sock` in their state directory of
/// [`default_state_dir`](crate::config_load::default_state_dir) when their own daemon
/// made one there, else the system daemon's [`ROOT_SOCKET`] when it exists (so that
/// `mail(1)` of an ordinary user reaches the system's daemon, as with OpenSMTPD).
pub fn default_socket_path() -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let own = crate::config_load::default_state_dir().join("smtpd.sock");
    own_or_system(euid, own, Path::new(ROOT_SOCKET), &|p| p.exists())
}

/// `system` for root; else `own` when it exists or `system` does not, else `system`.
pub fn own_or_system(
    euid: u32,
    own: PathBuf,
    system: &Path,
    exists: &dyn Fn(&Path) -> bool,
) -> PathBuf {
    if euid == 0 || (!exists(&own) && exists(system)) {
        system.to_path_buf()
    } else {
        own
    }
}
