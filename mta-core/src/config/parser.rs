//! The driver of parsing: statements of the main file and its includes, macro definitions
//! and expansion, dispatch to the modern and classic grammars, error collection.

use super::error::{ConfigError, ConfigErrors, MAX_ERRORS};
use super::lexer::{statements, Statement, Tok, TokKind};
use super::model::Config;

/// Deepest `include` nesting accepted (an include loop ends here with an error).
const MAX_INCLUDE_DEPTH: usize = 16;
/// Most files read through `include` in one configuration.
const MAX_INCLUDES: usize = 1000;
/// Deepest macro-in-macro expansion accepted.
const MAX_MACRO_DEPTH: usize = 8;
/// Work allowed to expand the macros of one statement (tokens visited plus bytes lexed),
/// so that macros nesting many references cannot blow up.
const MACRO_BUDGET: usize = 1_000_000;

/// A parse error inside one statement: position and message.
pub(crate) type PErr = (u32, u32, String);

/// Which grammar a rule statement belongs to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Grammar {
    /// `match` / `action` (OpenSMTPD 6.4 and later).
    Modern,
    /// `accept` / `reject` (OpenSMTPD 5.x).
    Classic,
}

/// Where each grammar was first seen and how often, to report mixing.
#[derive(Default)]
pub(crate) struct GrammarUse {
    /// (file, line, col, count) of modern statements.
    pub(crate) modern: Option<(String, u32, u32, usize)>,
    /// (file, line, col, count) of classic statements.
    pub(crate) classic: Option<(String, u32, u32, usize)>,
}

/// The parser's state while it walks the statements.
pub(crate) struct Parser<'l> {
    /// What has been parsed so far.
    pub(crate) config: Config,
    /// Errors so far.
    pub(crate) errors: Vec<ConfigError>,
    /// Macros: those of the command line first (they win), then the file's.
    macros: Vec<(String, String, bool)>,
    pub(crate) loader: &'l mut dyn FnMut(&str) -> Result<String, String>,
    /// The file being parsed now.
    pub(crate) file: String,
    /// Grammar seen so far.
    pub(crate) grammar: GrammarUse,
    /// Number of classic rules compiled, to name their generated actions.
    pub(crate) classic_count: usize,
    /// Where each pki was first declared, to report one left without cert or key.
    pub(crate) pki_first_seen: Vec<(String, String, (u32, u32))>,
    /// Files included so far.
    includes: usize,
}

impl<'l> Parser<'l> {
    /// A parser with command-line macros (they override definitions in the file).
    pub(crate) fn new(
        macros: &[(String, String)],
        loader: &'l mut dyn FnMut(&str) -> Result<String, String>,
    ) -> Self {
        Parser {
            config: Config::default(),
            errors: Vec::new(),
            macros: macros
                .iter()
                .map(|(k, v)| (k.clone(), v.clone(), true))
                .collect(),
            loader,
            file: String::new(),
            grammar: GrammarUse::default(),
            classic_count: 0,
            pki_first_seen: Vec::new(),
            includes: 0,
        }
    }

