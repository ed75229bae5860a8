//! A scripted SMTP client as the engine sees it: one question at a time, in the order a
//! server session would ask them. Like a real MTA client it retries what was refused
//! temporarily (a 4xx to MAIL, DATA or the end of data, or to some recipients) in a new
//! transaction a minute later, up to [`MAX_ATTEMPTS`] times, and never sends again a
//! recipient that was accepted or refused for good.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use mta_core::engine::SessionId;
use mta_core::queue::MessageId;
use smtp_proto::params::{MailParams, RcptParams};
use smtp_proto::server::Question;
use smtp_proto::types::{ForwardPath, Host, ReversePath};

use super::record::StepKey;
use super::scenario::{SessionScript, RECIPIENTS, SENDERS};

/// Attempts per transaction.
pub const MAX_ATTEMPTS: u32 = 6;
/// Wait between attempts.
pub const RETRY: Duration = Duration::from_secs(60);

/// What the client does next.
pub enum Command {
    /// Connect (the engine opens a session).
    Connect,
    /// Ask a question.
    Ask(Question),
    /// The body is sent: end of data.
    End {
        /// Body size.
        size: u64,
        /// `Received:` headers in it.
        received_headers: usize,
    },
    /// Close the connection.
    Quit,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Connect,
    Helo,
    Mail,
    Rcpt,
    Data,
    End,
    Quit,
    Done,
}

/// One client and where it stands in its script.
pub struct Client {
    script: SessionScript,
    sid: Option<SessionId>,
    state: State,
    txn: usize,
    attempt: u32,
    /// Positions (in the transaction's recipient list) still to be sent.
    pending: Vec<usize>,
    /// Which of `pending` is asked now.
    cursor: usize,
    /// Accepted in this attempt.
    accepted: Vec<usize>,
    /// Accepted for delivery or refused for good: never sent again.
    settled: BTreeSet<usize>,
    /// The recipients of the last message answered 250.
    last_accepted: Vec<usize>,
    open: Option<MessageId>,
}

impl Client {
    /// A client about to connect.
    pub fn new(_index: usize, script: SessionScript) -> Client {
        Client {
            script,
            sid: None,
            state: State::Connect,
            txn: 0,
            attempt: 0,
            pending: Vec::new(),
            cursor: 0,
            accepted: Vec::new(),
            settled: BTreeSet::new(),
            last_accepted: Vec::new(),
            open: None,
        }
    }

    /// The session the engine gave this client.
    pub fn session(&self) -> SessionId {
        self.sid.unwrap()
    }

    /// The engine opened the session.
    pub fn connected(&mut self, sid: SessionId) {
        self.sid = Some(sid);
        self.state = State::Helo;
    }

    /// The engine opened a message for this client's body.
    pub fn opened(&mut self, msgid: MessageId) {
        self.open = Some(msgid);
    }

    /// The message of the body just sent.
    pub fn open_message(&self) -> Option<MessageId> {
        self.open
    }

    /// The recipients (positions) of the message just answered 250.
    pub fn last_accepted(&self) -> Vec<usize> {
        self.last_accepted.clone()
    }

    /// Whether the script is played out.
    pub fn done(&self) -> bool {
        self.state == State::Done
    }

    /// The next command; `None` while an answer is awaited or when done.
    pub fn next_command(&mut self) -> Option<Command> {
        let txn = self.script.transactions.get(self.txn);
        match self.state {
            State::Connect => Some(Command::Connect),
            State::Helo => {
                let identity =
                    Host::parse(Bytes::from_static(b"client.example.net"), false).unwrap();
                Some(Command::Ask(Question::Helo {
                    esmtp: true,
                    identity,
                }))
            }
            State::Mail => {
                let sender = SENDERS[txn?.sender].unwrap_or("");
                let path = ReversePath::parse(Bytes::from(format!("<{sender}>")), false).unwrap();
                Some(Command::Ask(Question::MailFrom {
                    path,
                    params: MailParams::default(),
                }))
            }
            State::Rcpt => {
                let position = *self.pending.get(self.cursor)?;
                let recipient = RECIPIENTS[txn?.recipients[position]];
                let path =
                    ForwardPath::parse(Bytes::from(format!("<{recipient}>")), false).unwrap();
                Some(Command::Ask(Question::RcptTo {
                    path,
                    params: RcptParams::default(),
                }))
            }
            State::Data => Some(Command::Ask(Question::DataStart { chunking: false })),
            State::End => Some(Command::End {
                size: txn?.size,
                received_headers: txn?.received_headers,
            }),
            State::Quit => {
                self.state = State::Done;
                Some(Command::Quit)
            }
            State::Done => None,
        }
    }

    /// The answer to the question asked last: which step it answered (for the record)
    /// and how long the client waits before its next command.
    pub fn answered(&mut self, code: u16) -> (Option<StepKey>, Duration) {
        let t = self.txn;
        let ok = (200..400).contains(&code);
        let permanent = code >= 500;
        match self.state {
            State::Helo => {
                if ok {
                    self.start_transaction();
                } else {
                    self.state = State::Quit;
                }
                (Some(StepKey::Helo), Duration::ZERO)
            }
            State::Mail => {
                let key = Some(StepKey::Mail(t));
                if ok {
                    self.state = State::Rcpt;
                    self.cursor = 0;
                    self.accepted.clear();
                    (key, Duration::ZERO)
                } else {
                    if permanent {
                        self.settled.extend(self.pending.iter().copied());
                    }
                    (key, self.after_attempt())
                }
            }
            State::Rcpt => {
                let position = self.pending[self.cursor];
                if ok {
                    self.accepted.push(position);
                } else if permanent {
                    self.settled.insert(position);
                }
                self.cursor += 1;
                let key = Some(StepKey::Rcpt(t, position));
                if self.cursor < self.pending.len() {
                    (key, Duration::ZERO)
                } else if self.accepted.is_empty() {
                    (key, self.after_attempt())
                } else {
                    self.state = State::Data;
                    (key, Duration::ZERO)
                }
            }
            State::Data => {
                let key = Some(StepKey::Data(t));
                if ok {
                    self.state = State::End;
                    (key, Duration::ZERO)
                } else {
                    if permanent {
                        self.settled.extend(self.accepted.iter().copied());
                    }
                    (key, self.after_attempt())
                }
            }
            State::End => {
                let key = Some(StepKey::End(t));
                if code == 250 {
                    self.last_accepted = self.accepted.clone();
                }
                if ok || permanent {
                    self.settled.extend(self.accepted.iter().copied());
                }
                let wait = self.after_attempt();
                self.open = if code == 250 { self.open } else { None };
                (key, wait)
            }
            State::Connect | State::Quit | State::Done => (None, Duration::ZERO),
        }
    }

    fn start_transaction(&mut self) {
        match self.script.transactions.get(self.txn) {
            Some(txn) => {
                self.pending = (0..txn.recipients.len()).collect();
                self.settled.clear();
                self.attempt = 0;
                self.state = State::Mail;
            }
            None => self.state = State::Quit,
        }
    }

    /// After an attempt: retry what is left a minute later, or go on with the next
    /// transaction.
    fn after_attempt(&mut self) -> Duration {
        let settled = &self.settled;
        self.pending.retain(|p| !settled.contains(p));
        self.accepted.clear();
        self.attempt += 1;
        if self.pending.is_empty() || self.attempt >= MAX_ATTEMPTS {
            self.txn += 1;
            self.start_transaction();
            Duration::ZERO
        } else {
            self.state = State::Mail;
            RETRY
        }
    }
}
