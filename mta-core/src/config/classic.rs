//! The classic rule grammar of OpenSMTPD 5.x, compiled into the same model as the modern
//! one:
//!
//! ```text
//! accept [tagged TAG] [from any|local|source <t>|source ADDR] [sender <t>]
//!        for any|local|domain DOMAIN|domain <t> [recipient <t>]
//!        [alias <t> | virtual <t> | virtual { "key" => "value", ... }] [userbase <t>]
//!        deliver to maildir [PATH] | mbox | mda COMMAND | lmtp DEST
//! accept [...] for ... relay [backup [MX]] [via URL] [auth <t>] [as ADDRESS] [tls [verify]]
//!        [pki NAME] [hostname NAME]
//! reject [tagged TAG] [from ...] [sender <t>] for ... [recipient <t>]
//! expire DELAY          (queue ttl)
//! max-message-size SIZE (smtp max-message-size)
//! ```
//!
//! Each `accept` line becomes an action named `classic-N` (where N counts the classic
//! rules, the first being 1) plus a `match` rule using it; an inline `virtual { ... }` table becomes a table named
//! `classic-N-virtual`. So a classic file and the equivalent modern file give the same
//! rules up to the names of actions: compare them after [`Config::with_canonical_action_names`].

use std::collections::BTreeMap;

use super::lexer::TokKind;
use super::model::{
    Action, Backup, Config, Criterion, CriterionKind, Decision, DeliveryMethod, ForCriterion,
    FromCriterion, LocalOptions, RelayOptions, RelayTls, Rule, TableMatch, TableRef,
};
use super::parser::{PErr, Parser, Toks};
use super::validate::Shape;
use super::values::{raw, read_duration, relay_url, size};
use crate::table::{Table, TableEntries, TableSource};

impl Parser<'_> {
    /// `accept ...` or `reject ...`.
    pub(crate) fn classic_rule(&mut self, toks: &mut Toks<'_>) -> Result<(), PErr> {
        let accept = toks.at("accept");
        toks.bump();
        self.classic_count = self.classic_count.saturating_add(1);
        let n = self.classic_count;
        let mut criteria = Vec::new();
        if toks.eat("tagged") {
            let negated = toks.eat_kind(&TokKind::Bang);
            let tag = toks.string("a tag", "tagged")?;
            criteria.push(Criterion {
                negated,
                kind: CriterionKind::Tag { regex: false, tag },
            });
        }
        let from = if toks.eat("from") {
            let negated = toks.eat_kind(&TokKind::Bang);
            let kind = if toks.eat("any") {
                FromCriterion::Any
            } else if toks.eat("local") {
                FromCriterion::Local
            } else if toks.eat("source") {
                FromCriterion::Src(self.classic_table(toks, "source")?)
            } else {
                return Err(toks.expected("\"any\", \"local\" or \"source\"", "from"));
            };
            Criterion {
                negated,
                kind: CriterionKind::From(kind),
            }
        } else {
            Criterion {
                negated: false,
                kind: CriterionKind::From(FromCriterion::Local),
            }
        };
        criteria.insert(0, from);
        if toks.eat("sender") {
            criteria.push(Criterion {
                negated: false,
                kind: CriterionKind::MailFrom(self.classic_table(toks, "sender")?),
            });
        }
        toks.expect("for", if accept { "accept" } else { "reject" })?;
        let negated = toks.eat_kind(&TokKind::Bang);
        let target = if toks.eat("any") {
            ForCriterion::Any
        } else if toks.eat("local") {
            ForCriterion::Local
        } else if toks.eat("domain") {
            ForCriterion::Domain(self.classic_table(toks, "domain")?)
        } else {
            return Err(toks.expected("\"any\", \"local\" or \"domain\"", "for"));
        };
        criteria.push(Criterion {
            negated,
            kind: CriterionKind::For(target),
        });
        if toks.eat("recipient") {
            criteria.push(Criterion {
                negated: false,
                kind: CriterionKind::RcptTo(self.classic_table(toks, "recipient")?),
            });
        }
        if !accept {
            toks.done()?;
            self.config.rules.push(Rule {
                criteria,
                decision: Decision::Reject,
            });
            return Ok(());
        }
        let name = format!("classic-{n}");
        let mut local = LocalOptions::default();
        loop {
            if toks.eat("alias") {
                local.alias = Some(self.shaped_table(toks, "alias", Shape::Map)?);
            } else if toks.eat("virtual") {
                local.virtual_table = Some(if toks.at_kind(&TokKind::LBrace) {
                    let at = toks.here();
                    let entries = super::values::inline_table(toks, "virtual")?;
                    if matches!(entries, TableEntries::List(_)) {
                        return Err((
                            at.0,
                            at.1,
                            "a virtual table holds key-value pairs, such as { \"@\" => user }"
                                .into(),
                        ));
                    }
                    let table_name = format!("{name}-virtual");
                    if self.config.tables.contains_key(&table_name) {
                        return Err((
                            at.0,
                            at.1,
                            format!("table \"{table_name}\" is already defined"),
                        ));
                    }
                    let table = Table {
                        name: table_name.clone(),
                        source: TableSource::Inline,
                        entries,
                    };
                    self.config.tables.insert(table_name.clone(), table);
                    table_name
                } else {
                    self.shaped_table(toks, "virtual", Shape::Map)?
                });
            } else if toks.eat("userbase") {
                local.userbase = Some(self.shaped_table(toks, "userbase", Shape::Map)?);
            } else if toks.eat("expire") {
                local.ttl = Some(read_duration(toks, "expire")?);
            } else {
                break;
            }
        }
        let method = if toks.eat("deliver") {
            toks.expect("to", "deliver")?;
            if toks.eat("maildir") {
                let path = if toks.at_string() {
                    Some(toks.string("a path", "maildir")?)
                } else {
                    None
                };
                DeliveryMethod::Maildir { path, junk: false }
            } else if toks.eat("mbox") {
                DeliveryMethod::Mbox
            } else if toks.eat("mda") {
                DeliveryMethod::Mda {
                    command: toks.string("a command", "mda")?,
                }
            } else if toks.eat("lmtp") {
                DeliveryMethod::Lmtp {
                    dest: toks.string("a destination", "lmtp")?,
                    rcpt_to: false,
                }
            } else {
                return Err(
                    toks.expected("\"maildir\", \"mbox\", \"mda\" or \"lmtp\"", "deliver to")
                );
            }
        } else if toks.eat("relay") {
            DeliveryMethod::Relay(Box::new(self.classic_relay(toks)?))
        } else {
            return Err(toks.expected("\"deliver to\" or \"relay\"", "for"));
        };
        if toks.eat("expire") {
            local.ttl = Some(read_duration(toks, "expire")?);
        }
        toks.done()?;
        self.config
            .actions
            .insert(name.clone(), Action { method, local });
        self.config.rules.push(Rule {
            criteria,
            decision: Decision::Action(name),
        });
        Ok(())
    }

    fn classic_relay(&mut self, toks: &mut Toks<'_>) -> Result<RelayOptions, PErr> {
        let mut r = RelayOptions::default();
        if toks.eat("backup") {
            let mx = if toks.at_string() {
                Some(toks.string("a host name", "backup")?)
            } else {
                None
            };
            r.backup = Some(Backup { mx });
        }
        loop {
            if toks.eat("via") {
                let at = toks.here();
                let url = toks.string("a relay URL", "via")?;
                r.host = Some(relay_url(&classic_url(&url)).map_err(|m| (at.0, at.1, m))?);
            } else if toks.eat("auth") {
                r.auth = Some(self.shaped_table(toks, "auth", Shape::Map)?);
            } else if toks.eat("as") {
                r.mail_from = Some(toks.string("an address", "as")?);
            } else if toks.eat("tls") {
                r.tls = Some(RelayTls {
                    no_verify: !toks.eat("verify"),
                });
            } else if toks.eat("pki") {
                r.pki = Some(toks.string("a pki name", "pki")?);
            } else if toks.eat("hostname") {
                r.helo = Some(toks.string("a host name", "hostname")?);
            } else {
                break;
            }
        }
        Ok(r)
    }

    fn classic_table(&mut self, toks: &mut Toks<'_>, after: &str) -> Result<TableMatch, PErr> {
        let table = if toks.at_table() {
            TableRef::Named(self.declared_table(toks, after)?)
        } else if toks.at_kind(&TokKind::LBrace) {
            TableRef::Inline(super::values::inline_table(toks, after)?)
        } else {
            TableRef::literal(&toks.string("a value or a table \"<name>\"", after)?)
        };
        Ok(TableMatch {
            regex: false,
            table,
        })
    }

    /// Classic global options: `expire DELAY` and `max-message-size SIZE`.
    pub(crate) fn classic_global(&mut self, kw: &str, toks: &mut Toks<'_>) -> Result<(), PErr> {
        if kw == "expire" {
            self.config.options.queue.ttl = Some(read_duration(toks, "expire")?);
        } else {
            let at = toks.here();
            let v = raw(toks, "a size such as \"35M\"", kw)?;
            let n = size(&v).ok_or((
                at.0,
                at.1,
                format!("expected a size such as \"35M\" after \"{kw}\", found \"{v}\""),
            ))?;
            self.config.options.smtp.max_message_size = Some(n);
        }
        toks.done()
    }
}

