//! Frames of the control protocol: an 8-byte header (`SC`, version, tag, big-endian
//! payload length) and a payload of big-endian integers, length-prefixed UTF-8 strings
//! and byte strings, and count-prefixed lists. Decoding is strict: a payload must be
//! consumed exactly, so every frame has one reading and `decode(encode(x)) == x`.

use super::{
    Agent, QueueRow, Request, Response, Status, Submission, MAX_FRAME, MAX_SUBMISSION, VERSION,
};
use crate::queue::{EnvelopeId, MessageId};
use crate::scheduler::Target;

/// The frame header's length: magic (2), version (1), tag (1), payload length (4).
pub const HEADER_LEN: usize = 8;

const MAGIC: [u8; 2] = *b"SC";

/// Why bytes are not a frame (or a value cannot be framed).
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The header does not start with `SC`: not a control client or server.
    #[error("not a control protocol frame")]
    Magic,
    /// Another protocol version (the daemon and smtpctl do not match).
    #[error("control protocol version {0} is not supported (this is version 1)")]
    Version(u8),
    /// An unknown tag.
    #[error("unknown control frame type {0}")]
    Tag(u8),
    /// The payload exceeds the bound of its tag.
    #[error("control frame too large: {len} bytes")]
    TooLarge {
        /// The payload length.
        len: u64,
    },
    /// The payload ends early, has bytes left over, or holds an invalid value.
    #[error("malformed control frame")]
    Malformed,
}

/// A value that travels in frames: [`Request`] or [`Response`].
pub trait Wire: Sized {
    /// The bound of the payload of frames of `tag`, or `None` for an unknown tag.
    fn max_payload(tag: u8) -> Option<u32>;
    /// This value's tag.
    fn tag(&self) -> u8;
    /// Appends this value's payload.
    fn write_payload(&self, out: &mut Vec<u8>);
    /// Reads a payload of `tag`.
    ///
    /// # Errors
    /// [`DecodeError::Malformed`] or [`DecodeError::Tag`].
    fn read_payload(tag: u8, r: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

/// The frame of `value`.
///
/// # Errors
/// [`DecodeError::TooLarge`] when its payload exceeds the bound of its tag.
pub fn encode<M: Wire>(value: &M) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(value.tag());
    out.extend_from_slice(&[0; 4]);
    value.write_payload(&mut out);
    let len = out.len().saturating_sub(HEADER_LEN);
    let max = M::max_payload(value.tag()).unwrap_or(0);
    let len32 = u32::try_from(len)
        .ok()
        .filter(|&l| l <= max)
        .ok_or(DecodeError::TooLarge { len: len as u64 })?;
    if let Some(slot) = out.get_mut(4..HEADER_LEN) {
        slot.copy_from_slice(&len32.to_be_bytes());
    }
    Ok(out)
}

/// Decodes exactly one whole frame.
///
/// # Errors
/// Any [`DecodeError`]; trailing bytes are [`DecodeError::Malformed`].
pub fn decode<M: Wire>(frame: &[u8]) -> Result<M, DecodeError> {
    let (tag, len) = header::<M>(frame)?;
    let payload = frame.get(HEADER_LEN..).ok_or(DecodeError::Malformed)?;
    if payload.len() as u64 != u64::from(len) {
        return Err(DecodeError::Malformed);
    }
    let mut r = Reader { rest: payload };
    let value = M::read_payload(tag, &mut r)?;
    if r.rest.is_empty() {
        Ok(value)
    } else {
        Err(DecodeError::Malformed)
    }
}

/// Checks a complete header; returns the tag and payload length.
fn header<M: Wire>(bytes: &[u8]) -> Result<(u8, u32), DecodeError> {
    let h = bytes.get(..HEADER_LEN).ok_or(DecodeError::Malformed)?;
    if h.get(..2) != Some(&MAGIC[..]) {
        return Err(DecodeError::Magic);
    }
    let version = h.get(2).copied().unwrap_or(0);
    if version != VERSION {
        return Err(DecodeError::Version(version));
    }
    let tag = h.get(3).copied().unwrap_or(0);
    let max = M::max_payload(tag).ok_or(DecodeError::Tag(tag))?;
    let mut len = [0u8; 4];
    len.copy_from_slice(h.get(4..HEADER_LEN).ok_or(DecodeError::Malformed)?);
    let len = u32::from_be_bytes(len);
    if len > max {
        return Err(DecodeError::TooLarge {
            len: u64::from(len),
        });
    }
    Ok((tag, len))
}

/// Decodes frames from a byte stream as it arrives. It takes only the bytes of the frame
/// in progress ([`FrameDecoder::push`] says how many), so it never holds more than one
/// frame, whose size the header bounds before any payload is accepted. An error is
/// final: the stream cannot be resynchronised.
#[derive(Debug)]
pub struct FrameDecoder<M> {
    buf: Vec<u8>,
    /// The whole frame's length, once the header is known.
    want: Option<usize>,
    failed: Option<DecodeError>,
    _kind: std::marker::PhantomData<fn() -> M>,
}

impl<M: Wire> Default for FrameDecoder<M> {
    fn default() -> Self {
        FrameDecoder::new()
    }
}

impl<M: Wire> FrameDecoder<M> {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        FrameDecoder {
            buf: Vec::new(),
            want: None,
            failed: None,
            _kind: std::marker::PhantomData,
        }
    }