    /// Records an error in the current file.
    pub(crate) fn error(&mut self, (line, col, message): PErr) {
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(ConfigError {
                file: self.file.clone(),
                line,
                col,
                message,
            });
        }
    }

    /// Parses one file (the main one or an include).
    pub(crate) fn file(&mut self, text: &str, name: &str, depth: usize) {
        let saved = std::mem::replace(&mut self.file, name.to_string());
        let (stmts, lex_errors) = statements(text, (1, 1));
        for e in lex_errors {
            self.error(e);
        }
        for stmt in stmts {
            self.statement(stmt, depth);
        }
        self.file = saved;
    }

    fn statement(&mut self, stmt: Statement, depth: usize) {
        // A macro definition: NAME = VALUE.
        if let [Tok {
            kind: TokKind::Word(name),
            ..
        }, Tok {
            kind: TokKind::Assign,
            ..
        }, rest @ ..] = stmt.toks.as_slice()
        {
            let value = match rest {
                [Tok {
                    kind: TokKind::Quoted(v) | TokKind::Word(v),
                    ..
                }] => v.clone(),
                [] => {
                    self.error((
                        stmt.end.0,
                        stmt.end.1,
                        format!("expected a value after \"{name} =\""),
                    ));
                    return;
                }
                [t, ..] => {
                    self.error((
                        t.line,
                        t.col,
                        "expected one quoted value for the macro".into(),
                    ));
                    return;
                }
            };
            if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                || KEYWORDS.contains(&name.as_str())
            {
                let (line, col) = stmt
                    .toks
                    .first()
                    .map(|t| (t.line, t.col))
                    .unwrap_or(stmt.end);
                self.error((line, col, format!("invalid macro name \"{name}\"")));
                return;
            }
            if !self
                .macros
                .iter()
                .any(|(n, _, cmdline)| n == name && *cmdline)
            {
                self.macros.retain(|(n, _, _)| n != name);
                self.macros.push((name.clone(), value, false));
            }
            return;
        }
        let toks = match self.expand(&stmt.toks, 0, &mut MACRO_BUDGET.clone()) {
            Ok(t) => t,
            Err(e) => {
                self.error(e);
                return;
            }
        };
        let stmt = Statement {
            toks,
            end: stmt.end,
        };
        if let Some(Tok {
            kind: TokKind::Word(w),
            ..
        }) = stmt.toks.first()
        {
            if w == "include" {
                self.include(&stmt, depth);
                return;
            }
        }
        self.dispatch(&stmt);
    }

    fn expand(&self, toks: &[Tok], depth: usize, budget: &mut usize) -> Result<Vec<Tok>, PErr> {
        let mut out = Vec::with_capacity(toks.len());
        for t in toks {
            *budget = match budget.checked_sub(1) {
                Some(b) => b,
                None => {
                    return Err((
                        t.line,
                        t.col,
                        "statement too long once macros are expanded".into(),
                    ))
                }
            };
            let TokKind::Macro(name, suffix) = &t.kind else {
                out.push(t.clone());
                continue;
            };
            let Some((_, value, _)) = self.macros.iter().find(|(n, _, _)| n == name) else {
                return Err((t.line, t.col, format!("undefined macro \"${name}\"")));
            };
            if depth >= MAX_MACRO_DEPTH {
                return Err((
                    t.line,
                    t.col,
                    format!("macro \"${name}\" expands too deeply"),
                ));
            }
            *budget = budget.saturating_sub(value.len());
            let (stmts, errs) = statements(value, (t.line, t.col));
            if let Some((_, _, msg)) = errs.into_iter().next() {
                return Err((t.line, t.col, format!("in macro \"${name}\": {msg}")));
            }
            let mut inner: Vec<Tok> = Vec::new();
            for s in stmts {
                inner.extend(s.toks.into_iter().map(|i| Tok {
                    line: t.line,
                    col: t.col,
                    ..i
                }));
            }
            let mut expanded = self.expand(&inner, depth.saturating_add(1), budget)?;
            if !suffix.is_empty() {
                match expanded.as_mut_slice() {
                    [Tok {
                        kind: TokKind::Word(v) | TokKind::Quoted(v),
                        ..
                    }] => v.push_str(suffix),
                    _ => {
                        return Err((
                            t.line,
                            t.col,
                            format!(
                            "macro \"${name}\" must be a single value to be joined to \"{suffix}\""
                        ),
                        ))
                    }
                }
            }
            out.extend(expanded);
        }
        Ok(out)
    }

    fn include(&mut self, stmt: &Statement, depth: usize) {
        let mut toks = Toks::new(&stmt.toks, stmt.end);
        toks.bump();
        let path = match toks.peek().map(|t| &t.kind) {
            Some(TokKind::Quoted(p)) => p.clone(),
            _ => return self.error(toks.expected("a quoted file name", "include")),
        };
        toks.bump();
        if let Err(e) = toks.done() {
            return self.error(e);
        }
        let (line, col) = stmt
            .toks
            .first()
            .map(|t| (t.line, t.col))
            .unwrap_or(stmt.end);
        self.includes = self.includes.saturating_add(1);
        if self.includes > MAX_INCLUDES {
            return self.error((line, col, format!("too many included files at \"{path}\"")));
        }
        if depth >= MAX_INCLUDE_DEPTH {
            return self.error((
                line,
                col,
                format!("includes nested too deeply at \"{path}\""),
            ));
        }
        match (self.loader)(&path) {
            Ok(text) => self.file(&text, &path, depth.saturating_add(1)),
            Err(why) => self.error((line, col, format!("cannot include \"{path}\": {why}"))),
        }
    }

    fn dispatch(&mut self, stmt: &Statement) {
        let mut toks = Toks::new(&stmt.toks, stmt.end);
        let first = toks.peek().cloned();
        let Some(first) = first else { return };
        let TokKind::Word(keyword) = &first.kind else {
            return self.error((
                first.line,
                first.col,
                format!("expected a statement, found {}", describe(&first.kind)),
            ));
        };
        let result = match keyword.as_str() {
            "match" | "action" => {
                self.note_grammar(Grammar::Modern, &first);
                if keyword == "match" {
                    self.match_rule(&mut toks)
                } else {
                    self.action(&mut toks)
                }
            }
            "accept" | "reject" => {
                self.note_grammar(Grammar::Classic, &first);
                self.classic_rule(&mut toks)
            }
            _ => self.global(&mut toks),
        };
        if let Err(e) = result {
            self.error(e);
        }
    }

    fn note_grammar(&mut self, g: Grammar, at: &Tok) {
        let slot = match g {
            Grammar::Modern => &mut self.grammar.modern,
            Grammar::Classic => &mut self.grammar.classic,
        };
        match slot {
            Some((_, _, _, n)) => *n = n.saturating_add(1),
            None => *slot = Some((self.file.clone(), at.line, at.col, 1)),
        }
    }

    /// Reports mixing of the two grammars at the first statement of the minority grammar.
    pub(crate) fn check_mixing(&mut self) {
        if let (Some(modern), Some(classic)) = (&self.grammar.modern, &self.grammar.classic) {
            let (minority, name, other) = if classic.3 <= modern.3 {
                (
                    classic.clone(),
                    "classic (accept/reject)",
                    "modern (match/action)",
                )
            } else {
                (
                    modern.clone(),
                    "modern (match/action)",
                    "classic (accept/reject)",
                )
            };
            let saved = std::mem::replace(&mut self.file, minority.0);
            self.error((
                minority.1,
                minority.2,
                format!("the {name} grammar cannot be mixed with the {other} grammar used elsewhere in the configuration"),
            ));
            self.file = saved;
        }
    }

    /// Reports every pki that lacks its certificate or its key (both are loaded at start).
    pub(crate) fn check_pki(&mut self) {
        let seen = std::mem::take(&mut self.pki_first_seen);
        for (name, file, (line, col)) in seen {
            let Some(pki) = self.config.pki.get(&name) else {
                continue;
            };
            let missing = match (&pki.cert, &pki.key) {
                (None, _) => "cert",
                (_, None) => "key",
                _ => continue,
            };
            let saved = std::mem::replace(&mut self.file, file);
            self.error((line, col, format!("pki \"{name}\" has no {missing} (declare both \"pki {name} cert FILE\" and \"pki {name} key FILE\")")));
            self.file = saved;
        }
    }

    /// Reports a configuration without any rule: it could accept no mail at all, and
    /// OpenSMTPD refuses it too ("no rules, nothing to do"). Said only when nothing else is
    /// wrong: a rule that failed to parse is the likelier cause.
    pub(crate) fn check_rules(&mut self, main_file: &str) {
        if self.config.rules.is_empty() && self.errors.is_empty() {
            let saved = std::mem::replace(&mut self.file, main_file.to_string());
            self.error((1, 1, "no match rule: nothing would ever be accepted".into()));
            self.file = saved;
        }
    }

    /// The errors, or the configuration if there were none.
    pub(crate) fn finish(self) -> Result<Config, ConfigErrors> {
        if self.errors.is_empty() {
            Ok(self.config)
        } else {
            Err(ConfigErrors(self.errors))
        }
    }
}

