//! Harness for config.
