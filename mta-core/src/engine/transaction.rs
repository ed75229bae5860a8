//! One mail transaction (MAIL FROM to the final dot): recipients checked by the rules and
//! expanded, the message opened at `DataStart`, its envelopes built and committed at the
//! end of data.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use smtp_proto::params::{self, MailParams, RcptParams};
use smtp_proto::reply::Reply;
use smtp_proto::server::{Answer, ReqId};
use smtp_proto::types::ForwardPath;

use super::input::{LookupId, SessionId};
use super::session::{answer, mailbox_text};
use super::{received, Action, Engine, LocalMethodSpec};
use crate::bounce::MAX_RECEIVED_HEADERS;
use crate::config::Decision;
use crate::expand::{self, Delivery, ExpandAction, ExpandRequest, Expander, QueryId, Refusal};
use crate::queue::{
    self, DeliveryKind, DsnParams, Envelope, EnvelopeFlags, EnvelopeId, EnvelopeState, MessageId,
    Notify, Ret,
};
use crate::rules::EnvelopeFacts;
use crate::scheduler::DEFAULT_TTL;
use crate::time::UnixTime;

/// Who waits for the answer to a lookup the engine asked.
#[derive(Debug)]
pub(super) enum LookupOwner {
    /// A recipient's expansion (RCPT TO `req` of `session`).
    Recipient {
        session: SessionId,
        req: ReqId,
        query: QueryId,
    },
    /// An AUTH password check; `known` is false when the user is not in the table and
    /// the check runs against a decoy only to take the same time.
    Password {
        session: SessionId,
        req: ReqId,
        user: String,
        known: bool,
    },
    /// The expansion of a report's recipient.
    Report { msgid: MessageId, query: QueryId },
}

impl LookupOwner {
    /// The session waiting, if any.
    pub(super) fn session(&self) -> Option<SessionId> {
        match self {
            LookupOwner::Recipient { session, .. } | LookupOwner::Password { session, .. } => {
                Some(*session)
            }
            LookupOwner::Report { .. } => None,
        }
    }
}

/// An accepted recipient and what its expansion gave.
#[derive(Debug)]
pub(super) struct Recipient {
    address: String,
    dsn: DsnParams,
    deliveries: Vec<Delivery>,
}

/// A recipient whose expansion waits for lookups.
#[derive(Debug)]
struct Expansion {
    expander: Expander,
    address: String,
    dsn: DsnParams,
}

/// The current transaction of a session.
#[derive(Debug)]
pub(super) struct Transaction {
    sender: Option<String>,
    ret: Option<Ret>,
    envid: Option<String>,
    recipients: Vec<Recipient>,
    expansions: BTreeMap<ReqId, Expansion>,
    /// A `DataStart` asked while expansions were still running.
    data_waiting: Option<ReqId>,
    /// The message opened at `DataStart`.
    message: Option<MessageId>,
}

impl Transaction {
    pub(super) fn new(sender: Option<String>, params: &MailParams) -> Transaction {
        Transaction {
            sender,
            ret: params.ret.map(|r| match r {
                params::Ret::Full => Ret::Full,
                params::Ret::Headers => Ret::Headers,
            }),
            envid: params
                .envid
                .as_ref()
                .map(|e| String::from_utf8_lossy(e).into_owned()),
            recipients: Vec::new(),
            expansions: BTreeMap::new(),
            data_waiting: None,
            message: None,
        }
    }

    /// Recipients accepted or being checked.
    fn recipient_count(&self) -> usize {
        self.recipients.len().saturating_add(self.expansions.len())
    }
}

/// A message whose commit was asked and not yet confirmed.
#[derive(Debug)]
pub(super) struct Commit {
    session: SessionId,
    req: ReqId,
    size: u64,
    sender: Option<String>,
    recipients: usize,
    proto: &'static str,
    envelopes: Vec<Envelope>,
}

