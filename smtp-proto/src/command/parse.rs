//! The command parser: one line without its CRLF in, a [`Command`] out (RFC 5321
//! §4.1.1, RFC 3207 §4, RFC 4954 §4, RFC 3030 §2).
//!
//! Fields are `Bytes` sub-slices of the line. Verbs and the `FROM:`/`TO:` keywords are
//! case-insensitive; trailing spaces are ignored, and one space is tolerated after
//! `FROM:`/`TO:` because real clients send it.

use bytes::Bytes;

use super::{Command, CommandError, Identity, ParseOptions};
use crate::params::{parse_number, MailParams, RcptParams};
use crate::types::{self, ForwardPath, PathBody, ReversePath};

/// Longest SASL mechanism name (RFC 4422 §3.1).
const MAX_MECHANISM_LEN: usize = 20;

/// Parses one command line, without its CRLF.
///
/// # Errors
/// A [`CommandError`] saying which reply the server should send.
pub fn parse(line: Bytes, opts: &ParseOptions) -> Result<Command, CommandError> {
    let end = line
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |i| i + 1);
    let line = line.slice(..end);
    let verb_len = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    let mut verb = [0u8; 8];
    let Some(slot) = verb.get_mut(..verb_len) else {
        return Err(CommandError::Unrecognized);
    };
    slot.copy_from_slice(line.get(..verb_len).unwrap_or_default());
    slot.make_ascii_uppercase();
    let args_at = line
        .iter()
        .skip(verb_len)
        .position(|&b| b != b' ')
        .map_or(line.len(), |i| i + verb_len);
    let args = line.slice(args_at..);
    match &*slot {
        b"HELO" => identity(&args).map(Command::Helo),
        b"EHLO" => identity(&args).map(Command::Ehlo),
        b"MAIL" => mail(&args),
        b"RCPT" => rcpt(&args, opts),
        b"DATA" => no_args(&args, Command::Data),
        b"RSET" => no_args(&args, Command::Rset),
        b"QUIT" => no_args(&args, Command::Quit),
        b"STARTTLS" => no_args(&args, Command::StartTls),
        b"NOOP" => Ok(Command::Noop),
        b"VRFY" => text(args, "VRFY requires an argument").map(Command::Vrfy),
        b"EXPN" => text(args, "EXPN requires an argument").map(Command::Expn),
        b"HELP" if args.is_empty() => Ok(Command::Help(None)),
        b"HELP" => text(args, "").map(|t| Command::Help(Some(t))),
        b"AUTH" => auth(&args),
        b"BDAT" => bdat(&args),
        _ => Err(CommandError::Unrecognized),
    }
}

/// The commands that take no argument (RFC 5321 §4.1.1.4, .5, .10; RFC 3207 §4).
fn no_args(args: &Bytes, command: Command) -> Result<Command, CommandError> {
    if args.is_empty() {
        Ok(command)
    } else {
        Err(CommandError::Syntax("no arguments allowed"))
    }
}

/// `HELO domain` / `EHLO domain-or-literal` (RFC 5321 §4.1.1.1).
fn identity(args: &Bytes) -> Result<Identity, CommandError> {
    if args.is_empty() {
        return Err(CommandError::Syntax("a domain is required"));
    }
    Identity::parse(args.clone(), false)
        .map_err(|_| CommandError::Syntax("invalid domain or address literal"))
}

/// The argument of VRFY, EXPN and HELP: any text without control characters.
fn text(args: Bytes, missing: &'static str) -> Result<Bytes, CommandError> {
    if args.is_empty() {
        return Err(CommandError::Syntax(missing));
    }
    if args.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(CommandError::Syntax("control character in argument"));
    }
    Ok(args)
}

/// Strips `keyword` (case-insensitive) and one optional space after it.
fn after_keyword(args: &Bytes, keyword: &[u8], what: &'static str) -> Result<Bytes, CommandError> {
    let head = args
        .get(..keyword.len())
        .ok_or(CommandError::Syntax(what))?;
    if !head.eq_ignore_ascii_case(keyword) {
        return Err(CommandError::Syntax(what));
    }
    let skip = keyword.len() + usize::from(args.get(keyword.len()) == Some(&b' '));
    Ok(args.slice(skip..))
}

