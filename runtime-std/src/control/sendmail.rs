//! Local submission as OpenSMTPD's sendmail(8) enqueuer does it: its options, the
//! message on standard input, recipients from the arguments and, with `-t`, from the
//! `To:`, `Cc:` and `Bcc:` headers (RFC 5322 §3.6.3), `Bcc:` removed, and `From:`,
//! `Date:` and `Message-ID:` added when the message has none (RFC 5322 §3.6 requires
//! the first two). A body with lines too long for SMTP (RFC 5321 §4.5.3.1.6) is sent
//! quoted-printable (RFC 2045 §6.7) rather than refused.

use std::io::{self, BufRead};

use mta_core::control::{Submission, MAX_SUBMISSION};

/// What the invocation asks for.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum Mode {
    /// Read a message and submit it (`-bm`, the default).
    #[default]
    Submit,
    /// Rebuild the aliases database (`-bi`, as `newaliases`).
    Newaliases,
}

/// The sendmail(8) options that matter here; the others OpenSMTPD accepts are accepted
/// and ignored, as it does (the DSN options `-N`, `-R`, `-V` included: a local
/// submission carries no DSN parameters).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Options {
    /// What to do.
    pub mode: Mode,
    /// `-f ADDR` / `-r ADDR`: the envelope sender (`<>` or empty for the null sender).
    pub from: Option<String>,
    /// `-F NAME`: the sender's full name, for a `From:` header the message lacks.
    pub full_name: Option<String>,
    /// `-t`: take recipients from the message's headers too.
    pub extract: bool,
    /// `-i` / `-oi`: a line with a lone dot does not end the message.
    pub ignore_dots: bool,
    /// Recipients given as arguments, as given (a comma separates several).
    pub recipients: Vec<String>,
}

/// The usage line printed on errors.
pub const USAGE: &str = "usage: sendmail [-tv] [-f from] [-F name] to ...";

/// Options followed by a value, attached (`-fuser`) or as the next argument.
const WITH_VALUE: &[char] = &[
    'A', 'B', 'b', 'C', 'e', 'F', 'f', 'h', 'L', 'N', 'o', 'p', 'R', 'r', 'V', 'X',
];

/// Options without a value, accepted and ignored.
const IGNORED: &[char] = &['G', 'm', 'n', 'S', 'U', 'v', 'x'];

/// Options with an optional attached value (`-d0.1`, `-Efoo`), ignored with it.
const OPTIONAL_VALUE: &[char] = &['d', 'E', 'J'];

/// Parses sendmail's arguments (after the program name). Flags may be grouped (`-ti`);
/// arguments that are not options are recipients, wherever they are; `--` ends the
/// options.
///
/// # Errors
/// A missing option value, an unknown option, or a mode this enqueuer does not offer
/// (`-bp`, `-bs`, `-q`...).
pub fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options::default();
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        i += 1;
        if arg == "--" {
            o.recipients.extend(args.iter().skip(i).cloned());
            break;
        }
        let Some(flags) = arg.strip_prefix('-').filter(|f| !f.is_empty()) else {
            o.recipients.push(arg.clone());
            continue;
        };
        for (at, letter) in flags.char_indices() {
            if WITH_VALUE.contains(&letter) {
                let attached = flags.get(at + letter.len_utf8()..).unwrap_or("");
                let value = if attached.is_empty() {
                    let v = args
                        .get(i)
                        .cloned()
                        .ok_or(format!("-{letter} needs a value"))?;
                    i += 1;
                    v
                } else {
                    attached.to_owned()
                };
                option_with_value(&mut o, letter, value)?;
                break;
            }
            match letter {
                't' => o.extract = true,
                'i' => o.ignore_dots = true,
                c if OPTIONAL_VALUE.contains(&c) => break,
                c if IGNORED.contains(&c) => {}
                'q' => return Err("-q (running the queue) is not supported".to_owned()),
                other => return Err(format!("-{other} is not supported")),
            }
        }
    }
    Ok(o)
}

fn option_with_value(o: &mut Options, letter: char, value: String) -> Result<(), String> {
    match letter {
        'f' | 'r' => o.from = Some(value),
        'F' => o.full_name = Some(value),
        'o' if value == "i" => o.ignore_dots = true,
        'b' => match value.as_str() {
            "m" => o.mode = Mode::Submit,
            "i" => o.mode = Mode::Newaliases,
            other => return Err(format!("-b{other} is not supported")),
        },
        _ => {}
    }
    Ok(())
}

/// Reads the message from `input`: to the end, or to a line with a lone dot unless
/// `ignore_dots`.
///
/// # Errors
/// A read error, or a message over [`MAX_SUBMISSION`] bytes (less room for the
/// envelope).
pub fn read_message(input: &mut dyn BufRead, ignore_dots: bool) -> io::Result<Vec<u8>> {
    let limit = (MAX_SUBMISSION as usize).saturating_sub(64 * 1024);
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
        if message.len() > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "message too large for local submission",
            ));
        }
    }
}

/// One header field of the message's header section: its lower-cased name and its
/// whole raw text, continuation lines included.
struct Field<'a> {
    name: String,
    raw: &'a [u8],
}

