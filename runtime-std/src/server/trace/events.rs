//! Trace lines of the subsystems other than `smtp`, written where the runtime sees what
//! the engine and the relay agent decided: the engine's actions (`expand`, `rules`,
//! `scheduler`, `bounce`), the lookups it asks the runtime for (`lookup`), its counters
//! (`stat`) and the relay agent's router (`mta`). Each function is one call at its
//! place and costs one flag check when its subsystems are not traced.
//!
//! `rules` is told from the envelopes a message was committed with: the engine keeps the
//! index of the rule that matched to itself, so the rules are evaluated again from what
//! the envelope records, and the rule found is checked against the action the envelope
//! was given (a relay names its action, a local delivery its method); when they
//! disagree, every rule leading to such an action is named.

use std::collections::BTreeMap;

use mta_core::config::{Config, Decision, DeliveryMethod};
use mta_core::engine::{Action, Engine, EngineFacts, SessionId};
use mta_core::expand::{self, FileLookup, UserLookup};
use mta_core::queue::{self, DeliveryKind, Envelope, EnvelopeState, Failure};
use mta_core::routing;
use mta_core::rules::{EnvelopeFacts, Ruleset, SessionFacts, Source};
use mta_core::scheduler::Outcome;
use smtp_proto::client::RecipientResult;

use super::Subsystem;
use crate::server::log::Log;

#[cfg(test)]
mod tests;

/// The subsystems [`engine_action`] writes for.
const ENGINE: &[Subsystem] = &[
    Subsystem::Expand,
    Subsystem::Rules,
    Subsystem::Scheduler,
    Subsystem::Bounce,
];

/// Trace what one engine action shows: the expansion and the rule of each envelope of
/// a committed message, scheduling decisions (handed out, deferred, expired, failed,
/// removed) and bounces queued. Call it for every action drained, under the engine
/// lock, before the action is carried out.
pub fn engine_action(log: &Log, config: &Config, action: &Action) {
    if !log.traces_any(ENGINE) {
        return;
    }
    match action {
        Action::CommitMessage {
            session,
            msgid,
            envelopes,
        } => {
            for (_, record) in envelopes {
                if let Ok(envelope) = queue::decode(record) {
                    if log.traces(Subsystem::Expand) {
                        log.info(&expand_line(*session, &envelope));
                    }
                    if log.traces(Subsystem::Rules) {
                        log.info(&format!(
                            "rules: session {session}: msgid={msgid} from=<{}> rcpt=<{}>: {}",
                            envelope.sender.as_deref().unwrap_or(""),
                            envelope.original_recipient,
                            rules_matched(config, &envelope)
                        ));
                    }
                }
            }
        }
        Action::Deliver(envelope) => log.trace_with(Subsystem::Scheduler, || {
            format!(
                "scheduler: envelope {} scheduled: {} to <{}>, attempt {}",
                envelope.id,
                kind(&envelope.delivery),
                envelope.recipient,
                envelope.tries
            )
        }),
        Action::UpdateEnvelope(envelope) => {
            log.trace_with(Subsystem::Scheduler, || state_line(envelope));
        }
        Action::RemoveEnvelope(id) => log.trace_with(Subsystem::Scheduler, || {
            format!("scheduler: envelope {id} removed from the queue")
        }),
        Action::QueueBounce {
            report,
            msgid,
            envelopes,
        } => {
            log.trace_with(Subsystem::Bounce, || {
                let about: Vec<String> = report
                    .envelopes
                    .iter()
                    .map(|e| format!("<{}> ({})", e.recipient, error_text(e.last_error.as_ref())))
                    .collect();
                format!(
                    "bounce: {:?} report {msgid} on message {} to <{}> ({} envelope{}): {}",
                    report.kind,
                    report.message,
                    report.sender,
                    envelopes.len(),
                    if envelopes.len() == 1 { "" } else { "s" },
                    about.join(", ")
                )
            });
        }
        _ => {}
    }
}

