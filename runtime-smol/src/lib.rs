//! The async runtime on smol: the daemon `smtpd`, driving the same pure machines as
//! `runtime-std` with one task per connection.
//!
//! What is shared with `runtime-std`: the engine host (engine behind a mutex, its
//! effects, the timer thread), the spool and its group committer, the delivery pool, the
//! listeners' binding, signals and the log. What is new here: the connections are tasks on
//! [`smol::LocalExecutor`]s, one per core but one, each on its own thread ([`serve`]),
//! each driving
//! smtp-proto's server session over an `Async<TcpStream>` ([`conn`]), with no thread and
//! no read buffer of its own while idle; STARTTLS and `smtps` through runtime-std's
//! sans-I/O TLS pump ([`link`]); AUTH through the engine host, as in `smtpd-std`.

pub mod accept;
mod budget;
pub mod conn;
pub mod fd;
pub mod link;
pub mod serve;
