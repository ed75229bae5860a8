//! Reply ordering for pipelined commands (RFC 2920 §3): one slot per command that has a
//! reply, in command order. A slot is either ready (rendered bytes) or waiting for the
//! engine's answer; replies leave only from the front, so they go out in command order
//! whatever order the answers come in, and all that is ready together leaves in one
//! `Send`.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::actions::ReqId;

/// What a waiting slot's question was about, so its answer can be applied.
#[derive(Clone, Debug)]
pub(super) enum Pending {
    /// HELO (false) or EHLO (true).
    Helo { esmtp: bool },
    /// MAIL; what the transaction will remember if accepted.
    Mail { smtputf8: bool, binary: bool },
    /// RCPT: the only question that may be in flight with others (RFC 2920 §3.1).
    Rcpt,
    /// DATA, before 354.
    DataStart,
    /// BDAT, before its chunk is accepted or discarded.
    BdatStart { size: u64, last: bool },
    /// The final reply of a message.
    EndOfMessage,
    /// AUTH credentials.
    Auth,
    /// VRFY or EXPN.
    Lookup,
}

#[derive(Debug)]
enum Slot {
    Ready(Bytes),
    Waiting {
        id: ReqId,
        pending: Pending,
        deadline: Instant,
    },
}

/// The ordered replies of one session.
#[derive(Debug, Default)]
pub(super) struct Pipeline {
    slots: VecDeque<Slot>,
    /// Replies free to leave, in order.
    out: BytesMut,
    /// Where replies behind a waiting slot are rendered before they are queued.
    scratch: BytesMut,
}

impl Pipeline {
    /// Appends a reply written by `write` after every earlier one.
    pub(super) fn push(&mut self, write: impl FnOnce(&mut BytesMut)) {
        if self.slots.is_empty() {
            write(&mut self.out);
        } else {
            write(&mut self.scratch);
            self.slots
                .push_back(Slot::Ready(self.scratch.split().freeze()));
        }
    }

    /// Appends a slot that waits for the answer to question `id`.
    pub(super) fn wait(&mut self, id: ReqId, pending: Pending, deadline: Instant) {
        self.slots.push_back(Slot::Waiting {
            id,
            pending,
            deadline,
        });
    }

    /// Takes the waiting slot of `id`, leaving an empty ready slot in its place to be
    /// filled with [`Pipeline::fill`]; `None` when nothing waits for `id`.
    pub(super) fn take(&mut self, id: ReqId) -> Option<(usize, Pending)> {
        let index = self
            .slots
            .iter()
            .position(|s| matches!(s, Slot::Waiting { id: waiting, .. } if *waiting == id))?;
        let slot = self.slots.get_mut(index)?;
        match std::mem::replace(slot, Slot::Ready(Bytes::new())) {
            Slot::Waiting { pending, .. } => Some((index, pending)),
            Slot::Ready(_) => None,
        }
    }

    /// Writes the reply of the slot at `index` (taken with [`Pipeline::take`]).
    pub(super) fn fill(&mut self, index: usize, write: impl FnOnce(&mut BytesMut)) {
        write(&mut self.scratch);
        let bytes = self.scratch.split().freeze();
        if let Some(slot) = self.slots.get_mut(index) {
            *slot = Slot::Ready(bytes);
        }
    }

    /// Moves the ready replies at the front to the output.
    fn advance(&mut self) {
        while let Some(Slot::Ready(_)) = self.slots.front() {
            if let Some(Slot::Ready(bytes)) = self.slots.pop_front() {
                self.out.extend_from_slice(&bytes);
            }
        }
    }

    /// All replies free to leave, as one buffer.
    pub(super) fn flush(&mut self) -> Option<Bytes> {
        self.advance();
        if self.out.is_empty() {
            None
        } else {
            Some(self.out.split().freeze())
        }
    }

    /// A question other than RCPT is in flight: no further command may be read.
    pub(super) fn is_parked(&self) -> bool {
        self.slots.iter().any(
            |s| matches!(s, Slot::Waiting { pending, .. } if !matches!(pending, Pending::Rcpt)),
        )
    }

    /// Questions in flight.
    pub(super) fn waiting(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| matches!(s, Slot::Waiting { .. }))
            .count()
    }

    /// Replies held back (ready or waiting), for the invariant checks.
    pub(super) fn held(&self) -> usize {
        self.slots.len()
    }

    /// The earliest answer deadline.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter_map(|s| match s {
                Slot::Waiting { deadline, .. } => Some(*deadline),
                Slot::Ready(_) => None,
            })
            .min()
    }

    /// Forgets every waiting slot and every reply behind the first one (they could not
    /// leave in order); ready replies before it stay.
    pub(super) fn cancel(&mut self) {
        // After `advance` the front slot, if any, is a waiting one.
        self.advance();
        self.slots.clear();
    }
}
