//! Harnesses for the server session machine and DATA dot-stuffing.

use std::time::Instant;

/// The one clock reading of a harness: an arbitrary epoch from which every test and fuzz
/// run counts virtual time. The machines themselves never read a clock.
#[allow(clippy::disallowed_methods)] // the epoch of virtual time, read once per run
pub fn epoch() -> Instant {
    Instant::now()
}
