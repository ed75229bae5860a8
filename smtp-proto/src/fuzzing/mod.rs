//! Invariant harnesses shared by the quickcheck properties and the cargo-fuzz targets:
//! each takes raw bytes, drives a parser or machine, and panics only when an invariant
//! breaks.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod client;
pub mod grammar;
pub mod session;
