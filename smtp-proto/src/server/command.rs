//! One command line: parse it, check it against the session's state (RFC 5321 §4.1.4
//! command order, the extensions we advertise, the limits), then reply at once or ask
//! the engine.

use std::time::Instant;

use crate::command::{self, Command, ParseOptions};
use crate::data::BdatChunk;
use crate::line::Framed;
use crate::params::{BodyType, MailParams, RcptParams};

use super::actions::{CloseReason, Event, Question};
use super::pipeline::Pending;
use super::render::{self, Canned};
use super::state::{BdatRead, BodyStage, ChunkFate, Mode};
use super::ServerSession;

/// The line is an RCPT command (the one command that may join questions in flight).
pub(super) fn is_rcpt(line: &[u8]) -> bool {
    line.get(..4)
        .is_some_and(|verb| verb.eq_ignore_ascii_case(b"RCPT"))
}

fn verb(command: &Command) -> &'static str {
    match command {
        Command::Helo(_) => "HELO",
        Command::Ehlo(_) => "EHLO",
        Command::Mail(..) => "MAIL",
        Command::Rcpt(..) => "RCPT",
        Command::Data => "DATA",
        Command::Bdat { .. } => "BDAT",
        Command::Rset => "RSET",
        Command::Noop => "NOOP",
        Command::Quit => "QUIT",
        Command::Vrfy(_) => "VRFY",
        Command::Expn(_) => "EXPN",
        Command::Help(_) => "HELP",
        Command::StartTls => "STARTTLS",
        Command::Auth { .. } => "AUTH",
    }
}

impl ServerSession {
    /// Handles one framed command line.
    pub(super) fn command(&mut self, framed: Framed, now: Instant) {
        self.commands = self.commands.saturating_add(1);
        let line = match framed {
            Framed::Line(line) => line,
            Framed::TooLong => {
                self.event(Event::Command { verb: "?" });
                return self.refuse(render::LINE_TOO_LONG);
            }
        };
        let for_recipient = is_rcpt(&line);
        let smtputf8 = self.txn.as_ref().is_some_and(|t| t.smtputf8);
        let parsed = command::parse(line, &ParseOptions { smtputf8 });
        let command = match parsed {
            Ok(command) => command,
            Err(error) => {
                self.event(Event::Command { verb: "?" });
                let reply = error.reply(for_recipient);
                let enhanced = self.enhanced();
                self.pipeline
                    .push(|out| render::write_reply(out, &reply, enhanced));
                return self.count_error();
            }
        };
        self.event(Event::Command {
            verb: verb(&command),
        });
        let timeouts = self.config.timeouts;
        match command {
            Command::Helo(identity) => {
                self.reset_transaction();
                let question = Question::Helo {
                    esmtp: false,
                    identity,
                };
                self.ask(
                    question,
                    Pending::Helo { esmtp: false },
                    now,
                    timeouts.initial,
                );
            }
            Command::Ehlo(identity) => {
                self.reset_transaction();
                let question = Question::Helo {
                    esmtp: true,
                    identity,
                };
                self.ask(
                    question,
                    Pending::Helo { esmtp: true },
                    now,
                    timeouts.initial,
                );
            }
            Command::Mail(path, params) => {
                if let Some(refusal) = self.check_mail(&params) {
                    return self.reply_or_refuse(refusal);
                }
                let pending = Pending::Mail {
                    smtputf8: params.smtputf8,
                    binary: params.body == Some(BodyType::BinaryMime),
                };
                self.ask(
                    Question::MailFrom { path, params },
                    pending,
                    now,
                    timeouts.mail,
                );
            }
            Command::Rcpt(path, params) => {
                if let Some(refusal) = self.check_rcpt(&params) {
                    return self.reply_or_refuse(refusal);
                }
                if let Some(txn) = self.txn.as_mut() {
                    txn.asked = txn.asked.saturating_add(1);
                }
                self.ask(
                    Question::RcptTo { path, params },
                    Pending::Rcpt,
                    now,
                    timeouts.rcpt,
                );
            }
            Command::Data => {
                if let Some(refusal) = self.check_body(false) {
                    return self.refuse(refusal);
                }
                let question = Question::DataStart { chunking: false };
                self.ask(question, Pending::DataStart, now, timeouts.data_init);
            }
            Command::Bdat { size, last } => self.bdat(size, last, now),
            Command::Rset => {
                self.reset_transaction();
                self.reply(render::OK);
            }
            Command::Noop => self.reply(render::OK),
            Command::Quit => {
                let text = format!("{} Bye", self.config.hostname);
                let enhanced = self.enhanced();
                let status = Some(crate::reply::EnhancedStatus::new(2, 0, 0));
                self.pipeline.push(|out| {
                    render::write_lines(
                        out,
                        221,
                        status,
                        std::iter::once(text.as_bytes()),
                        enhanced,
                    )
                });
                self.close(CloseReason::Quit);
            }
            Command::Vrfy(what) => {
                if self.config.vrfy {
                    self.ask(Question::Vrfy(what), Pending::Lookup, now, timeouts.mail);
                } else {
                    self.reply(render::VRFY_CANNOT);
                }
            }
            Command::Expn(what) => {
                if self.config.expn {
                    self.ask(Question::Expn(what), Pending::Lookup, now, timeouts.mail);
                } else {
                    self.reply(render::EXPN_UNSUPPORTED);
                }
            }
            Command::Help(_) => self.reply(render::HELP),
            Command::StartTls => self.start_tls(),
            Command::Auth { mechanism, initial } => self.auth(&mechanism, initial, now),
        }
    }

