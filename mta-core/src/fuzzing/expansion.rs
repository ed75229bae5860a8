//! Harness for expansion.
