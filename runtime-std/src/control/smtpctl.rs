//! The command line of `smtpctl`: verbs of smtpctl(8), abbreviable to any unambiguous
//! prefix (`sh q` for `show queue`), and the output formats of OpenSMTPD: `|`-separated
//! queue lines, `key=value` counters with `uptime.human`, `MDA running`, `2 envelopes
//! scheduled`, and the `monitor` table.

use std::io;
use std::path::{Path, PathBuf};

use mta_core::control::{Agent, QueueRow, Request, Response};
use mta_core::queue::{EnvelopeId, MessageId};
use mta_core::scheduler::Target;

/// What `smtpctl` was asked to do.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Command {
    /// Send one request and print the response.
    Request(Request),
    /// `show queue [MSGID]`: list the queue, or the envelopes of one message.
    ShowQueue(Option<MessageId>),
    /// `show message ID`: the message of an envelope, or of a message id (the client
    /// finds one of its envelopes in the queue first).
    ShowMessage(Target),
    /// `schedule`, `remove`, `pause envelope`, `resume envelope`: a verb on envelopes,
    /// printed as OpenSMTPD does (`3 envelopes removed`).
    Envelopes(EnvelopeVerb, Target),
    /// Print counter increments every second (`monitor`).
    Monitor,
    /// Hash a password (`encrypt [PASSWORD]`).
    Encrypt(Vec<String>),
    /// Submit a message (`sendmail ARGS...`), as sendmail(8).
    Sendmail(Vec<String>),
}

/// A verb that applies to envelopes chosen by a [`Target`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum EnvelopeVerb {
    /// `schedule`: try now.
    Schedule,
    /// `remove`: drop without a report.
    Remove,
    /// `pause envelope`: suspend scheduling.
    Pause,
    /// `resume envelope`: schedule again.
    Resume,
}

impl EnvelopeVerb {
    /// The request that applies this verb to `target`.
    pub fn request(self, target: Target) -> Request {
        match self {
            EnvelopeVerb::Schedule => Request::Schedule(target),
            EnvelopeVerb::Remove => Request::Remove(target),
            EnvelopeVerb::Pause => Request::PauseEnvelope(target),
            EnvelopeVerb::Resume => Request::ResumeEnvelope(target),
        }
    }

    /// The participle smtpctl prints: `scheduled`, `removed`, `paused`, `resumed`.
    pub fn done(self) -> &'static str {
        match self {
            EnvelopeVerb::Schedule => "scheduled",
            EnvelopeVerb::Remove => "removed",
            EnvelopeVerb::Pause => "paused",
            EnvelopeVerb::Resume => "resumed",
        }
    }
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
        "show" => return show(args),
        "schedule" => {
            return Ok(Command::Envelopes(
                EnvelopeVerb::Schedule,
                target(one(args)?)?,
            ))
        }
        "remove" => {
            return Ok(Command::Envelopes(
                EnvelopeVerb::Remove,
                target(one(args)?)?,
            ))
        }
        "pause" | "resume" => return pause_resume(verb == "pause", args),
        "log" => match pick(one(args)?, &["brief", "verbose"])? {
            "brief" => Request::LogBrief,
            _ => Request::LogVerbose,
        },
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

fn show(args: &[&str]) -> Result<Command, String> {
    let (&what, rest) = args.split_first().ok_or("show what?")?;
    let what = pick(
        what,
        &[
            "envelope", "hosts", "message", "queue", "routes", "stats", "status",
        ],
    )?;
    let request = match what {
        "envelope" => Request::ShowEnvelope(envelope_id(one(rest)?)?),
        "message" => {
            let id = one(rest)?;
            return match target(id)? {
                Target::All => Err(format!("invalid id: {id}")),
                t => Ok(Command::ShowMessage(t)),
            };
        }
        "queue" => {
            return match rest {
                [] => Ok(Command::ShowQueue(None)),
                [id] => id
                    .parse()
                    .map(|m| Command::ShowQueue(Some(m)))
                    .map_err(|_| format!("invalid message id: {id}")),
                _ => Err("too many arguments".to_owned()),
            }
        }
        other => {
            none(rest)?;
            match other {
                "hosts" => Request::ShowHosts,
                "routes" => Request::ShowRoutes,
                "stats" => Request::ShowStats,
                _ => Request::ShowStatus,
            }
        }
    };
    Ok(Command::Request(request))
}