    /// Takes bytes of the frame in progress from `input` and returns how many it took;
    /// 0 when a whole frame waits for [`FrameDecoder::next`] or the stream failed. Feed
    /// the rest after calling `next`.
    pub fn push(&mut self, input: &[u8]) -> usize {
        if self.failed.is_some() {
            return 0;
        }
        let mut taken = 0;
        if self.want.is_none() {
            let need = HEADER_LEN.saturating_sub(self.buf.len());
            let part = input.get(..need.min(input.len())).unwrap_or(&[]);
            self.buf.extend_from_slice(part);
            taken = part.len();
            if self.buf.len() < HEADER_LEN {
                return taken;
            }
            match header::<M>(&self.buf) {
                Ok((_, len)) => self.want = Some(HEADER_LEN.saturating_add(len as usize)),
                Err(e) => {
                    self.failed = Some(e);
                    return taken;
                }
            }
        }
        let want = self.want.unwrap_or(HEADER_LEN);
        let need = want.saturating_sub(self.buf.len());
        let rest = input.get(taken..).unwrap_or(&[]);
        let part = rest.get(..need.min(rest.len())).unwrap_or(&[]);
        self.buf.extend_from_slice(part);
        taken.saturating_add(part.len())
    }

    /// The next whole frame, decoded; `None` until one is complete. After an error every
    /// call returns that error.
    // Not an Iterator: `None` means "not yet", not "never again".
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Result<M, DecodeError>> {
        if let Some(e) = self.failed {
            return Some(Err(e));
        }
        let want = self.want?;
        if self.buf.len() < want {
            return None;
        }
        let result = decode::<M>(&self.buf);
        self.buf = Vec::new();
        self.want = None;
        if let Err(e) = result {
            self.failed = Some(e);
        }
        Some(result)
    }

    /// How many bytes are held (at most one frame).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// True between frames (nothing of a next frame received yet).
    pub fn is_idle(&self) -> bool {
        self.buf.is_empty() && self.failed.is_none()
    }
}

/// Reads payload fields, never past the payload.
#[derive(Debug)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        if n > self.rest.len() {
            return Err(DecodeError::Malformed);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        self.take(1)?.first().copied().ok_or(DecodeError::Malformed)
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }

    fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::Malformed),
        }
    }

    fn bytes(&mut self) -> Result<Vec<u8>, DecodeError> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        String::from_utf8(self.bytes()?).map_err(|_| DecodeError::Malformed)
    }

    /// A list count; never more than the bytes left, so no count can make a reader
    /// allocate beyond the payload.
    fn count(&mut self) -> Result<usize, DecodeError> {
        let n = self.u32()? as usize;
        if n > self.rest.len() {
            return Err(DecodeError::Malformed);
        }
        Ok(n)
    }

    fn envelope_id(&mut self) -> Result<EnvelopeId, DecodeError> {
        EnvelopeId::new(self.u64()?).ok_or(DecodeError::Malformed)
    }

    fn target(&mut self) -> Result<Target, DecodeError> {
        match self.u8()? {
            0 => Ok(Target::All),
            1 => Ok(Target::Envelope(self.envelope_id()?)),
            2 => MessageId::new(self.u32()?)
                .map(Target::Message)
                .ok_or(DecodeError::Malformed),
            _ => Err(DecodeError::Malformed),
        }
    }

    fn agent(&mut self) -> Result<Agent, DecodeError> {
        match self.u8()? {
            0 => Ok(Agent::Mda),
            1 => Ok(Agent::Mta),
            2 => Ok(Agent::Smtp),
            _ => Err(DecodeError::Malformed),
        }
    }
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// A length; lengths beyond `u32` cannot fit a frame, and [`encode`] refuses the frame.
fn put_len(out: &mut Vec<u8>, n: usize) {
    put_u32(out, u32::try_from(n).unwrap_or(u32::MAX));
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_len(out, b.len());
    out.extend_from_slice(b);
}

