//! One server session as the engine sees it, and the answers to its greeting, sender,
//! AUTH, VRFY and EXPN questions.

use bytes::Bytes;
use smtp_proto::params::MailParams;
use smtp_proto::reply::{EnhancedStatus, Reply};
use smtp_proto::server::{Answer, Question, ReqId};
use smtp_proto::types::{Host, Mailbox, ReversePath};

use super::input::{PeerAddr, SessionId, SessionInfo};
use super::transaction::{LookupOwner, Transaction};
use super::{Action, Engine};
use crate::config::{Config, Listener, ListenerAuth};
use crate::rules::{SessionFacts, Source};
use crate::time::UnixTime;

/// Failed AUTH attempts a session may make; the last one is answered `421 4.7.0` and the
/// session closes (RFC 4954 §4 lets a server limit attempts; OpenSMTPD allows few).
pub(super) const MAX_AUTH_FAILURES: u32 = 3;

/// Builds an answer from a code, an enhanced status and a text.
pub(super) fn answer(code: u16, status: (u8, u16, u16), text: impl Into<Bytes>) -> Answer {
    let (class, subject, detail) = status;
    Answer {
        reply: Reply::new(
            code,
            Some(EnhancedStatus::new(class, subject, detail)),
            text,
        ),
    }
}

/// `local@host` of a mailbox, as text (invalid UTF-8 replaced).
pub(super) fn mailbox_text(mailbox: &Mailbox) -> String {
    let host = match mailbox.host() {
        Host::Domain(d) => String::from_utf8_lossy(d.as_bytes()).into_owned(),
        Host::Literal(l) => String::from_utf8_lossy(l.as_bytes()).into_owned(),
    };
    format!("{}@{}", String::from_utf8_lossy(mailbox.local_part()), host)
}

/// A session's state in the engine.
#[derive(Debug)]
pub(super) struct Session {
    /// What the runtime said about the connection.
    pub(super) info: SessionInfo,
    /// What the rules see.
    pub(super) facts: SessionFacts,
    /// The listener's name for itself (banner, `Received: by`).
    pub(super) hostname: Option<String>,
    /// EHLO (true) or HELO (false), once greeted.
    pub(super) esmtp: bool,
    /// TLS protocol and cipher, once known.
    pub(super) tls: Option<(String, String)>,
    /// Transactions started (MAIL accepted) in this session.
    pub(super) mails: u64,
    /// AUTH attempts refused so far.
    pub(super) auth_failures: u32,
    /// The current transaction.
    pub(super) txn: Option<Transaction>,
}

impl Session {
    pub(super) fn new(config: &Config, info: SessionInfo) -> Session {
        let source = match info.peer {
            PeerAddr::Inet(addr) => Source::Network(addr.ip()),
            PeerAddr::Local => Source::LocalSocket,
        };
        let mut facts = SessionFacts::new(source);
        facts.rdns = info.rdns.clone();
        facts.tls = info.tls;
        let listener = listener_of(config, &info);
        facts.listener_tag = match listener {
            Some(l) => l.tag.clone(),
            None => config.socket_listener.as_ref().and_then(|s| s.tag.clone()),
        };
        // `hostnames <table>` names the host by the local address the client reached;
        // `hostname NAME` names it for the whole listener.
        let by_address = listener
            .and_then(|l| l.hostnames.as_ref())
            .and_then(|name| config.tables.get(name))
            .zip(info.local)
            .and_then(|(table, local)| table.hostname_for(local.ip()).map(str::to_owned));
        let hostname = by_address.or_else(|| listener.and_then(|l| l.hostname.clone()));
        let tls = info.tls.then(|| (String::new(), String::new()));
        Session {
            info,
            facts,
            hostname,
            esmtp: false,
            tls,
            mails: 0,
            auth_failures: 0,
            txn: None,
        }
    }

    /// The client's address as text: the IP, or `local` for the enqueuer socket.
    pub(super) fn source_text(&self) -> String {
        match self.info.peer {
            PeerAddr::Inet(addr) => addr.ip().to_string(),
            PeerAddr::Local => "local".to_owned(),
        }
    }
}

