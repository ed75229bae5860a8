//! Reading a message body: DATA (dot-unstuffed, ended by CRLF.CRLF only, see
//! [`crate::data`]) and BDAT chunks (exactly n octets, RFC 3030).

use std::time::Instant;

use bytes::BytesMut;

use crate::data::{BodyFault, BodyProgress};

use super::actions::{Action, Event, Question};
use super::pipeline::Pending;
use super::render::{self, Canned};
use super::state::{BodyStage, ChunkFate, Mode};
use super::ServerSession;

fn fault_reply(fault: BodyFault) -> Canned {
    match fault {
        BodyFault::TooBig => render::TOO_BIG,
        BodyFault::LineTooLong => render::BODY_LINE_TOO_LONG,
        BodyFault::BareLf | BodyFault::BareCr => render::BARE_LINE_ENDING,
    }
}

impl ServerSession {
    /// Reads DATA body bytes; true when the body ended (the mode changed).
    pub(super) fn read_data(&mut self, now: Instant) -> bool {
        let Mode::Data(reader) = &mut self.mode else {
            return false;
        };
        let doomed = reader.fault().is_some();
        let actions = &mut self.actions;
        let progress = reader.read(&mut self.rx, &mut |chunk| {
            actions.push_back(Action::Body { chunk })
        });
        let (fault, size) = (reader.fault(), reader.size());
        if let (false, Some(fault)) = (doomed, fault) {
            // The first fault seen, which may depend on how the input was cut; the
            // reply at the end gives the verdict that does not.
            self.abort_body(Some(fault));
        }
        if progress == BodyProgress::NeedMore {
            return false;
        }
        self.mode = Mode::Command;
        self.framer.reset();
        match fault {
            Some(fault) => {
                self.txn = None;
                self.event(Event::BodyRefused(fault));
                self.reply(fault_reply(fault));
            }
            None => self.end_of_message(size, now),
        }
        true
    }

    /// Asks for the final reply of a complete body.
    fn end_of_message(&mut self, size: u64, now: Instant) {
        self.body_open = false;
        let timeout = self.config.timeouts.data_end;
        self.ask(
            Question::EndOfMessage { size },
            Pending::EndOfMessage,
            now,
            timeout,
        );
    }

    /// Reads BDAT chunk bytes; true when the chunk is complete (the mode changed).
    pub(super) fn read_bdat(&mut self, now: Instant) -> bool {
        let Mode::Bdat(read) = &mut self.mode else {
            return false;
        };
        if let Some(chunk) = read.chunk.take(&mut self.rx) {
            if matches!(read.fate, ChunkFate::Accept) {
                self.actions.push_back(Action::Body { chunk });
            }
        }
        if !read.chunk.is_complete() {
            return false;
        }
        let Mode::Bdat(read) = std::mem::replace(&mut self.mode, Mode::Command) else {
            return false;
        };
        self.framer.reset();
        match read.fate {
            ChunkFate::Accept => {
                let mut total = read.size;
                if let Some(txn) = self.txn.as_mut() {
                    if let BodyStage::Chunks { received } = txn.body {
                        total = received.saturating_add(read.size);
                    }
                    txn.body = BodyStage::Chunks { received: total };
                }
                if read.last {
                    self.end_of_message(total, now);
                } else {
                    let mut text = BytesMut::new();
                    render::write_number(&mut text, read.size);
                    text.extend_from_slice(b" octets received");
                    let status = Some(crate::reply::EnhancedStatus::new(2, 0, 0));
                    let enhanced = self.enhanced();
                    self.pipeline.push(|out| {
                        render::write_lines(out, 250, status, std::iter::once(&text[..]), enhanced)
                    });
                }
            }
            ChunkFate::Refuse(reply) => self.reply(reply),
            ChunkFate::RefuseWith(reply) => {
                let enhanced = self.enhanced();
                self.pipeline
                    .push(|out| render::write_reply(out, &reply, enhanced));
            }
        }
        true
    }
}
