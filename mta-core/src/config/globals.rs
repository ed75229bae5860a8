//! Statements other than rules and actions: `table`, `pki`, `ca`, `listen on`, `filter`,
//! `proc`, and the global options (`queue`, `smtp`, `mta`, `bounce`, `srs`, `admd`, `mda
//! wrapper`, `control socket`), as smtpd.conf(5) describes them; `metrics` is read in
//! `metrics_listen.rs`.

use super::lexer::TokKind;
use super::model::{
    BuiltinFilter, Dhe, Family, Filter, FilterCondition, FilterConditionKind, FilterDecision,
    FilterPhase, Listener, ListenerAuth, ListenerTls, MtaLimit, Pki, ProcExec, Senders,
    SocketListener,
};
use super::parser::{PErr, Parser, Toks};
use super::validate::Shape;
use super::values::{
    inline_table, listen_address, raw, read_duration, read_number, read_port, size,
};
use crate::table::{Table, TableSource};

/// Keys accepted by `mta limit` (OpenSMTPD's limits of outbound delivery).
const MTA_LIMITS: &[&str] = &[
    "max-conn-per-host",
    "max-conn-per-route",
    "max-conn-per-source",
    "max-conn-per-connector",
    "max-conn-per-relay",
    "max-conn-per-domain",
    "conn-delay-host",
    "conn-delay-source",
    "conn-delay-connector",
    "conn-delay-relay",
    "conn-delay-domain",
    "session-mail-max",
    "session-transaction-delay",
    "session-keepalive",
    "max-failures-per-session",
    "task-hiwat",
    "task-lowat",
    "task-release",
];

