//! The `smtpd.conf` grammar, modern (OpenSMTPD 6.4+) and classic (5.x), into one ruleset.

pub mod model;

pub use model::*;
