//! The blocking runtime: the effects (sockets, files, processes, clock) that drive the pure
//! machines of `smtp-proto` and `mta-core`, one thread per connection.

pub mod auth;
pub mod cli;
pub mod config_load;
pub mod control;
pub mod delivery;
pub mod monkey;
pub mod relay;
pub mod server;
pub mod spool;
pub mod tls;