fn put_target(out: &mut Vec<u8>, t: &Target) {
    match t {
        Target::All => out.push(0),
        Target::Envelope(id) => {
            out.push(1);
            put_u64(out, id.get());
        }
        Target::Message(id) => {
            out.push(2);
            put_u32(out, id.get());
        }
    }
}

fn put_agent(out: &mut Vec<u8>, a: Agent) {
    out.push(match a {
        Agent::Mda => 0,
        Agent::Mta => 1,
        Agent::Smtp => 2,
    });
}

const ENQUEUE: u8 = 20;

impl Wire for Request {
    fn max_payload(tag: u8) -> Option<u32> {
        match tag {
            ENQUEUE => Some(MAX_SUBMISSION),
            1..=19 => Some(MAX_FRAME),
            _ => None,
        }
    }

    fn tag(&self) -> u8 {
        match self {
            Request::ShowQueue => 1,
            Request::ShowEnvelope(_) => 2,
            Request::ShowMessage(_) => 3,
            Request::ShowStats => 4,
            Request::ShowStatus => 5,
            Request::ShowRoutes => 6,
            Request::ShowHosts => 7,
            Request::Schedule(_) => 8,
            Request::Remove(_) => 9,
            Request::Pause(_) => 10,
            Request::Resume(_) => 11,
            Request::PauseEnvelope(_) => 12,
            Request::ResumeEnvelope(_) => 13,
            Request::Monitor => 14,
            Request::LogBrief => 15,
            Request::LogVerbose => 16,
            Request::Trace(_) => 17,
            Request::Untrace(_) => 18,
            Request::UpdateTable(_) => 19,
            Request::Enqueue(_) => ENQUEUE,
        }
    }

    fn write_payload(&self, out: &mut Vec<u8>) {
        match self {
            Request::ShowQueue
            | Request::ShowStats
            | Request::ShowStatus
            | Request::ShowRoutes
            | Request::ShowHosts
            | Request::Monitor
            | Request::LogBrief
            | Request::LogVerbose => {}
            Request::ShowEnvelope(id) | Request::ShowMessage(id) => put_u64(out, id.get()),
            Request::Schedule(t)
            | Request::Remove(t)
            | Request::PauseEnvelope(t)
            | Request::ResumeEnvelope(t) => put_target(out, t),
            Request::Pause(a) | Request::Resume(a) => put_agent(out, *a),
            Request::Trace(s) | Request::Untrace(s) | Request::UpdateTable(s) => {
                put_bytes(out, s.as_bytes());
            }
            Request::Enqueue(sub) => {
                put_bytes(out, sub.sender.as_bytes());
                put_len(out, sub.recipients.len());
                for r in &sub.recipients {
                    put_bytes(out, r.as_bytes());
                }
                put_bytes(out, &sub.message);
            }
        }
    }