/// The listener a session arrived on (`None` for the local socket or a bad index).
pub(super) fn listener_of<'a>(config: &'a Config, info: &SessionInfo) -> Option<&'a Listener> {
    info.listener.and_then(|i| config.listeners.get(i))
}

impl Engine {
    /// Dispatches one session question.
    pub(super) fn question(
        &mut self,
        sid: SessionId,
        req: ReqId,
        question: Question,
        now: UnixTime,
    ) {
        if !self.sessions.contains_key(&sid) {
            return;
        }
        match question {
            Question::Helo { esmtp, identity } => self.helo(sid, req, esmtp, &identity),
            Question::MailFrom { path, params } => self.mail_from(sid, req, &path, &params),
            Question::RcptTo { path, params } => self.rcpt_to(sid, req, &path, params, now),
            Question::DataStart { .. } => self.data_start(sid, req, now),
            Question::EndOfMessage { size } => self.end_of_message(sid, req, size, 0, now),
            Question::Auth {
                authcid, password, ..
            } => self.auth(sid, req, &authcid, password),
            Question::Vrfy(_) => self.reply(
                sid,
                req,
                answer(252, (2, 5, 2), "Cannot VRFY user, but will accept message"),
            ),
            Question::Expn(_) => {
                self.reply(sid, req, answer(502, (5, 5, 1), "Command not implemented"))
            }
        }
    }

    /// Queues an answer to a session.
    pub(super) fn reply(&mut self, session: SessionId, req: ReqId, answer: Answer) {
        self.actions.push_back(Action::Answer {
            session,
            req,
            answer,
        });
    }

    /// The host name a session's listener gives.
    pub(super) fn hostname_of(&self, sid: SessionId) -> String {
        self.sessions
            .get(&sid)
            .and_then(|s| s.hostname.clone())
            .unwrap_or_else(|| self.facts.hostname.clone())
    }

    fn helo(&mut self, sid: SessionId, req: ReqId, esmtp: bool, identity: &Host) {
        let hostname = self.hostname_of(sid);
        let Some(session) = self.sessions.get_mut(&sid) else {
            return;
        };
        let name = String::from_utf8_lossy(identity.as_bytes()).into_owned();
        session.esmtp = esmtp;
        session.facts.helo = Some(name.clone());
        // A new greeting resets the transaction (RFC 5321 §4.1.4).
        let aborted = session.txn.take();
        let source = session.source_text();
        if let Some(txn) = aborted {
            self.drop_transaction(sid, txn);
        }
        let text = format!("{hostname} Hello {name} [{source}], pleased to meet you");
        self.reply(
            sid,
            req,
            Answer {
                reply: Reply::new(250, None, text),
            },
        );
    }

    fn mail_from(&mut self, sid: SessionId, req: ReqId, path: &ReversePath, params: &MailParams) {
        let config = self.config.clone();
        let Some(session) = self.sessions.get_mut(&sid) else {
            return;
        };
        let listener = listener_of(&config, &session.info);
        let sender = path.mailbox().map(mailbox_text);
        let verdict = if self.spool_full {
            Err(answer(452, (4, 3, 1), "Insufficient system storage"))
        } else if listener
            .and_then(|l| l.auth.as_ref())
            .is_some_and(|a| !a.optional)
            && session.facts.auth_user.is_none()
        {
            Err(answer(530, (5, 7, 0), "Must issue an AUTH command first"))
        } else if session.mails >= config.options.max_mails() {
            Err(answer(452, (4, 5, 3), "Too many messages in this session"))
        } else if params
            .size
            .is_some_and(|size| size > config.options.max_message_size())
        {
            Err(answer(552, (5, 3, 4), "Message too large"))
        } else if !sender_allowed(&config, listener, session, sender.as_deref()) {
            Err(answer(550, (5, 7, 1), "Sender not allowed for this user"))
        } else {
            Ok(())
        };
        let reply = match verdict {
            Ok(()) => {
                session.mails = session.mails.saturating_add(1);
                let previous = session.txn.replace(Transaction::new(sender, params));
                if let Some(txn) = previous {
                    self.drop_transaction(sid, txn);
                }
                answer(250, (2, 0, 0), "Ok")
            }
            Err(refusal) => refusal,
        };
        self.reply(sid, req, reply);
    }