fn expand_line(session: SessionId, envelope: &Envelope) -> String {
    format!(
        "expand: session {session}: envelope {} <{}> expanded to <{}>: {}",
        envelope.id,
        envelope.original_recipient,
        envelope.recipient,
        kind(&envelope.delivery)
    )
}

/// `local delivery as USER (METHOD)` or `relay (action "NAME")`.
fn kind(delivery: &DeliveryKind) -> String {
    match delivery {
        DeliveryKind::Local { user, method } => {
            let name = user.split(':').next().filter(|n| !n.is_empty());
            format!(
                "local delivery as {} ({method})",
                name.unwrap_or("the daemon's account")
            )
        }
        DeliveryKind::Relay { action } => format!("relay (action \"{action}\")"),
    }
}

/// The word a local delivery method's description starts with, for an action's method.
fn method_word(method: &DeliveryMethod) -> Option<&'static str> {
    match method {
        DeliveryMethod::Mbox => Some("mbox"),
        DeliveryMethod::Maildir { .. } => Some("maildir"),
        DeliveryMethod::Lmtp { .. } => Some("lmtp"),
        DeliveryMethod::Mda { .. } => Some("mda"),
        _ => None,
    }
}

/// The rule the engine's evaluation picks for `envelope`, evaluated again from what the
/// envelope records of its session (listener tag, client address, HELO, whether it
/// authenticated) with the local names the daemon starts with. TLS, the client's reverse
/// name and the authenticated user's name are not recorded: a rule testing them may be
/// missed, which [`rules_matched`] catches by checking the action.
fn evaluated_rule(config: &Config, envelope: &Envelope) -> Option<usize> {
    let mut local = EngineFacts::new(&crate::server::hostname(), 0).local;
    local.domains.push("localhost.localdomain".to_owned());
    let ruleset = Ruleset::new(config, local).ok()?;
    let source = match envelope.source.parse() {
        Ok(ip) => Source::Network(ip),
        Err(_) => Source::LocalSocket,
    };
    let mut session = SessionFacts::new(source);
    session.listener_tag = Some(envelope.listener.clone()).filter(|t| !t.is_empty());
    session.helo = Some(envelope.helo.clone()).filter(|h| !h.is_empty());
    session.auth_user = envelope.flags.authenticated.then(String::new);
    let sender = envelope.sender.as_deref().unwrap_or("");
    let facts = EnvelopeFacts {
        sender,
        recipient: &envelope.original_recipient,
    };
    ruleset.evaluate(&session, &facts).rule
}

/// The rule `envelope` matched, as `rule N (match ...)`: the one evaluation finds when
/// its action is the envelope's, else every rule whose action could have given the
/// envelope's delivery.
fn rules_matched(config: &Config, envelope: &Envelope) -> String {
    let delivery = &envelope.delivery;
    let could = |name: &str| match delivery {
        DeliveryKind::Relay { action } => action == name,
        DeliveryKind::Local { method, .. } => {
            // `file:` and `command:` come from an aliases table: any local action.
            let word = match method.split(':').next() {
                Some("maildir-junk") => Some("maildir"),
                Some("file" | "command") => None,
                other => other,
            };
            config
                .actions
                .get(name)
                .and_then(|a| method_word(&a.method))
                .is_some_and(|w| word.is_none_or(|word| word == w))
        }
    };
    let candidates: Vec<usize> = config
        .rules
        .iter()
        .enumerate()
        .filter(|(_, rule)| matches!(&rule.decision, Decision::Action(name) if could(name)))
        .map(|(n, _)| n)
        .collect();
    let chosen = evaluated_rule(config, envelope).filter(|n| candidates.contains(n));
    let shown = chosen.map_or(candidates, |n| vec![n]);
    let rules: Vec<String> = shown
        .iter()
        .filter_map(|&n| {
            let rule = config.rules.get(n)?;
            Some(format!(
                "rule {} ({})",
                n.saturating_add(1),
                rule.to_modern_string()
            ))
        })
        .collect();
    match rules.as_slice() {
        [] => format!("matched, {}", kind(delivery)),
        [one] => format!("matched {one}"),
        many => format!("matched one of {}", many.join(", ")),
    }
}

