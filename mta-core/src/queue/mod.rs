//! The queue model: messages, envelopes, their states and the on-disk record format.
//!
//! A message is stored once; each of its recipients is an [`Envelope`] with its own id,
//! state and retry history. The runtime's spool stores each envelope as the opaque bytes
//! of [`encode`] and reads them back with [`decode`]; the [scheduler](crate::scheduler)
//! decides what happens to them.

mod envelope;
mod ids;
mod record;
#[cfg(test)]
pub(crate) mod tests;

pub use envelope::{
    DeliveryKind, DsnParams, Envelope, EnvelopeFlags, EnvelopeState, Failure, Notify, Ret,
};
pub use ids::{EnvelopeId, IdError, MessageId, SplitMix64};
pub use record::{decode, encode, RecordError, RECORD_VERSION};
