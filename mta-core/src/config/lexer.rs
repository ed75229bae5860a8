//! The tokens of smtpd.conf: words, quoted strings, `<table>` references, punctuation,
//! comments, backslash line continuations and `$macro` references, grouped into statements.
//!
//! A statement ends at a newline outside braces (smtpd.conf(5) lets `{ ... }` lists span
//! lines). Like OpenSMTPD, a word is made of letters, digits and punctuation other than
//! `( ) { } < > ! = # ,` and quotes.

/// What a token is.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) enum TokKind {
    /// An unquoted word (a keyword, a name, a number, a path...).
    Word(String),
    /// A quoted string, quotes removed.
    Quoted(String),
    /// `<name>`.
    Table(String),
    /// `$name`, then the word characters glued to it (as in `$dir/queue`); expanded by the
    /// parser, which knows the macros defined so far.
    Macro(String, String),
    /// `{`.
    LBrace,
    /// `}`.
    RBrace,
    /// `,`.
    Comma,
    /// `=`.
    Assign,
    /// `=>`.
    Arrow,
    /// `!`.
    Bang,
}

/// A token and where it starts.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct Tok {
    /// What it is.
    pub(crate) kind: TokKind,
    /// 1-based line.
    pub(crate) line: u32,
    /// 1-based column.
    pub(crate) col: u32,
}

/// A statement: its tokens and where its line ends (for "expected ... at end of line").
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct Statement {
    /// The tokens in order.
    pub(crate) toks: Vec<Tok>,
    /// Line and column just past the last token.
    pub(crate) end: (u32, u32),
}

/// A lexing error: position and message.
pub(crate) type LexError = (u32, u32, String);

/// Longest token accepted, so a garbage file cannot build huge strings.
const MAX_TOKEN: usize = 64 * 1024;

/// Whether `c` can start an unquoted word (as in OpenSMTPD: a letter, a digit, or one of
/// `: _ * /`; anything else must be quoted).
pub(crate) fn is_word_start(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '*' | '/')
}

/// Whether `c` can continue an unquoted word: ASCII letters, digits and punctuation other
/// than `( ) { } < > ! = # ,`.
pub(crate) fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || (c.is_ascii_punctuation() && !"(){}<>!=#,".contains(c))
}

/// Whether `s` can be written as an unquoted word.
pub(crate) fn is_word(s: &str) -> bool {
    s.chars().next().is_some_and(is_word_start) && s.chars().all(is_word_char)
}

struct Cursor<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: u32,
    col: u32,
}

impl Cursor<'_> {
    fn peek(&mut self) -> Option<char> {
        self.chars.peek().copied()
    }

    /// Whether the current character (a backslash) is followed by a newline.
    fn continues(&self) -> bool {
        let mut ahead = self.chars.clone();
        ahead.next();
        ahead.next() == Some('\n')
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\n' {
            self.line = self.line.saturating_add(1);
            self.col = 1;
        } else {
            self.col = self.col.saturating_add(1);
        }
        Some(c)
    }
}

