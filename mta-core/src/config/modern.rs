//! The modern rule grammar (OpenSMTPD 6.4 and later): `action NAME METHOD [OPTIONS]` and
//! `match CRITERIA action NAME | reject`, per smtpd.conf(5).

use super::lexer::TokKind;
use super::model::{
    Action, Backup, Criterion, CriterionKind, Decision, DeliveryMethod, ForCriterion,
    FromCriterion, LocalOptions, RelayOptions, RelayTls, Rule, TableMatch, TableRef,
};
use super::parser::{PErr, Parser, Toks};
use super::validate::Shape;
use super::values::{inline_table, read_duration, relay_url};
use crate::table::{Table, TableSource};

impl Parser<'_> {
    /// `action NAME METHOD [OPTIONS]`.
    pub(crate) fn action(&mut self, toks: &mut Toks<'_>) -> Result<(), PErr> {
        toks.bump();
        let at = toks.here();
        let name = toks.string("an action name", "action")?;
        if self.config.actions.contains_key(&name) {
            return Err((at.0, at.1, format!("action \"{name}\" is already defined")));
        }
        let action = self.action_body(toks, &name)?;
        self.config.actions.insert(name, action);
        Ok(())
    }

    /// The method and options of an action, up to the end of the statement.
    pub(crate) fn action_body(&mut self, toks: &mut Toks<'_>, name: &str) -> Result<Action, PErr> {
        let method_at = toks.here();
        let method = if toks.eat("mbox") {
            DeliveryMethod::Mbox
        } else if toks.eat("maildir") {
            let path = if toks.at_string() {
                Some(toks.string("a path", "maildir")?)
            } else {
                None
            };
            DeliveryMethod::Maildir {
                path,
                junk: toks.eat("junk"),
            }
        } else if toks.eat("lmtp") {
            let dest = toks.string("a destination such as \"/var/run/lmtp.sock\"", "lmtp")?;
            DeliveryMethod::Lmtp {
                dest,
                rcpt_to: toks.eat("rcpt-to"),
            }
        } else if toks.eat("mda") {
            DeliveryMethod::Mda {
                command: toks.string("a command", "mda")?,
            }
        } else if toks.eat("forward-only") {
            DeliveryMethod::ForwardOnly
        } else if toks.eat("expand-only") {
            DeliveryMethod::ExpandOnly
        } else if toks.eat("relay") {
            DeliveryMethod::Relay(Box::default())
        } else {
            return Err(toks.expected(
                "a delivery method (mbox, maildir, lmtp, mda, forward-only, expand-only, relay)",
                name,
            ));
        };
        let mut action = Action {
            method,
            local: LocalOptions::default(),
        };
        let mut seen: Vec<String> = Vec::new();
        while let Some(t) = toks.peek() {
            let TokKind::Word(w) = &t.kind else {
                return Err(toks.expected("an action option", name));
            };
            let at = (t.line, t.col);
            if seen.contains(w) {
                return Err((at.0, at.1, format!("{w} already specified for this action")));
            }
            seen.push(w.clone());
            let w = w.clone();
            toks.bump();
            self.action_option(toks, &mut action, name, &w, at)?;
        }
        if action.local.user.is_some()
            && !matches!(
                action.method,
                DeliveryMethod::Maildir { .. }
                    | DeliveryMethod::Lmtp { .. }
                    | DeliveryMethod::Mda { .. }
            )
        {
            return Err((
                method_at.0,
                method_at.1,
                "the user option can only be used with maildir, lmtp and mda".into(),
            ));
        }
        if let DeliveryMethod::Relay(r) = &action.method {
            if r.backup.is_some() && (r.host.is_some() || r.domain.is_some()) {
                return Err((
                    method_at.0,
                    method_at.1,
                    "relay backup cannot be used with host or domain".into(),
                ));
            }
            if r.host.is_some() && r.domain.is_some() {
                return Err((
                    method_at.0,
                    method_at.1,
                    "relay host and relay domain cannot both be used".into(),
                ));
            }
            if r.auth.is_some() && r.host.is_none() {
                return Err((
                    method_at.0,
                    method_at.1,
                    "relay auth requires a host".into(),
                ));
            }
        }
        Ok(action)
    }

    fn action_option(
        &mut self,
        toks: &mut Toks<'_>,
        a: &mut Action,
        action: &str,
        w: &str,
        at: (u32, u32),
    ) -> Result<(), PErr> {
        if w == "ttl" {
            a.local.ttl = Some(read_duration(toks, "ttl")?);
            return Ok(());
        }
        if let DeliveryMethod::Relay(r) = &mut a.method {
            return self.relay_option(toks, r, w, at);
        }
        let l = &mut a.local;
        match w {
            "alias" => l.alias = Some(self.action_table(toks, action, "alias")?),
            "virtual" => l.virtual_table = Some(self.action_table(toks, action, "virtual")?),
            "userbase" => l.userbase = Some(self.action_table(toks, action, "userbase")?),
            "user" => l.user = Some(toks.string("a user name", "user")?),
            "wrapper" => {
                let at = toks.here();
                let name = toks.string("a wrapper name", "wrapper")?;
                if !self.config.options.mda_wrappers.contains_key(&name) {
                    return Err((at.0, at.1, format!("mda wrapper \"{name}\" is not defined")));
                }
                l.wrapper = Some(name);
            }
            other => return Err((at.0, at.1, format!("expected a local delivery option (alias, virtual, userbase, user, ttl, wrapper), found \"{other}\""))),
        }
        if l.alias.is_some() && l.virtual_table.is_some() {
            return Err((at.0, at.1, "alias and virtual cannot both be used".into()));
        }
        Ok(())
    }

    fn relay_option(
        &mut self,
        toks: &mut Toks<'_>,
        r: &mut RelayOptions,
        w: &str,
        at: (u32, u32),
    ) -> Result<(), PErr> {
        match w {
            "backup" => {
                let mx = if toks.eat("mx") { Some(toks.string("a host name", "mx")?) } else { None };
                r.backup = Some(Backup { mx });
            }
            "helo" => r.helo = Some(toks.string("a host name", "helo")?),
            "helo-src" => r.helo_src = Some(self.shaped_table(toks, "helo-src", Shape::Map)?),
            "domain" => r.domain = Some(self.shaped_table(toks, "domain", Shape::Map)?),
            "host" => {
                let at = toks.here();
                let s = toks.string("a relay URL such as \"smtp+tls://mx.example.org\"", "host")?;
                r.host = Some(relay_url(&s).map_err(|m| (at.0, at.1, m))?);
            }
            "pki" => {
                let at = toks.here();
                let p = toks.string("a pki name", "pki")?;
                if !self.config.pki.contains_key(&p) {
                    return Err((at.0, at.1, format!("pki \"{p}\" is not defined")));
                }
                r.pki = Some(p);
            }
            "ca" => {
                let at = toks.here();
                let c = toks.string("a ca name", "ca")?;
                if !self.config.ca.contains_key(&c) {
                    return Err((at.0, at.1, format!("ca \"{c}\" is not defined")));
                }
                r.ca = Some(c);
            }
            "srs" => {
                self.check_srs(at)?;
                r.srs = true;
            }
            "tls" => r.tls = Some(RelayTls { no_verify: toks.eat("no-verify") }),
            "auth" => r.auth = Some(self.shaped_table(toks, "auth", Shape::Map)?),
            "mail-from" => r.mail_from = Some(toks.string("an address", "mail-from")?),
            "src" => {
                r.src = Some(if toks.at_table() {
                    TableRef::Named(self.shaped_table(toks, "src", Shape::List)?)
                } else {
                    TableRef::literal(&toks.string("an address", "src")?)
                })
            }
            other => return Err((at.0, at.1, format!("expected a relay option (backup, helo, helo-src, domain, host, pki, ca, srs, tls, auth, mail-from, src, ttl), found \"{other}\""))),
        }
        Ok(())
    }

    /// The map table of an action option: `<name>`, or an inline `{ k = v }` table, which
    /// is declared under the generated name `ACTION.OPTION` (printed back as such).
    fn action_table(
        &mut self,
        toks: &mut Toks<'_>,
        action: &str,
        option: &str,
    ) -> Result<String, PErr> {
        if !toks.at_kind(&TokKind::LBrace) {
            return self.shaped_table(toks, option, Shape::Map);
        }
        let at = toks.here();
        let entries = inline_table(toks, option)?;
        let mut name = format!("{action}.{option}");
        let mut n: u32 = 1;
        while self.config.tables.contains_key(&name) {
            n = n.saturating_add(1);
            name = format!("{action}.{option}.{n}");
        }
        let table = Table {
            name: name.clone(),
            source: TableSource::Inline,
            entries,
        };
        self.config.tables.insert(name.clone(), table);
        self.check_shape(&name, Shape::Map, option, at)?;
        Ok(name)
    }

    /// A literal value or an inline `{ ... }` table, after the `regex` keyword if any.
    pub(crate) fn table_match_value(
        &mut self,
        toks: &mut Toks<'_>,
        after: &str,
        regex: bool,
    ) -> Result<TableMatch, PErr> {
        let table = if toks.at_table() {
            TableRef::Named(self.shaped_table(toks, after, Shape::List)?)
        } else if toks.at_kind(&TokKind::LBrace) {
            TableRef::Inline(inline_table(toks, after)?)
        } else {
            TableRef::literal(&toks.string("a value or a table \"<name>\"", after)?)
        };
        Ok(TableMatch { regex, table })
    }

    fn table_match(&mut self, toks: &mut Toks<'_>, after: &str) -> Result<TableMatch, PErr> {
        let regex = toks.eat("regex");
        self.table_match_value(toks, after, regex)
    }

    fn optional_table_match(
        &mut self,
        toks: &mut Toks<'_>,
        after: &str,
    ) -> Result<Option<TableMatch>, PErr> {
        if toks.at("regex") || toks.at_table() || toks.at_kind(&TokKind::LBrace) || toks.at_string()
        {
            Ok(Some(self.table_match(toks, after)?))
        } else {
            Ok(None)
        }
    }

    /// `match CRITERIA action NAME | reject`.
    pub(crate) fn match_rule(&mut self, toks: &mut Toks<'_>) -> Result<(), PErr> {
        toks.bump();
        let mut criteria: Vec<Criterion> = Vec::new();
        let mut seen: Vec<&'static str> = Vec::new();
        let decision = loop {
            let at = toks.here();
            if toks.eat("action") {
                let at = toks.here();
                let name = toks.string("an action name", "action")?;
                if !self.config.actions.contains_key(&name) {
                    return Err((
                        at.0,
                        at.1,
                        format!(
                            "action \"{name}\" is not defined (declare it before the match rule)"
                        ),
                    ));
                }
                break Decision::Action(name);
            }
            if toks.eat("reject") {
                break Decision::Reject;
            }
            if toks.is_done() {
                return Err(toks.err(
                    "expected \"action NAME\" or \"reject\" at the end of the match rule".into(),
                ));
            }
            let negated = toks.eat_kind(&TokKind::Bang);
            let (classes, kind) = self.criterion(toks)?;
            for class in classes {
                if seen.contains(class) {
                    return Err((
                        at.0,
                        at.1,
                        format!("{class} already specified in this rule"),
                    ));
                }
                seen.push(class);
            }
            criteria.push(Criterion { negated, kind });
        };
        toks.done()?;
        if !seen.contains(&"from") {
            criteria.insert(
                0,
                Criterion {
                    negated: false,
                    kind: CriterionKind::From(FromCriterion::Local),
                },
            );
        }
        if !seen.contains(&"for") {
            criteria.push(Criterion {
                negated: false,
                kind: CriterionKind::For(ForCriterion::Local),
            });
        }
        self.config.rules.push(Rule { criteria, decision });
        Ok(())
    }

    fn criterion(
        &mut self,
        toks: &mut Toks<'_>,
    ) -> Result<(&'static [&'static str], CriterionKind), PErr> {
        let at = toks.here();
        let Some(TokKind::Word(w)) = toks.peek().map(|t| t.kind.clone()) else {
            return Err(toks.err("expected a match criterion (from, for, auth, helo, mail-from, rcpt-to, tag, tls), \"action\" or \"reject\"".into()));
        };
        toks.bump();
        Ok(match w.as_str() {
            "from" => {
                let from = self.source_criterion(toks)?;
                // `from auth` and `auth`, `from mail-from` and `mail-from` test the same
                // thing: OpenSMTPD takes each once per rule.
                let classes: &'static [&'static str] = match from {
                    FromCriterion::Auth(_) => &["from", "auth"],
                    FromCriterion::MailFrom(_) => &["from", "mail-from"],
                    _ => &["from"],
                };
                (classes, CriterionKind::From(from))
            }
            "for" => (&["for"], CriterionKind::For(self.target_criterion(toks)?)),
            "auth" => (&["auth"], CriterionKind::Auth(self.optional_table_match(toks, "auth")?)),
            "helo" => (&["helo"], CriterionKind::Helo(self.table_match(toks, "helo")?)),
            "mail-from" => (&["mail-from"], CriterionKind::MailFrom(self.table_match(toks, "mail-from")?)),
            "rcpt-to" => (&["rcpt-to"], CriterionKind::RcptTo(self.table_match(toks, "rcpt-to")?)),
            "tag" => {
                let regex = toks.eat("regex");
                (&["tag"], CriterionKind::Tag { regex, tag: toks.string("a tag", "tag")? })
            }
            "tls" => (&["tls"], CriterionKind::Tls),
            other => return Err((at.0, at.1, format!("expected a match criterion (from, for, auth, helo, mail-from, rcpt-to, tag, tls), \"action\" or \"reject\", found \"{other}\""))),
        })
    }

    fn source_criterion(&mut self, toks: &mut Toks<'_>) -> Result<FromCriterion, PErr> {
        Ok(if toks.eat("any") {
            FromCriterion::Any
        } else if toks.eat("local") {
            FromCriterion::Local
        } else if toks.eat("socket") {
            FromCriterion::Socket
        } else if toks.eat("src") {
            FromCriterion::Src(self.table_match(toks, "src")?)
        } else if toks.eat("auth") {
            FromCriterion::Auth(self.optional_table_match(toks, "auth")?)
        } else if toks.eat("rdns") {
            FromCriterion::Rdns(self.optional_table_match(toks, "rdns")?)
        } else if toks.eat("mail-from") {
            FromCriterion::MailFrom(self.table_match(toks, "mail-from")?)
        } else {
            return Err(toks.expected(
                "\"any\", \"local\", \"socket\", \"src\", \"auth\", \"rdns\" or \"mail-from\"",
                "from",
            ));
        })
    }

    fn target_criterion(&mut self, toks: &mut Toks<'_>) -> Result<ForCriterion, PErr> {
        Ok(if toks.eat("any") {
            ForCriterion::Any
        } else if toks.eat("local") {
            ForCriterion::Local
        } else if toks.eat("domain") {
            ForCriterion::Domain(self.table_match(toks, "domain")?)
        } else if toks.eat("rcpt-to") {
            ForCriterion::RcptTo(self.table_match(toks, "rcpt-to")?)
        } else {
            return Err(toks.expected("\"any\", \"local\", \"domain\" or \"rcpt-to\"", "for"));
        })
    }
}
