//! Recipient expansion: aliases, virtual mappings, `.forward`, sub-addressing, user
//! lookups and the format specifiers of delivery paths and commands.

pub mod format;

#[cfg(test)]
mod format_tests;

pub use format::{expand_format, FormatContext, FormatError};
