//! Harnesses for the command, reply, path, parameter and SASL parsers.
//!
//! [`command`] and [`reply`] take raw bytes (from cargo-fuzz or quickcheck), run the
//! parsers on them as they are and once more remapped into an SMTP-looking alphabet
//! (so random bytes reach the deep paths of the grammar), and panic only when an
//! invariant breaks: a parsed value that does not render back to itself, a reply
//! stream that parses differently when split, a buffer past its limits.

use bytes::{Bytes, BytesMut};

use crate::command::{self, Command, ParseOptions};
use crate::reply::{Reply, ReplyError, ReplyLimits, ReplyParser};
use crate::{sasl, xtext};

#[cfg(test)]
mod arbitrary;
#[cfg(test)]
mod tests;

/// Command prefixes a remapped input starts with, chosen by its first byte.
const COMMAND_PREFIXES: &[&[u8]] = &[
    b"MAIL FROM:<",
    b"RCPT TO:<",
    b"MAIL FROM:<> ",
    b"RCPT TO:<a@b> ",
    b"EHLO ",
    b"HELO [",
    b"AUTH ",
    b"BDAT ",
    b"VRFY ",
    b"HELP",
    b"mail from: <",
    b"DATA",
    b"RCPT TO:<a@b>",
    b"MAIL FROM:<a@b>",
];

/// Pieces a remapped byte at or above 0x40 turns into: whole addresses and parameters
/// as well as the delimiters between them, so that random bytes often form commands.
const COMMAND_TOKENS: &[&[u8]] = &[
    b"a@example.org>",
    b"\"q \\\" t\"@[192.0.2.1]>",
    b"@r.example,@s.example:",
    b"postmaster>",
    b"u@[IPv6:2001:db8::1]>",
    b"x@[tag:<>]>",
    "j\u{f6}ran@b\u{fc}cher.example>".as_bytes(),
    b">",
    b"> ",
    b" ",
    b"a",
    b"@",
    b".",
    b"example.org",
    b"[",
    b"]",
    b":",
    b",",
    b"\"",
    b" SIZE=",
    b"1000",
    b" BODY=8BITMIME",
    b" BODY=BINARYMIME",
    b" SMTPUTF8",
    b" AUTH=<>",
    b" AUTH=a+2Bb@c",
    b" RET=HDRS",
    b" RET=FULL",
    b" ENVID=id+20x",
    b" NOTIFY=",
    b"SUCCESS",
    b",DELAY",
    b",FAILURE",
    b"NEVER",
    b" ORCPT=rfc822;a@b",
    b"+2B",
    b"+",
    b"=",
    b"IPv6:",
    b"::1",
    b"192.0.2.1",
    b" LAST",
    b"PLAIN",
    b" dGVzdA==",
    b"=",
    b"\\",
    b"-",
    b"\t",
];

/// Single characters a remapped byte below 0x40 turns into.
const COMMAND_ALPHABET: &[u8] = b"abcXYZ019.-_+@<>:;,=\"\\[] !#~\t\x80\xc3";

/// Maps bytes into command-looking text: a prefix, then characters and tokens.
pub fn remap_command(data: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() * 8 + 16);
    let Some((&first, rest)) = data.split_first() else {
        return out.freeze();
    };
    out.extend_from_slice(COMMAND_PREFIXES[usize::from(first) % COMMAND_PREFIXES.len()]);
    for &b in rest {
        if b >= 0x40 {
            out.extend_from_slice(COMMAND_TOKENS[usize::from(b) % COMMAND_TOKENS.len()]);
        } else {
            out.extend_from_slice(&[COMMAND_ALPHABET[usize::from(b) % COMMAND_ALPHABET.len()]]);
        }
    }
    out.freeze()
}

/// Parses `line` under both settings of SMTPUTF8; whatever parses must render to a
/// line that parses back to the same command, and every error must map to a 5xx reply.
pub fn check_command_line(line: &Bytes) {
    for smtputf8 in [false, true] {
        let opts = ParseOptions { smtputf8 };
        match command::parse(line.clone(), &opts) {
            Ok(cmd) => {
                let rendered = render_command(&cmd);
                let again = command::parse(rendered.clone(), &opts);
                assert_eq!(
                    again.as_ref(),
                    Ok(&cmd),
                    "{line:?} rendered as {rendered:?}"
                );
            }
            Err(e) => {
                let reply = e.reply(smtputf8);
                assert!((500..600).contains(&reply.code), "{e:?}");
            }
        }
    }
}

/// Renders a command and strips the CRLF, checking there is exactly one at the end.
pub fn render_command(cmd: &Command) -> Bytes {
    let mut out = BytesMut::new();
    cmd.render(&mut out);
    assert!(out.ends_with(b"\r\n"), "{cmd:?}");
    let line = out.split_to(out.len() - 2).freeze();
    assert!(
        !line.contains(&b'\r') && !line.contains(&b'\n'),
        "{cmd:?} renders {line:?}"
    );
    line
}