impl Parser<'_> {
    /// Any statement that is not a rule or an action.
    pub(crate) fn global(&mut self, toks: &mut Toks<'_>) -> Result<(), PErr> {
        let Some(TokKind::Word(kw)) = toks.peek().map(|t| t.kind.clone()) else {
            return Err(toks.err("expected a statement".into()));
        };
        let start = toks.here();
        toks.bump();
        match kw.as_str() {
            "table" => self.table(toks),
            "pki" => self.pki(toks),
            "ca" => self.ca(toks),
            "listen" => self.listen(toks),
            "filter" => self.filter(toks),
            "proc" => {
                let at = toks.here();
                let name = toks.string("a process name", "proc")?;
                if self.config.procs.contains_key(&name) {
                    return Err((at.0, at.1, format!("proc \"{name}\" is already defined")));
                }
                let command = toks.string("a command", &format!("proc {name}"))?;
                toks.done()?;
                self.config.procs.insert(name, command);
                Ok(())
            }
            "queue" => self.queue(toks),
            "smtp" => self.smtp(toks),
            "mta" => self.mta(toks),
            "bounce" => {
                toks.expect("warn-interval", "bounce")?;
                let mut delays = vec![read_duration(toks, "warn-interval")?];
                while toks.eat_kind(&TokKind::Comma) {
                    delays.push(read_duration(toks, ",")?);
                }
                toks.done()?;
                if delays.len() > 4 {
                    return Err(toks.err("at most four warn-interval delays can be given".into()));
                }
                self.config.options.bounce_warn_interval = delays;
                Ok(())
            }
            "srs" => {
                if toks.eat("key") {
                    if toks.eat("backup") {
                        self.config.options.srs.backup_key =
                            Some(toks.string("a secret", "backup")?);
                    } else {
                        self.config.options.srs.key = Some(toks.string("a secret", "key")?);
                    }
                } else if toks.eat("ttl") {
                    let at = toks.here();
                    let ttl = read_duration(toks, "ttl")?;
                    if ttl.as_secs() < 86_400 {
                        return Err((at.0, at.1, "srs ttl must be at least one day (1d)".into()));
                    }
                    self.config.options.srs.ttl = Some(ttl);
                } else {
                    return Err(toks.expected("\"key\" or \"ttl\"", "srs"));
                }
                toks.done()
            }
            "admd" => {
                let at = toks.here();
                let admd = toks.string("an authserv-id", "admd")?;
                if !admd.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
                    return Err((at.0, at.1, "an admd is printable ASCII".into()));
                }
                self.config.options.admd = Some(admd);
                toks.done()
            }
            "mda" => {
                toks.expect("wrapper", "mda")?;
                let at = toks.here();
                let name = toks.string("a wrapper name", "wrapper")?;
                if self.config.options.mda_wrappers.contains_key(&name) {
                    return Err((
                        at.0,
                        at.1,
                        format!("mda wrapper \"{name}\" is already defined"),
                    ));
                }
                let command = toks.string("a command", &name)?;
                toks.done()?;
                self.config.options.mda_wrappers.insert(name, command);
                Ok(())
            }
            "control" => {
                toks.expect("socket", "control")?;
                self.config.options.control_socket = Some(toks.string("a socket path", "socket")?);
                toks.done()
            }
            "metrics" => self.metrics(toks, start),
            "expire" | "max-message-size" => self.classic_global(&kw, toks),
            other => Err(toks.err(format!("expected a statement, found \"{other}\""))),
        }
    }

    fn table(&mut self, toks: &mut Toks<'_>) -> Result<(), PErr> {
        let at = toks.here();
        let name = toks.string("a table name", "table")?;
        if self.config.tables.contains_key(&name) {
            return Err((at.0, at.1, format!("table \"{name}\" is already defined")));
        }
        let table = if toks.at_kind(&TokKind::LBrace) {
            let entries = inline_table(toks, &name)?;
            Table {
                name: name.clone(),
                source: TableSource::Inline,
                entries,
            }
        } else {
            let at = toks.here();
            let spec = raw(
                toks,
                "\"{\" or a file such as \"file:/etc/mail/aliases\"",
                &name,
            )?;
            let path = match spec.split_once(':') {
                Some(("file", p)) => p.to_string(),
                Some((kind, _)) if !kind.starts_with('/') => {
                    return Err((at.0, at.1, format!("table type \"{kind}\" is not supported (only file: tables and inline tables are)")));
                }
                _ => spec.clone(),
            };
            if !path.starts_with('/') {
                return Err((
                    at.0,
                    at.1,
                    format!("expected an absolute path for table \"{name}\", found \"{path}\""),
                ));
            }
            let text = (self.loader)(&path).map_err(|why| {
                (
                    at.0,
                    at.1,
                    format!("cannot read table file \"{path}\": {why}"),
                )
            })?;
            Table::parse_file(&name, &path, &text)
                .map_err(|e| (at.0, at.1, format!("in table file \"{path}\" {e}")))?
        };
        toks.done()?;
        self.config.tables.insert(name, table);
        Ok(())
    }

    fn pki(&mut self, toks: &mut Toks<'_>) -> Result<(), PErr> {
        let at = toks.here();
        let name = toks.string("a pki name", "pki")?;
        if !self.config.pki.contains_key(&name) {
            self.pki_first_seen
                .push((name.clone(), self.file.clone(), at));
        }
        let mut pki = self
            .config
            .pki
            .get(&name)
            .cloned()
            .unwrap_or_else(Pki::default);
        if toks.eat("cert") {
            pki.cert = Some(toks.string("a certificate file", "cert")?);
        } else if toks.eat("key") {
            pki.key = Some(toks.string("a key file", "key")?);
        } else if toks.eat("dhe") {
            let at = toks.here();
            pki.dhe = Some(match raw(toks, "\"none\", \"legacy\" or \"auto\"", "dhe")?.as_str() {
                "none" => Dhe::None,
                "legacy" => Dhe::Legacy,
                "auto" => Dhe::Auto,
                other => return Err((at.0, at.1, format!("expected \"none\", \"legacy\" or \"auto\" after \"dhe\", found \"{other}\""))),
            });
        } else {
            return Err(toks.expected("\"cert\", \"key\" or \"dhe\"", &name));
        }
        toks.done()?;
        self.config.pki.insert(name, pki);
        Ok(())
    }

    fn ca(&mut self, toks: &mut Toks<'_>) -> Result<(), PErr> {
        let name = toks.string("a ca name", "ca")?;
        toks.expect("cert", &name)?;
        let file = toks.string("a certificate file", "cert")?;
        toks.done()?;
        self.config.ca.insert(name, file);
        Ok(())
    }

    /// Requires that a table named `name` was declared earlier.
    pub(crate) fn known_table(&self, name: &str, at: (u32, u32)) -> Result<(), PErr> {
        if self.config.tables.contains_key(name) {
            Ok(())
        } else {
            Err((
                at.0,
                at.1,
                format!("table \"{name}\" is not defined (declare it with \"table\" before use)"),
            ))
        }
    }

    /// Reads `<table>` and checks it is declared.
    pub(crate) fn declared_table(&self, toks: &mut Toks<'_>, after: &str) -> Result<String, PErr> {
        let at = toks.here();
        let name = toks.table_name(after)?;
        self.known_table(&name, at)?;
        Ok(name)
    }

    fn known(&self, kind: &str, name: &str, exists: bool, at: (u32, u32)) -> Result<(), PErr> {
        if exists {
            Ok(())
        } else {
            Err((at.0, at.1, format!("{kind} \"{name}\" is not defined")))
        }
    }

    fn listen(&mut self, toks: &mut Toks<'_>) -> Result<(), PErr> {
        toks.expect("on", "listen")?;
        if toks.eat("socket") {
            let mut socket = SocketListener::default();
            let mut seen: Vec<String> = Vec::new();
            while let Some(t) = toks.peek() {
                if let TokKind::Word(w) = &t.kind {
                    if seen.contains(w) {
                        return Err((
                            t.line,
                            t.col,
                            format!("{w} already specified for this listener"),
                        ));
                    }
                    seen.push(w.clone());
                }
                if toks.eat("filter") {
                    let at = toks.here();
                    let f = toks.string("a filter name", "filter")?;
                    self.known("filter", &f, self.config.filters.contains_key(&f), at)?;
                    socket.filter = Some(f);
                } else if toks.eat("mask-src") || toks.eat("mask-source") {
                    socket.mask_src = true;
                } else if toks.eat("tag") {
                    socket.tag = Some(toks.string("a tag", "tag")?);
                } else {
                    return Err(
                        toks.expected("\"filter\", \"mask-src\" or \"tag\"", "listen on socket")
                    );
                }
            }
            self.config.socket_listener = Some(socket);
            return Ok(());
        }
        let listen_at = toks.here();
        let address = match toks.peek().map(|t| &t.kind) {
            Some(TokKind::Word(w) | TokKind::Quoted(w)) => listen_address(w),
            _ => return Err(toks.expected("an interface, address or host name", "listen on")),
        };
        toks.bump();
        let mut l = Listener::new(address);
        let mut port = None;
        let mut seen: Vec<&'static str> = Vec::new();
        while let Some(t) = toks.peek() {
            let TokKind::Word(w) = &t.kind else {
                return Err(toks.expected("a listener option", "listen on"));
            };
            let at = (t.line, t.col);
            let opt: &'static str = match w.as_str() {
                "inet4" | "inet6" => "family",
                "port" => "port",
                "tls" | "tls-require" | "smtps" => "tls",
                "pki" => "pki",
                "ca" => "ca",
                "auth" | "auth-optional" => "auth",
                "hostname" => "hostname",
                "hostnames" => "hostnames",
                "tag" => "tag",
                "filter" => "filter",
                "senders" => "senders",
                "mask-src" | "mask-source" => "mask-src",
                "no-dsn" => "no-dsn",
                "proxy-v2" => "proxy-v2",
                "received-auth" => "received-auth",
                other => {
                    return Err((
                        at.0,
                        at.1,
                        format!("expected a listener option, found \"{other}\""),
                    ))
                }
            };
            if seen.contains(&opt) {
                return Err((
                    at.0,
                    at.1,
                    format!("{opt} already specified for this listener"),
                ));
            }
            seen.push(opt);
            let w = w.clone();
            toks.bump();
            match w.as_str() {
                "inet4" => l.family = Some(Family::Inet4),
                "inet6" => l.family = Some(Family::Inet6),
                "port" => port = Some(read_port(toks, "port")?),
                "tls" => l.tls = ListenerTls::StartTls,
                "tls-require" => {
                    l.tls = ListenerTls::TlsRequire {
                        verify: toks.eat("verify"),
                    }
                }
                "smtps" => l.tls = ListenerTls::Smtps,
                "pki" => {
                    let at = toks.here();
                    let p = toks.string("a pki name", "pki")?;
                    self.known("pki", &p, self.config.pki.contains_key(&p), at)?;
                    l.pki = Some(p);
                }
                "ca" => {
                    let at = toks.here();
                    let c = toks.string("a ca name", "ca")?;
                    self.known("ca", &c, self.config.ca.contains_key(&c), at)?;
                    l.ca = Some(c);
                }
                "auth" | "auth-optional" => {
                    let table = if toks.at_table() {
                        Some(self.shaped_table(toks, &w, Shape::Map)?)
                    } else {
                        None
                    };
                    l.auth = Some(ListenerAuth {
                        table,
                        optional: w == "auth-optional",
                    });
                }
                "hostname" => l.hostname = Some(toks.string("a host name", "hostname")?),
                "hostnames" => {
                    l.hostnames = Some(self.shaped_table(toks, "hostnames", Shape::Map)?)
                }
                "tag" => l.tag = Some(toks.string("a tag", "tag")?),
                "filter" => {
                    let at = toks.here();
                    let f = toks.string("a filter name", "filter")?;
                    self.known("filter", &f, self.config.filters.contains_key(&f), at)?;
                    l.filter = Some(f);
                }
                "senders" => {
                    let table = self.shaped_table(toks, "senders", Shape::Map)?;
                    l.senders = Some(Senders {
                        table,
                        masquerade: toks.eat("masquerade"),
                    });
                }
                "mask-src" | "mask-source" => l.mask_src = true,
                "no-dsn" => l.no_dsn = true,
                "proxy-v2" => l.proxy_v2 = true,
                _ => l.received_auth = true,
            }
        }
        l.port = port.unwrap_or(if l.tls == ListenerTls::Smtps { 465 } else { 25 });
        self.check_listener(&l, listen_at)?;
        self.config.listeners.push(l);
        Ok(())
    }

    fn filter(&mut self, toks: &mut Toks<'_>) -> Result<(), PErr> {
        let at = toks.here();
        let name = toks.string("a filter name", "filter")?;
        if self.config.filters.contains_key(&name) {
            return Err((at.0, at.1, format!("filter \"{name}\" is already defined")));
        }
        let filter = if toks.eat("chain") {
            if !toks.eat_kind(&TokKind::LBrace) {
                return Err(toks.expected("\"{\"", "chain"));
            }
            let mut members = Vec::new();
            loop {
                if toks.eat_kind(&TokKind::RBrace) {
                    break;
                }
                if toks.eat_kind(&TokKind::Comma) {
                    continue;
                }
                let at = toks.here();
                let m = toks.string("a filter name", "chain")?;
                match self.config.filters.get(&m) {
                    None => return Err((at.0, at.1, format!("filter \"{m}\" is not defined"))),
                    Some(Filter::Chain(_)) => {
                        return Err((
                            at.0,
                            at.1,
                            format!("filter chain \"{m}\" cannot be part of a chain"),
                        ))
                    }
                    Some(_) if members.contains(&m) => {
                        return Err((
                            at.0,
                            at.1,
                            format!("filter \"{m}\" appears twice in the chain"),
                        ));
                    }
                    Some(_) => members.push(m),
                }
            }
            if members.is_empty() {
                return Err((
                    at.0,
                    at.1,
                    "expected at least one filter in the chain".into(),
                ));
            }
            Filter::Chain(members)
        } else if toks.eat("proc") {
            let at = toks.here();
            let p = toks.string("a process name", "proc")?;
            self.known("proc", &p, self.config.procs.contains_key(&p), at)?;
            Filter::Proc(p)
        } else if toks.eat("proc-exec") {
            let command = toks.string("a command", "proc-exec")?;
            let mut pe = ProcExec {
                command,
                user: None,
                group: None,
                chroot: None,
            };
            while !toks.is_done() {
                let at = toks.here();
                let twice = |what: &str| {
                    (
                        at.0,
                        at.1,
                        format!("{what} already specified for this filter"),
                    )
                };
                if toks.eat("user") {
                    if pe.user.is_some() {
                        return Err(twice("user"));
                    }
                    pe.user = Some(toks.string("a user name", "user")?);
                } else if toks.eat("group") {
                    if pe.group.is_some() {
                        return Err(twice("group"));
                    }
                    pe.group = Some(toks.string("a group name", "group")?);
                } else if toks.eat("chroot") {
                    if pe.chroot.is_some() {
                        return Err(twice("chroot"));
                    }
                    pe.chroot = Some(toks.string("a directory", "chroot")?);
                } else {
                    return Err(toks.expected("\"user\", \"group\" or \"chroot\"", "proc-exec"));
                }
            }
            Filter::ProcExec(pe)
        } else if toks.eat("phase") {
            Filter::Builtin(self.builtin_filter(toks)?)
        } else {
            return Err(toks.expected("\"phase\", \"proc\", \"proc-exec\" or \"chain\"", &name));
        };
        toks.done()?;
        self.config.filters.insert(name, filter);
        Ok(())
    }

    fn builtin_filter(&mut self, toks: &mut Toks<'_>) -> Result<BuiltinFilter, PErr> {
        let at = toks.here();
        let phase = match raw(toks, "a phase", "phase")?.as_str() {
            "connect" => FilterPhase::Connect,
            "helo" => FilterPhase::Helo,
            "ehlo" => FilterPhase::Ehlo,
            "mail-from" => FilterPhase::MailFrom,
            "rcpt-to" => FilterPhase::RcptTo,
            "data" => FilterPhase::Data,
            "commit" => FilterPhase::Commit,
            other => return Err((at.0, at.1, format!("expected a phase (connect, helo, ehlo, mail-from, rcpt-to, data, commit), found \"{other}\""))),
        };
        toks.expect("match", "phase")?;
        let negated = toks.eat_kind(&TokKind::Bang);
        let at = toks.here();
        let cond_at = at;
        let kw = raw(toks, "a filter condition", "match")?;
        let kind = match kw.as_str() {
            "fcrdns" => FilterConditionKind::Fcrdns,
            "rdns" => FilterConditionKind::Rdns(self.optional_filter_table(toks, "rdns")?),
            "auth" => FilterConditionKind::Auth(self.optional_filter_table(toks, "auth")?),
            "src" => FilterConditionKind::Src(self.filter_table(toks, "src")?),
            "helo" => FilterConditionKind::Helo(self.filter_table(toks, "helo")?),
            "mail-from" => FilterConditionKind::MailFrom(self.filter_table(toks, "mail-from")?),
            "rcpt-to" => FilterConditionKind::RcptTo(self.filter_table(toks, "rcpt-to")?),
            other => return Err((at.0, at.1, format!("expected a filter condition (fcrdns, rdns, src, helo, auth, mail-from, rcpt-to), found \"{other}\""))),
        };
        let at = toks.here();
        let decision = match raw(toks, "a decision", &kw)?.as_str() {
            "bypass" => FilterDecision::Bypass,
            "junk" => FilterDecision::Junk,
            "disconnect" => FilterDecision::Disconnect(self.filter_message(toks, "disconnect")?),
            "reject" => FilterDecision::Reject(self.filter_message(toks, "reject")?),
            "rewrite" => FilterDecision::Rewrite(toks.string("a value", "rewrite")?),
            other => return Err((at.0, at.1, format!("expected a decision (bypass, disconnect, junk, reject, rewrite), found \"{other}\""))),
        };
        check_filter_phase(phase, &kind, &decision, cond_at)?;
        Ok(BuiltinFilter {
            phase,
            condition: FilterCondition { negated, kind },
            decision,
        })
    }

    fn filter_message(&self, toks: &mut Toks<'_>, after: &str) -> Result<String, PErr> {
        let at = toks.here();
        let msg = toks.string("a message such as \"550 go away\"", after)?;
        let code_ok = msg
            .get(..3)
            .is_some_and(|c| c.bytes().all(|b| b.is_ascii_digit()))
            && matches!(msg.as_bytes().first(), Some(b'4' | b'5'));
        if !code_ok {
            return Err((
                at.0,
                at.1,
                format!("expected a message starting with a 4xx or 5xx code after \"{after}\""),
            ));
        }
        Ok(msg)
    }

    fn optional_filter_table(
        &mut self,
        toks: &mut Toks<'_>,
        after: &str,
    ) -> Result<Option<super::model::TableMatch>, PErr> {
        if toks.at("regex") || toks.at_table() {
            Ok(Some(self.filter_table(toks, after)?))
        } else {
            Ok(None)
        }
    }

    fn filter_table(
        &mut self,
        toks: &mut Toks<'_>,
        after: &str,
    ) -> Result<super::model::TableMatch, PErr> {
        let regex = toks.eat("regex");
        if toks.at_table() {
            let name = self.shaped_table(toks, after, Shape::List)?;
            Ok(super::model::TableMatch {
                regex,
                table: super::model::TableRef::Named(name),
            })
        } else {
            self.table_match_value(toks, after, regex)
        }
    }

    fn queue(&mut self, toks: &mut Toks<'_>) -> Result<(), PErr> {
        let q = &mut self.config.options.queue;
        if toks.eat("compression") {
            q.compression = true;
        } else if toks.eat("encryption") {
            q.encryption = Some(if toks.is_done() {
                None
            } else {
                Some(toks.string("a key", "encryption")?)
            });
        } else if toks.eat("ttl") {
            q.ttl = Some(read_duration(toks, "ttl")?);
        } else if toks.eat("path") {
            q.path = Some(toks.string("a directory", "path")?);
        } else {
            return Err(toks.expected(
                "\"compression\", \"encryption\", \"ttl\" or \"path\"",
                "queue",
            ));
        }
        toks.done()
    }

    fn smtp(&mut self, toks: &mut Toks<'_>) -> Result<(), PErr> {
        let s = &mut self.config.options.smtp;
        if toks.eat("max-message-size") {
            let at = toks.here();
            let v = raw(toks, "a size such as \"35M\"", "max-message-size")?;
            s.max_message_size = Some(size(&v).ok_or((
                at.0,
                at.1,
                format!(
                    "expected a size such as \"35M\" after \"max-message-size\", found \"{v}\""
                ),
            ))?);
        } else if toks.eat("limit") {
            if toks.eat("max-mails") {
                s.max_mails = Some(read_number(toks, "max-mails")?);
            } else if toks.eat("max-rcpt") {
                s.max_rcpt = Some(read_number(toks, "max-rcpt")?);
            } else {
                return Err(toks.expected("\"max-mails\" or \"max-rcpt\"", "limit"));
            }
        } else if toks.eat("sub-addr-delim") {
            let at = toks.here();
            let v = raw(toks, "a character", "sub-addr-delim")?;
            let mut chars = v.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if c.is_ascii_graphic() => s.sub_addr_delim = Some(c),
                _ => {
                    return Err((
                        at.0,
                        at.1,
                        format!("expected one character after \"sub-addr-delim\", found \"{v}\""),
                    ))
                }
            }
        } else if toks.eat("ciphers") {
            s.ciphers = Some(toks.string("a cipher list", "ciphers")?);
        } else {
            return Err(toks.expected(
                "\"max-message-size\", \"limit\", \"sub-addr-delim\" or \"ciphers\"",
                "smtp",
            ));
        }
        toks.done()
    }

    fn mta(&mut self, toks: &mut Toks<'_>) -> Result<(), PErr> {
        if toks.eat("max-deferred") {
            self.config.options.mta.max_deferred = Some(read_number(toks, "max-deferred")?);
        } else if toks.eat("limit") {
            let domain = if toks.eat("for") {
                toks.expect("domain", "for")?;
                Some(toks.string("a domain", "domain")?)
            } else {
                None
            };
            let mut any = false;
            while !toks.is_done() {
                let at = toks.here();
                let key = raw(toks, "a limit name", "limit")?;
                if !MTA_LIMITS.contains(&key.as_str()) {
                    return Err((at.0, at.1, format!("unknown mta limit \"{key}\"")));
                }
                let value = read_number(toks, &key)?;
                self.config.options.mta.limits.push(MtaLimit {
                    domain: domain.clone(),
                    key,
                    value,
                });
                any = true;
            }
            if !any {
                return Err(toks.expected("a limit such as \"max-conn-per-host 10\"", "limit"));
            }
        } else if toks.eat("resolver") {
            self.config.options.mta.resolver =
                Some(toks.string("an address such as \"127.0.0.1:53\"", "resolver")?);
        } else if toks.eat("mx-port") {
            self.config.options.mta.mx_port = Some(read_port(toks, "mx-port")?);
        } else {
            return Err(toks.expected(
                "\"max-deferred\", \"limit\", \"resolver\" or \"mx-port\"",
                "mta",
            ));
        }
        toks.done()
    }
}

