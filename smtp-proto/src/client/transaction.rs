//! One mail transaction (RFC 5321 §3.3): the checks before MAIL, the MAIL/RCPT/DATA
//! (or BDAT, RFC 3030) commands, pipelined when the server allows it (RFC 2920), and
//! the per-recipient results, one reply per recipient after the body in LMTP (RFC 2033
//! §4.2).

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::body::Stream;
use super::{
    Action, ClientSession, OutboundBody, OutboundMessage, Outcome, Phase, RecipientResult,
};
use crate::command::Command;
use crate::params::{BodyType, MailParams, RcptParams};
use crate::reply::{EhloCapabilities, EnhancedStatus, Reply};
use crate::timer::Timeouts;

/// A reply the session waits for, in the order the commands were sent.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    Mail,
    Rcpt(usize),
    Data,
    /// The reply to the whole body (after the final dot or `BDAT LAST`): for every
    /// accepted recipient, or in LMTP for the accepted recipient of this rank.
    End(Option<usize>),
    /// In LMTP, the replies to a pipelined `BDAT LAST`, as many as recipients were
    /// accepted: known once the last RCPT reply is in.
    LmtpBdat,
    /// The reply to the empty body sent after a 354 that no recipient justified.
    Discard,
}

/// A command still to send when the server does not pipeline.
#[derive(Clone, PartialEq, Eq, Debug)]
enum Step {
    Rcpt(usize, Bytes),
    /// DATA, or BDAT with the body, if a recipient was accepted.
    Body,
}

/// How far MAIL FROM went.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mail {
    Pending,
    Accepted,
    Refused,
}

/// A message in flight.
#[derive(Debug)]
pub(super) struct Transaction {
    pub(super) id: u64,
    results: Vec<Option<RecipientResult>>,
    /// Indexes of the recipients the server accepted, in order.
    accepted: Vec<usize>,
    mail: Mail,
    expect: VecDeque<Expect>,
    unsent: VecDeque<Step>,
    pub(super) body: OutboundBody,
    /// A streamed body is being fed by the caller.
    pub(super) stream: Option<Stream>,
    bdat: bool,
    lmtp: bool,
    /// The server's transaction is over: no RSET is needed.
    ended: bool,
}

/// The commands of one message, adapted to the server.
struct Plan {
    mail: Bytes,
    rcpts: Vec<Bytes>,
    bdat: bool,
}

fn line(command: &Command) -> Bytes {
    let mut out = BytesMut::new();
    command.render(&mut out);
    out.freeze()
}

fn refusal(code: u16, status: EnhancedStatus, text: &'static str) -> Reply {
    Reply::new(code, Some(status), Bytes::from_static(text.as_bytes()))
}

/// Checks `message` against the extensions and builds its commands; the reply is the
/// permanent failure of the whole message when the server cannot take it.
fn plan(
    message: &OutboundMessage,
    caps: &EhloCapabilities,
    authenticated: bool,
    chunking: bool,
) -> Result<Plan, Reply> {
    let asked = &message.params;
    let size = message.body.size();
    let binary = asked.body == Some(BodyType::BinaryMime);
    let eight_bit = message.body.is_eight_bit();
    let mut paths = BytesMut::new();
    message.sender.render(&mut paths);
    for rcpt in &message.recipients {
        rcpt.path.render(&mut paths);
    }
    let utf8 = asked.smtputf8 || !paths.is_ascii();
    // RFC 1870 §6: a message larger than the fixed maximum would get 552.
    if caps.size.is_some_and(|max| max > 0 && size > max) {
        let text = "message size exceeds fixed maximum message size";
        return Err(refusal(552, EnhancedStatus::new(5, 3, 4), text));
    }
    if binary && !(caps.binarymime && caps.chunking) {
        let text = "server does not support BINARYMIME";
        return Err(refusal(554, EnhancedStatus::new(5, 6, 3), text));
    }
    // RFC 6152 §3: no 8-bit octets to a server that did not advertise 8BITMIME.
    if eight_bit && !binary && !caps.eightbitmime {
        let text = "server does not support 8BITMIME";
        return Err(refusal(554, EnhancedStatus::new(5, 6, 3), text));
    }
    // RFC 6531 §3.2: UTF-8 addresses only with SMTPUTF8.
    if utf8 && !caps.smtputf8 {
        let text = "server does not support SMTPUTF8";
        return Err(refusal(553, EnhancedStatus::new(5, 6, 7), text));
    }
    let body = if binary {
        Some(BodyType::BinaryMime)
    } else if eight_bit || asked.body == Some(BodyType::EightBitMime) {
        caps.eightbitmime.then_some(BodyType::EightBitMime)
    } else {
        asked.body.filter(|_| caps.eightbitmime)
    };
    let params = MailParams {
        size: caps.size.map(|_| size),
        body,
        smtputf8: utf8,
        auth: asked.auth.clone().filter(|_| authenticated),
        ret: asked.ret.filter(|_| caps.dsn),
        envid: asked.envid.clone().filter(|_| caps.dsn),
    };
    let mail = line(&Command::Mail(message.sender.clone(), params));
    let rcpts = message
        .recipients
        .iter()
        .map(|r| {
            let params = if caps.dsn {
                r.params.clone()
            } else {
                RcptParams::default()
            };
            line(&Command::Rcpt(r.path.clone(), params))
        })
        .collect();
    let bdat = caps.chunking && (binary || chunking);
    Ok(Plan { mail, rcpts, bdat })
}

