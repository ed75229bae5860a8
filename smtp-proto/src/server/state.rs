//! The session's reading modes and the facts it keeps between commands.
//!
//! The mode says how the next received bytes are read (command lines, an AUTH response,
//! a DATA body, a BDAT chunk, nothing during the TLS handshake); each mode carries the
//! data only it needs, which moves on when the mode changes. The transaction is kept
//! apart because it lives across modes (MAIL ... RCPT ... body).

use bytes::Bytes;

use crate::data::{BdatChunk, DotReader};

use super::render::Canned;
use crate::reply::Reply;

/// How the next bytes are read.
#[derive(Debug)]
pub(super) enum Mode {
    /// Command lines.
    Command,
    /// A SASL response line of an AUTH exchange (RFC 4954 §4).
    Auth(AuthStep),
    /// A DATA body, after 354.
    Data(DotReader),
    /// A BDAT chunk.
    Bdat(BdatRead),
    /// After `220 Ready to start TLS`, until the handshake is done.
    TlsHandshake,
    /// The session is over; everything is ignored.
    Closed,
}

/// Which response an AUTH exchange waits for.
#[derive(Clone, Debug)]
pub(super) enum AuthStep {
    /// The PLAIN response after the empty `334 ` challenge.
    PlainResponse,
    /// The LOGIN user name.
    LoginUser,
    /// The LOGIN password; the user name is known.
    LoginPassword { user: Bytes },
}

/// A BDAT chunk being read (RFC 3030 §2).
#[derive(Debug)]
pub(super) struct BdatRead {
    pub(super) chunk: BdatChunk,
    /// The chunk's size as announced.
    pub(super) size: u64,
    /// `BDAT n LAST`.
    pub(super) last: bool,
    /// Whether the chunk is part of the message or is being thrown away.
    pub(super) fate: ChunkFate,
}

/// What becomes of a BDAT chunk's bytes.
#[derive(Debug)]
pub(super) enum ChunkFate {
    /// Delivered as `Body` chunks.
    Accept,
    /// Dropped; this session reply goes out when the chunk has been read.
    Refuse(Canned),
    /// Dropped; the engine's refusal goes out when the chunk has been read.
    RefuseWith(Reply),
}

/// The greeting the client gave and we accepted.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) struct Greeted {
    /// EHLO rather than HELO.
    pub(super) esmtp: bool,
}

/// How far the body of a transaction has come.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum BodyStage {
    /// No body yet.
    None,
    /// BDAT chunks accepted so far, and their total size.
    Chunks { received: u64 },
}

/// One mail transaction, from an accepted MAIL to the end of its message or a reset.
#[derive(Clone, Debug)]
pub(super) struct Transaction {
    /// MAIL carried SMTPUTF8 (RFC 6531 §3.4).
    pub(super) smtputf8: bool,
    /// MAIL carried BODY=BINARYMIME (RFC 3030 §3): only BDAT may follow.
    pub(super) binary: bool,
    /// Recipients accepted.
    pub(super) accepted: usize,
    /// RCPT questions asked, answered or not: the recipient limit counts these, so the
    /// verdict does not depend on how many were in flight at once.
    pub(super) asked: usize,
    /// The body so far.
    pub(super) body: BodyStage,
}

impl Transaction {
    /// A transaction just accepted by MAIL.
    pub(super) fn new(smtputf8: bool, binary: bool) -> Self {
        Transaction {
            smtputf8,
            binary,
            accepted: 0,
            asked: 0,
            body: BodyStage::None,
        }
    }
}
