//! The control socket: the daemon's side ([`ControlServer`]) and the client's
//! ([`ControlClient`]) of the protocol of [`mta_core::control`], over a UNIX socket.
//!
//! Access follows OpenSMTPD: anyone who can reach the socket may submit mail and read
//! the counters and the status; other requests (which change the daemon or reveal other
//! users' mail) are answered only for root and for the daemon's own user, as the peer's
//! credentials (`SO_PEERCRED`) say. The socket is mode 0666 when the daemon runs as root
//! (so local users can submit) and 0600 otherwise.

mod client;
pub mod engine_target;
pub mod offline;
pub mod sendmail;
mod server;
pub mod smtpctl;
pub mod submit;

pub use client::ControlClient;
pub use engine_target::{show_message, DaemonAccess, EngineControl};
pub use server::{permitted, ControlServer, ControlTarget, MAX_CLIENTS};

use std::path::PathBuf;

/// The socket OpenSMTPD uses, for a daemon running as root.
pub const ROOT_SOCKET: &str = "/var/run/smtpd.sock";

/// Where the control socket is by default: [`ROOT_SOCKET`] for root, else `smtpd.sock`
/// in the state directory of [`default_state_dir`](crate::config_load::default_state_dir).
pub fn default_socket_path() -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid == 0 {
        PathBuf::from(ROOT_SOCKET)
    } else {
        crate::config_load::default_state_dir().join("smtpd.sock")
    }
}