/// Checks that a builtin filter's condition can be known at its phase (smtpd.conf(5):
/// only fcrdns, rdns and src are known from the start; the HELO name after HELO, the
/// sender and authentication from MAIL FROM on, the recipient only at RCPT TO) and that
/// its decision is possible there (no bypass or junk once the message is committed).
fn check_filter_phase(
    phase: FilterPhase,
    kind: &FilterConditionKind,
    decision: &FilterDecision,
    at: (u32, u32),
) -> Result<(), PErr> {
    use FilterPhase::{Commit, Connect, Data, MailFrom, RcptTo};
    let (name, known) = match kind {
        FilterConditionKind::Fcrdns
        | FilterConditionKind::Rdns(_)
        | FilterConditionKind::Src(_) => ("", true),
        FilterConditionKind::Helo(_) => ("helo", phase != Connect),
        FilterConditionKind::Auth(_) => {
            ("auth", matches!(phase, MailFrom | RcptTo | Data | Commit))
        }
        FilterConditionKind::MailFrom(_) => (
            "mail-from",
            matches!(phase, MailFrom | RcptTo | Data | Commit),
        ),
        FilterConditionKind::RcptTo(_) => ("rcpt-to", phase == RcptTo),
    };
    if !known {
        return Err((
            at.0,
            at.1,
            format!("the {name} condition is not known yet at this phase"),
        ));
    }
    if phase == Commit && matches!(decision, FilterDecision::Bypass | FilterDecision::Junk) {
        return Err((
            at.0,
            at.1,
            "bypass and junk are not possible at the commit phase".into(),
        ));
    }
    Ok(())
}