/// How a token is named in messages.
pub(crate) fn describe(kind: &TokKind) -> String {
    match kind {
        TokKind::Word(w) => format!("\"{w}\""),
        TokKind::Quoted(s) => format!("\"\\\"{s}\\\"\""),
        TokKind::Table(t) => format!("\"<{t}>\""),
        TokKind::Macro(m, suffix) => format!("\"${m}{suffix}\""),
        TokKind::LBrace => "\"{\"".into(),
        TokKind::RBrace => "\"}\"".into(),
        TokKind::Comma => "\",\"".into(),
        TokKind::Assign => "\"=\"".into(),
        TokKind::Arrow => "\"=>\"".into(),
        TokKind::Bang => "\"!\"".into(),
    }
}

/// Words OpenSMTPD reserves: they must be quoted to be used as names or values.
pub(crate) const KEYWORDS: &[&str] = &[
    "action",
    "admd",
    "alias",
    "any",
    "auth",
    "auth-optional",
    "backup",
    "bounce",
    "bypass",
    "ca",
    "cert",
    "chain",
    "chroot",
    "ciphers",
    "commit",
    "compression",
    "connect",
    "data",
    "data-line",
    "dhe",
    "disconnect",
    "domain",
    "ehlo",
    "encryption",
    "expand-only",
    "fcrdns",
    "filter",
    "for",
    "forward-only",
    "from",
    "group",
    "helo",
    "helo-src",
    "host",
    "hostname",
    "hostnames",
    "include",
    "inet4",
    "inet6",
    "junk",
    "key",
    "limit",
    "listen",
    "lmtp",
    "local",
    "mail-from",
    "maildir",
    "mask-src",
    "masquerade",
    "match",
    "max-deferred",
    "max-message-size",
    "mbox",
    "mda",
    "mta",
    "mx",
    "no-dsn",
    "no-verify",
    "noop",
    "on",
    "phase",
    "pki",
    "port",
    "proc",
    "proc-exec",
    "proxy-v2",
    "queue",
    "quit",
    "rcpt-to",
    "rdns",
    "received-auth",
    "recipient",
    "regex",
    "reject",
    "relay",
    "report",
    "rewrite",
    "rset",
    "scheduler",
    "senders",
    "smtp",
    "smtp-in",
    "smtp-out",
    "smtps",
    "socket",
    "src",
    "srs",
    "sub-addr-delim",
    "tag",
    "tagged",
    "tls",
    "tls-require",
    "ttl",
    "user",
    "userbase",
    "verify",
    "virtual",
    "warn-interval",
    "wrapper",
];