    fn auth(&mut self, sid: SessionId, req: ReqId, authcid: &[u8], password: Bytes) {
        let config = self.config.clone();
        let Some(session) = self.sessions.get(&sid) else {
            return;
        };
        let Some(ListenerAuth { table, .. }) =
            listener_of(&config, &session.info).and_then(|l| l.auth.clone())
        else {
            self.reply(sid, req, answer(454, (4, 7, 0), "AUTH not available"));
            return;
        };
        let user = String::from_utf8_lossy(authcid).into_owned();
        // A user the table does not know is checked against a decoy all the same, so the
        // refusal takes as long as a wrong password's; it is refused whatever the check
        // says. (Without a table the runtime checks system accounts and does the same.)
        let (hash, known) = match table {
            Some(name) => {
                let table = config.tables.get(&name);
                match table.and_then(|t| t.password_hash(&user)) {
                    Some(hash) => (Some(hash.to_owned()), true),
                    None => (Some(super::decoy::decoy_hash(table)), false),
                }
            }
            None => (None, true),
        };
        let id = self.next_lookup_id();
        self.lookups.insert(
            id,
            LookupOwner::Password {
                session: sid,
                req,
                user: user.clone(),
                known,
            },
        );
        self.actions.push_back(Action::CheckPassword {
            id,
            user,
            hash,
            password,
        });
    }

    /// Refuses an AUTH with `535 5.7.8`; the last allowed failure gets `421 4.7.0`, which
    /// the runtime writes and then closes the connection.
    fn auth_failed(&mut self, sid: SessionId, req: ReqId, user: &str) {
        self.log(format!(
            "smtp-in: session {sid}: authentication user={user} result=permfail"
        ));
        let failures = self.sessions.get_mut(&sid).map_or(0, |s| {
            s.auth_failures = s.auth_failures.saturating_add(1);
            s.auth_failures
        });
        let refusal = if failures >= MAX_AUTH_FAILURES {
            let hostname = self.hostname_of(sid);
            self.log(format!(
                "smtp-in: session {sid}: too many authentication failures, closing"
            ));
            answer(
                421,
                (4, 7, 0),
                format!("{hostname} Too many authentication failures, closing connection"),
            )
        } else {
            answer(535, (5, 7, 8), "Authentication failed")
        };
        self.reply(sid, req, refusal);
    }

    /// The runtime's verdict on an AUTH password.
    pub(super) fn password_checked(&mut self, id: super::LookupId, ok: bool) {
        let Some(LookupOwner::Password {
            session,
            req,
            user,
            known,
        }) = self.lookups.remove(&id)
        else {
            return;
        };
        let Some(s) = self.sessions.get_mut(&session) else {
            return;
        };
        if ok && known {
            s.facts.auth_user = Some(user.clone());
            self.log(format!(
                "smtp-in: session {session}: authentication user={user} result=ok"
            ));
            self.reply(
                session,
                req,
                answer(235, (2, 0, 0), "Authentication succeeded"),
            );
        } else {
            self.auth_failed(session, req, &user);
        }
    }

    /// STARTTLS finished: later `Received:` headers say ESMTPS and name the cipher.
    pub(super) fn session_tls(&mut self, sid: SessionId, protocol: String, cipher: String) {
        if let Some(session) = self.sessions.get_mut(&sid) {
            session.facts.tls = true;
            // The session restarts after STARTTLS (RFC 3207 §4.2): greet again.
            session.facts.helo = None;
            let line =
                format!("smtp-in: session {sid}: STARTTLS protocol={protocol} cipher={cipher}");
            session.tls = Some((protocol, cipher));
            // smtps sessions (TLS from the first byte) count apart, as in OpenSMTPD.
            let smtps = session.info.tls;
            // The session forgets any transaction at STARTTLS (RFC 3207 §4.2); so do we.
            let txn = session.txn.take();
            self.log(line);
            if let Some(txn) = txn {
                self.drop_transaction(sid, txn);
            }
            self.stats
                .add(if smtps { "smtp.smtps" } else { "smtp.tls" }, 1);
        }
    }

