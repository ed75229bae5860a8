//! Harness for the control protocol: arbitrary bytes, whole or split at arbitrary
//! points, never panic the decoders, never make them hold more than one bounded frame,
//! and whatever decodes survives an encode/decode round trip. The same bytes go through
//! the decoder of `sendmail`'s offline files, which the daemon reads from a directory
//! every user may write to.

use crate::control::{
    decode, decode_offline, encode, encode_offline, FrameDecoder, Request, Response, Wire,
    HEADER_LEN, MAX_SUBMISSION,
};

/// Runs both decoders over `data` (its first byte chooses the chunk size of the stream).
pub fn frames(data: &[u8]) {
    whole::<Request>(data);
    whole::<Response>(data);
    let (chunk, rest) = match data.split_first() {
        Some((&c, rest)) => (usize::from(c).max(1), rest),
        None => (1, data),
    };
    stream::<Request>(rest, chunk);
    stream::<Response>(rest, chunk);
    offline_file(data);
}

/// An offline file that decodes encodes back to a file that decodes to the same message.
pub fn offline_file(data: &[u8]) {
    if let Ok(message) = decode_offline(data) {
        let again = encode_offline(&message).expect("a decoded message encodes");
        assert_eq!(decode_offline(&again).as_ref(), Ok(&message), "round trip");
    }
}

fn whole<M: Wire + PartialEq + std::fmt::Debug>(data: &[u8]) {
    if let Ok(value) = decode::<M>(data) {
        let again = encode(&value).expect("a decoded value fits a frame");
        assert_eq!(decode::<M>(&again).as_ref(), Ok(&value), "round trip");
        assert_eq!(again, data, "one encoding per value");
    }
}

fn stream<M: Wire + PartialEq + std::fmt::Debug>(data: &[u8], chunk: usize) {
    let mut decoder = FrameDecoder::<M>::new();
    for piece in data.chunks(chunk) {
        let mut piece = piece;
        loop {
            let taken = decoder.push(piece);
            assert!(decoder.buffered() <= HEADER_LEN + MAX_SUBMISSION as usize);
            piece = piece.get(taken..).unwrap_or(&[]);
            match decoder.next() {
                Some(Ok(_)) => continue,
                Some(Err(_)) => return,
                None => {}
            }
            if piece.is_empty() {
                break;
            }
        }
    }
}