    fn read_payload(tag: u8, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match tag {
            1 => Request::ShowQueue,
            2 => Request::ShowEnvelope(r.envelope_id()?),
            3 => Request::ShowMessage(r.envelope_id()?),
            4 => Request::ShowStats,
            5 => Request::ShowStatus,
            6 => Request::ShowRoutes,
            7 => Request::ShowHosts,
            8 => Request::Schedule(r.target()?),
            9 => Request::Remove(r.target()?),
            10 => Request::Pause(r.agent()?),
            11 => Request::Resume(r.agent()?),
            12 => Request::PauseEnvelope(r.target()?),
            13 => Request::ResumeEnvelope(r.target()?),
            14 => Request::Monitor,
            15 => Request::LogBrief,
            16 => Request::LogVerbose,
            17 => Request::Trace(r.string()?),
            18 => Request::Untrace(r.string()?),
            19 => Request::UpdateTable(r.string()?),
            ENQUEUE => {
                let sender = r.string()?;
                let n = r.count()?;
                let mut recipients = Vec::new();
                for _ in 0..n {
                    recipients.push(r.string()?);
                }
                let message = r.bytes()?;
                Request::Enqueue(Submission {
                    sender,
                    recipients,
                    message,
                })
            }
            other => return Err(DecodeError::Tag(other)),
        })
    }
}

impl Wire for Response {
    fn max_payload(tag: u8) -> Option<u32> {
        match tag {
            3 | 5 => Some(MAX_SUBMISSION),
            1 | 2 | 4 | 6 => Some(MAX_FRAME),
            _ => None,
        }
    }

    fn tag(&self) -> u8 {
        match self {
            Response::Ok => 1,
            Response::Error(_) => 2,
            Response::Text(_) => 3,
            Response::Stats(_) => 4,
            Response::Envelopes(_) => 5,
            Response::Status(_) => 6,
        }
    }

    fn write_payload(&self, out: &mut Vec<u8>) {
        match self {
            Response::Ok => {}
            Response::Error(text) => put_bytes(out, text.as_bytes()),
            Response::Text(lines) => {
                put_len(out, lines.len());
                for l in lines {
                    put_bytes(out, l.as_bytes());
                }
            }
            Response::Stats(stats) => {
                put_len(out, stats.len());
                for (name, value) in stats {
                    put_bytes(out, name.as_bytes());
                    put_u64(out, *value as u64);
                }
            }
            Response::Envelopes(rows) => {
                put_len(out, rows.len());
                for row in rows {
                    put_row(out, row);
                }
            }
            Response::Status(s) => {
                out.extend_from_slice(&[
                    u8::from(s.mda_paused),
                    u8::from(s.mta_paused),
                    u8::from(s.smtp_paused),
                ]);
            }
        }
    }

    fn read_payload(tag: u8, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match tag {
            1 => Response::Ok,
            2 => Response::Error(r.string()?),
            3 => {
                let n = r.count()?;
                let mut lines = Vec::new();
                for _ in 0..n {
                    lines.push(r.string()?);
                }
                Response::Text(lines)
            }
            4 => {
                let n = r.count()?;
                let mut stats = Vec::new();
                for _ in 0..n {
                    let name = r.string()?;
                    stats.push((name, r.u64()? as i64));
                }
                Response::Stats(stats)
            }
            5 => {
                let n = r.count()?;
                let mut rows = Vec::new();
                for _ in 0..n {
                    rows.push(read_row(r)?);
                }
                Response::Envelopes(rows)
            }
            6 => Response::Status(Status {
                mda_paused: r.bool()?,
                mta_paused: r.bool()?,
                smtp_paused: r.bool()?,
            }),
            other => return Err(DecodeError::Tag(other)),
        })
    }
}

fn put_row(out: &mut Vec<u8>, row: &QueueRow) {
    put_u64(out, row.id);
    for s in [&row.family, &row.kind, &row.flags, &row.sender] {
        put_bytes(out, s.as_bytes());
    }
    put_bytes(out, row.original_recipient.as_bytes());
    put_bytes(out, row.recipient.as_bytes());
    put_u64(out, row.created);
    put_u64(out, row.expires);
    put_u64(out, row.last_try);
    put_u32(out, row.tries);
    put_bytes(out, row.runstate.as_bytes());
    put_u64(out, row.delay);
    put_bytes(out, row.error.as_bytes());
}

fn read_row(r: &mut Reader<'_>) -> Result<QueueRow, DecodeError> {
    Ok(QueueRow {
        id: r.u64()?,
        family: r.string()?,
        kind: r.string()?,
        flags: r.string()?,
        sender: r.string()?,
        original_recipient: r.string()?,
        recipient: r.string()?,
        created: r.u64()?,
        expires: r.u64()?,
        last_try: r.u64()?,
        tries: r.u32()?,
        runstate: r.string()?,
        delay: r.u64()?,
        error: r.string()?,
    })
}