/// Splits `<path> params` into the path and the parameter text.
fn path_and_params(rest: &Bytes) -> Result<(Bytes, Bytes), CommandError> {
    let end = types::path_end(rest)?;
    let params = rest.slice(end..);
    match params.first() {
        None | Some(b' ') => Ok((rest.slice(..end), params)),
        Some(_) => Err(CommandError::Syntax("expected a space after the address")),
    }
}

/// `MAIL FROM:<reverse-path> [params]` (RFC 5321 §4.1.1.2). UTF-8 in the path needs
/// the SMTPUTF8 parameter on this very command (RFC 6531 §3.4).
fn mail(args: &Bytes) -> Result<Command, CommandError> {
    let rest = after_keyword(args, b"FROM:", "expected FROM:<address>")?;
    let (path, params) = path_and_params(&rest)?;
    let params = MailParams::parse(&params)?;
    let path = match types::path_body(path, params.smtputf8)? {
        PathBody::Null => ReversePath::Null,
        PathBody::Mailbox(m) => ReversePath::Mailbox(m),
        PathBody::Postmaster => return Err(CommandError::BadAddress("missing domain")),
    };
    Ok(Command::Mail(path, params))
}

/// `RCPT TO:<forward-path> [params]` (RFC 5321 §4.1.1.3).
fn rcpt(args: &Bytes, opts: &ParseOptions) -> Result<Command, CommandError> {
    let rest = after_keyword(args, b"TO:", "expected TO:<address>")?;
    let (path, params) = path_and_params(&rest)?;
    let params = RcptParams::parse(&params)?;
    let path = match types::path_body(path, opts.smtputf8)? {
        PathBody::Null => return Err(CommandError::BadAddress("null path is not a recipient")),
        PathBody::Mailbox(m) => ForwardPath::Mailbox(m),
        PathBody::Postmaster => ForwardPath::Postmaster,
    };
    Ok(Command::Rcpt(path, params))
}

/// `AUTH mechanism [initial-response]` (RFC 4954 §4).
fn auth(args: &Bytes) -> Result<Command, CommandError> {
    let mut words = args.split(|&b| b == b' ').filter(|w| !w.is_empty());
    let mech = words
        .next()
        .ok_or(CommandError::Syntax("AUTH requires a mechanism"))?;
    let initial = words.next();
    if words.next().is_some() {
        return Err(CommandError::Syntax("too many AUTH arguments"));
    }
    let mech_ok = !mech.is_empty()
        && mech.len() <= MAX_MECHANISM_LEN
        && mech
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !mech_ok {
        return Err(CommandError::Syntax("invalid SASL mechanism name"));
    }
    let mechanism = if mech.iter().any(u8::is_ascii_lowercase) {
        Bytes::from(mech.to_ascii_uppercase())
    } else {
        args.slice_ref(mech)
    };
    let initial = match initial {
        None => None,
        Some(b"=") => Some(Bytes::new()),
        Some(r)
            if r.iter()
                .all(|&b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)) =>
        {
            Some(args.slice_ref(r))
        }
        Some(_) => return Err(CommandError::Syntax("initial response is not base64")),
    };
    Ok(Command::Auth { mechanism, initial })
}

/// `BDAT chunk-size [LAST]` (RFC 3030 §2).
fn bdat(args: &Bytes) -> Result<Command, CommandError> {
    let mut words = args.split(|&b| b == b' ').filter(|w| !w.is_empty());
    let size = words.next().and_then(parse_number);
    let size = size.ok_or(CommandError::Syntax("BDAT requires a chunk size"))?;
    let last = match words.next() {
        None => false,
        Some(w) if w.eq_ignore_ascii_case(b"LAST") => true,
        Some(_) => return Err(CommandError::Syntax("expected LAST")),
    };
    if words.next().is_some() {
        return Err(CommandError::Syntax("too many BDAT arguments"));
    }
    Ok(Command::Bdat { size, last })
}
