//! The `smtpd.conf` grammar, modern (OpenSMTPD 6.4+) and classic (5.x), into one ruleset.
//!
//! [`parse`] is pure: the runtime hands in the text of the main file and a loader for the
//! files it refers to (`include "FILE"` and `file:` tables). Errors carry a position and
//! display as `FILE:LINE:COL: message`; parsing goes on after an error so that one run
//! reports every error it can. [`Config::to_modern_string`] prints the normalized
//! configuration back in the modern grammar, such that parsing it gives the same [`Config`].
//!
//! # Compatibility with OpenSMTPD 6.8
//!
//! A modern file is checked the way `smtpd -n` checks it (the corpus under
//! `mta-core/tests/config-corpus` and `tests-e2e/config-oracle.sh` compare the verdicts):
//! the same reserved words, quoting and escapes, declaration before use, table shapes
//! (lists where values are matched, maps for aliases, credentials...), option
//! exclusions, and phases of builtin filters. What only the system can tell (interfaces,
//! host names, certificate files) is checked by the runtime. Where we differ:
//! - our extensions: `queue path`, `control socket`, `mta resolver`, `mta mx-port`,
//!   `metrics listen on` (see [`model`]);
//! - we also read the classic (5.x) grammar, see `classic.rs`; mixing both is an error;
//! - we accept, where OpenSMTPD does not: newlines inside `{ ... }`, a format specifier
//!   such as `%{rcpt}` in an unquoted word, a macro joined to the text after it
//!   (`$state_dir/queue`), `listen on all`, relative `include` paths (the runtime reads
//!   them from the main file's directory), and CR LF line ends;
//! - we refuse, where OpenSMTPD accepts and would fail later or never use the value: a
//!   relay URL with an unknown scheme or a bad port, a `pki`/`ca` not declared before an
//!   action uses it, a filter message without a 4xx/5xx code, more than four
//!   `warn-interval` delays, `match tag <table>`, a map table in a builtin filter condition,
//!   and a list table for listener `auth`.

mod classic;
mod default;
mod error;
mod globals;
mod lexer;
mod metrics_listen;
pub mod model;
mod modern;
mod parser;
mod print;
mod validate;
mod values;

pub use default::DEFAULT_CONFIG;
pub use error::{ConfigError, ConfigErrors};
pub use model::*;

/// Parses a configuration.
///
/// `file_name` names the main file in error messages; `macros` are `-D name=value`
/// definitions, which override definitions of the same name in the file; `loader`
/// returns the text of an included file or of a `file:` table given its path as written.
///
/// # Errors
///
/// Every error found, each with its file, line and column.
pub fn parse(
    text: &str,
    file_name: &str,
    macros: &[(String, String)],
    loader: &mut dyn FnMut(&str) -> Result<String, String>,
) -> Result<Config, ConfigErrors> {
    let mut parser = parser::Parser::new(macros, loader);
    parser.file(text, file_name, 0);
    parser.check_mixing();
    parser.check_pki();
    parser.check_rules(file_name);
    parser.finish()
}

#[cfg(test)]
mod arbitrary;
#[cfg(test)]
mod tests;
