//! Harnesses for the queue: the envelope record decoder (and, in `scheduler`, the
//! scheduler machine driven by a byte script).

use crate::queue::{decode, encode};

/// Decodes arbitrary bytes as an envelope record; whatever decodes must survive an
/// encode/decode round trip unchanged.
pub fn record(data: &[u8]) {
    if let Ok(envelope) = decode(data) {
        let again = decode(&encode(&envelope));
        assert_eq!(again.as_ref(), Ok(&envelope), "record round trip");
    }
}