/// The header section of a message as [`prepare`] sees it.
struct Header<'a> {
    fields: Vec<Field<'a>>,
    /// The rest: from the blank line that ends the header on, or from the first line
    /// that is no header field.
    rest: &'a [u8],
    /// True when the header does not end with a blank line, so one must be put before
    /// `rest` for it to be a body.
    needs_separator: bool,
}

/// The name of a header field line (`Name: value`), lower-cased, if it is one: printable
/// ASCII other than `:` up to a colon (RFC 5322 §2.2).
fn field_name(line: &[u8]) -> Option<String> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = line.get(..colon)?;
    if name.is_empty() || !name.iter().all(|&b| (33..=126).contains(&b)) {
        return None;
    }
    Some(String::from_utf8_lossy(name).to_ascii_lowercase())
}

/// Splits `message` into its header fields and the rest. An mbox `From ` line at the
/// top and `Return-Path:` fields are dropped, as OpenSMTPD's enqueuer drops them.
fn header(message: &[u8]) -> Header<'_> {
    // (name, start, end) of each kept field; None while a dropped field continues.
    let mut spans: Vec<(String, usize, usize)> = Vec::new();
    let mut keeping = false;
    let mut pos = 0;
    let mut blank = false;
    while let Some(rest) = message.get(pos..).filter(|r| !r.is_empty()) {
        let len = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |p| p + 1);
        let line = rest.get(..len).unwrap_or(&[]);
        if line == b"\n" || line == b"\r\n" {
            blank = true;
            break;
        }
        let continued = matches!(line.first(), Some(b' ' | b'\t')) && pos > 0;
        if continued {
            if let Some(last) = spans.last_mut().filter(|_| keeping) {
                last.2 = pos + len;
            }
        } else if pos == 0 && line.starts_with(b"From ") {
            keeping = false;
        } else if let Some(name) = field_name(line) {
            keeping = name != "return-path";
            if keeping {
                spans.push((name, pos, pos + len));
            }
        } else {
            break;
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
    Header {
        fields,
        rest: message.get(pos..).unwrap_or(&[]),
        needs_separator: !blank && pos < message.len(),
    }
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

/// `addr` with `@host` appended when it has no domain, as the enqueuer qualifies bare
/// user names; the empty (null) address stays empty.
pub fn qualify(addr: &str, host: &str) -> String {
    if addr.is_empty() || addr.contains('@') {
        addr.to_owned()
    } else {
        format!("{addr}@{host}")
    }
}

/// What [`prepare`] needs to know about the submitting user and host.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Origin {
    /// The login name of the submitting user.
    pub user: String,
    /// The user's full name (the GECOS field up to its first comma), for `From:`.
    pub full_name: Option<String>,
    /// This host's name, to qualify bare addresses.
    pub hostname: String,
    /// `Date:` to add when the message has none.
    pub date: String,
    /// `Message-ID:` to add when the message has none, with angle brackets.
    pub message_id: String,
}