fn dsn_params(txn: &Transaction, params: RcptParams) -> DsnParams {
    DsnParams {
        notify: params.notify.map(|n| Notify {
            success: n.success && !n.never,
            failure: n.failure && !n.never,
            delay: n.delay && !n.never,
        }),
        orcpt: params.orcpt.map(|o| {
            format!(
                "{};{}",
                String::from_utf8_lossy(&o.addr_type),
                String::from_utf8_lossy(&o.addr)
            )
        }),
        ret: txn.ret,
        envid: txn.envid.clone(),
    }
}

impl Engine {
    /// RCPT TO: limits, rules, then expansion.
    pub(super) fn rcpt_to(
        &mut self,
        sid: SessionId,
        req: ReqId,
        path: &ForwardPath,
        params: RcptParams,
        now: UnixTime,
    ) {
        let max_rcpt = usize::try_from(self.config.options.max_rcpt()).unwrap_or(usize::MAX);
        let Some(session) = self.sessions.get_mut(&sid) else {
            return;
        };
        let Some(txn) = session.txn.as_mut() else {
            self.reply(sid, req, answer(503, (5, 5, 1), "Need MAIL command first"));
            return;
        };
        if txn.message.is_some() {
            self.reply(sid, req, answer(503, (5, 5, 1), "Message already open"));
            return;
        }
        if txn.recipient_count() >= max_rcpt {
            self.reply(sid, req, answer(452, (4, 5, 3), "Too many recipients"));
            return;
        }
        let address = match path {
            ForwardPath::Postmaster => "postmaster".to_owned(),
            ForwardPath::Mailbox(m) => mailbox_text(m),
        };
        let sender = txn.sender.clone().unwrap_or_default();
        let verdict = self.ruleset.evaluate(
            &session.facts,
            &EnvelopeFacts {
                sender: &sender,
                recipient: &address,
            },
        );
        let Decision::Action(action) = verdict.decision else {
            let refusal = Refusal::not_authorized();
            self.refuse_recipient(sid, req, &address, &refusal);
            return;
        };
        let request = ExpandRequest {
            session: session.facts.clone(),
            sender,
            recipient: address.clone(),
            action,
        };
        let dsn = dsn_params(txn, params);
        let expander = Expander::new(Arc::clone(&self.config), Arc::clone(&self.ruleset), request);
        txn.expansions.insert(
            req,
            Expansion {
                expander,
                address,
                dsn,
            },
        );
        self.drive_expansion(sid, req, now);
    }

    fn refuse_recipient(&mut self, sid: SessionId, req: ReqId, address: &str, refusal: &Refusal) {
        let reply = refusal.to_reply();
        self.log(format!(
            "smtp-in: session {sid}: failed-command command=\"RCPT TO:<{address}>\" result=\"{}\"",
            super::log::reply_text(&reply)
        ));
        self.reply(sid, req, reply.into());
    }

    /// Drains a recipient's expander: its questions leave as lookups; its result answers
    /// the RCPT.
    fn drive_expansion(&mut self, sid: SessionId, req: ReqId, now: UnixTime) {
        loop {
            let Some(exp) = self
                .sessions
                .get_mut(&sid)
                .and_then(|s| s.txn.as_mut())
                .and_then(|t| t.expansions.get_mut(&req))
            else {
                return;
            };
            match exp.expander.poll_action() {
                None => return,
                Some(ExpandAction::Ask(query, question)) => {
                    let id = self.next_lookup_id();
                    self.lookups.insert(
                        id,
                        LookupOwner::Recipient {
                            session: sid,
                            req,
                            query,
                        },
                    );
                    self.actions.push_back(Action::Lookup {
                        id,
                        session: sid,
                        question,
                    });
                }
                Some(ExpandAction::Done(result)) => {
                    self.expansion_done(sid, req, result, now);
                    return;
                }
            }
        }
    }

