//! Queue identifiers in the manner of OpenSMTPD: a 32-bit message id, and a 64-bit
//! envelope id whose high half is the message id, so an envelope names its message.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// SplitMix64, a tiny deterministic generator: the core crate draws no randomness of its
/// own, so ids and MIME boundaries come from this, seeded by the runtime (OS entropy) or by
/// a test (a fixed seed reproduces a run).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose sequence is fixed by `seed`.
    pub const fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// The next 32 pseudo-random bits (the high half of [`SplitMix64::next_u64`]).
    pub fn next_u32(&mut self) -> u32 {
        u32::try_from(self.next_u64() >> 32).unwrap_or(0)
    }
}

/// A message's id: 32 random-looking bits, written as 8 lower-case hex digits.
/// Never zero, so that zero can never be mistaken for a real id.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct MessageId(u32);

impl MessageId {
    /// The id with this value, or `None` for zero.
    pub const fn new(value: u32) -> Option<Self> {
        if value == 0 {
            None
        } else {
            Some(MessageId(value))
        }
    }

    /// The numeric value.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// A fresh id drawn from `rng`. The caller checks it is not in use (the spool knows)
    /// and draws again if it is, as OpenSMTPD does.
    pub fn generate(rng: &mut SplitMix64) -> Self {
        loop {
            if let Some(id) = MessageId::new(rng.next_u32()) {
                return id;
            }
        }
    }
}

/// An envelope's id: the message id in the high 32 bits and 32 random bits below,
/// written as 16 lower-case hex digits. The low half is never zero.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct EnvelopeId(u64);

impl EnvelopeId {
    /// The id with this value, or `None` when either half is zero.
    pub const fn new(value: u64) -> Option<Self> {
        if value >> 32 == 0 || value & 0xffff_ffff == 0 {
            None
        } else {
            Some(EnvelopeId(value))
        }
    }

    /// The numeric value.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The message this envelope belongs to (the high 32 bits).
    pub const fn message_id(self) -> MessageId {
        MessageId((self.0 >> 32) as u32)
    }

    /// A fresh envelope id for `message`, drawn from `rng`; the caller checks it is unused.
    pub fn generate(message: MessageId, rng: &mut SplitMix64) -> Self {
        loop {
            let low = rng.next_u32();
            if low != 0 {
                return EnvelopeId((u64::from(message.0) << 32) | u64::from(low));
            }
        }
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl fmt::Display for EnvelopeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Why a string is not a queue id.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Error)]
#[non_exhaustive]
pub enum IdError {
    /// Not exactly 8 (message) or 16 (envelope) hexadecimal digits.
    #[error("malformed queue id")]
    Malformed,
    /// A zero message id or a zero envelope half.
    #[error("zero is not a queue id")]
    Zero,
}

/// Parses exactly `len` hex digits (either case), nothing else.
fn parse_hex(s: &str, len: usize) -> Result<u64, IdError> {
    if s.len() != len || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(IdError::Malformed);
    }
    u64::from_str_radix(s, 16).map_err(|_| IdError::Malformed)
}

impl FromStr for MessageId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, IdError> {
        let v = u32::try_from(parse_hex(s, 8)?).map_err(|_| IdError::Malformed)?;
        MessageId::new(v).ok_or(IdError::Zero)
    }
}

impl FromStr for EnvelopeId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, IdError> {
        EnvelopeId::new(parse_hex(s, 16)?).ok_or(IdError::Zero)
    }
}
