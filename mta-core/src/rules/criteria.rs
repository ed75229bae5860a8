//! Criteria of match rules, compiled once and evaluated per recipient.

use std::net::IpAddr; // allow-impure: address values, no socket

use super::{EnvelopeFacts, LocalFacts, SessionFacts, Source};
use crate::config::{
    Config, CriterionKind, Decision, ForCriterion, FromCriterion, Rule, TableMatch,
};
use crate::table::pattern::{host_matches, split_address};
use crate::table::{Netmask, RegexList, Table};

/// Everything one evaluation looks at.
pub(super) struct Ctx<'a> {
    pub(super) session: &'a SessionFacts,
    pub(super) envelope: &'a EnvelopeFacts<'a>,
    pub(super) local: &'a LocalFacts,
    pub(super) delim: char,
}

/// The values a criterion compares with: a table, or regular expressions.
#[derive(Clone, Debug)]
enum Values {
    Table(Table),
    Regex(RegexList),
}

/// One criterion, ready to evaluate.
#[derive(Clone, Debug)]
enum Check {
    Always,
    FromLocal,
    FromSocket,
    FromSrc(Vec<Netmask>),
    FromSrcRegex(RegexList),
    Auth(Option<Values>),
    Rdns(Option<Values>),
    Helo(Values),
    Sender(Values),
    Recipient(Values),
    ForLocal,
    ForDomain(Values),
    Tag(Values),
    Tls,
}

/// A rule whose tables and expressions are compiled.
#[derive(Clone, Debug)]
pub(super) struct CompiledRule {
    checks: Vec<(bool, Check)>,
    pub(super) decision: Decision,
}

impl CompiledRule {
    /// Compiles one rule, adding the implicit `from local` / `for local` defaults.
    pub(super) fn compile(config: &Config, rule: &Rule) -> Result<CompiledRule, String> {
        let mut checks = Vec::with_capacity(rule.criteria.len().saturating_add(2));
        let (mut has_from, mut has_for) = (false, false);
        for criterion in &rule.criteria {
            let check = match &criterion.kind {
                CriterionKind::From(from) => {
                    has_from = true;
                    compile_from(config, from)?
                }
                CriterionKind::For(target) => {
                    has_for = true;
                    compile_for(config, target)?
                }
                CriterionKind::Auth(users) => {
                    Check::Auth(users.as_ref().map(|m| values(config, m)).transpose()?)
                }
                CriterionKind::Helo(m) => Check::Helo(values(config, m)?),
                CriterionKind::MailFrom(m) => Check::Sender(values(config, m)?),
                CriterionKind::RcptTo(m) => Check::Recipient(values(config, m)?),
                CriterionKind::Tag { regex: true, tag } => Check::Tag(Values::Regex(
                    RegexList::compile([tag.as_str()]).map_err(|e| e.to_string())?,
                )),
                CriterionKind::Tag { regex: false, tag } => Check::Tag(Values::Table(literal(tag))),
                CriterionKind::Tls => Check::Tls,
            };
            checks.push((criterion.negated, check));
        }
        if !has_from {
            checks.push((false, Check::FromLocal));
        }
        if !has_for {
            checks.push((false, Check::ForLocal));
        }
        Ok(CompiledRule {
            checks,
            decision: rule.decision.clone(),
        })
    }

    /// Whether every criterion holds (negated ones must not).
    pub(super) fn matches(&self, ctx: &Ctx<'_>) -> bool {
        self.checks
            .iter()
            .all(|(negated, check)| check.holds(ctx) != *negated)
    }
}

fn compile_from(config: &Config, from: &FromCriterion) -> Result<Check, String> {
    Ok(match from {
        FromCriterion::Any => Check::Always,
        FromCriterion::Local => Check::FromLocal,
        FromCriterion::Socket => Check::FromSocket,
        FromCriterion::Src(m) => match values(config, m)? {
            Values::Regex(re) => Check::FromSrcRegex(re),
            Values::Table(t) => Check::FromSrc(t.netmasks().map_err(|e| e.to_string())?),
        },
        FromCriterion::Auth(users) => {
            Check::Auth(users.as_ref().map(|m| values(config, m)).transpose()?)
        }
        FromCriterion::Rdns(names) => {
            Check::Rdns(names.as_ref().map(|m| values(config, m)).transpose()?)
        }
        FromCriterion::MailFrom(m) => Check::Sender(values(config, m)?),
    })
}

fn compile_for(config: &Config, target: &ForCriterion) -> Result<Check, String> {
    Ok(match target {
        ForCriterion::Any => Check::Always,
        ForCriterion::Local => Check::ForLocal,
        ForCriterion::Domain(m) => Check::ForDomain(values(config, m)?),
        ForCriterion::RcptTo(m) => Check::Recipient(values(config, m)?),
    })
}