    fn expansion_done(
        &mut self,
        sid: SessionId,
        req: ReqId,
        result: Result<Vec<Delivery>, Refusal>,
        now: UnixTime,
    ) {
        let Some(txn) = self.sessions.get_mut(&sid).and_then(|s| s.txn.as_mut()) else {
            return;
        };
        let Some(exp) = txn.expansions.remove(&req) else {
            return;
        };
        match result {
            Ok(deliveries) if !deliveries.is_empty() => {
                txn.recipients.push(Recipient {
                    address: exp.address,
                    dsn: exp.dsn,
                    deliveries,
                });
                self.reply(sid, req, answer(250, (2, 1, 5), "Recipient ok"));
            }
            Ok(_) => self.refuse_recipient(sid, req, &exp.address, &Refusal::unknown_user()),
            Err(refusal) => self.refuse_recipient(sid, req, &exp.address, &refusal),
        }
        let waiting = self
            .sessions
            .get_mut(&sid)
            .and_then(|s| s.txn.as_mut())
            .filter(|t| t.expansions.is_empty())
            .and_then(|t| t.data_waiting.take());
        if let Some(data_req) = waiting {
            self.start_data(sid, data_req, now);
        }
    }

    /// The runtime's answer to a lookup.
    pub(super) fn lookup_answer(&mut self, id: LookupId, answer: expand::Answer, now: UnixTime) {
        match self.lookups.remove(&id) {
            Some(LookupOwner::Recipient {
                session,
                req,
                query,
            }) => {
                let Some(exp) = self
                    .sessions
                    .get_mut(&session)
                    .and_then(|s| s.txn.as_mut())
                    .and_then(|t| t.expansions.get_mut(&req))
                else {
                    return;
                };
                if exp.expander.handle(query, answer).is_ok() {
                    self.drive_expansion(session, req, now);
                } else {
                    // An answer of the wrong kind: the expansion cannot go on, and the
                    // RCPT must still be answered.
                    self.expansion_done(session, req, Err(Refusal::temp_failure()), now);
                }
            }
            Some(LookupOwner::Report { msgid, query }) => {
                self.report_lookup_answer(msgid, query, answer, now)
            }
            Some(owner @ LookupOwner::Password { .. }) => {
                // Not an answer to this lookup: keep waiting for the right one.
                self.lookups.insert(id, owner);
            }
            None => {}
        }
    }

    /// DATA or the first BDAT: wait for running expansions, then open the message.
    pub(super) fn data_start(&mut self, sid: SessionId, req: ReqId, now: UnixTime) {
        let Some(txn) = self.sessions.get_mut(&sid).and_then(|s| s.txn.as_mut()) else {
            self.reply(sid, req, answer(503, (5, 5, 1), "Need MAIL command first"));
            return;
        };
        if !txn.expansions.is_empty() && txn.data_waiting.is_none() {
            txn.data_waiting = Some(req);
            return;
        }
        self.start_data(sid, req, now);
    }

    fn start_data(&mut self, sid: SessionId, req: ReqId, now: UnixTime) {
        let hostname = self.hostname_of(sid);
        let msgid = self.fresh_message_id();
        let Some(session) = self.sessions.get(&sid) else {
            return;
        };
        let Some(txn) = session.txn.as_ref() else {
            return;
        };
        if txn.recipients.is_empty() {
            self.reply(sid, req, answer(554, (5, 5, 1), "No valid recipients"));
            return;
        }
        if txn.message.is_some() {
            self.reply(sid, req, answer(503, (5, 5, 1), "Message already open"));
            return;
        }
        let rcpt = match txn.recipients.as_slice() {
            [only] => Some(only.address.clone()),
            _ => None,
        };
        let header = received::compose(
            &self.config,
            session,
            &hostname,
            msgid,
            rcpt.as_deref(),
            now,
        );
        if let Some(txn) = self.sessions.get_mut(&sid).and_then(|s| s.txn.as_mut()) {
            txn.message = Some(msgid);
        }
        self.incoming.insert(msgid, sid);
        self.actions.push_back(Action::OpenMessage {
            session: sid,
            msgid,
            header: Bytes::from(header),
        });
        self.reply(
            sid,
            req,
            // 354 carries no enhanced status (RFC 2034 §3: only 2xx, 4xx, 5xx do).
            Answer {
                reply: Reply::new(354, None, "Enter mail, end with \".\" on a line by itself"),
            },
        );
    }

