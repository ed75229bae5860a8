//! Limits of the server session, with the defaults of RFC 5321 §4.5.3.
//!
//! Every buffer and counter of a session has a bound here, so a peer can never make a
//! session grow without limit: the receive buffer, the replies held back for pipelining,
//! the questions in flight, the recipients of a transaction and the errors tolerated.

/// The bounds one server session enforces. Cheap to copy; lives in the server config.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Limits {
    /// Longest command line accepted, CRLF included. RFC 5321 §4.5.3.1.4 gives 512 octets
    /// and lets each extension add to it (RFC 1870, RFC 3461 add parameters to MAIL and
    /// RCPT), so the default is 4096. A longer line is discarded up to its end and
    /// answered with 500 (RFC 5321 §4.2.4).
    pub command_line: usize,
    /// Longest line of an AUTH exchange, CRLF included (RFC 4954 §4: 12288 octets).
    pub auth_line: usize,
    /// Longest text line of a DATA body, CRLF and stuffed dot included (RFC 5321
    /// §4.5.3.1.6: 1000). A message with a longer line is refused after its end.
    pub text_line: usize,
    /// Largest message accepted, in body octets after dot-unstuffing (RFC 1870 `SIZE`).
    pub message_size: u64,
    /// Recipients per transaction (RFC 5321 §4.5.3.1.8: at least 100 must be accepted);
    /// past it RCPT gets 452 4.5.3.
    pub recipients: usize,
    /// Mail transactions (MAIL commands accepted) per session.
    pub transactions: usize,
    /// Bad commands (5yz answers for syntax or sequence) tolerated before the session
    /// answers `421 4.7.0` and closes.
    pub errors: usize,
    /// Replies held back behind a question in flight; with PIPELINING a batch of RCPT
    /// commands is asked together up to this many, then the session waits.
    pub pipeline_depth: usize,
    /// Bytes held in the receive buffer (pipelined commands waiting behind an answer).
    /// `recv_capacity()` never offers more; input beyond it closes the session.
    pub recv_buffer: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            command_line: 4096,
            auth_line: 12288,
            text_line: 1000,
            message_size: 35 * 1024 * 1024,
            recipients: 100,
            transactions: 100,
            errors: 10,
            pipeline_depth: 100,
            recv_buffer: 64 * 1024,
        }
    }
}