/// A cursor over the tokens of one statement, with the helpers every grammar rule uses.
pub(crate) struct Toks<'a> {
    toks: &'a [Tok],
    pos: usize,
    end: (u32, u32),
}

impl<'a> Toks<'a> {
    /// A cursor at the first token.
    pub(crate) fn new(toks: &'a [Tok], end: (u32, u32)) -> Self {
        Toks { toks, pos: 0, end }
    }

    /// The current token.
    pub(crate) fn peek(&self) -> Option<&'a Tok> {
        self.toks.get(self.pos)
    }

    /// Moves past the current token and returns it.
    pub(crate) fn bump(&mut self) -> Option<&'a Tok> {
        let t = self.toks.get(self.pos)?;
        self.pos = self.pos.saturating_add(1);
        Some(t)
    }

    /// Whether the current token is the unquoted word `kw`.
    pub(crate) fn at(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok { kind: TokKind::Word(w), .. }) if w == kw)
    }

    /// Whether the current token is of this kind.
    pub(crate) fn at_kind(&self, kind: &TokKind) -> bool {
        self.peek().is_some_and(|t| &t.kind == kind)
    }

    /// Moves past the word `kw` if it is there.
    pub(crate) fn eat(&mut self, kw: &str) -> bool {
        let at = self.at(kw);
        if at {
            self.bump();
        }
        at
    }

    /// Moves past a token of this kind if it is there.
    pub(crate) fn eat_kind(&mut self, kind: &TokKind) -> bool {
        let at = self.at_kind(kind);
        if at {
            self.bump();
        }
        at
    }

    /// Position of the current token, or of the end of the statement.
    pub(crate) fn here(&self) -> (u32, u32) {
        self.peek().map(|t| (t.line, t.col)).unwrap_or(self.end)
    }

    /// An error at the current token.
    pub(crate) fn err(&self, message: String) -> PErr {
        let (line, col) = self.here();
        (line, col, message)
    }

    /// An error "expected WHAT after "AFTER"" at the current token.
    pub(crate) fn expected(&self, what: &str, after: &str) -> PErr {
        match self.peek() {
            Some(t) => self.err(format!(
                "expected {what} after \"{after}\", found {}",
                describe(&t.kind)
            )),
            None => self.err(format!("expected {what} after \"{after}\"")),
        }
    }

    /// Requires the word `kw`.
    pub(crate) fn expect(&mut self, kw: &str, after: &str) -> Result<(), PErr> {
        if self.eat(kw) {
            Ok(())
        } else {
            Err(self.expected(&format!("\"{kw}\""), after))
        }
    }

    /// A name or value: a quoted string, or a word that is not a reserved keyword.
    pub(crate) fn string(&mut self, what: &str, after: &str) -> Result<String, PErr> {
        match self.peek().map(|t| &t.kind) {
            Some(TokKind::Quoted(s)) => {
                self.bump();
                Ok(s.clone())
            }
            Some(TokKind::Word(w)) if !KEYWORDS.contains(&w.as_str()) => {
                self.bump();
                Ok(w.clone())
            }
            Some(TokKind::Word(w)) => {
                Err(self.err(format!("expected {what} after \"{after}\", found keyword \"{w}\" (quote it to use it as a value)")))
            }
            _ => Err(self.expected(what, after)),
        }
    }

    /// Whether the current token can be read by [`Toks::string`].
    pub(crate) fn at_string(&self) -> bool {
        match self.peek().map(|t| &t.kind) {
            Some(TokKind::Quoted(_)) => true,
            Some(TokKind::Word(w)) => !KEYWORDS.contains(&w.as_str()),
            _ => false,
        }
    }

    /// A `<table>` reference.
    pub(crate) fn table_name(&mut self, after: &str) -> Result<String, PErr> {
        match self.peek().map(|t| &t.kind) {
            Some(TokKind::Table(t)) => {
                self.bump();
                Ok(t.clone())
            }
            _ => Err(self.expected("a table \"<name>\"", after)),
        }
    }

    /// Whether the current token is a `<table>` reference.
    pub(crate) fn at_table(&self) -> bool {
        matches!(self.peek().map(|t| &t.kind), Some(TokKind::Table(_)))
    }

    /// Requires the end of the statement.
    pub(crate) fn done(&self) -> Result<(), PErr> {
        match self.peek() {
            None => Ok(()),
            Some(t) => Err(self.err(format!(
                "unexpected {} (expected the end of the line)",
                describe(&t.kind)
            ))),
        }
    }

    /// Whether every token has been read.
    pub(crate) fn is_done(&self) -> bool {
        self.pos >= self.toks.len()
    }
}