    /// The body is complete: check it, build its envelopes and ask for the commit.
    pub(super) fn end_of_message(
        &mut self,
        sid: SessionId,
        req: ReqId,
        size: u64,
        received_headers: usize,
        now: UnixTime,
    ) {
        let max_size = self.config.options.max_message_size();
        let Some(session) = self.sessions.get_mut(&sid) else {
            return;
        };
        let Some(txn) = session.txn.take() else {
            self.reply(sid, req, answer(503, (5, 5, 1), "No message in progress"));
            return;
        };
        let Some(msgid) = txn.message else {
            session.txn = Some(txn);
            self.reply(sid, req, answer(503, (5, 5, 1), "No message in progress"));
            return;
        };
        let proto = received::protocol(session);
        // With the message open no recipient is being checked; should one be, it is
        // answered rather than forgotten.
        self.answer_leftovers(sid, &txn);
        let refusal = if received_headers > MAX_RECEIVED_HEADERS {
            Some(answer(554, (5, 4, 6), "Too many hops, mail loop detected"))
        } else if size > max_size {
            Some(answer(552, (5, 3, 4), "Message too large"))
        } else {
            None
        };
        if let Some(refusal) = refusal {
            self.incoming.remove(&msgid);
            self.actions.push_back(Action::AbortMessage {
                session: sid,
                msgid,
            });
            if received_headers > MAX_RECEIVED_HEADERS {
                self.stats.add("smtp.loop", 1);
            }
            self.log(format!(
                "smtp-in: session {sid}: message refused: msgid={msgid} result=\"{}\"",
                super::log::reply_text(&refusal.reply)
            ));
            self.reply(sid, req, refusal);
            return;
        }
        let envelopes = self.build_envelopes(sid, msgid, &txn, now);
        let records = envelopes.iter().map(|e| (e.id, queue::encode(e))).collect();
        self.incoming.remove(&msgid);
        let incoming = super::delivery::count(&envelopes);
        self.stats.add("scheduler.envelope.incoming", incoming);
        self.commits.insert(
            msgid,
            Commit {
                session: sid,
                req,
                size,
                sender: txn.sender.clone(),
                recipients: txn.recipients.len(),
                proto,
                envelopes,
            },
        );
        self.actions.push_back(Action::CommitMessage {
            session: sid,
            msgid,
            envelopes: records,
        });
    }

    fn build_envelopes(
        &mut self,
        sid: SessionId,
        msgid: MessageId,
        txn: &Transaction,
        now: UnixTime,
    ) -> Vec<Envelope> {
        let Some(session) = self.sessions.get(&sid) else {
            return Vec::new();
        };
        let listener = session.facts.listener_tag.clone().unwrap_or_default();
        let helo = session.facts.helo.clone().unwrap_or_default();
        let source = session.source_text();
        let authenticated = session.facts.auth_user.is_some();
        let mut envelopes: Vec<Envelope> = Vec::new();
        let mut ids = BTreeSet::new();
        // One delivery per mailbox (or relayed address) per message, however many
        // recipients lead to it, as OpenSMTPD expands a whole transaction as one tree.
        let mut seen = HashSet::new();
        for rcpt in &txn.recipients {
            for delivery in &rcpt.deliveries {
                let (action, recipient, kind) = delivery_kind(delivery);
                let key = match &kind {
                    DeliveryKind::Local { .. } => (kind.clone(), String::new()),
                    DeliveryKind::Relay { .. } => (kind.clone(), recipient.to_ascii_lowercase()),
                };
                if !seen.insert(key) {
                    continue;
                }
                let ttl = self
                    .config
                    .actions
                    .get(action)
                    .and_then(|a| a.local.ttl)
                    .or(self.config.options.queue.ttl)
                    .unwrap_or(DEFAULT_TTL);
                let id = loop {
                    let id = EnvelopeId::generate(msgid, &mut self.rng);
                    if ids.insert(id) {
                        break id;
                    }
                };
                envelopes.push(Envelope {
                    id,
                    sender: txn.sender.clone(),
                    original_recipient: rcpt.address.clone(),
                    recipient,
                    delivery: kind,
                    dsn: rcpt.dsn.clone(),
                    created: now,
                    expires: now.saturating_add(ttl),
                    tries: 0,
                    last_try: None,
                    last_error: None,
                    warnings_sent: 0,
                    state: EnvelopeState::Pending,
                    flags: EnvelopeFlags {
                        bounce: false,
                        authenticated,
                    },
                    listener: listener.clone(),
                    helo: helo.clone(),
                    source: source.clone(),
                });
            }
        }
        envelopes
    }