fn pause_resume(pause: bool, args: &[&str]) -> Result<Command, String> {
    let (&what, rest) = args.split_first().ok_or("pause or resume what?")?;
    Ok(match pick(what, &["envelope", "mda", "mta", "smtp"])? {
        "envelope" => {
            let verb = if pause {
                EnvelopeVerb::Pause
            } else {
                EnvelopeVerb::Resume
            };
            Command::Envelopes(verb, target(one(rest)?)?)
        }
        agent => {
            none(rest)?;
            let agent = match agent {
                "mda" => Agent::Mda,
                "mta" => Agent::Mta,
                _ => Agent::Smtp,
            };
            Command::Request(if pause {
                Request::Pause(agent)
            } else {
                Request::Resume(agent)
            })
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
///
/// # Errors
/// Anything else, named in the message.
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

/// Why the control socket at `path` could not be reached, for the user: no daemon (no
/// socket, or nobody listening), or a socket this user may not open.
pub fn connect_error(path: &Path, error: &io::Error) -> String {
    let path = path.display();
    match error.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
            format!("smtpd doesn't seem to be running: cannot connect to {path}: {error}")
        }
        io::ErrorKind::PermissionDenied => format!(
            "cannot connect to {path}: permission denied (the daemon's socket admits only \
             its own user when it does not run as root)"
        ),
        _ => format!("cannot connect to {path}: {error}"),
    }
}

/// Whether queue row `row` is one of the envelopes `target` names.
pub fn row_matches(row: &QueueRow, target: Target) -> bool {
    match target {
        Target::All => true,
        Target::Envelope(id) => row.id == id.get(),
        Target::Message(m) => row.id >> 32 == u64::from(m.get()),
    }
}

/// What smtpctl prints after applying `verb` to `count` envelopes: `1 envelope
/// removed`, `3 envelopes scheduled` (and, as OpenSMTPD has it, `0 envelope paused`).
pub fn envelopes_line(verb: EnvelopeVerb, count: usize) -> String {
    let plural = if count > 1 { "s" } else { "" };
    format!("{count} envelope{plural} {}", verb.done())
}

/// The lines `smtpctl` prints for `response` (OpenSMTPD's formats: `key=value` stats
/// with `uptime.human`, `|`-separated queue lines, `MDA running`, `command succeeded`).
///
/// # Errors
/// `command failed: REASON`, for a [`Response::Error`].
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
        Response::Envelopes(rows) => Ok(rows.iter().map(queue_line).collect()),
        Response::Status(s) => Ok(s.lines()),
    }
}

/// `1d2h3m4s` with the units that are not zero (`2h5s`), `0s` for nothing, as
/// OpenSMTPD prints `uptime.human`.
pub fn human_duration(secs: i64) -> String {
    if secs == 0 {
        return "0s".to_owned();
    }
    let sign = if secs < 0 { "-" } else { "" };
    let s = secs.unsigned_abs();
    let parts = [
        (s / 86_400, 'd'),
        (s % 86_400 / 3600, 'h'),
        (s % 3600 / 60, 'm'),
        (s % 60, 's'),
    ];
    let mut out = sign.to_owned();
    for (n, unit) in parts {
        if n != 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    out
}

/// The flag names of `show queue` in the order smtpctl prints them.
const FLAG_ORDER: &[&str] = &["bounce", "auth", "internal", "suspend", "hold"];

/// A queue row's flags as smtpctl writes them: comma-separated in OpenSMTPD's order
/// and spelling (`authenticated` is `auth`, a paused envelope is `suspend`), empty when
/// there are none.
fn queue_flags(flags: &str) -> String {
    let mut named: Vec<&str> = flags
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty() && *f != "-")
        .map(|f| match f {
            "authenticated" => "auth",
            "paused" | "suspended" => "suspend",
            other => other,
        })
        .collect();
    named.sort_by_key(|f| FLAG_ORDER.iter().position(|o| o == f).unwrap_or(usize::MAX));
    named.dedup();
    named.join(",")
}