/// The table a criterion names, or its expressions compiled when it says `regex`.
fn values(config: &Config, m: &TableMatch) -> Result<Values, String> {
    let table = config
        .table_for(&m.table)
        .ok_or_else(|| format!("unknown table {:?}", m.table))?;
    if m.regex {
        let list = RegexList::compile(table.entries.keys()).map_err(|e| e.to_string())?;
        Ok(Values::Regex(list))
    } else {
        Ok(Values::Table(table.into_owned()))
    }
}

fn literal(value: &str) -> Table {
    Table {
        name: String::new(),
        source: crate::table::TableSource::Inline,
        entries: crate::table::TableEntries::List(vec![value.to_string()]),
    }
}

/// How a value is compared with a plain table.
#[derive(Clone, Copy)]
enum Kind {
    /// Exact, ASCII case-insensitive (user names, tags).
    String,
    /// Host names with `*` wildcards.
    Domain,
    /// Addresses against mailaddr entries.
    Mailaddr,
}

impl Values {
    fn holds(&self, value: &str, kind: Kind, delim: char) -> bool {
        match (self, kind) {
            (Values::Regex(re), _) => re.is_match(value),
            (Values::Table(t), Kind::String) => t.entries.contains_key(value),
            (Values::Table(t), Kind::Domain) => t.contains_domain(value),
            (Values::Table(t), Kind::Mailaddr) => t.contains_mailaddr(value, delim),
        }
    }
}

impl Check {
    fn holds(&self, ctx: &Ctx<'_>) -> bool {
        let session = ctx.session;
        let (_, rcpt_domain) = split_address(ctx.envelope.recipient);
        match self {
            Check::Always => true,
            Check::FromLocal => match &session.source {
                Source::LocalSocket => true,
                Source::Network(ip) => is_local_address(ctx.local, *ip),
            },
            Check::FromSocket => session.source == Source::LocalSocket,
            Check::FromSrc(nets) => match &session.source {
                Source::Network(ip) => nets.iter().any(|n| n.contains(*ip)),
                Source::LocalSocket => false,
            },
            Check::FromSrcRegex(re) => match &session.source {
                Source::Network(ip) => re.is_match(&ip.to_canonical().to_string()),
                Source::LocalSocket => false,
            },
            Check::Auth(None) => session.auth_user.is_some(),
            Check::Auth(Some(v)) => session
                .auth_user
                .as_deref()
                .is_some_and(|u| v.holds(u, Kind::String, ctx.delim)),
            Check::Rdns(None) => session.rdns.is_some(),
            Check::Rdns(Some(v)) => session
                .rdns
                .as_deref()
                .is_some_and(|h| v.holds(h, Kind::Domain, ctx.delim)),
            Check::Helo(v) => session
                .helo
                .as_deref()
                .is_some_and(|h| v.holds(h, Kind::Domain, ctx.delim)),
            Check::Sender(v) => v.holds(ctx.envelope.sender, Kind::Mailaddr, ctx.delim),
            Check::Recipient(v) => v.holds(ctx.envelope.recipient, Kind::Mailaddr, ctx.delim),
            Check::ForLocal => match literal_ip(rcpt_domain) {
                Some(ip) => is_local_address(ctx.local, ip),
                None => rcpt_domain.is_empty() || is_local_domain(ctx.local, rcpt_domain),
            },
            Check::ForDomain(v) => v.holds(rcpt_domain, Kind::Domain, ctx.delim),
            Check::Tag(Values::Table(t)) => session
                .listener_tag
                .as_deref()
                .is_some_and(|tag| t.entries.keys().any(|k| k == tag)),
            Check::Tag(v) => session
                .listener_tag
                .as_deref()
                .is_some_and(|tag| v.holds(tag, Kind::String, ctx.delim)),
            Check::Tls => session.tls,
        }
    }
}

/// Loopback ranges and the machine's own interface addresses.
fn is_local_address(local: &LocalFacts, ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    ip.is_loopback() || local.addresses.iter().any(|a| a.to_canonical() == ip)
}

/// The address of an address-literal domain (`[192.0.2.1]`, `[IPv6:2001:db8::1]`,
/// RFC 5321 §4.1.3), which is local when the address is one of ours.
fn literal_ip(domain: &str) -> Option<IpAddr> {
    let inner = domain.strip_prefix('[')?.strip_suffix(']')?;
    let inner = inner
        .get(..5)
        .filter(|p| p.eq_ignore_ascii_case("IPv6:"))
        .map_or(inner, |_| inner.get(5..).unwrap_or(""));
    inner.parse().ok()
}

/// Whether `domain` is one of the local domains (wildcards allowed in the list).
pub(super) fn is_local_domain(local: &LocalFacts, domain: &str) -> bool {
    !domain.is_empty()
        && local
            .domains
            .iter()
            .any(|pattern| host_matches(domain, pattern))
}