    /// The session dropped the body: throw the message away, end the transaction.
    pub(super) fn body_aborted(&mut self, sid: SessionId) {
        let Some(txn) = self.sessions.get_mut(&sid).and_then(|s| s.txn.take()) else {
            return;
        };
        self.drop_transaction(sid, txn);
    }

    /// Ends a transaction early (RSET, new MAIL, HELO, body aborted, session closed): its
    /// open message is aborted and its outstanding lookups forgotten. Pending RCPT and
    /// DATA questions are answered 451 if the session is still open, so none is left
    /// unanswered.
    pub(super) fn drop_transaction(&mut self, sid: SessionId, txn: Transaction) {
        if let Some(msgid) = txn.message {
            self.incoming.remove(&msgid);
            self.actions.push_back(Action::AbortMessage {
                session: sid,
                msgid,
            });
        }
        self.answer_leftovers(sid, &txn);
    }

    /// Answers 451 to the RCPT and DATA questions of a transaction that ends while they
    /// wait (if the session is still open), and forgets their lookups.
    fn answer_leftovers(&mut self, sid: SessionId, txn: &Transaction) {
        let open = self.sessions.contains_key(&sid);
        let pending: Vec<ReqId> = txn
            .expansions
            .keys()
            .copied()
            .chain(txn.data_waiting)
            .collect();
        self.lookups.retain(|_, owner| {
            !matches!(owner, LookupOwner::Recipient { session, req, .. }
                if *session == sid && pending.contains(req))
        });
        if open {
            for req in pending {
                self.reply(sid, req, answer(451, (4, 3, 0), "Transaction aborted"));
            }
        }
    }

    /// The runtime made the message durable (or could not).
    pub(super) fn committed(
        &mut self,
        msgid: MessageId,
        result: Result<(), String>,
        now: UnixTime,
    ) {
        let Some(commit) = self.commits.remove(&msgid) else {
            return;
        };
        let incoming = super::delivery::count(&commit.envelopes);
        self.stats.add("scheduler.envelope.incoming", -incoming);
        let open = self.sessions.contains_key(&commit.session);
        match result {
            Ok(()) => {
                self.log(format!(
                    "smtp-in: session {}: message accepted: msgid={msgid} from=<{}> size={} nrcpt={} proto={}",
                    commit.session,
                    commit.sender.as_deref().unwrap_or(""),
                    commit.size,
                    commit.recipients,
                    commit.proto
                ));
                self.stats.add("smtp.message", 1);
                if open {
                    self.reply(
                        commit.session,
                        commit.req,
                        answer(
                            250,
                            (2, 0, 0),
                            format!("{msgid} Message accepted for delivery"),
                        ),
                    );
                }
                for envelope in commit.envelopes {
                    self.queue_envelope(envelope, now);
                }
            }
            Err(reason) => {
                self.log(format!(
                    "smtp-in: session {}: message not queued: msgid={msgid} reason=\"{reason}\"",
                    commit.session
                ));
                if open {
                    self.reply(
                        commit.session,
                        commit.req,
                        answer(451, (4, 3, 0), "Temporary failure, message not queued"),
                    );
                }
            }
        }
    }
}

/// The action name, the delivery address and the queue's delivery kind of an expansion
/// result.
fn delivery_kind(delivery: &Delivery) -> (&str, String, DeliveryKind) {
    match delivery {
        Delivery::Local(local) => {
            let spec = LocalMethodSpec {
                user: local.user.clone(),
                method: local.method.clone(),
            };
            let (user, method) = spec.format();
            (
                &local.action,
                local.dest.clone(),
                DeliveryKind::Local { user, method },
            )
        }
        Delivery::Relay { action, address } => (
            action,
            address.clone(),
            DeliveryKind::Relay {
                action: action.clone(),
            },
        ),
    }
}