    /// The connection is gone: abort what it had open, forget it.
    pub(super) fn session_closed(&mut self, sid: SessionId) {
        let Some(mut session) = self.sessions.remove(&sid) else {
            return;
        };
        if let Some(txn) = session.txn.take() {
            self.drop_transaction(sid, txn);
        }
        self.lookups.retain(|_, owner| owner.session() != Some(sid));
        self.stats.session_closed(&session.info.peer);
        self.log(format!("smtp-in: session {sid}: connection closed"));
    }
}

/// `senders <table>` of the listener: an authenticated user may only use its addresses.
/// Without the option, or before authentication, any sender is fine.
fn sender_allowed(
    config: &Config,
    listener: Option<&Listener>,
    session: &Session,
    sender: Option<&str>,
) -> bool {
    let (Some(senders), Some(user)) = (
        listener.and_then(|l| l.senders.as_ref()),
        session.facts.auth_user.as_deref(),
    ) else {
        return true;
    };
    let sender = sender.unwrap_or("");
    config
        .tables
        .get(&senders.table)
        .is_some_and(|t| t.sender_allowed(user, sender, config.options.sub_addr_delim()))
}

#[cfg(test)]
mod auth_failure_tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use smtp_proto::server::{AuthMechanism, Question, ReqId};

    use super::MAX_AUTH_FAILURES;
    use crate::engine::{Action, Engine, EngineFacts, Input, PeerAddr, SessionInfo};
    use crate::time::UnixTime;

    const CONF: &str = "table creds { \"bob\" = \"$6$salt$hash\" }\n\
        pki mail.example.org cert \"/c\"\npki mail.example.org key \"/k\"\n\
        listen on 127.0.0.1 tls pki mail.example.org auth <creds>\n\
        action \"local\" maildir\nmatch from any for any action \"local\"\n";

    /// Asks AUTH for `user`, answers any password check with "wrong", returns the reply.
    fn refused(engine: &mut Engine, sid: super::SessionId, req: u64, user: &str) -> u16 {
        let now = UnixTime::from_secs(1_800_000_000);
        let question = Question::Auth {
            mechanism: AuthMechanism::Plain,
            authzid: Bytes::new(),
            authcid: Bytes::from(user.to_owned()),
            password: Bytes::from_static(b"guess"),
        };
        engine.handle(
            Input::Question {
                session: sid,
                req: ReqId(req),
                question,
            },
            now,
        );
        let mut code = 0;
        while let Some(action) = engine.poll_action() {
            match action {
                Action::CheckPassword { id, .. } => {
                    engine.handle(Input::PasswordChecked { id, ok: false }, now);
                }
                Action::Answer { answer, .. } => code = answer.reply.code,
                _ => {}
            }
        }
        code
    }

    #[test]
    fn the_last_allowed_failure_is_answered_421() {
        let config =
            crate::config::parse(CONF, "t.conf", &[], &mut |_| Err("none".into())).expect("parses");
        let now = UnixTime::from_secs(1_800_000_000);
        let mut engine =
            Engine::new(Arc::new(config), EngineFacts::new("mx", 1), now).expect("engine");
        let info = SessionInfo {
            listener: Some(0),
            peer: PeerAddr::Inet("192.0.2.1:4000".parse().expect("addr")),
            local: None,
            rdns: None,
            tls: true,
        };
        let sid = engine.open_session(info, now);
        // Unknown users and wrong passwords count alike.
        assert_eq!(refused(&mut engine, sid, 1, "mallory"), 535);
        for n in 2..MAX_AUTH_FAILURES {
            assert_eq!(refused(&mut engine, sid, u64::from(n), "bob"), 535);
        }
        assert_eq!(refused(&mut engine, sid, 9, "bob"), 421);
    }
}
