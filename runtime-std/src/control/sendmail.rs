//! Local submission as sendmail(8) does it: options, the message on standard input, and
//! `-t` (recipients from the `To:`, `Cc:` and `Bcc:` headers, RFC 5322 §3.6.3, with
//! `Bcc:` removed from the message).

use std::io::{self, BufRead};

use mta_core::control::{Submission, MAX_SUBMISSION};

/// The sendmail(8) options that matter here; others are accepted and ignored, as
/// OpenSMTPD's enqueuer does.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Options {
    /// `-f ADDR` / `-r ADDR`: the envelope sender.
    pub from: Option<String>,
    /// `-F NAME`: the sender's full name, for a `From:` header the message lacks.
    pub full_name: Option<String>,
    /// `-t`: take recipients from the message's headers.
    pub extract: bool,
    /// `-i` / `-oi`: a line with a lone dot does not end the message.
    pub ignore_dots: bool,
    /// Recipients given as arguments.
    pub recipients: Vec<String>,
}

/// Parses sendmail's arguments (after the program name).
///
/// # Errors
/// A missing option argument, or a mode this enqueuer does not offer (`-bp`, `-q`...).
pub fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options::default();
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        i += 1;
        if arg == "--" {
            o.recipients.extend(args.iter().skip(i).cloned());
            break;
        }
        let Some(flag) = arg.strip_prefix('-').filter(|f| !f.is_empty()) else {
            o.recipients.push(arg.clone());
            continue;
        };
        let (letter, attached) = flag.split_at(1);
        // Options that take a value, attached (`-fuser`) or as the next argument.
        let mut value = || -> Result<String, String> {
            if attached.is_empty() {
                let v = args
                    .get(i)
                    .cloned()
                    .ok_or(format!("-{letter} needs a value"))?;
                i += 1;
                Ok(v)
            } else {
                Ok(attached.to_owned())
            }
        };
        match letter {
            "f" | "r" => o.from = Some(value()?),
            "F" => o.full_name = Some(value()?),
            "t" => o.extract = true,
            "i" => o.ignore_dots = true,
            "o" => {
                if value()? == "i" {
                    o.ignore_dots = true;
                }
            }
            "b" => match value()?.as_str() {
                "m" => {}
                other => return Err(format!("-b{other} is not supported")),
            },
            "B" | "N" | "R" | "V" | "X" | "C" | "h" | "L" => {
                value()?;
            }
            "v" | "U" | "G" | "m" | "n" | "e" | "d" | "x" | "A" => {}
            other => return Err(format!("-{other} is not supported")),
        }
    }
    Ok(o)
}

/// Reads the message from `input`: to the end, or to a line with a lone dot unless
/// `ignore_dots`.
///
/// # Errors
/// A read error, or a message over [`MAX_SUBMISSION`] bytes.
pub fn read_message(input: &mut dyn BufRead, ignore_dots: bool) -> io::Result<Vec<u8>> {
    let mut message = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Ok(message);
        }
        if !ignore_dots && matches!(line.as_slice(), b".\n" | b".\r\n" | b".") {
            return Ok(message);
        }
        message.extend_from_slice(&line);
        if message.len() > MAX_SUBMISSION as usize - 64 * 1024 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "message too large for local submission",
            ));
        }
    }
}

/// One header field of the message's header section: its name and its whole raw
/// text, continuation lines included.
struct Field<'a> {
    name: String,
    raw: &'a [u8],
}

/// Splits `message` into its header fields and the rest (from the blank line on).
fn fields(message: &[u8]) -> (Vec<Field<'_>>, &[u8]) {
    // (name, start, end) of each field in `message`.
    let mut spans: Vec<(String, usize, usize)> = Vec::new();
    let mut pos = 0;
    while let Some(rest) = message.get(pos..).filter(|r| !r.is_empty()) {
        let len = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |p| p + 1);
        let line = rest.get(..len).unwrap_or(&[]);
        if line == b"\n" || line == b"\r\n" {
            break;
        }
        let continued = matches!(line.first(), Some(b' ' | b'\t'));
        match spans.last_mut() {
            Some(last) if continued => last.2 = pos + len,
            _ => {
                let Some(colon) = line.iter().position(|&b| b == b':') else {
                    break;
                };
                let name = String::from_utf8_lossy(line.get(..colon).unwrap_or(&[]))
                    .trim()
                    .to_ascii_lowercase();
                spans.push((name, pos, pos + len));
            }
        }
        pos += len;
    }
    let fields = spans
        .into_iter()
        .map(|(name, a, b)| Field {
            name,
            raw: message.get(a..b).unwrap_or(&[]),
        })
        .collect();
    (fields, message.get(pos..).unwrap_or(&[]))
}

