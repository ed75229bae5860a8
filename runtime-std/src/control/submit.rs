//! A local submission spoken as SMTP (RFC 5321 §3.3) over any stream, so the daemon can
//! hand a [`Submission`] to its ordinary session code (through a socket pair, as the
//! local enqueuer) and the message takes the same path as mail from the network.

use std::io::{self, Read, Write};

use mta_core::control::{Response, Submission};

/// Longest reply line accepted (RFC 5321 §4.5.3.1.5 allows 512 octets).
const MAX_REPLY_LINE: usize = 2048;

/// Most lines of one multi-line reply accepted.
const MAX_REPLY_LINES: usize = 64;

/// One SMTP reply: its code and its text lines.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// The text of each line, without the code and separator.
    pub lines: Vec<String>,
}

impl Reply {
    /// `250 text`, the reply as one line for messages.
    pub fn to_line(&self) -> String {
        format!("{} {}", self.code, self.lines.join(" "))
    }
}

/// Reads replies from a stream, bounded.
struct Replies<'a, S> {
    stream: &'a mut S,
    buf: Vec<u8>,
}

impl<S: Read + Write> Replies<'_, S> {
    fn line(&mut self) -> io::Result<String> {
        loop {
            if let Some(at) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=at).collect();
                let text = String::from_utf8_lossy(&line);
                return Ok(text.trim_end_matches(['\r', '\n']).to_owned());
            }
            if self.buf.len() > MAX_REPLY_LINE {
                return Err(invalid("reply line too long"));
            }
            let mut chunk = [0u8; 1024];
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the session",
                ));
            }
            self.buf.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
        }
    }

    fn reply(&mut self) -> io::Result<Reply> {
        let mut lines = Vec::new();
        loop {
            let line = self.line()?;
            let code = line
                .get(..3)
                .and_then(|c| c.parse::<u16>().ok())
                .filter(|c| (200..600).contains(c))
                .ok_or_else(|| invalid("malformed reply"))?;
            let more = line.get(3..4) == Some("-");
            lines.push(line.get(4..).unwrap_or("").to_owned());
            if !more {
                return Ok(Reply { code, lines });
            }
            if lines.len() >= MAX_REPLY_LINES {
                return Err(invalid("reply too long"));
            }
        }
    }

    fn command(&mut self, line: &str) -> io::Result<Reply> {
        self.stream.write_all(line.as_bytes())?;
        self.stream.write_all(b"\r\n")?;
        self.stream.flush()?;
        self.reply()
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// The body with bare LFs made CRLF (sendmail input is in the local convention), then
/// dot-stuffed and terminated (RFC 5321 §4.5.2).
pub fn data_bytes(message: &[u8]) -> Vec<u8> {
    let mut crlf = Vec::with_capacity(message.len().saturating_add(message.len() / 32));
    let mut prev = 0u8;
    for &b in message {
        if b == b'\n' && prev != b'\r' {
            crlf.push(b'\r');
        }
        crlf.push(b);
        prev = b;
    }
    smtp_proto::data::stuff(&crlf).to_vec()
}

/// Speaks one SMTP transaction for `submission` over `stream` (greeting, EHLO `helo`,
/// MAIL, one RCPT per recipient, DATA, QUIT) and says how it went: [`Response::Text`]
/// with the server's final reply, or [`Response::Error`] with the reply that refused it
/// (any refused recipient refuses the whole submission, so the user can send again).
pub fn submit_over_smtp<S: Read + Write>(
    stream: &mut S,
    submission: &Submission,
    helo: &str,
) -> Response {
    match transaction(stream, submission, helo) {
        Ok(Ok(reply)) => Response::Text(vec![reply.to_line()]),
        Ok(Err((step, reply))) => Response::Error(format!("{step} refused: {}", reply.to_line())),
        Err(e) => Response::Error(format!("submission failed: {e}")),
    }
}

/// How a transaction ended: the final `250` reply, or the step (`sender`,
/// `recipient`, `DATA`, `message`...) whose reply refused it.
pub type Step = Result<Reply, (&'static str, Reply)>;

/// Speaks one SMTP transaction for `sub` over `stream`, as [`submit_over_smtp`] does,
/// and returns the replies themselves, so that a caller can tell a temporary refusal
/// (4xx) from a permanent one (5xx).
///
/// # Errors
/// A read or write that fails, or a reply that is no SMTP reply.
pub fn transaction<S: Read + Write>(
    stream: &mut S,
    sub: &Submission,
    helo: &str,
) -> io::Result<Step> {
    let mut r = Replies {
        stream,
        buf: Vec::new(),
    };
    let expect =
        |reply: Reply, step: &'static str, ok: &[u16]| -> Result<Reply, (&'static str, Reply)> {
            if ok.contains(&reply.code) {
                Ok(reply)
            } else {
                Err((step, reply))
            }
        };
    let greeting = r.reply()?;
    if let Err(e) = expect(greeting, "session", &[220]) {
        return Ok(Err(e));
    }
    let ehlo = r.command(&format!("EHLO {helo}"))?;
    let ehlo = match expect(ehlo, "EHLO", &[250]) {
        Ok(e) => e,
        Err(e) => return Ok(Err(e)),
    };
    let eight_bit = sub.message.iter().any(|&b| b >= 0x80)
        && ehlo
            .lines
            .iter()
            .any(|l| l.eq_ignore_ascii_case("8BITMIME"));
    let body = if eight_bit { " BODY=8BITMIME" } else { "" };
    let steps: Vec<(String, &'static str, &[u16])> = std::iter::once((
        format!("MAIL FROM:<{}>{body}", sub.sender),
        "sender",
        &[250][..],
    ))
    .chain(
        sub.recipients
            .iter()
            .map(|rcpt| (format!("RCPT TO:<{rcpt}>"), "recipient", &[250, 251][..])),
    )
    .chain(std::iter::once(("DATA".to_owned(), "DATA", &[354][..])))
    .collect();
    for (line, step, ok) in steps {
        let reply = r.command(&line)?;
        if let Err(e) = expect(reply, step, ok) {
            let _ = r.command("QUIT");
            return Ok(Err(e));
        }
    }
    r.stream.write_all(&data_bytes(&sub.message))?;
    r.stream.flush()?;
    let done = r.reply()?;
    let result = expect(done, "message", &[250]);
    let _ = r.command("QUIT");
    Ok(result)
}
