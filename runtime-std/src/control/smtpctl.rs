//! The command line of `smtpctl`: verbs of smtpctl(8), abbreviable to any unambiguous
//! prefix (`sh q` for `show queue`), and the output formats of OpenSMTPD.

use std::path::PathBuf;

use mta_core::control::{Agent, QueueRow, Request, Response};
use mta_core::queue::{EnvelopeId, MessageId};
use mta_core::scheduler::Target;

/// What `smtpctl` was asked to do.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Command {
    /// Send one request and print the response.
    Request(Request),
    /// Print counter increments every second (`monitor`).
    Monitor,
    /// Hash a password (`encrypt [PASSWORD]`).
    Encrypt(Vec<String>),
    /// Submit a message (`sendmail ARGS...`), as sendmail(8).
    Sendmail(Vec<String>),
}

/// A parsed `smtpctl` command line.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Invocation {
    /// `-s SOCKET`, else the default socket.
    pub socket: Option<PathBuf>,
    /// The verb.
    pub command: Command,
}

/// The usage line printed on errors.
pub const USAGE: &str = "usage: smtpctl [-s socket] command [argument ...]";

/// Parses the arguments after the program name.
///
/// # Errors
/// A message naming the unknown, ambiguous or missing word.
pub fn parse(args: &[String]) -> Result<Invocation, String> {
    let mut socket = None;
    let mut rest = args;
    while let Some((first, tail)) = rest.split_first() {
        if first == "-s" {
            let (path, tail) = tail.split_first().ok_or("-s needs a socket path")?;
            socket = Some(PathBuf::from(path));
            rest = tail;
        } else if let Some(path) = first.strip_prefix("-s") {
            socket = Some(PathBuf::from(path));
            rest = tail;
        } else {
            break;
        }
    }
    let words: Vec<&str> = rest.iter().map(String::as_str).collect();
    Ok(Invocation {
        socket,
        command: command(&words)?,
    })
}

const VERBS: &[&str] = &[
    "encrypt", "log", "monitor", "pause", "remove", "resume", "schedule", "sendmail", "show",
    "trace", "untrace", "update",
];

fn command(words: &[&str]) -> Result<Command, String> {
    let (&verb, args) = words.split_first().ok_or(USAGE)?;
    let verb = pick(verb, VERBS)?;
    let owned = || args.iter().map(|s| (*s).to_owned()).collect();
    let request = match verb {
        "encrypt" => return Ok(Command::Encrypt(owned())),
        "sendmail" => return Ok(Command::Sendmail(owned())),
        "monitor" => {
            none(args)?;
            return Ok(Command::Monitor);
        }
        "show" => show(args)?,
        "log" => match pick(one(args)?, &["brief", "verbose"])? {
            "brief" => Request::LogBrief,
            _ => Request::LogVerbose,
        },
        "schedule" => Request::Schedule(target(one(args)?)?),
        "remove" => Request::Remove(target(one(args)?)?),
        "pause" | "resume" => pause_resume(verb == "pause", args)?,
        "trace" => Request::Trace(one(args)?.to_owned()),
        "untrace" => Request::Untrace(one(args)?.to_owned()),
        _ => match args {
            [what, name] if pick(what, &["table"])? == "table" => {
                Request::UpdateTable((*name).to_owned())
            }
            _ => return Err("usage: smtpctl update table NAME".to_owned()),
        },
    };
    Ok(Command::Request(request))
}

fn show(args: &[&str]) -> Result<Request, String> {
    let (&what, rest) = args.split_first().ok_or("show what?")?;
    let what = pick(
        what,
        &[
            "envelope", "hosts", "message", "queue", "routes", "stats", "status",
        ],
    )?;
    Ok(match what {
        "envelope" => Request::ShowEnvelope(envelope_id(one(rest)?)?),
        "message" => Request::ShowMessage(envelope_id(one(rest)?)?),
        other => {
            none(rest)?;
            match other {
                "hosts" => Request::ShowHosts,
                "queue" => Request::ShowQueue,
                "routes" => Request::ShowRoutes,
                "stats" => Request::ShowStats,
                _ => Request::ShowStatus,
            }
        }
    })
}

fn pause_resume(pause: bool, args: &[&str]) -> Result<Request, String> {
    let (&what, rest) = args.split_first().ok_or("pause or resume what?")?;
    Ok(match pick(what, &["envelope", "mda", "mta", "smtp"])? {
        "envelope" => {
            let t = target(one(rest)?)?;
            if pause {
                Request::PauseEnvelope(t)
            } else {
                Request::ResumeEnvelope(t)
            }
        }
        agent => {
            none(rest)?;
            let agent = match agent {
                "mda" => Agent::Mda,
                "mta" => Agent::Mta,
                _ => Agent::Smtp,
            };
            if pause {
                Request::Pause(agent)
            } else {
                Request::Resume(agent)
            }
        }
    })
}

