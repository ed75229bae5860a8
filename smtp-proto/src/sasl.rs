//! SASL PLAIN (RFC 4616) and LOGIN decoding for AUTH (RFC 4954), and the matching
//! encoders for the client side.
//!
//! Every client response is base64 (RFC 4954 §4); a response of `*` cancels the
//! exchange, which the server answers with 501.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use bytes::Bytes;

/// Standard base64; padding is accepted but not required, as some clients omit it.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Longest field of PLAIN (RFC 4616 §2 allows up to 255 octets each).
const MAX_PLAIN_FIELD: usize = 255;

/// The server's first LOGIN challenge, base64 of `Username:` (sent as `334 VXNlcm5hbWU6`).
pub const LOGIN_USERNAME_CHALLENGE: &[u8] = b"VXNlcm5hbWU6";
/// The server's second LOGIN challenge, base64 of `Password:`.
pub const LOGIN_PASSWORD_CHALLENGE: &[u8] = b"UGFzc3dvcmQ6";

/// Why a SASL response is refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SaslError {
    /// The client sent `*`: it abandons the exchange (RFC 4954 §4, reply 501).
    #[error("authentication cancelled by the client")]
    Cancelled,
    /// The response is not base64 (reply 501 5.5.2).
    #[error("invalid base64")]
    InvalidBase64,
    /// The decoded PLAIN message is not `authzid NUL authcid NUL passwd` with a
    /// non-empty authcid and password of at most 255 octets each (RFC 4616 §2).
    #[error("malformed PLAIN credentials")]
    MalformedPlain,
}

/// The three fields of a PLAIN message (RFC 4616 §2), sub-slices of one decoded buffer.
#[derive(Clone, PartialEq, Eq)]
pub struct PlainCredentials {
    /// The identity to act as; empty when the client asks for its own.
    pub authzid: Bytes,
    /// The identity whose password is given (the user name).
    pub authcid: Bytes,
    /// The password; never shown by `Debug`.
    pub password: Bytes,
}

impl std::fmt::Debug for PlainCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainCredentials")
            .field("authzid", &String::from_utf8_lossy(&self.authzid))
            .field("authcid", &String::from_utf8_lossy(&self.authcid))
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Decodes one base64 client response (a LOGIN user name or password, or a step of any
/// mechanism). An empty response and `=` (RFC 4954 §4, the empty initial response)
/// both decode to nothing; surrounding spaces are ignored.
///
/// # Errors
/// [`SaslError::Cancelled`] for `*`, [`SaslError::InvalidBase64`] otherwise.
pub fn decode_base64(b64: &[u8]) -> Result<Bytes, SaslError> {
    let b64 = b64.trim_ascii();
    match b64 {
        b"*" => Err(SaslError::Cancelled),
        b"" | b"=" => Ok(Bytes::new()),
        _ => BASE64
            .decode(b64)
            .map(Bytes::from)
            .map_err(|_| SaslError::InvalidBase64),
    }
}

/// Decodes a PLAIN response: base64 of `authzid NUL authcid NUL passwd` (RFC 4616 §2).
///
/// # Errors
/// As [`decode_base64`], and [`SaslError::MalformedPlain`] when the fields are wrong.
pub fn decode_plain(b64: &[u8]) -> Result<PlainCredentials, SaslError> {
    let message = decode_base64(b64)?;
    let mut nuls = message
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == 0)
        .map(|(i, _)| i);
    let (Some(first), Some(second), None) = (nuls.next(), nuls.next(), nuls.next()) else {
        return Err(SaslError::MalformedPlain);
    };
    let authzid = message.slice(..first);
    let authcid = message.slice(first + 1..second);
    let password = message.slice(second + 1..);
    let too_long = [&authzid, &authcid, &password]
        .iter()
        .any(|f| f.len() > MAX_PLAIN_FIELD);
    if authcid.is_empty() || password.is_empty() || too_long {
        return Err(SaslError::MalformedPlain);
    }
    Ok(PlainCredentials {
        authzid,
        authcid,
        password,
    })
}

/// Encodes `bytes` as padded base64, for a client response.
pub fn encode_base64(bytes: &[u8]) -> Bytes {
    Bytes::from(BASE64.encode(bytes))
}

