//! Regex tables and `regex` criteria (smtpd.conf(5): `for domain regex`, `from rdns
//! regex`, `tag regex`...). OpenSMTPD compiles them as POSIX extended expressions
//! (regcomp(3) with `REG_EXTENDED`); the `regex` crate accepts the ERE constructs used in
//! practice (literals, `.`, bracket expressions with `[:alpha:]` classes, anchors, groups,
//! `|`, `* + ?`, `{m,n}`) and matches in time linear in the input, so a hostile address
//! cannot make a rule slow. A match anywhere in the value counts (no implicit anchors),
//! and case matters unless the expression says `(?i)`, as with regexec(3).

use regex::{Regex, RegexBuilder};

/// Upper bound on the compiled size of one expression, in bytes: bounds the memory a
/// configuration can ask for.
pub const MAX_COMPILED_SIZE: usize = 1 << 20;

/// Longest expression accepted, in bytes.
pub const MAX_PATTERN_LEN: usize = 4096;

/// An expression that cannot be compiled.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("invalid regular expression {pattern:?}: {message}")]
pub struct RegexError {
    /// The expression as written.
    pub pattern: String,
    /// Why it was refused.
    pub message: String,
}

/// A compiled list of expressions: a value matches the list when it matches any of them.
#[derive(Clone, Debug)]
pub struct RegexList {
    patterns: Vec<Regex>,
}

impl PartialEq for RegexList {
    fn eq(&self, other: &Self) -> bool {
        self.patterns.len() == other.patterns.len()
            && self
                .patterns
                .iter()
                .zip(&other.patterns)
                .all(|(a, b)| a.as_str() == b.as_str())
    }
}

impl Eq for RegexList {}

impl RegexList {
    /// Compiles each expression.
    ///
    /// # Errors
    /// [`RegexError`] for the first expression that is too long, too big once compiled, or
    /// not a valid expression.
    pub fn compile<'a, I>(patterns: I) -> Result<RegexList, RegexError>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut compiled = Vec::new();
        for pattern in patterns {
            compiled.push(compile_one(pattern)?);
        }
        Ok(RegexList { patterns: compiled })
    }

    /// Whether `value` matches any of the expressions.
    pub fn is_match(&self, value: &str) -> bool {
        self.patterns.iter().any(|re| re.is_match(value))
    }

    /// The expressions as written.
    pub fn patterns(&self) -> impl Iterator<Item = &str> + '_ {
        self.patterns.iter().map(Regex::as_str)
    }
}

fn compile_one(pattern: &str) -> Result<Regex, RegexError> {
    let refuse = |message: String| RegexError {
        pattern: pattern.to_string(),
        message,
    };
    if pattern.len() > MAX_PATTERN_LEN {
        return Err(refuse("expression too long".into()));
    }
    RegexBuilder::new(pattern)
        .size_limit(MAX_COMPILED_SIZE)
        .dfa_size_limit(MAX_COMPILED_SIZE)
        .nest_limit(64)
        .build()
        .map_err(|e| refuse(e.to_string().to_lowercase()))
}
