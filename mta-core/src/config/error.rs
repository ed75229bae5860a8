//! Configuration errors: each carries the file, line and column it was found at.

use std::fmt;

/// One error found in a configuration file, displayed as `FILE:LINE:COL: message`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ConfigError {
    /// The file name as given to the parser (or as written in `include`).
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column (in characters).
    pub col: u32,
    /// What was expected or what is wrong, lower case.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.col, self.message
        )
    }
}

impl std::error::Error for ConfigError {}

/// Every error found in a configuration (parsing goes on after an error where it can).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// At most this many errors are kept: a file of garbage must not grow an unbounded list.
pub(crate) const MAX_ERRORS: usize = 100;
