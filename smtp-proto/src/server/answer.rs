//! The engine's answers: each fills the reply slot of its command and applies its effect
//! (a greeting accepted, a transaction begun, a recipient counted, a body opened).

use bytes::{Bytes, BytesMut};

use crate::data::{BodyPolicy, DotReader};
use crate::reply::Reply;

use super::actions::{Answer, Event, ReqId};
use super::pipeline::Pending;
use super::render;
use super::state::{BodyStage, ChunkFate, Greeted, Mode, Transaction};
use super::ServerSession;

impl ServerSession {
    /// Applies the answer to question `id`.
    pub(super) fn answer(&mut self, id: ReqId, answer: Answer) {
        let Some((slot, pending)) = self.pipeline.take(id) else {
            return self.event(Event::StaleAnswer(id));
        };
        let reply = answer.reply;
        let positive = reply.is_positive();
        let enhanced = self.enhanced();
        match pending {
            Pending::Helo { esmtp } => {
                if positive {
                    self.greeted = Some(Greeted { esmtp });
                    let lines = self.greeting_lines(&reply, esmtp);
                    let lines = lines.iter().map(|l| &l[..]);
                    return self.pipeline.fill(slot, |out| {
                        render::write_lines(out, 250, None, lines, false)
                    });
                }
            }
            Pending::Mail { smtputf8, binary } => {
                if positive {
                    self.transactions = self.transactions.saturating_add(1);
                    let number = self.transactions;
                    self.txn = Some(Transaction::new(smtputf8, binary));
                    self.event(Event::TransactionStarted { number });
                }
            }
            Pending::Rcpt => {
                if let Some(txn) = self.txn.as_mut() {
                    if positive {
                        txn.accepted = txn.accepted.saturating_add(1);
                    }
                }
            }
            Pending::DataStart => {
                if positive || reply.is_intermediate() {
                    self.body_open = true;
                    self.mode = Mode::Data(DotReader::new(self.body_policy()));
                    let start = if reply.code == 354 {
                        reply
                    } else {
                        start_data()
                    };
                    return self
                        .pipeline
                        .fill(slot, |out| render::write_reply(out, &start, enhanced));
                }
            }
            Pending::BdatStart { size, last } => {
                // The slot stays empty; BDAT parked the pipeline, so the reply written
                // once the chunk has been read lands right behind it, in order.
                if positive || reply.is_intermediate() {
                    self.body_open = true;
                    if let Some(txn) = self.txn.as_mut() {
                        txn.body = BodyStage::Chunks { received: 0 };
                    }
                    self.skip_chunk(size, last, ChunkFate::Accept);
                } else {
                    // RFC 3030 §4: a refused chunk fails the transaction.
                    self.txn = None;
                    self.skip_chunk(size, last, ChunkFate::RefuseWith(reply));
                }
                return;
            }
            Pending::EndOfMessage => self.txn = None,
            Pending::Auth => {
                if positive {
                    self.authenticated = true;
                } else {
                    self.count_error();
                }
            }
            Pending::Lookup => {}
        }
        self.pipeline
            .fill(slot, |out| render::write_reply(out, &reply, enhanced));
    }

    pub(super) fn body_policy(&self) -> BodyPolicy {
        BodyPolicy {
            max_line: self.config.limits.text_line,
            max_size: self.config.limits.message_size,
            normalize_bare_lf: self.config.normalize_bare_lf,
        }
    }

    /// The lines of a positive HELO/EHLO reply: the engine's first line, then for EHLO
    /// the keywords of what we offer now (RFC 5321 §4.1.1.1).
    fn greeting_lines(&self, reply: &Reply, esmtp: bool) -> Vec<Bytes> {
        let first = reply.lines.first().cloned().unwrap_or_default();
        let mut lines = vec![first];
        if !esmtp {
            return lines;
        }
        let ext = self.config.extensions;
        let keyword = |s: &'static str| Bytes::from_static(s.as_bytes());
        if ext.pipelining {
            lines.push(keyword("PIPELINING"));
        }
        if ext.size {
            let mut size = BytesMut::from(&b"SIZE "[..]);
            render::write_number(&mut size, self.config.limits.message_size);
            lines.push(size.freeze());
        }
        if ext.eight_bit_mime {
            lines.push(keyword("8BITMIME"));
        }
        if ext.enhanced_status_codes {
            lines.push(keyword("ENHANCEDSTATUSCODES"));
        }
        if ext.smtputf8 {
            lines.push(keyword("SMTPUTF8"));
        }
        if ext.chunking {
            lines.push(keyword("CHUNKING"));
            if ext.binarymime {
                lines.push(keyword("BINARYMIME"));
            }
        }
        if ext.dsn {
            lines.push(keyword("DSN"));
        }
        if self.config.tls_available && !self.tls {
            lines.push(keyword("STARTTLS"));
        }
        if self.config.auth && (self.tls || self.config.auth_plaintext) {
            lines.push(keyword("AUTH PLAIN LOGIN"));
        }
        lines
    }
}

fn start_data() -> Reply {
    Reply::new(render::START_DATA.code, None, render::START_DATA.text)
}
