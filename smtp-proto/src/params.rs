//! ESMTP parameters of MAIL and RCPT (RFC 5321 §4.1.2 `Mail-parameters`): SIZE (RFC 1870),
//! BODY (RFC 6152, RFC 3030), SMTPUTF8 (RFC 6531), AUTH= (RFC 4954 §5) and the DSN
//! parameters RET, ENVID, NOTIFY, ORCPT (RFC 3461).

use bytes::Bytes;

/// `BODY=` of MAIL FROM.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum BodyType {
    /// `BODY=7BIT`.
    SevenBit,
    /// `BODY=8BITMIME` (RFC 6152).
    EightBitMime,
    /// `BODY=BINARYMIME` (RFC 3030); requires BDAT.
    BinaryMime,
}

/// `RET=` of MAIL FROM (RFC 3461 §4.3): what a DSN should carry.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Ret {
    /// `RET=FULL`: the whole message.
    Full,
    /// `RET=HDRS`: the headers only.
    Headers,
}

/// `NOTIFY=` of RCPT TO (RFC 3461 §4.1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Notify {
    /// `NEVER` was given (exclusive with the others).
    pub never: bool,
    /// `SUCCESS` was given.
    pub success: bool,
    /// `FAILURE` was given.
    pub failure: bool,
    /// `DELAY` was given.
    pub delay: bool,
}

/// `ORCPT=addr-type;xtext` of RCPT TO (RFC 3461 §4.2), with the xtext decoded.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct OriginalRecipient {
    /// The address type, usually `rfc822`.
    pub addr_type: Bytes,
    /// The decoded address.
    pub addr: Bytes,
}

/// The parameters accepted on MAIL FROM.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct MailParams {
    /// `SIZE=n`, the size the client declares.
    pub size: Option<u64>,
    /// `BODY=`.
    pub body: Option<BodyType>,
    /// `SMTPUTF8` was given.
    pub smtputf8: bool,
    /// `AUTH=<mailbox>` or `AUTH=<>`, xtext-decoded; `Some(empty)` for `<>`.
    pub auth: Option<Bytes>,
    /// `RET=`.
    pub ret: Option<Ret>,
    /// `ENVID=`, xtext-decoded.
    pub envid: Option<Bytes>,
}

/// The parameters accepted on RCPT TO.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct RcptParams {
    /// `NOTIFY=`.
    pub notify: Option<Notify>,
    /// `ORCPT=`.
    pub orcpt: Option<OriginalRecipient>,
}