fn error_text(failure: Option<&Failure>) -> String {
    failure.map_or_else(
        || "no error".to_owned(),
        |f| format!("{} {}", f.status, f.text),
    )
}

/// A rewritten envelope, by its state: deferred, expired, failed.
fn state_line(envelope: &Envelope) -> String {
    let id = envelope.id;
    let error = error_text(envelope.last_error.as_ref());
    match envelope.state {
        EnvelopeState::Deferred { next } => format!(
            "scheduler: envelope {id} deferred after {} attempt{} until {}: {error}",
            envelope.tries,
            if envelope.tries == 1 { "" } else { "s" },
            next.rfc5322()
        ),
        EnvelopeState::Expired => format!("scheduler: envelope {id} expired: {error}"),
        EnvelopeState::Failed => format!("scheduler: envelope {id} failed for good: {error}"),
        EnvelopeState::Pending => format!("scheduler: envelope {id} pending"),
        EnvelopeState::InFlight => format!("scheduler: envelope {id} in flight"),
    }
}

/// Trace a lookup the expander asked for and its answer (`lookup`), and hand the answer
/// back: wrap the lookup's call with it.
pub fn lookup(log: &Log, question: &expand::Question, answer: expand::Answer) -> expand::Answer {
    if !log.traces(Subsystem::Lookup) {
        return answer;
    }
    let asked = match question {
        expand::Question::User { name } => format!("user \"{name}\""),
        expand::Question::Forward { user } => format!(".forward of \"{}\"", user.name),
        expand::Question::Include { path } => format!(":include: {path}"),
    };
    let found = match &answer {
        expand::Answer::User(UserLookup::Found {
            uid,
            gid,
            directory,
        }) => format!("found uid={uid} gid={gid} home={directory}"),
        expand::Answer::User(UserLookup::NotFound) => "not found".to_owned(),
        expand::Answer::File(FileLookup::Content(text)) => format!(
            "{} line{}",
            text.lines().count(),
            if text.lines().count() == 1 { "" } else { "s" }
        ),
        expand::Answer::File(FileLookup::Absent) => "absent".to_owned(),
        expand::Answer::User(UserLookup::TempFail) | expand::Answer::File(FileLookup::TempFail) => {
            "temporary failure".to_owned()
        }
    };
    log.info(&format!("lookup: {asked}: {found}"));
    answer
}

/// Trace an AUTH credentials check (`lookup`): whose, in which database, the result.
pub fn credentials(log: &Log, user: &str, table: bool, ok: bool) {
    log.trace_with(Subsystem::Lookup, || {
        format!(
            "lookup: credentials of \"{user}\" in {}: {}",
            if table {
                "the credentials table"
            } else {
                "the system accounts"
            },
            if ok { "match" } else { "no match" }
        )
    });
}

/// Trace the counters that changed since the last call (`stat`): call it after each
/// input the engine handled. The first call after `trace stat` only takes the
/// counters as they are (see [`Log::reset_stats`]).
pub fn stats(log: &Log, engine: &Engine) {
    if !log.traces(Subsystem::Stat) {
        return;
    }
    let now: BTreeMap<String, i64> = engine
        .stats()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    for line in log.stats_changed(now) {
        log.info(&line);
    }
}

/// The lines for counters that differ between `before` and `now`.
pub(crate) fn stat_lines(
    before: &BTreeMap<String, i64>,
    now: &BTreeMap<String, i64>,
) -> Vec<String> {
    now.iter()
        .filter_map(|(key, &value)| {
            let old = before.get(key).copied().unwrap_or(0);
            (old != value).then(|| {
                let change = value.saturating_sub(old);
                let verb = if change > 0 { "increment" } else { "decrement" };
                format!("stat: {verb} {key} by {}: {value}", change.unsigned_abs())
            })
        })
        .collect()
}

