//! `smtpctl`: control the daemon through its control socket (smtpctl(8) verbs); under the
//! name `sendmail` (or `send-mail`), submit a message through it; as `mailq`, list the
//! queue; as `newaliases`, explain that aliases are read by the daemon.
//!
//! The socket is `-s SOCKET`, else the path in the environment variable
//! `SMTPD_SOCKET`, else the default ([`default_socket_path`]). The client has no
//! privilege of its own: the daemon decides what each caller may do.

use std::ffi::CStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use mta_core::control::{QueueRow, Request, Response};
use mta_core::queue::EnvelopeId;
use mta_core::scheduler::Target;
use runtime_std::control::offline;
use runtime_std::control::sendmail::{self, Mode, Origin};
use runtime_std::control::smtpctl::{self, Command, EnvelopeVerb, MonitorDigest};
use runtime_std::control::{default_socket_path, ControlClient};
use runtime_std::server::engine_host::unix_now;

/// sysexits(3) codes sendmail callers expect.
const EX_USAGE: u8 = 64;
const EX_SOFTWARE: u8 = 70;
const EX_IOERR: u8 = 74;
const EX_TEMPFAIL: u8 = 75;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let name = args
        .first()
        .map(|a| {
            Path::new(a)
                .file_name()
                .map_or(a.clone(), |n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    let rest = args.get(1..).unwrap_or(&[]);
    let socket = std::env::var_os("SMTPD_SOCKET")
        .filter(|s| !s.is_empty())
        .map_or_else(default_socket_path, PathBuf::from);
    match name.as_str() {
        "sendmail" | "send-mail" => return submit(&socket, rest),
        "mailq" => return run(&socket, &Command::ShowQueue(None)),
        "newaliases" => return newaliases(&socket),
        _ => {}
    }
    let invocation = match smtpctl::parse(rest) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("smtpctl: {e}");
            eprintln!("{}", smtpctl::USAGE);
            return ExitCode::FAILURE;
        }
    };
    run(&invocation.socket.unwrap_or(socket), &invocation.command)
}

/// Prints `message` on standard error and fails.
fn failed(message: &str) -> ExitCode {
    eprintln!("{message}");
    ExitCode::FAILURE
}

fn run(socket: &Path, command: &Command) -> ExitCode {
    let result = match command {
        Command::Encrypt(args) => return runtime_std::auth::encrypt_command(args),
        Command::Sendmail(args) => return submit(socket, args),
        Command::Monitor => {
            return connect(socket).map_or_else(|e| failed(&e), |mut c| monitor(&mut c))
        }
        Command::Request(request) => connect(socket)
            .and_then(|mut c| ask(&mut c, request))
            .and_then(print),
        Command::ShowQueue(filter) => {
            connect(socket)
                .and_then(|mut c| queue(&mut c))
                .and_then(|rows| {
                    let target = filter.map_or(Target::All, Target::Message);
                    print_lines(
                        rows.iter()
                            .filter(|r| smtpctl::row_matches(r, target))
                            .map(smtpctl::queue_line),
                    )
                })
        }
        Command::ShowMessage(target) => {
            connect(socket).and_then(|mut c| show_message(&mut c, *target))
        }
        Command::Envelopes(verb, target) => {
            connect(socket).and_then(|mut c| envelopes(&mut c, *verb, *target))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => failed(&e),
    }
}

fn connect(socket: &Path) -> Result<ControlClient, String> {
    ControlClient::connect(socket)
        .map_err(|e| format!("smtpctl: {}", smtpctl::connect_error(socket, &e)))
}

fn ask(client: &mut ControlClient, request: &Request) -> Result<Response, String> {
    client.request(request).map_err(|e| format!("smtpctl: {e}"))
}

/// Prints `lines`; a reader that stopped reading (`smtpctl show queue | head`) ends the
/// output quietly, as the end of a pipe does.
fn print_lines(lines: impl IntoIterator<Item = String>) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    for l in lines {
        match writeln!(out, "{l}") {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(format!("smtpctl: {e}")),
        }
    }
    out.flush().or_else(|e| {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Ok(())
        } else {
            Err(format!("smtpctl: {e}"))
        }
    })
}

fn print(response: Response) -> Result<(), String> {
    print_lines(smtpctl::render(&response)?)
}

/// The queue sorted by envelope id (so a message's envelopes are together, as
/// OpenSMTPD lists them), or the daemon's refusal.
fn queue(client: &mut ControlClient) -> Result<Vec<QueueRow>, String> {
    match ask(client, &Request::ShowQueue)? {
        Response::Envelopes(mut rows) => {
            rows.sort_by_key(|r| r.id);
            Ok(rows)
        }
        other => smtpctl::render(&other).and(Err("smtpctl: unexpected answer".to_owned())),
    }
}

/// `show message`: for a message id, the message of its first envelope in the queue.
fn show_message(client: &mut ControlClient, target: Target) -> Result<(), String> {
    let envelope = match target {
        Target::Envelope(id) => id,
        _ => queue(client)?
            .iter()
            .find(|r| smtpctl::row_matches(r, target))
            .and_then(|r| EnvelopeId::new(r.id))
            .ok_or_else(|| match target {
                Target::Message(m) => format!("command failed: no such message: {m}"),
                _ => "command failed: no envelope".to_owned(),
            })?,
    };
    print(ask(client, &Request::ShowMessage(envelope))?)
}

