//! The brain of the MTA: `smtpd.conf` grammar and tables, rule matching, alias and virtual
//! expansion, the queue model, the scheduler, the router and the engine.
//!
//! This crate performs no I/O and reads no clock: file contents, time and randomness come
//! in as arguments, and every effect leaves as an action for a runtime to perform.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod bounce;
pub mod config;
pub mod control;
pub mod dns;
pub mod engine;
pub mod expand;
pub mod faults;
#[cfg(any(test, feature = "__fuzz"))]
pub mod fuzzing;
pub mod metrics;
pub mod queue;
pub mod routing;
pub mod rules;
pub mod scheduler;
pub mod table;
pub mod time;