/// Maps 5.x relay URL schemes (`tls://`, `ssl://`, `smtps+auth://`...) to modern ones.
fn classic_url(url: &str) -> String {
    match url.split_once("://") {
        Some((proto, rest)) => {
            let proto = proto.strip_suffix("+auth").unwrap_or(proto);
            let modern = match proto {
                "tls" => "smtp+tls",
                "ssl" | "secure" => "smtps",
                other => other,
            };
            format!("{modern}://{rest}")
        }
        None => url.to_string(),
    }
}

impl Config {
    /// The same configuration with actions renamed `action-1`, `action-2`... in the order
    /// rules first use them (unused actions follow, in name order), so that a classic file
    /// and the equivalent modern file compare equal whatever the action names.
    pub fn with_canonical_action_names(&self) -> Config {
        let mut order: Vec<String> = Vec::new();
        for rule in &self.rules {
            if let Decision::Action(a) = &rule.decision {
                if !order.contains(a) {
                    order.push(a.clone());
                }
            }
        }
        for name in self.actions.keys() {
            if !order.contains(name) {
                order.push(name.clone());
            }
        }
        let rename: BTreeMap<&String, String> = order
            .iter()
            .enumerate()
            .map(|(i, n)| (n, format!("action-{}", i.saturating_add(1))))
            .collect();
        let mut out = self.clone();
        out.actions = self
            .actions
            .iter()
            .map(|(n, a)| {
                (
                    rename.get(n).cloned().unwrap_or_else(|| n.clone()),
                    a.clone(),
                )
            })
            .collect();
        for rule in &mut out.rules {
            if let Decision::Action(a) = &mut rule.decision {
                if let Some(new) = rename.get(a) {
                    *a = new.clone();
                }
            }
        }
        out
    }
}
