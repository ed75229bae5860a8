//! `smtpctl`: control the daemon through its control socket (smtpctl(8) verbs), and
//! `sendmail`: submit a message through it, when invoked under that name.

use std::ffi::CStr;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use mta_core::control::{Request, Response};
use runtime_std::control::sendmail::{self, Origin};
use runtime_std::control::smtpctl::{self, Command};
use runtime_std::control::{default_socket_path, ControlClient};
use runtime_std::server::engine_host::unix_now;

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
    match name.as_str() {
        "sendmail" | "send-mail" => return submit(&default_socket_path(), rest),
        "mailq" => {
            return run(
                &default_socket_path(),
                &Command::Request(Request::ShowQueue),
            )
        }
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
    let socket = invocation.socket.unwrap_or_else(default_socket_path);
    run(&socket, &invocation.command)
}

fn run(socket: &Path, command: &Command) -> ExitCode {
    match command {
        Command::Encrypt(args) => runtime_std::auth::encrypt_command(args),
        Command::Sendmail(args) => submit(socket, args),
        Command::Monitor => monitor(socket),
        Command::Request(request) => {
            let response = match connect(socket)
                .and_then(|mut c| c.request(request).map_err(|e| format!("smtpctl: {e}")))
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            print(&response)
        }
    }
}

fn connect(socket: &Path) -> Result<ControlClient, String> {
    ControlClient::connect(socket)
        .map_err(|e| format!("smtpctl: cannot connect to {}: {e}", socket.display()))
}

fn print(response: &Response) -> ExitCode {
    match smtpctl::render(response) {
        Ok(lines) => {
            let mut out = std::io::stdout().lock();
            for l in lines {
                if writeln!(out, "{l}").is_err() {
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints the counters once a second: a header, then one line per second with the
/// increase of each counter (the first line with absolute values).
fn monitor(socket: &Path) -> ExitCode {
    let mut client = match connect(socket) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let mut previous: Option<Vec<(String, i64)>> = None;
    let mut count = 0u32;
    loop {
        let stats = match client.request(&Request::Monitor) {
            Ok(Response::Stats(s)) => s,
            Ok(other) => return print(&other),
            Err(e) => {
                eprintln!("smtpctl: {e}");
                return ExitCode::FAILURE;
            }
        };
        if count.is_multiple_of(25) {
            for l in smtpctl::monitor_header() {
                println!("{l}");
            }
        }
        println!("{}", smtpctl::monitor_line(&stats, previous.as_deref()));
        previous = Some(stats);
        count = count.wrapping_add(1);
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The login name of the real user.
fn login_name() -> String {
    // SAFETY: getuid cannot fail; getpwuid returns null or a pointer to a static record
    // that stays valid until the next call, and we copy the name out at once.
    unsafe {
        let pw = libc::getpwuid(libc::getuid());
        if !pw.is_null() && !(*pw).pw_name.is_null() {
            return CStr::from_ptr((*pw).pw_name).to_string_lossy().into_owned();
        }
    }
    std::env::var("LOGNAME")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "nobody".to_owned())
}

fn submit(socket: &Path, args: &[String]) -> ExitCode {
    let options = match sendmail::parse_args(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("sendmail: {e}");
            return ExitCode::from(64);
        }
    };
    let message = match sendmail::read_message(&mut std::io::stdin().lock(), options.ignore_dots) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("sendmail: {e}");
            return ExitCode::from(74);
        }
    };
    let hostname = runtime_std::server::hostname();
    let now = unix_now();
    let origin = Origin {
        user: login_name(),
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
            return ExitCode::from(64);
        }
    };
    let result =
        ControlClient::connect(socket).and_then(|mut c| c.request(&Request::Enqueue(submission)));
    match result {
        Ok(Response::Error(e)) => {
            eprintln!("sendmail: message refused: {e}");
            ExitCode::from(75)
        }
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sendmail: cannot submit through {}: {e}", socket.display());
            ExitCode::from(75)
        }
    }
}