/// A field of a queue line: a `|` or a control character would change the line's
/// shape, so they are written as `\ooo` octal escapes (as vis(3) would).
fn queue_field(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '|' || c == '\\' || c.is_control() {
            for b in c.to_string().bytes() {
                out.push_str(&format!("\\{b:03o}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// One line of `show queue`, the fields of smtpctl(8) separated by `|`: envelope id,
/// address family, delivery type, flags, sender (`@` for the null sender, as OpenSMTPD
/// writes an empty address), original recipient, destination, creation, expiry, last
/// try, tries, run state, delay, last error.
pub fn queue_line(row: &QueueRow) -> String {
    let address = |a: &str| {
        if a.is_empty() {
            "@".to_owned()
        } else {
            queue_field(a)
        }
    };
    format!(
        "{:016x}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
        row.id,
        queue_field(&row.family),
        queue_field(&row.kind),
        queue_field(&queue_flags(&row.flags)),
        address(&row.sender),
        address(&row.original_recipient),
        address(&row.recipient),
        row.created,
        row.expires,
        row.last_try,
        row.tries,
        queue_field(&row.runstate),
        row.delay,
        queue_field(&row.error),
    )
}

/// The `show stats` keys `monitor` reads each of its counters from, summed (a key the
/// daemon does not report counts 0).
pub mod monitor_keys {
    /// Clients connected now (a gauge).
    pub const CLIENTS: &[&str] = &["smtp.session"];
    /// Clients that ever connected.
    pub const CONNECTED: &[&str] = &["smtp.session.new"];
    /// Clients that ever disconnected.
    pub const DISCONNECTED: &[&str] = &["smtp.session.closed"];
    /// Envelopes in the queue now (a gauge).
    pub const ENVELOPES: &[&str] = &["scheduler.envelope"];
    /// Envelopes ever queued.
    pub const ENQUEUED: &[&str] = &["scheduler.envelope.enqueued"];
    /// Envelopes that ever left the queue.
    pub const DEQUEUED: &[&str] = &["scheduler.envelope.dequeued"];
    /// Successful deliveries.
    pub const DELIVERED: &[&str] = &["scheduler.delivery.ok"];
    /// Temporary failures.
    pub const TEMPFAIL: &[&str] = &["scheduler.delivery.tempfail"];
    /// Permanent failures.
    pub const PERMFAIL: &[&str] = &["scheduler.delivery.permfail"];
    /// Mail loops: deliveries refused as looping, and messages refused at the end of
    /// DATA for too many `Received:` headers.
    pub const LOOPS: &[&str] = &["scheduler.delivery.loop", "smtp.loop"];
    /// Envelopes that expired.
    pub const EXPIRED: &[&str] = &["scheduler.envelope.expired"];
    /// Envelopes removed by the administrator.
    pub const REMOVED: &[&str] = &["scheduler.envelope.removed"];
    /// Bounces (and other reports) generated.
    pub const BOUNCES: &[&str] = &["queue.bounce"];
}

/// One sample of the counters `monitor` shows: two gauges and cumulative counts since
/// the daemon started, from which each line shows the increase.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct MonitorDigest {
    /// Clients connected now.
    pub clients: i64,
    /// Clients that ever connected.
    pub connected: i64,
    /// Clients that ever disconnected.
    pub disconnected: i64,
    /// Envelopes queued now.
    pub envelopes: i64,
    /// Envelopes ever queued.
    pub enqueued: i64,
    /// Envelopes that ever left the queue.
    pub dequeued: i64,
    /// Successful deliveries.
    pub delivered: i64,
    /// Temporary failures.
    pub tempfail: i64,
    /// Permanent failures.
    pub permfail: i64,
    /// Loops.
    pub loops: i64,
    /// Expired envelopes.
    pub expired: i64,
    /// Envelopes removed by the administrator.
    pub removed: i64,
    /// Bounces generated.
    pub bounces: i64,
}

impl MonitorDigest {
    /// The sample in a `show stats` (or `monitor`) response.
    pub fn from_stats(stats: &[(String, i64)]) -> MonitorDigest {
        use monitor_keys as k;
        let sum = |keys: &[&str]| {
            stats
                .iter()
                .filter(|(name, _)| keys.contains(&name.as_str()))
                .fold(0i64, |acc, (_, v)| acc.saturating_add(*v))
        };
        MonitorDigest {
            clients: sum(k::CLIENTS),
            connected: sum(k::CONNECTED),
            disconnected: sum(k::DISCONNECTED),
            envelopes: sum(k::ENVELOPES),
            enqueued: sum(k::ENQUEUED),
            dequeued: sum(k::DEQUEUED),
            delivered: sum(k::DELIVERED),
            tempfail: sum(k::TEMPFAIL),
            permfail: sum(k::PERMFAIL),
            loops: sum(k::LOOPS),
            expired: sum(k::EXPIRED),
            removed: sum(k::REMOVED),
            bounces: sum(k::BOUNCES),
        }
    }
}

/// How many lines `monitor` prints between two headers.
pub const MONITOR_HEADER_EVERY: u64 = 25;

/// The two header lines of `monitor`, OpenSMTPD's column groups and titles.
pub const MONITOR_HEADER: [&str; 2] = [
    "--- client ---  -- envelope --   ---- relay/delivery --- ------- misc -------",
    "curr conn disc  curr  enq  deq   ok tmpfail prmfail loop expire remove bounce",
];

/// One `monitor` line: the gauges as they are and every other counter as its increase
/// since `previous` (for the first line, the zero sample), in the columns of
/// [`MONITOR_HEADER`].
pub fn monitor_line(current: &MonitorDigest, previous: &MonitorDigest) -> String {
    let d = |now: i64, before: i64| now.saturating_sub(before);
    format!(
        "{:4} {:4} {:4}  {:4} {:4} {:4} {:4}    {:4}    {:4} {:4}   {:4}   {:4}   {:4}",
        current.clients,
        d(current.connected, previous.connected),
        d(current.disconnected, previous.disconnected),
        current.envelopes,
        d(current.enqueued, previous.enqueued),
        d(current.dequeued, previous.dequeued),
        d(current.delivered, previous.delivered),
        d(current.tempfail, previous.tempfail),
        d(current.permfail, previous.permfail),
        d(current.loops, previous.loops),
        d(current.expired, previous.expired),
        d(current.removed, previous.removed),
        d(current.bounces, previous.bounces),
    )
}

/// What `monitor` prints for its `index`-th sample (from 0): the header before every
/// [`MONITOR_HEADER_EVERY`]th line (after a blank line, but for the first), then the
/// line.
pub fn monitor_output(
    index: u64,
    current: &MonitorDigest,
    previous: &MonitorDigest,
) -> Vec<String> {
    let mut lines = Vec::new();
    if index.is_multiple_of(MONITOR_HEADER_EVERY) {
        if index != 0 {
            lines.push(String::new());
        }
        lines.extend(MONITOR_HEADER.iter().map(|h| (*h).to_owned()));
    }
    lines.push(monitor_line(current, previous));
    lines
}