impl Transaction {
    /// Replies still due for what was sent. While a body is streamed after BDAT, its
    /// replies are not due yet: a server cannot answer octets it has not received.
    pub(super) fn awaited(&self) -> usize {
        if self.stream.is_some() {
            let body = |e: &&Expect| matches!(e, Expect::End(_) | Expect::LmtpBdat);
            self.expect.len() - self.expect.iter().filter(body).count()
        } else {
            self.expect.len()
        }
    }

    /// The body went out after DATA: its replies are due.
    pub(super) fn await_end(&mut self) {
        let ends = self.ends();
        self.expect.extend(ends);
    }

    /// The verb whose reply comes next.
    pub(super) fn awaited_verb(&self) -> &'static str {
        if self.stream.is_some() {
            return "body";
        }
        match self.expect.front() {
            Some(Expect::Mail) => "MAIL",
            Some(Expect::Rcpt(_)) => "RCPT",
            Some(Expect::Data) => "DATA",
            Some(Expect::End(_) | Expect::LmtpBdat) if self.bdat => "BDAT",
            _ => "end of data",
        }
    }

    /// How long the next reply may take (RFC 5321 §4.5.3.2); while the caller streams
    /// the body, how long each piece may take to come and leave (§4.5.3.2.5).
    pub(super) fn timeout(&self, t: &Timeouts) -> std::time::Duration {
        if self.stream.is_some() {
            return t.data_block;
        }
        match self.expect.front() {
            Some(Expect::Mail) | None => t.mail,
            Some(Expect::Rcpt(_)) => t.rcpt,
            Some(Expect::Data) => t.data_init,
            Some(Expect::End(_) | Expect::LmtpBdat | Expect::Discard) => t.data_end,
        }
    }

    /// The outcome when the session fails now: recipients not decided get `temp`.
    pub(super) fn cut_short(self, temp: &RecipientResult) -> Outcome {
        Outcome {
            id: self.id,
            recipients: self
                .results
                .into_iter()
                .map(|r| r.unwrap_or_else(|| temp.clone()))
                .collect(),
        }
    }

    fn set(&mut self, index: usize, result: RecipientResult) {
        if let Some(slot) = self.results.get_mut(index) {
            *slot = Some(result);
        }
    }

    /// Gives every accepted recipient the result of `reply` to the whole body.
    fn settle_accepted(&mut self, reply: &Reply) {
        for index in self.accepted.clone() {
            let result = if reply.is_positive() {
                RecipientResult::Delivered(reply.clone())
            } else {
                RecipientResult::failure(reply.clone())
            };
            self.set(index, result);
        }
    }

    /// The replies to the body: one, or in LMTP one per accepted recipient.
    fn ends(&self) -> Vec<Expect> {
        if self.lmtp && !self.accepted.is_empty() {
            (0..self.accepted.len())
                .map(|k| Expect::End(Some(k)))
                .collect()
        } else {
            vec![Expect::End(None)]
        }
    }
}

/// The reply is one of 2yz, 4yz, 5yz; anything else makes no sense for MAIL or RCPT.
fn final_code(reply: &Reply) -> bool {
    reply.is_positive() || reply.is_transient() || reply.is_permanent()
}

impl ClientSession {
    /// Starts `message`, or reports it at once when it cannot be sent here.
    pub(super) fn start(&mut self, message: OutboundMessage) {
        if message.recipients.is_empty() {
            let outcome = Outcome {
                id: message.id,
                recipients: Vec::new(),
            };
            return self.push(Action::Outcome(outcome));
        }
        let plan = match plan(
            &message,
            &self.caps,
            self.authenticated,
            self.config.chunking,
        ) {
            Ok(plan) => plan,
            Err(reply) => return self.outcome_all(message, &RecipientResult::PermFail(reply)),
        };
        let mut txn = Transaction {
            id: message.id,
            results: vec![None; message.recipients.len()],
            accepted: Vec::new(),
            mail: Mail::Pending,
            expect: VecDeque::from([Expect::Mail]),
            unsent: VecDeque::new(),
            body: message.body,
            stream: None,
            bdat: plan.bdat,
            lmtp: self.config.lmtp,
            ended: false,
        };
        self.command(&plan.mail);
        if self.caps.pipelining {
            // RFC 2920 §3.1: MAIL, every RCPT and DATA (or the BDAT chunk) at once.
            for (index, rcpt) in plan.rcpts.iter().enumerate() {
                self.command(rcpt);
                txn.expect.push_back(Expect::Rcpt(index));
            }
            if txn.bdat {
                self.begin_bdat(&mut txn);
                let end = if txn.lmtp {
                    Expect::LmtpBdat
                } else {
                    Expect::End(None)
                };
                txn.expect.push_back(end);
            } else {
                self.command(b"DATA\r\n");
                txn.expect.push_back(Expect::Data);
            }
        } else {
            txn.unsent = plan
                .rcpts
                .into_iter()
                .enumerate()
                .map(|(index, rcpt)| Step::Rcpt(index, rcpt))
                .collect();
            txn.unsent.push_back(Step::Body);
        }
        self.phase = Phase::Transaction(Box::new(txn));
    }