/// The addresses of an address-list header value (RFC 5322 §3.4): `a@b`, `Name <a@b>`,
/// groups `team: a@b, c@d;`, comments in parentheses.
pub fn addresses(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let (mut quoted, mut angle, mut comment) = (false, false, 0u32);
    let mut flush = |s: &mut String| {
        let item = std::mem::take(s);
        let item = match (item.find('<'), item.rfind('>')) {
            (Some(a), Some(b)) if a < b => item.get(a + 1..b).unwrap_or("").to_owned(),
            _ => item,
        };
        let item = item.trim().trim_end_matches(';').trim();
        if !item.is_empty() {
            out.push(item.to_owned());
        }
    };
    for c in value.chars() {
        match c {
            '"' if comment == 0 => quoted = !quoted,
            '(' if !quoted => comment += 1,
            ')' if !quoted && comment > 0 => comment -= 1,
            _ if comment > 0 => {}
            '<' if !quoted => {
                angle = true;
                current.push(c);
            }
            '>' if !quoted => {
                angle = false;
                current.push(c);
            }
            // A group's display name ends at its colon.
            ':' if !quoted && !angle => current.clear(),
            ',' | ';' if !quoted && !angle => flush(&mut current),
            _ if quoted => {}
            _ => current.push(c),
        }
    }
    flush(&mut current);
    out
}

/// What [`prepare`] needs to know about the submitting user and host.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Origin {
    /// The login name of the submitting user.
    pub user: String,
    /// This host's name, to qualify a bare sender.
    pub hostname: String,
    /// `Date:` to add when the message has none (RFC 5322 §3.6 requires one).
    pub date: String,
    /// `Message-ID:` to add when the message has none, with angle brackets.
    pub message_id: String,
}

/// The submission of `message` with `options`: recipients from the arguments and, with
/// `-t`, from the headers (`Bcc:` removed); `From:`, `Date:` and `Message-ID:` added
/// when missing.
///
/// # Errors
/// When no recipient is left.
pub fn prepare(options: &Options, message: &[u8], origin: &Origin) -> Result<Submission, String> {
    let (header, body) = fields(message);
    let mut recipients = options.recipients.clone();
    let mut kept = Vec::new();
    let has = |n: &str| header.iter().any(|f| f.name == n);
    let (has_from, has_date, has_id) = (has("from"), has("date"), has("message-id"));
    for f in &header {
        let is_rcpt = matches!(f.name.as_str(), "to" | "cc" | "bcc");
        if options.extract && is_rcpt {
            let text = String::from_utf8_lossy(f.raw);
            let value = text
                .split_once(':')
                .map_or("", |(_, v)| v)
                .replace(['\r', '\n'], " ");
            recipients.extend(addresses(&value));
        }
        if f.name != "bcc" {
            kept.extend_from_slice(f.raw);
        }
    }
    if recipients.is_empty() {
        return Err("no recipients".to_owned());
    }
    let sender = options.from.clone().unwrap_or_else(|| origin.user.clone());
    let sender = if sender.is_empty() || sender.contains('@') {
        sender
    } else {
        format!("{sender}@{}", origin.hostname)
    };
    let mut out = Vec::with_capacity(message.len() + 200);
    if !has_from {
        match &options.full_name {
            Some(name) => out.extend(format!("From: {name} <{sender}>\n").bytes()),
            None => out.extend(format!("From: <{sender}>\n").bytes()),
        }
    }
    if !has_date {
        out.extend(format!("Date: {}\n", origin.date).bytes());
    }
    if !has_id {
        out.extend(format!("Message-ID: {}\n", origin.message_id).bytes());
    }
    out.extend_from_slice(&kept);
    out.extend_from_slice(body);
    Ok(Submission {
        sender,
        recipients,
        message: out,
    })
}
