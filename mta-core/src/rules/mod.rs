//! Rule evaluation: which `match` rule applies to a session and an envelope
//! (smtpd.conf(5) `match ... action NAME | reject`).
//!
//! Rules are tried in file order and the first whose criteria all hold wins; an envelope
//! that no rule matches is rejected. As in OpenSMTPD the decision is taken per recipient,
//! at RCPT TO: MAIL FROM alone is never refused by the rules. A rule without any `from`
//! criterion behaves as `from local`, and one without any `for` criterion as `for local`,
//! the defaults of smtpd.conf(5).
//!
//! [`Ruleset::new`] compiles the tables and regular expressions of every rule once, so
//! evaluation does no parsing and cannot fail.

mod criteria;

#[cfg(test)]
mod tests;

use std::net::IpAddr; // allow-impure: address values, no socket

use crate::config::{Config, Decision};
use criteria::{CompiledRule, Ctx};

/// Where a session comes from.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Source {
    /// A network client at this address.
    Network(IpAddr),
    /// The local enqueuer (`listen on socket`, sendmail(8) and mail(1)).
    LocalSocket,
}

/// What is known about a session when a recipient is checked.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SessionFacts {
    /// The `tag` of the listener that accepted the session.
    pub listener_tag: Option<String>,
    /// The client.
    pub source: Source,
    /// The client's reverse DNS name, when it has one.
    pub rdns: Option<String>,
    /// The user the session authenticated as (RFC 4954), if any.
    pub auth_user: Option<String>,
    /// The HELO/EHLO name, if given.
    pub helo: Option<String>,
    /// Whether the session is encrypted (STARTTLS done or SMTPS).
    pub tls: bool,
}

impl SessionFacts {
    /// A session from `source` with nothing else known yet.
    pub fn new(source: Source) -> Self {
        SessionFacts {
            listener_tag: None,
            source,
            rdns: None,
            auth_user: None,
            helo: None,
            tls: false,
        }
    }
}

/// The machine's own names and addresses: what `for local` and `from local` mean.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct LocalFacts {
    /// Local domains (the host name, `localhost`, names of the listeners...); entries may
    /// hold `*` wildcards like a domain table.
    pub domains: Vec<String>,
    /// Addresses of the local interfaces, besides the loopback ranges which always count.
    pub addresses: Vec<IpAddr>,
}

/// The envelope being checked: the sender of MAIL FROM and one recipient of RCPT TO.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct EnvelopeFacts<'a> {
    /// The sender address, empty for the null sender `<>`.
    pub sender: &'a str,
    /// The recipient address; `postmaster` alone for `<Postmaster>` without a domain.
    pub recipient: &'a str,
}

/// The outcome of rule evaluation for one recipient.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Verdict {
    /// Index in [`Config::rules`] of the rule that matched; `None` when none did.
    pub rule: Option<usize>,
    /// What to do: an action name, or reject (also when no rule matched).
    pub decision: Decision,
}

/// A configuration that cannot be turned into a ruleset.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("rule {rule}: {message}")]
pub struct RuleError {
    /// The index of the rule in [`Config::rules`] (0-based).
    pub rule: usize,
    /// What is wrong: an unknown table, an invalid expression or network address.
    pub message: String,
}

/// The compiled match rules of a configuration.
#[derive(Clone, Debug)]
pub struct Ruleset {
    rules: Vec<CompiledRule>,
    local: LocalFacts,
    sub_addr_delim: char,
}

impl Ruleset {
    /// Compiles the rules of `config`, with the machine's local names and addresses.
    ///
    /// # Errors
    /// [`RuleError`] for a rule naming an undeclared table, holding an invalid regular
    /// expression, or a `from src` entry that is no address or network.
    pub fn new(config: &Config, local: LocalFacts) -> Result<Ruleset, RuleError> {
        let rules = config
            .rules
            .iter()
            .enumerate()
            .map(|(index, rule)| {
                CompiledRule::compile(config, rule).map_err(|message| RuleError {
                    rule: index,
                    message,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Ruleset {
            rules,
            local,
            sub_addr_delim: config.options.sub_addr_delim(),
        })
    }

    /// The first rule matching this session and envelope, or a rejection when none does.
    pub fn evaluate(&self, session: &SessionFacts, envelope: &EnvelopeFacts<'_>) -> Verdict {
        let ctx = Ctx {
            session,
            envelope,
            local: &self.local,
            delim: self.sub_addr_delim,
        };
        self.rules
            .iter()
            .enumerate()
            .find(|(_, rule)| rule.matches(&ctx))
            .map(|(index, rule)| Verdict {
                rule: Some(index),
                decision: rule.decision.clone(),
            })
            .unwrap_or(Verdict {
                rule: None,
                decision: Decision::Reject,
            })
    }

    /// Whether `domain` is one of the machine's local domains (`for local`).
    pub fn is_local_domain(&self, domain: &str) -> bool {
        criteria::is_local_domain(&self.local, domain)
    }

    /// How many rules there are.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there is no rule at all (every recipient is then rejected).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}
