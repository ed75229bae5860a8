//! The SMTP wire: command and reply grammar, mailbox syntax, ESMTP parameters, SASL
//! decoding, DATA dot-stuffing and the session machines.
//!
//! This crate performs no I/O and reads no clock: bytes and time come in as arguments,
//! and what must happen in the world leaves as actions. Every machine has the same face:
//! `handle(input, now)` feeds one input, `poll_action()` drains what the machine wants
//! done (call it until it returns `None` after every `handle`), and `poll_timeout()`
//! says when the machine next needs `handle_timeout(now)`.
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

pub mod client;
pub mod command;
pub mod data;
#[cfg(any(test, feature = "__fuzz"))]
pub mod fuzzing;
pub mod limits;
pub mod line;
pub mod params;
pub mod reply;
pub mod sasl;
pub mod server;
pub mod timer;
pub mod types;
pub mod xtext;
