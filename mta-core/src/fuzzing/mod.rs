//! Invariant harnesses shared by the quickcheck properties and the cargo-fuzz targets.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod config;
pub mod control;
pub mod expansion;
pub mod queue;
pub mod router;
