//! The `file:` table format of table(5): one value per line makes a list, `key value`
//! per line makes a map; `#` starts a comment that runs to the end of the line.
//!
//! The key ends at the first blank, or at a `:` followed by a blank or the end of the line
//! (the `key: value` form of aliases(5)); so `::1`, `ipv6:::1` and `user:password` values
//! stay whole. Blanks and that one `:` between key and value are skipped; the value is
//! the rest of the line with trailing blanks removed (alias values keep their commas).

use super::{Table, TableEntries, TableSource};

/// Longest line accepted in a table file, in bytes: bounds what one entry may cost.
pub const MAX_LINE_LEN: usize = 64 * 1024;

/// A table file that cannot be read as a list or a map.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct TableFileError {
    /// The 1-based line number where the problem is.
    pub line: usize,
    /// What is wrong, in lower case.
    pub message: String,
}

/// One line of a table file, once comments and blanks are gone.
enum Line<'a> {
    /// A value alone: a list entry.
    Value(&'a str),
    /// A key and its value: a map entry.
    Pair(&'a str, &'a str),
}

impl Table {
    /// Reads a `file:` table from its contents (the runtime read the file at `path`).
    ///
    /// The table is a list when no line has a value, a map when every line has one
    /// (table(5), "TABLE TYPES"); a file mixing both is refused, as OpenSMTPD does. An
    /// empty file is an empty list.
    ///
    /// # Errors
    /// [`TableFileError`] with the line of a mixed entry, an entry without a key (a line
    /// that is only `:`) or an over-long line.
    pub fn parse_file(name: &str, path: &str, text: &str) -> Result<Table, TableFileError> {
        let mut list: Vec<String> = Vec::new();
        let mut map: Vec<(String, String)> = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index.saturating_add(1);
            if raw.len() > MAX_LINE_LEN {
                return Err(TableFileError {
                    line,
                    message: "line too long".into(),
                });
            }
            match split_line(raw) {
                None => {}
                Some(Line::Value("")) | Some(Line::Pair("", _)) => {
                    return Err(TableFileError {
                        line,
                        message: "missing key".into(),
                    });
                }
                Some(Line::Value(value)) => {
                    if !map.is_empty() {
                        return Err(mixed(line, "a value alone in a table of key-value pairs"));
                    }
                    list.push(value.to_string());
                }
                Some(Line::Pair(key, value)) => {
                    if !list.is_empty() {
                        return Err(mixed(line, "a key-value pair in a list table"));
                    }
                    map.push((key.to_string(), value.to_string()));
                }
            }
        }
        let entries = if map.is_empty() {
            TableEntries::List(list)
        } else {
            TableEntries::Map(map)
        };
        Ok(Table {
            name: name.to_string(),
            source: TableSource::File(path.to_string()),
            entries,
        })
    }
}

fn mixed(line: usize, what: &str) -> TableFileError {
    TableFileError {
        line,
        message: format!("{what}: a table is either a list or a map"),
    }
}

/// Splits one line into its entry, or `None` for a blank or comment line.
fn split_line(raw: &str) -> Option<Line<'_>> {
    let content = raw.split('#').next().unwrap_or("").trim();
    if content.is_empty() {
        return None;
    }
    let key_end = key_end(content);
    let key = content.get(..key_end).unwrap_or(content);
    let rest = content.get(key_end..).unwrap_or("");
    let value = rest.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let value = value.strip_prefix(':').unwrap_or(value).trim();
    if value.is_empty() {
        Some(Line::Value(key.trim_end_matches(':')))
    } else {
        Some(Line::Pair(key, value))
    }
}

/// Where the key of a line ends: at the first blank, or at a `:` followed by a blank or
/// the end of the line.
fn key_end(content: &str) -> usize {
    let bytes = content.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b.is_ascii_whitespace() {
            return i;
        }
        if b == b':' {
            let next = bytes.get(i.saturating_add(1));
            if next.is_none_or(|n| n.is_ascii_whitespace()) {
                return i;
            }
        }
    }
    content.len()
}