/// The choice `given` names: itself, or the only choice it is a prefix of.
fn pick<'a>(given: &str, choices: &[&'a str]) -> Result<&'a str, String> {
    if let Some(exact) = choices.iter().find(|c| **c == given) {
        return Ok(exact);
    }
    let matches: Vec<&&str> = choices.iter().filter(|c| c.starts_with(given)).collect();
    match matches.as_slice() {
        [only] if !given.is_empty() => Ok(only),
        [] | [_] => Err(format!("unknown command or argument: {given}")),
        _ => Err(format!("ambiguous: {given}")),
    }
}

fn one<'a>(args: &[&'a str]) -> Result<&'a str, String> {
    match args {
        [only] => Ok(only),
        [] => Err("missing argument".to_owned()),
        _ => Err("too many arguments".to_owned()),
    }
}

fn none(args: &[&str]) -> Result<(), String> {
    if args.is_empty() {
        Ok(())
    } else {
        Err("too many arguments".to_owned())
    }
}

fn envelope_id(s: &str) -> Result<EnvelopeId, String> {
    s.parse().map_err(|_| format!("invalid envelope id: {s}"))
}

/// `all`, an envelope id (16 hex digits) or a message id (8 hex digits).
pub fn target(s: &str) -> Result<Target, String> {
    if s == "all" {
        return Ok(Target::All);
    }
    if let Ok(id) = s.parse::<EnvelopeId>() {
        return Ok(Target::Envelope(id));
    }
    s.parse::<MessageId>()
        .map(Target::Message)
        .map_err(|_| format!("invalid id: {s}"))
}

/// The lines `smtpctl` prints for `response` to `request` (OpenSMTPD's formats:
/// `key=value` stats with `uptime.human`, `|`-separated queue lines, `MDA running`).
///
/// # Errors
/// The daemon's error text, for a [`Response::Error`].
pub fn render(response: &Response) -> Result<Vec<String>, String> {
    match response {
        Response::Ok => Ok(vec!["command succeeded".to_owned()]),
        Response::Error(e) => Err(format!("command failed: {e}")),
        Response::Text(lines) => Ok(lines.clone()),
        Response::Stats(stats) => {
            let mut lines = Vec::new();
            for (k, v) in stats {
                lines.push(format!("{k}={v}"));
                if k == "uptime" {
                    lines.push(format!("uptime.human={}", human_duration(*v)));
                }
            }
            Ok(lines)
        }
        Response::Envelopes(rows) => Ok(rows.iter().map(QueueRow::line).collect()),
        Response::Status(s) => Ok(s.lines()),
    }
}

/// `1d2h3m4s`, as OpenSMTPD prints `uptime.human`.
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    format!(
        "{}d{}h{}m{}s",
        s / 86_400,
        s % 86_400 / 3600,
        s % 3600 / 60,
        s % 60
    )
}

/// The counters `monitor` shows, with the column title and whether the value is shown
/// as is (a gauge) rather than as the increase since the last line.
pub const MONITOR_COLUMNS: &[(&str, &str, bool)] = &[
    ("smtp.session", "cur", true),
    ("smtp.session.new", "new", false),
    ("smtp.session.closed", "disc", false),
    ("scheduler.envelope", "cur", true),
    ("scheduler.envelope.incoming", "enq", false),
    ("scheduler.envelope.dequeued", "deq", false),
    ("scheduler.delivery.ok", "ok", false),
    ("scheduler.delivery.tempfail", "tmpfail", false),
    ("scheduler.delivery.permfail", "prmfail", false),
    ("smtp.loop", "loop", false),
    ("scheduler.delivery.expired", "expire", false),
    ("scheduler.envelope.removed", "remove", false),
    ("queue.bounce", "bounce", false),
];

/// The two header lines of `monitor`.
pub fn monitor_header() -> [String; 2] {
    let titles: Vec<String> = MONITOR_COLUMNS
        .iter()
        .map(|(_, t, _)| format!("{t:>7}"))
        .collect();
    [
        "--- client ---  -- envelope --   ---- relay/delivery --- ------- misc -------".to_owned(),
        titles.join(" "),
    ]
}

/// One `monitor` line: gauges as they are, counters as the increase since `previous`
/// (the first line, with no previous, shows every value as it is).
pub fn monitor_line(current: &[(String, i64)], previous: Option<&[(String, i64)]>) -> String {
    let get = |stats: &[(String, i64)], key: &str| {
        stats.iter().find(|(k, _)| k == key).map_or(0, |(_, v)| *v)
    };
    MONITOR_COLUMNS
        .iter()
        .map(|(key, _, gauge)| {
            let now = get(current, key);
            let shown = match previous {
                Some(prev) if !gauge => now.saturating_sub(get(prev, key)),
                _ => now,
            };
            format!("{shown:>7}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}