    /// Handles a reply of the transaction, then sends what comes next.
    pub(super) fn transaction_reply(&mut self, mut txn: Box<Transaction>, reply: Reply) {
        let Some(expect) = txn.expect.pop_front() else {
            self.phase = Phase::Transaction(txn);
            return self.unexpected("nothing", reply);
        };
        let verb = match expect {
            Expect::Mail => "MAIL",
            Expect::Rcpt(_) => "RCPT",
            Expect::Data => "DATA",
            _ if txn.bdat => "BDAT",
            _ => "end of data",
        };
        let fits = match expect {
            Expect::Data => reply.code == 354 || reply.is_transient() || reply.is_permanent(),
            _ => final_code(&reply),
        };
        if !fits {
            txn.expect.push_front(expect);
            self.phase = Phase::Transaction(txn);
            return self.unexpected(verb, reply);
        }
        match expect {
            Expect::Mail if reply.is_positive() => txn.mail = Mail::Accepted,
            Expect::Mail => {
                // Every recipient shares the fate of MAIL; pipelined replies that follow
                // (503 to RCPT and DATA) are read and ignored.
                txn.mail = Mail::Refused;
                txn.unsent.clear();
                for index in 0..txn.results.len() {
                    txn.set(index, RecipientResult::failure(reply.clone()));
                }
            }
            Expect::Rcpt(_) if txn.mail == Mail::Refused => {}
            Expect::Rcpt(index) => {
                if reply.is_positive() {
                    txn.accepted.push(index);
                } else {
                    txn.set(index, RecipientResult::failure(reply));
                }
                if txn.expect.front() == Some(&Expect::LmtpBdat) {
                    txn.expect.pop_front();
                    let ends = txn.ends();
                    txn.expect.extend(ends);
                }
            }
            Expect::Data if reply.code == 354 => {
                if txn.mail == Mail::Accepted && !txn.accepted.is_empty() {
                    if self.begin_data(&mut txn) {
                        txn.await_end();
                    }
                } else {
                    // RFC 2920 §3.1: a server that says 354 with no recipient gets an
                    // empty message.
                    self.command(b".\r\n");
                    txn.expect.push_back(Expect::Discard);
                }
            }
            Expect::Data => {
                if txn.mail == Mail::Accepted {
                    txn.settle_accepted(&reply);
                }
            }
            Expect::End(None) | Expect::LmtpBdat => {
                if txn.mail == Mail::Accepted {
                    txn.settle_accepted(&reply);
                }
                // A refused BDAT leaves the transaction open (RFC 3030 §3).
                txn.ended = !txn.bdat || reply.is_positive();
            }
            Expect::End(Some(rank)) => {
                if let Some(&index) = txn.accepted.get(rank) {
                    let result = if reply.is_positive() {
                        RecipientResult::Delivered(reply)
                    } else {
                        RecipientResult::failure(reply)
                    };
                    txn.set(index, result);
                }
                txn.ended = true;
            }
            Expect::Discard => txn.ended = true,
        }
        if txn.expect.is_empty() && txn.stream.is_none() {
            self.next_step(txn);
        } else {
            self.phase = Phase::Transaction(txn);
        }
    }

    /// Nothing is in flight: send the next command, or report the message.
    fn next_step(&mut self, mut txn: Box<Transaction>) {
        match txn.unsent.pop_front() {
            Some(Step::Rcpt(index, rcpt)) => {
                self.command(&rcpt);
                txn.expect.push_back(Expect::Rcpt(index));
                self.phase = Phase::Transaction(txn);
                return;
            }
            Some(Step::Body) if txn.mail == Mail::Accepted && !txn.accepted.is_empty() => {
                if txn.bdat {
                    self.begin_bdat(&mut txn);
                    txn.await_end();
                } else {
                    self.command(b"DATA\r\n");
                    txn.expect.push_back(Expect::Data);
                }
                self.phase = Phase::Transaction(txn);
                return;
            }
            _ => {}
        }
        let rset = txn.mail == Mail::Accepted && !txn.ended;
        let undecided = RecipientResult::TempFail(Reply::new(
            451,
            Some(EnhancedStatus::new(4, 4, 0)),
            Bytes::from_static(b"no reply for this recipient"),
        ));
        let outcome = txn.cut_short(&undecided);
        self.push(Action::Outcome(outcome));
        if rset {
            self.send_rset();
        } else {
            self.idle();
        }
    }
}
