//! Sending a message's content: dot-stuffed after DATA (RFC 5321 §4.5.2) or counted
//! after `BDAT <size> LAST` (RFC 3030 §2), from memory or streamed by the caller, always
//! in large writes.

use bytes::{Bytes, BytesMut};

use super::transaction::Transaction;
use super::{Action, ClientSession, ErrorReason, OutboundBody, Phase};
use crate::data::DotStuffer;

/// Content bytes per `Send` for a body in memory: large writes, never one per line.
const BODY_PIECE: usize = 64 * 1024;

/// A streamed body in progress.
#[derive(Debug)]
pub(super) struct Stream {
    /// The stuffer after DATA; `None` after BDAT, which sends the octets as they are.
    stuffer: Option<DotStuffer>,
    /// Octets still to come, as declared.
    remaining: u64,
}

impl ClientSession {
    /// Writes `BDAT <size> LAST` and the content, or asks the caller for it.
    pub(super) fn begin_bdat(&mut self, txn: &mut Transaction) {
        let size = txn.body.size();
        self.command(format!("BDAT {size} LAST\r\n").as_bytes());
        match &txn.body {
            OutboundBody::Whole(body) if body.len() <= BODY_PIECE => self.command(body),
            OutboundBody::Whole(body) => {
                let mut rest = body.clone();
                while !rest.is_empty() {
                    let piece = rest.split_to(BODY_PIECE.min(rest.len()));
                    self.send(piece);
                }
            }
            OutboundBody::Streamed { .. } => {
                txn.stream = Some(Stream {
                    stuffer: None,
                    remaining: size,
                });
                self.push(Action::BodyWanted { id: txn.id });
            }
        }
    }

    /// After 354: writes the content stuffed and the final dot, and returns true; or
    /// asks the caller for the content and returns false.
    pub(super) fn begin_data(&mut self, txn: &mut Transaction) -> bool {
        let body = match &txn.body {
            OutboundBody::Whole(body) => body.clone(),
            OutboundBody::Streamed { size, .. } => {
                txn.stream = Some(Stream {
                    stuffer: Some(DotStuffer::new()),
                    remaining: *size,
                });
                self.push(Action::BodyWanted { id: txn.id });
                return false;
            }
        };
        let mut stuffer = DotStuffer::new();
        let mut rest = body;
        loop {
            let piece = rest.split_to(BODY_PIECE.min(rest.len()));
            let mut out = BytesMut::with_capacity(piece.len() + 8);
            stuffer.push(&piece, &mut out);
            if rest.is_empty() {
                stuffer.finish(&mut out);
                self.command(&out);
                return true;
            }
            self.send(out.freeze());
        }
    }

    /// The stream in progress, taken out of the transaction (put it back after).
    fn take_stream(&mut self) -> Option<Stream> {
        match &mut self.phase {
            Phase::Transaction(txn) => txn.stream.take(),
            _ => None,
        }
    }

    fn put_stream(&mut self, stream: Stream) {
        if let Phase::Transaction(txn) = &mut self.phase {
            txn.stream = Some(stream);
        }
    }

    /// Sends one piece of a streamed body at once.
    pub(super) fn body_chunk(&mut self, chunk: Bytes) {
        let Some(mut stream) = self.take_stream() else {
            return;
        };
        // Each piece restarts the data block timer (RFC 5321 §4.5.3.2.5).
        self.deadline = None;
        let len = chunk.len() as u64;
        if len > stream.remaining {
            return self.fail(ErrorReason::BodySizeMismatch, true, false);
        }
        stream.remaining -= len;
        match &mut stream.stuffer {
            Some(stuffer) => {
                let mut out = BytesMut::with_capacity(chunk.len() + 8);
                stuffer.push(&chunk, &mut out);
                self.send(out.freeze());
            }
            None => self.send(chunk),
        }
        self.put_stream(stream);
    }

    /// Ends a streamed body: the final dot after DATA; after BDAT, a check that every
    /// announced octet was sent. Then the replies to the body are awaited.
    pub(super) fn body_end(&mut self) {
        let Some(stream) = self.take_stream() else {
            return;
        };
        self.deadline = None;
        if stream.remaining != 0 {
            return self.fail(ErrorReason::BodySizeMismatch, true, false);
        }
        if let Some(mut stuffer) = stream.stuffer {
            let mut out = BytesMut::new();
            stuffer.finish(&mut out);
            self.command(&out);
            if let Phase::Transaction(txn) = &mut self.phase {
                txn.await_end();
            }
        }
    }
}