/// Trace what the relay agent's router decided (`mta`): resolutions, connections,
/// messages handed to a session, results per envelope with the remote reply.
pub fn relay_action(log: &Log, action: &routing::Action) {
    if !log.traces(Subsystem::Mta) {
        return;
    }
    let line = match action {
        routing::Action::Resolve(query) => format!("mta: resolving {}", query.name),
        routing::Action::Connect {
            conn,
            addr,
            host,
            src,
            ..
        } => match src {
            Some(src) => format!("mta: session {conn}: connecting to {host} [{addr}] from {src}"),
            None => format!("mta: session {conn}: connecting to {host} [{addr}]"),
        },
        routing::Action::SendMessage { conn, envelopes } => format!(
            "mta: session {conn}: sending a message to {} recipient{}",
            envelopes.len(),
            if envelopes.len() == 1 { "" } else { "s" }
        ),
        routing::Action::Quit { conn } => format!("mta: session {conn}: QUIT"),
        routing::Action::EnvelopeDelivered { ids } => {
            format!("mta: delivered: {}", ids_text(ids))
        }
        routing::Action::EnvelopeTempFail { ids, failure } => format!(
            "mta: temporary failure for {}: {}",
            ids_text(ids),
            error_text(Some(failure))
        ),
        routing::Action::EnvelopePermFail { ids, failure } => format!(
            "mta: permanent failure for {}: {}",
            ids_text(ids),
            error_text(Some(failure))
        ),
        routing::Action::Log(_) => return,
    };
    log.info(&line);
}

/// Trace what an outbound session reported to the router (`mta`): connected or not,
/// each recipient's reply, the end of the session.
pub fn relay_input(log: &Log, input: &routing::Input) {
    if !log.traces(Subsystem::Mta) {
        return;
    }
    let lines = match input {
        routing::Input::ConnectResult { conn, result } => vec![match result {
            Ok(()) => format!("mta: session {conn}: connected"),
            Err(e) => format!("mta: session {conn}: connection failed: {e}"),
        }],
        routing::Input::SessionOutcome { conn, results } => results
            .iter()
            .map(|(id, outcome)| {
                let result = match outcome {
                    Outcome::Delivered => "accepted".to_owned(),
                    Outcome::TempFail(f) => format!("deferred: {}", error_text(Some(f))),
                    Outcome::PermFail(f) => format!("refused: {}", error_text(Some(f))),
                };
                format!("mta: session {conn}: envelope {id} {result}")
            })
            .collect(),
        routing::Input::ConnectionClosed { conn, error } => vec![match error {
            None => format!("mta: session {conn}: closed"),
            Some(e) => format!("mta: session {conn}: closed: {e}"),
        }],
        _ => Vec::new(),
    };
    for line in lines {
        log.info(&line);
    }
}

/// Trace the replies an outbound session got for one message (`mta`), one line per
/// recipient with the server's reply, sent to the relay agent's log through `events`
/// (session threads hold no log: they read the process's trace set).
pub(crate) fn relay_replies(
    events: &std::sync::mpsc::Sender<crate::relay::Event>,
    conn: routing::ConnId,
    outcome: &smtp_proto::client::Outcome,
) {
    if !crate::server::log::traced_in_process(Subsystem::Mta) {
        return;
    }
    for (n, result) in outcome.recipients.iter().enumerate() {
        let (what, reply) = match result {
            RecipientResult::Delivered(r) => ("accepted", r),
            RecipientResult::TempFail(r) => ("deferred", r),
            RecipientResult::PermFail(r) => ("refused", r),
        };
        let text = reply.to_string();
        let text: Vec<&str> = text.lines().map(str::trim_end).collect();
        let _ = events.send(crate::relay::Event::Log(format!(
            "mta: session {conn}: recipient {} {what}: {}",
            n.saturating_add(1),
            text.join(" / ")
        )));
    }
}

fn ids_text(ids: &[queue::EnvelopeId]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
