//! xtext encoding and decoding (RFC 3461 §4), the encoding of the ENVID, ORCPT and
//! AUTH= parameter values.
//!
//! `xtext = *( xchar / hexchar )`: `xchar` is any printable ASCII octet (33..=126)
//! except `+` and `=`; `hexchar` is `+` followed by two upper-case hex digits.

use bytes::{BufMut, Bytes, BytesMut};

/// Why an xtext value does not decode.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum XtextError {
    /// An octet outside `xchar` (a control, a space, `=` or a non-ASCII octet).
    #[error("invalid character in xtext")]
    InvalidChar,
    /// `+` not followed by two upper-case hexadecimal digits.
    #[error("invalid hexchar in xtext")]
    InvalidHex,
}

/// `xchar`: printable ASCII except `+` and `=`.
fn is_xchar(b: u8) -> bool {
    matches!(b, 33..=126) && b != b'+' && b != b'='
}

/// The value of an upper-case hex digit.
fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The upper-case hex digit of a nibble.
fn hex_digit(nibble: u8) -> u8 {
    match nibble {
        0..=9 => b'0' + nibble,
        _ => b'A' + (nibble & 0x0f).saturating_sub(10),
    }
}

/// Checks that `input` is xtext and returns its decoded length.
fn check(input: &[u8]) -> Result<usize, XtextError> {
    let mut i = 0usize;
    let mut len = 0usize;
    while let Some(&b) = input.get(i) {
        if b == b'+' {
            let hi = input.get(i + 1).copied().and_then(hex_value);
            let lo = input.get(i + 2).copied().and_then(hex_value);
            if hi.is_none() || lo.is_none() {
                return Err(XtextError::InvalidHex);
            }
            i += 3;
        } else if is_xchar(b) {
            i += 1;
        } else {
            return Err(XtextError::InvalidChar);
        }
        len += 1;
    }
    Ok(len)
}

/// Decodes xtext into a fresh buffer.
///
/// # Errors
/// [`XtextError`] when `input` is not xtext.
pub fn decode(input: &[u8]) -> Result<Bytes, XtextError> {
    decode_bytes(Bytes::copy_from_slice(input))
}

/// Decodes xtext held in `Bytes`: without a `+` the value is returned as a sub-slice,
/// with no copy.
///
/// # Errors
/// [`XtextError`] when `input` is not xtext.
pub fn decode_bytes(input: Bytes) -> Result<Bytes, XtextError> {
    let len = check(&input)?;
    if len == input.len() {
        return Ok(input);
    }
    let mut out = BytesMut::with_capacity(len);
    let mut i = 0usize;
    while let Some(&b) = input.get(i) {
        if b == b'+' {
            let hi = input.get(i + 1).copied().and_then(hex_value).unwrap_or(0);
            let lo = input.get(i + 2).copied().and_then(hex_value).unwrap_or(0);
            out.put_u8(hi << 4 | lo);
            i += 3;
        } else {
            out.put_u8(b);
            i += 1;
        }
    }
    Ok(out.freeze())
}

/// Encodes `input` as xtext into a fresh buffer.
pub fn encode(input: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(input.len());
    encode_into(input, &mut out);
    out.freeze()
}

/// Appends the xtext form of `input` to `out`: `xchar`s as they are, every other octet
/// as `+HH`.
pub fn encode_into(input: &[u8], out: &mut BytesMut) {
    for &b in input {
        if is_xchar(b) {
            out.put_u8(b);
        } else {
            out.put_u8(b'+');
            out.put_u8(hex_digit(b >> 4));
            out.put_u8(hex_digit(b & 0x0f));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_examples() {
        assert_eq!(decode(b"").unwrap(), Bytes::new());
        assert_eq!(decode(b"abc").unwrap(), Bytes::from_static(b"abc"));
        assert_eq!(decode(b"a+2Bb+3Dc").unwrap(), Bytes::from_static(b"a+b=c"));
        assert_eq!(decode(b"+20+0D+0A").unwrap(), Bytes::from_static(b" \r\n"));
        assert_eq!(decode(b"+FF").unwrap(), Bytes::from_static(b"\xff"));
    }

    #[test]
    fn rejects_bad_xtext() {
        assert_eq!(decode(b"a b"), Err(XtextError::InvalidChar));
        assert_eq!(decode(b"a=b"), Err(XtextError::InvalidChar));
        assert_eq!(decode(b"\xc3\xa9"), Err(XtextError::InvalidChar));
        assert_eq!(decode(b"+"), Err(XtextError::InvalidHex));
        assert_eq!(decode(b"+2"), Err(XtextError::InvalidHex));
        assert_eq!(decode(b"+2b"), Err(XtextError::InvalidHex));
        assert_eq!(decode(b"+G0"), Err(XtextError::InvalidHex));
    }

    #[test]
    fn encodes_examples() {
        assert_eq!(encode(b"a+b=c d"), Bytes::from_static(b"a+2Bb+3Dc+20d"));
        assert_eq!(
            encode(b"user@example.com"),
            Bytes::from_static(b"user@example.com")
        );
        assert_eq!(encode(b"\x00\x7f\xff"), Bytes::from_static(b"+00+7F+FF"));
    }

    #[test]
    fn decode_without_hexchar_is_zero_copy() {
        let input = Bytes::from_static(b"plain");
        let out = decode_bytes(input.clone()).unwrap();
        assert_eq!(out.as_ptr(), input.as_ptr());
    }

    quickcheck::quickcheck! {
        fn round_trip(data: Vec<u8>) -> bool {
            decode(&encode(&data)).ok() == Some(Bytes::from(data))
        }
    }
}