/// The full name in a GECOS field: up to its first comma, an `&` standing for the
/// login name with its first letter capitalised; `None` when empty.
pub fn full_name(gecos: &str, login: &str) -> Option<String> {
    let name = gecos.split(',').next().unwrap_or("");
    let mut capitalised = login.to_owned();
    if let Some(first) = capitalised.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    let name = name.replace('&', &capitalised);
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

/// `name` as an RFC 5322 §3.4 display name: as it is when it is a phrase of atoms,
/// else quoted (`"Doe, J."`), with `"` and `\` escaped and line breaks removed.
pub fn display_name(name: &str) -> String {
    let name: String = name.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
    let special = |c: char| "()<>[]:;@\\,.\"".contains(c) || c.is_control();
    if !name.chars().any(special) {
        return name;
    }
    let mut quoted = String::with_capacity(name.len() + 2);
    quoted.push('"');
    for c in name.chars() {
        if c == '"' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

/// The value of a header field (after its colon), unfolded.
fn field_value(f: &Field<'_>) -> String {
    let text = String::from_utf8_lossy(f.raw);
    text.split_once(':')
        .map_or("", |(_, v)| v)
        .replace(['\r', '\n'], " ")
}

/// The envelope sender: `-f` (brackets removed, `<>` the null sender), else the first
/// address of the message's `From:` (as OpenSMTPD's enqueuer takes it), else the user;
/// qualified with the host name.
fn envelope_sender(options: &Options, header: &Header<'_>, origin: &Origin) -> String {
    let given = match &options.from {
        Some(f) => {
            let f = f.trim();
            f.strip_prefix('<')
                .and_then(|s| s.strip_suffix('>'))
                .unwrap_or(f)
                .to_owned()
        }
        None => header
            .fields
            .iter()
            .find(|f| f.name == "from")
            .and_then(|f| addresses(&field_value(f)).into_iter().next())
            .unwrap_or_else(|| origin.user.clone()),
    };
    qualify(&given, &origin.hostname)
}

/// Whether the envelope sender of `message` with `options` is made from the user's name:
/// no `-f` and no address in a `From:` header (see [`prepare`]).
pub fn sender_from_user(options: &Options, message: &[u8]) -> bool {
    options.from.is_none()
        && header(message)
            .fields
            .iter()
            .find(|f| f.name == "from")
            .is_none_or(|f| addresses(&field_value(f)).is_empty())
}

/// The submission of `message` with `options`: recipients from the arguments and, with
/// `-t`, from the headers; `Bcc:` removed; `From:`, `Date:` and `Message-ID:` added when
/// missing; a blank line put after the header when the message has none; a body with
/// lines of 990 bytes or more encoded quoted-printable with its MIME fields, unless it
/// names its own transfer encoding.
///
/// # Errors
/// When no recipient is left.
pub fn prepare(options: &Options, message: &[u8], origin: &Origin) -> Result<Submission, String> {
    let head = header(message);
    let host = origin.hostname.as_str();
    let mut recipients: Vec<String> = options
        .recipients
        .iter()
        .flat_map(|r| r.split(','))
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| qualify(r, host))
        .collect();
    if options.extract {
        for f in &head.fields {
            if matches!(f.name.as_str(), "to" | "cc" | "bcc") {
                recipients.extend(addresses(&field_value(f)).iter().map(|a| qualify(a, host)));
            }
        }
    }
    if recipients.is_empty() {
        return Err("no recipients".to_owned());
    }
    let sender = envelope_sender(options, &head, origin);
    let has = |n: &str| head.fields.iter().any(|f| f.name == n);
    let mut out = Vec::with_capacity(message.len() + 512);
    if !has("from") {
        let shown = if sender.is_empty() {
            qualify(&origin.user, host)
        } else {
            sender.clone()
        };
        let name = options
            .full_name
            .clone()
            .or_else(|| {
                options
                    .from
                    .is_none()
                    .then(|| origin.full_name.clone())
                    .flatten()
            })
            .filter(|n| !n.is_empty());
        match name {
            Some(name) => out.extend(format!("From: {} <{shown}>\n", display_name(&name)).bytes()),
            None => out.extend(format!("From: <{shown}>\n").bytes()),
        }
    }
    if !has("date") {
        out.extend(format!("Date: {}\n", origin.date).bytes());
    }
    if !has("message-id") {
        out.extend(format!("Message-ID: {}\n", origin.message_id).bytes());
    }
    let encode = needs_encoding(head.rest) && !has("content-transfer-encoding");
    if encode {
        for (name, field) in [
            ("mime-version", "MIME-Version: 1.0\n"),
            (
                "content-type",
                "Content-Type: text/plain; charset=unknown-8bit\n",
            ),
            ("content-disposition", "Content-Disposition: inline\n"),
            (
                "content-transfer-encoding",
                "Content-Transfer-Encoding: quoted-printable\n",
            ),
        ] {
            if !has(name) {
                out.extend_from_slice(field.as_bytes());
            }
        }
    }
    for f in head.fields.iter().filter(|f| f.name != "bcc") {
        out.extend_from_slice(f.raw);
    }
    if head.needs_separator {
        out.push(b'\n');
    }
    if encode {
        out.extend_from_slice(&quoted_printable(head.rest));
    } else {
        out.extend_from_slice(head.rest);
    }
    Ok(Submission {
        sender,
        recipients,
        message: out,
    })
}

/// A line this long (line break included) cannot be sent as it is (RFC 5321 allows
/// 1000 with CRLF); OpenSMTPD's enqueuer splits from 990 on.
pub const LINE_SPLIT: usize = 990;

/// Whether some line of `body` is [`LINE_SPLIT`] bytes or longer.
fn needs_encoding(body: &[u8]) -> bool {
    body.split(|&b| b == b'\n')
        .any(|line| line.len().saturating_add(1) >= LINE_SPLIT)
}

/// The longest encoded line of quoted-printable, soft line break excluded (RFC 2045
/// §6.7 rule 5 allows 76 with the `=`).
const QP_WIDTH: usize = 75;

/// `body` encoded quoted-printable (RFC 2045 §6.7), lines ending in LF: bytes other
/// than printable ASCII (and `=`) as `=XX`, a space or tab at the end of a line
/// encoded, long lines broken with soft line breaks. A CR before LF is the line break,
/// not data.
pub fn quoted_printable(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len().saturating_add(body.len() / 8));
    let mut lines = body.split(|&b| b == b'\n').peekable();
    while let Some(raw) = lines.next() {
        let last = lines.peek().is_none();
        if last && raw.is_empty() {
            break;
        }
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        let mut width = 0;
        for (i, &b) in line.iter().enumerate() {
            let at_end = i + 1 == line.len();
            let literal = matches!(b, 33..=60 | 62..=126) || (matches!(b, b' ' | b'\t') && !at_end);
            let piece: Vec<u8> = if literal {
                vec![b]
            } else {
                format!("={b:02X}").into_bytes()
            };
            if width + piece.len() > QP_WIDTH {
                out.extend_from_slice(b"=\n");
                width = 0;
            }
            width += piece.len();
            out.extend_from_slice(&piece);
        }
        if !last {
            out.push(b'\n');
        }
    }
    out
}