/// Encodes a PLAIN response: base64 of `authzid NUL user NUL pass` (RFC 4616 §2).
pub fn encode_plain(authzid: &[u8], user: &[u8], pass: &[u8]) -> Bytes {
    let mut message = Vec::with_capacity(authzid.len() + user.len() + pass.len() + 2);
    message.extend_from_slice(authzid);
    message.push(0);
    message.extend_from_slice(user);
    message.push(0);
    message.extend_from_slice(pass);
    encode_base64(&message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_plain() {
        let creds = decode_plain(b"AHRpbQB0YW5zdGFhZnRhbnN0YWFm").unwrap();
        assert_eq!(creds.authzid, Bytes::new());
        assert_eq!(creds.authcid, Bytes::from_static(b"tim"));
        assert_eq!(creds.password, Bytes::from_static(b"tanstaaftanstaaf"));
        let with_authzid = decode_plain(&encode_plain(b"admin", b"tim", b"pw")).unwrap();
        assert_eq!(with_authzid.authzid, Bytes::from_static(b"admin"));
    }

    #[test]
    fn plain_errors() {
        assert_eq!(decode_plain(b"*"), Err(SaslError::Cancelled));
        assert_eq!(decode_plain(b"!!!"), Err(SaslError::InvalidBase64));
        assert_eq!(
            decode_plain(&encode_base64(b"tim\0pw")),
            Err(SaslError::MalformedPlain)
        );
        assert_eq!(
            decode_plain(&encode_base64(b"\0\0pw")),
            Err(SaslError::MalformedPlain)
        );
        assert_eq!(
            decode_plain(&encode_base64(b"\0tim\0")),
            Err(SaslError::MalformedPlain)
        );
        assert_eq!(
            decode_plain(&encode_base64(b"\0a\0b\0c")),
            Err(SaslError::MalformedPlain)
        );
        let long = [b'x'; 256];
        assert_eq!(
            decode_plain(&encode_plain(b"", b"tim", &long)),
            Err(SaslError::MalformedPlain)
        );
        assert_eq!(decode_plain(b"="), Err(SaslError::MalformedPlain));
    }

    #[test]
    fn decodes_login_steps() {
        assert_eq!(decode_base64(b"dGlt"), Ok(Bytes::from_static(b"tim")));
        assert_eq!(
            decode_base64(b"dGltMQ"),
            Ok(Bytes::from_static(b"tim1")),
            "no padding"
        );
        assert_eq!(decode_base64(b"dGltMQ=="), Ok(Bytes::from_static(b"tim1")));
        assert_eq!(decode_base64(b" dGlt "), Ok(Bytes::from_static(b"tim")));
        assert_eq!(decode_base64(b""), Ok(Bytes::new()));
        assert_eq!(decode_base64(b"*"), Err(SaslError::Cancelled));
        assert_eq!(decode_base64(b"dG\x00lt"), Err(SaslError::InvalidBase64));
    }

    #[test]
    fn login_challenges_decode_to_prompts() {
        assert_eq!(
            decode_base64(LOGIN_USERNAME_CHALLENGE).unwrap(),
            &b"Username:"[..]
        );
        assert_eq!(
            decode_base64(LOGIN_PASSWORD_CHALLENGE).unwrap(),
            &b"Password:"[..]
        );
    }

    #[test]
    fn debug_hides_the_password() {
        let creds = decode_plain(&encode_plain(b"", b"tim", b"s3cret-pw")).unwrap();
        let shown = format!("{creds:?}");
        assert!(
            shown.contains("tim") && !shown.contains("s3cret"),
            "{shown}"
        );
    }

    quickcheck::quickcheck! {
        fn base64_round_trip(data: Vec<u8>) -> bool {
            decode_base64(&encode_base64(&data)) == Ok(Bytes::from(data))
        }
        fn plain_round_trip(authzid: Vec<u8>, user: Vec<u8>, pass: Vec<u8>) -> bool {
            let ok_field = |f: &[u8]| !f.contains(&0) && f.len() <= MAX_PLAIN_FIELD;
            if !ok_field(&authzid) || !ok_field(&user) || !ok_field(&pass)
                || user.is_empty() || pass.is_empty()
            {
                return true;
            }
            let creds = decode_plain(&encode_plain(&authzid, &user, &pass)).unwrap();
            creds.authzid == authzid && creds.authcid == user && creds.password == pass
        }
    }
}