    /// Sends a refusal; sequence errors count toward the error limit, policy limits
    /// (size, recipients, transactions) do not.
    fn reply_or_refuse(&mut self, reply: Canned) {
        if reply.code == 503 || reply.code == 555 {
            self.refuse(reply);
        } else {
            self.reply(reply);
        }
    }

    /// Ends the transaction (RSET, HELO/EHLO, STARTTLS); RFC 5321 §4.1.1.5.
    pub(super) fn reset_transaction(&mut self) {
        self.abort_body(None);
        self.txn = None;
    }

    fn check_mail(&self, params: &MailParams) -> Option<Canned> {
        let Some(greeted) = self.greeted else {
            return Some(render::NEED_HELO);
        };
        if self.config.tls_required && !self.tls {
            return Some(render::NEED_STARTTLS);
        }
        if self.config.auth_required && !self.authenticated {
            return Some(render::NEED_AUTH);
        }
        if self.txn.is_some() {
            return Some(render::NESTED_MAIL);
        }
        if self.transactions >= self.config.limits.transactions as u64 {
            return Some(render::TOO_MANY_TRANSACTIONS);
        }
        let ext = self.config.extensions;
        let any = *params != MailParams::default();
        let body_ok = match params.body {
            Some(BodyType::EightBitMime) => ext.eight_bit_mime,
            Some(BodyType::BinaryMime) => ext.chunking && ext.binarymime,
            Some(BodyType::SevenBit) | None => true,
        };
        let dsn_ok = ext.dsn || (params.ret.is_none() && params.envid.is_none());
        let utf8_ok = ext.smtputf8 || !params.smtputf8;
        let auth_ok = self.config.auth || params.auth.is_none();
        if (any && !greeted.esmtp) || !body_ok || !dsn_ok || !utf8_ok || !auth_ok {
            return Some(render::PARAM_NOT_ADVERTISED);
        }
        if params
            .size
            .is_some_and(|size| size > self.config.limits.message_size)
        {
            return Some(render::TOO_BIG);
        }
        None
    }

    fn check_rcpt(&self, params: &RcptParams) -> Option<Canned> {
        let Some(greeted) = self.greeted else {
            return Some(render::NEED_HELO);
        };
        let Some(txn) = self.txn.as_ref() else {
            return Some(render::NEED_MAIL);
        };
        let any = *params != RcptParams::default();
        if any && (!greeted.esmtp || !self.config.extensions.dsn) {
            return Some(render::PARAM_NOT_ADVERTISED);
        }
        if txn.asked >= self.config.limits.recipients {
            return Some(render::TOO_MANY_RECIPIENTS);
        }
        None
    }

    /// Whether a body may begin now (DATA, or BDAT when `chunking`).
    fn check_body(&self, chunking: bool) -> Option<Canned> {
        if self.greeted.is_none() {
            return Some(render::NEED_HELO);
        }
        let Some(txn) = self.txn.as_ref() else {
            return Some(render::NEED_MAIL);
        };
        if txn.accepted == 0 {
            return Some(render::NO_RECIPIENTS);
        }
        if !chunking && txn.binary {
            return Some(render::BINARY_NEEDS_BDAT);
        }
        if !chunking && matches!(txn.body, BodyStage::Chunks { .. }) {
            return Some(render::MIXED_BODY);
        }
        None
    }

    /// BDAT (RFC 3030 §2): the chunk follows the line whatever we answer, so a refused
    /// chunk is still read and thrown away before the reply.
    fn bdat(&mut self, size: u64, last: bool, now: Instant) {
        let refusal = if !self.config.extensions.chunking {
            Some(render::NOT_IMPLEMENTED)
        } else {
            self.check_body(true)
        };
        if let Some(reply) = refusal {
            // RFC 3030 §2: a refused chunk fails the transaction; the client may start
            // the next one without RSET.
            self.reset_transaction();
            self.skip_chunk(size, last, ChunkFate::Refuse(reply));
            return self.count_error();
        }
        let received = match self.txn.as_ref().map(|t| t.body) {
            Some(BodyStage::Chunks { received }) => Some(received),
            _ => None,
        };
        let total = received.unwrap_or(0).saturating_add(size);
        if total > self.config.limits.message_size {
            self.abort_body(Some(crate::data::BodyFault::TooBig));
            self.event(Event::BodyRefused(crate::data::BodyFault::TooBig));
            self.txn = None;
            return self.skip_chunk(size, last, ChunkFate::Refuse(render::TOO_BIG));
        }
        if received.is_some() {
            self.skip_chunk(size, last, ChunkFate::Accept);
        } else {
            let question = Question::DataStart { chunking: true };
            let timeout = self.config.timeouts.data_init;
            self.ask(question, Pending::BdatStart { size, last }, now, timeout);
        }
    }

    /// Enters the mode that reads a BDAT chunk of `size` octets.
    pub(super) fn skip_chunk(&mut self, size: u64, last: bool, fate: ChunkFate) {
        let chunk = BdatChunk::new(size);
        self.mode = Mode::Bdat(BdatRead {
            chunk,
            size,
            last,
            fate,
        });
    }

    /// STARTTLS (RFC 3207 §4): 220, drop what the client sent after the command, hand
    /// over to TLS.
    fn start_tls(&mut self) {
        if self.tls {
            return self.refuse(render::TLS_ACTIVE);
        }
        if !self.config.tls_available {
            return self.refuse(render::NOT_IMPLEMENTED);
        }
        self.reply(render::READY_TLS);
        let dropped = self.rx.len();
        self.rx.clear();
        self.framer.reset();
        self.discard_plaintext(dropped);
        self.mode = Mode::TlsHandshake;
        self.flush();
        self.actions.push_back(super::Action::StartTls);
    }
}