/// `schedule`, `remove`, `pause envelope`, `resume envelope`: one request for the
/// target, then `N envelopes VERB`, N counted in the queue beforehand for a message id
/// or `all`.
fn envelopes(client: &mut ControlClient, verb: EnvelopeVerb, target: Target) -> Result<(), String> {
    let count = match target {
        Target::Envelope(_) => 1,
        _ => queue(client)?
            .iter()
            .filter(|r| smtpctl::row_matches(r, target))
            .count(),
    };
    match ask(client, &verb.request(target))? {
        Response::Ok => print_lines([smtpctl::envelopes_line(verb, count)]),
        other => print(other),
    }
}

/// Prints the counters once a second: OpenSMTPD's header, then one line per second
/// with the increase of each counter (the first line counts from the daemon's start).
fn monitor(client: &mut ControlClient) -> ExitCode {
    let mut previous = MonitorDigest::default();
    let mut index = 0u64;
    let mut out = std::io::stdout().lock();
    loop {
        let stats = match ask(client, &Request::Monitor) {
            Ok(Response::Stats(s)) => s,
            Ok(other) => {
                return match smtpctl::render(&other) {
                    Err(e) => failed(&e),
                    Ok(_) => failed("smtpctl: unexpected answer"),
                }
            }
            Err(e) => return failed(&e),
        };
        let current = MonitorDigest::from_stats(&stats);
        for line in smtpctl::monitor_output(index, &current, &previous) {
            if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                return ExitCode::SUCCESS;
            }
        }
        previous = current;
        index = index.wrapping_add(1);
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The real user's login name and full name (GECOS).
fn account() -> (String, Option<String>) {
    // SAFETY: getuid cannot fail; getpwuid returns null or a pointer to a static record
    // that stays valid until the next call (this program makes no other), and both
    // strings are copied out at once.
    unsafe {
        let pw = libc::getpwuid(libc::getuid());
        if !pw.is_null() && !(*pw).pw_name.is_null() {
            let login = CStr::from_ptr((*pw).pw_name).to_string_lossy().into_owned();
            let gecos = if (*pw).pw_gecos.is_null() {
                String::new()
            } else {
                CStr::from_ptr((*pw).pw_gecos)
                    .to_string_lossy()
                    .into_owned()
            };
            let full = sendmail::full_name(&gecos, &login);
            return (login, full);
        }
    }
    let login = std::env::var("LOGNAME")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "nobody".to_owned());
    (login, None)
}

fn submit(socket: &Path, args: &[String]) -> ExitCode {
    let options = match sendmail::parse_args(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("sendmail: {e}");
            eprintln!("{}", sendmail::USAGE);
            return ExitCode::from(EX_USAGE);
        }
    };
    if options.mode == Mode::Newaliases {
        return newaliases(socket);
    }
    let message = match sendmail::read_message(&mut std::io::stdin().lock(), options.ignore_dots) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("sendmail: {e}");
            return ExitCode::from(EX_IOERR);
        }
    };
    let hostname = runtime_std::server::hostname();
    let now = unix_now();
    let (user, full_name) = account();
    let origin = Origin {
        user: user.clone(),
        full_name,
        date: now.rfc5322().to_string(),
        message_id: format!(
            "<{}.{}.{}@{hostname}>",
            now.as_secs(),
            now.subsec_millis(),
            std::process::id()
        ),
        hostname,
    };
    let submission = match sendmail::prepare(&options, &message, &origin) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sendmail: {e}");
            return ExitCode::from(EX_USAGE);
        }
    };
    let mut client = match ControlClient::connect(socket) {
        Ok(c) => c,
        // No daemon: leave it in the offline directory, quietly, as OpenSMTPD does.
        Err(e) if offline::daemon_absent(&e) => {
            let from_user = sendmail::sender_from_user(&options, &message);
            return offline::submit(socket, &e, user, from_user, submission);
        }
        Err(e) => {
            eprintln!(
                "sendmail: {}; message not sent",
                smtpctl::connect_error(socket, &e)
            );
            return ExitCode::from(EX_TEMPFAIL);
        }
    };
    match client.request(&Request::Enqueue(submission)) {
        Ok(Response::Error(e)) => {
            eprintln!("sendmail: message refused: {e}");
            ExitCode::from(EX_SOFTWARE)
        }
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "sendmail: submission through {} failed: {e}",
                socket.display()
            );
            ExitCode::from(EX_TEMPFAIL)
        }
    }
}

/// `newaliases`: there is no aliases database to build; the daemon reads its aliases
/// tables at start. A running daemon is asked to read `aliases` again, as OpenSMTPD's
/// `newaliases` does.
fn newaliases(socket: &Path) -> ExitCode {
    eprintln!(
        "newaliases: there is no aliases database to rebuild: smtpd reads its aliases \
         files when it starts (and on `smtpctl update table NAME`)"
    );
    let Ok(mut client) = ControlClient::connect(socket) else {
        return ExitCode::SUCCESS;
    };
    match client.request(&Request::UpdateTable("aliases".to_owned())) {
        Ok(Response::Ok) => eprintln!("newaliases: table aliases reloaded by the running smtpd"),
        // A configuration without an `aliases` table has nothing to reload.
        Ok(Response::Error(e)) if e.starts_with("no such table") => {}
        Ok(Response::Error(e)) => eprintln!("newaliases: table aliases not reloaded: {e}"),
        Ok(_) | Err(_) => {}
    }
    ExitCode::SUCCESS
}