/// Splits `text` into statements. Lexing errors are collected and the offending line
/// skipped; `start` is the position of the first character (1, 1 for a file).
pub(crate) fn statements(text: &str, start: (u32, u32)) -> (Vec<Statement>, Vec<LexError>) {
    let mut cur = Cursor {
        chars: text.chars().peekable(),
        line: start.0,
        col: start.1,
    };
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut toks: Vec<Tok> = Vec::new();
    let mut depth: u32 = 0;
    let mut end = start;
    let mut skipping = false;
    loop {
        let (line, col) = (cur.line, cur.col);
        let Some(c) = cur.peek() else { break };
        if c == '\n' {
            cur.bump();
            if depth == 0 {
                if !toks.is_empty() && !skipping {
                    out.push(Statement {
                        toks: std::mem::take(&mut toks),
                        end,
                    });
                }
                toks.clear();
                skipping = false;
            }
            continue;
        }
        if c.is_whitespace() {
            cur.bump();
            continue;
        }
        if c == '#' {
            // As in OpenSMTPD, a backslash at the end of a comment line continues the
            // comment on the next line.
            while let Some(c) = cur.peek().filter(|c| *c != '\n') {
                if c == '\\' && cur.continues() {
                    cur.bump();
                }
                cur.bump();
            }
            continue;
        }
        if c == '\\' && cur.continues() {
            // A backslash right before the end of line continues the statement.
            cur.bump();
            cur.bump();
            continue;
        }
        let kind = match c {
            '{' => {
                cur.bump();
                depth = depth.saturating_add(1);
                TokKind::LBrace
            }
            '}' => {
                cur.bump();
                depth = depth.saturating_sub(1);
                TokKind::RBrace
            }
            ',' => {
                cur.bump();
                TokKind::Comma
            }
            '!' => {
                cur.bump();
                TokKind::Bang
            }
            '=' => {
                cur.bump();
                if cur.peek() == Some('>') {
                    cur.bump();
                    TokKind::Arrow
                } else {
                    TokKind::Assign
                }
            }
            '"' | '\'' => match quoted(&mut cur, c) {
                Ok(s) => TokKind::Quoted(s),
                Err(msg) => {
                    errors.push((line, col, msg));
                    skipping = true;
                    continue;
                }
            },
            '<' => {
                // `<name>` or `<"name">`, blanks allowed inside the brackets.
                cur.bump();
                skip_blanks(&mut cur);
                let name = match cur.peek() {
                    Some(q @ ('"' | '\'')) => quoted(&mut cur, q).ok(),
                    Some(c) if is_word_start(c) => Some(take_word(&mut cur))
                        .filter(|w| !super::parser::KEYWORDS.contains(&w.as_str())),
                    _ => None,
                };
                skip_blanks(&mut cur);
                match name {
                    Some(name) if cur.peek() == Some('>') => {
                        cur.bump();
                        TokKind::Table(name)
                    }
                    _ => {
                        errors.push((
                            line,
                            col,
                            "expected a table name and \">\" after \"<\"".into(),
                        ));
                        skipping = true;
                        continue;
                    }
                }
            }
            '$' => {
                cur.bump();
                let mut name = String::new();
                while let Some(c) = cur
                    .peek()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                {
                    if name.len() >= MAX_TOKEN {
                        break;
                    }
                    name.push(c);
                    cur.bump();
                }
                if name.is_empty() {
                    errors.push((line, col, "expected a macro name after \"$\"".into()));
                    skipping = true;
                    continue;
                }
                TokKind::Macro(name, take_word(&mut cur))
            }
            c if is_word_start(c) => TokKind::Word(take_word(&mut cur)),
            other => {
                cur.bump();
                errors.push((line, col, format!("unexpected character {other:?}")));
                skipping = true;
                continue;
            }
        };
        toks.push(Tok { kind, line, col });
        end = (cur.line, cur.col);
    }
    if depth > 0 {
        let (line, col) = toks
            .first()
            .map(|t| (t.line, t.col))
            .unwrap_or((cur.line, cur.col));
        errors.push((
            line,
            col,
            "expected \"}\" before the end of the file".into(),
        ));
    } else if !toks.is_empty() && !skipping {
        out.push(Statement { toks, end });
    }
    (out, errors)
}

/// Skips blanks (not newlines).
fn skip_blanks(cur: &mut Cursor<'_>) {
    while cur.peek().is_some_and(|c| c == ' ' || c == '\t') {
        cur.bump();
    }
}

/// Reads a word. A format specifier such as `%{rcpt}` is part of the word (OpenSMTPD
/// wants such values quoted; we also take them bare).
fn take_word(cur: &mut Cursor<'_>) -> String {
    let mut s = String::new();
    let mut in_format = false;
    while let Some(c) = cur.peek() {
        if c == '\\' && cur.continues() {
            // A backslash and newline inside a word join it with the next line.
            cur.bump();
            cur.bump();
            continue;
        }
        let accept = if in_format {
            !c.is_whitespace()
        } else {
            is_word_char(c) || (c == '{' && s.ends_with('%'))
        };
        if !accept || s.len() >= MAX_TOKEN {
            break;
        }
        if c == '{' && !in_format {
            in_format = true;
        } else if c == '}' {
            in_format = false;
        }
        s.push(c);
        cur.bump();
    }
    s
}

fn quoted(cur: &mut Cursor<'_>, quote: char) -> Result<String, String> {
    cur.bump();
    let mut s = String::new();
    loop {
        if cur.peek() == Some('\n') {
            return Err(format!(
                "expected a closing {quote} before the end of the line"
            ));
        }
        match cur.bump() {
            None | Some('\n') => {
                return Err(format!(
                    "expected a closing {quote} before the end of the line"
                ))
            }
            // As in OpenSMTPD: a backslash escapes the quote, a blank or the newline;
            // before anything else it stands for itself.
            Some('\\') => match cur.peek() {
                Some('\n') => {
                    cur.bump();
                }
                Some(c) if c == quote || c == ' ' || c == '\t' => {
                    cur.bump();
                    s.push(c);
                }
                _ => s.push('\\'),
            },
            Some(c) if c == quote => return Ok(s),
            Some(c) => {
                if s.len() >= MAX_TOKEN {
                    return Err("quoted string too long".into());
                }
                s.push(c);
            }
        }
    }
}
