//! Tables (`table NAME ...` in smtpd.conf): their contents, however they were declared, and
//! the lookups of smtpd.conf(5) and table(5) over them.

/// Where a table's contents came from.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum TableSource {
    /// `{ ... }` written in the configuration.
    Inline,
    /// `file:PATH` (contents handed in by the runtime).
    File(String),
}

/// A table's contents: a list of values or a map of keys to values.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum TableEntries {
    /// `{ "a", "b" }` or a file whose lines hold one value each.
    List(Vec<String>),
    /// `{ "k" => "v" }` or a file whose lines hold `key value`.
    Map(Vec<(String, String)>),
}

/// A named table.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Table {
    /// The name used as `<name>`.
    pub name: String,
    /// Where the contents came from.
    pub source: TableSource,
    /// The contents.
    pub entries: TableEntries,
}