/// The decoders that see the same client lines as the command parser (SASL responses,
/// xtext values): no panic, and whatever decodes encodes back to the same value.
pub fn check_encodings(data: &[u8]) {
    if let Ok(decoded) = xtext::decode(data) {
        assert_eq!(xtext::decode(&xtext::encode(&decoded)), Ok(decoded));
    }
    if let Ok(decoded) = sasl::decode_base64(data) {
        assert_eq!(
            sasl::decode_base64(&sasl::encode_base64(&decoded)),
            Ok(decoded)
        );
    }
    if let Ok(creds) = sasl::decode_plain(data) {
        let again = sasl::encode_plain(&creds.authzid, &creds.authcid, &creds.password);
        assert_eq!(sasl::decode_plain(&again), Ok(creds));
    }
}

/// The command harness: raw bytes as one line, then the same bytes remapped; the raw
/// bytes also go through the SASL and xtext decoders.
pub fn command(data: &[u8]) {
    check_command_line(&Bytes::copy_from_slice(data));
    check_command_line(&remap_command(data));
    check_encodings(data);
}

/// Characters a remapped reply byte turns into; `\n` stands for CRLF.
const REPLY_ALPHABET: &[u8] = b"2222555004-- ...\n\n\n\nab\r";

/// Maps bytes into reply-looking text, `\n` written as CRLF most of the time.
pub fn remap_reply(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() * 2);
    for &b in data {
        match REPLY_ALPHABET[usize::from(b) % REPLY_ALPHABET.len()] {
            b'\n' if b & 0x80 == 0 => out.extend_from_slice(b"\r\n"),
            c => out.push(c),
        }
    }
    out
}

/// Small limits, so the harness reaches them often.
const FUZZ_LIMITS: ReplyLimits = ReplyLimits {
    max_lines: 4,
    max_line_len: 40,
};

/// Feeds `input` to a parser in chunks of the given sizes (cycled; 0 means 1) and
/// returns the replies and the error that ended the stream, if any. Checks that the
/// bytes held for a reply in progress never exceed the limits.
pub fn parse_reply_stream(
    input: &[u8],
    chunks: &[usize],
    limits: ReplyLimits,
) -> (Vec<Reply>, Option<ReplyError>) {
    let mut parser = ReplyParser::new(limits);
    let mut buf = BytesMut::new();
    let mut replies = Vec::new();
    let mut at = 0usize;
    let mut sizes = chunks.iter().copied().cycle();
    while at < input.len() {
        let size = sizes
            .next()
            .unwrap_or(input.len())
            .clamp(1, input.len() - at);
        buf.extend_from_slice(&input[at..at + size]);
        at += size;
        loop {
            match parser.parse(&mut buf) {
                Ok(Some(reply)) => replies.push(reply),
                Ok(None) => break,
                Err(e) => return (replies, Some(e)),
            }
        }
        let cap = limits.max_lines * limits.max_line_len;
        assert!(buf.len() < cap, "{} bytes held for one reply", buf.len());
    }
    (replies, None)
}

/// Renders a reply and parses it back with a fresh parser.
pub fn check_reply_round_trip(reply: &Reply) {
    let wire = reply.to_bytes();
    let mut buf = BytesMut::from(&wire[..]);
    let limits = ReplyLimits {
        max_lines: reply.lines.len().max(1),
        max_line_len: 1 << 20,
    };
    let again = ReplyParser::new(limits).parse(&mut buf);
    assert_eq!(again, Ok(Some(reply.clone())), "{wire:?}");
    assert!(buf.is_empty());
}

/// Checks one reply byte stream: the same replies whatever the chunking, and every
/// parsed reply renders back to itself.
pub fn check_reply_stream(input: &[u8], chunks: &[usize]) {
    let whole = parse_reply_stream(input, &[input.len()], FUZZ_LIMITS);
    let split = parse_reply_stream(input, chunks, FUZZ_LIMITS);
    assert_eq!(whole, split, "chunks {chunks:?}");
    let bytewise = parse_reply_stream(input, &[1], FUZZ_LIMITS);
    assert_eq!(whole, bytewise);
    for reply in &whole.0 {
        check_reply_round_trip(reply);
    }
}

/// The reply harness: the first bytes choose chunk sizes, the rest is the stream, fed
/// raw and remapped.
pub fn reply(data: &[u8]) {
    let (head, stream) = data.split_at(data.len().min(3));
    let chunks: Vec<usize> = head.iter().map(|&b| usize::from(b % 64) + 1).collect();
    check_reply_stream(stream, &chunks);
    check_reply_stream(&remap_reply(stream), &chunks);
}
