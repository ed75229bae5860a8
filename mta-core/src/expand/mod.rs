//! Recipient expansion: aliases, virtual mappings, `.forward`, sub-addressing, user
//! lookups and the format specifiers of delivery paths and commands.

mod expander;
pub mod format;
mod method;
mod node;
mod types;

#[cfg(test)]
mod expander_tests;
#[cfg(test)]
mod format_tests;

pub use expander::{ExpandMisuse, Expander, MAX_DEPTH, MAX_NODES};
pub use format::{expand_format, FormatContext, FormatError};
pub use node::MAX_FILE_TARGETS;
pub use types::{
    Answer, Delivery, ExpandAction, ExpandRequest, FileLookup, LocalDelivery, LocalMethod,
    LocalUser, QueryId, Question, Refusal, UserLookup,
};
