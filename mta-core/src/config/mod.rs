//! The `smtpd.conf` grammar, modern (OpenSMTPD 6.4+) and classic (5.x), into one ruleset.
//!
//! [`parse`] is pure: the runtime hands in the text of the main file and a loader for the
//! files it refers to (`include "FILE"` and `file:` tables). Errors carry a position and
//! display as `FILE:LINE:COL: message`; parsing goes on after an error so that one run
//! reports every error it can. [`Config::to_modern_string`] prints the normalized
//! configuration back in the modern grammar, such that parsing it gives the same [`Config`].

mod classic;
mod default;
mod error;
mod globals;
mod lexer;
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
