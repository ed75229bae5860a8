//! MDA delivery: run the configured command with the message on its standard input.
//!
//! As OpenSMTPD does, the command string (already format-expanded and sanitized by the
//! core) runs as `/bin/sh -c COMMAND`; no part of an address is ever spliced into a shell
//! line here. The environment is replaced by the variables OpenSMTPD 6.8 sets: `PATH`,
//! `DOMAIN`, `HOME`, `RECIPIENT`, `SHELL=/bin/sh`, `LOCAL`, `LOGNAME`, `USER`, `SENDER`
//! and, for a `user+tag` address, `EXTENSION`. The command runs in its own process group
//! in the user's home directory; a bounded amount of its stderr becomes the failure text,
//! and a timeout kills the whole group (a temporary failure). Processes the command leaves
//! behind in its group are killed when it exits. The message arrives with LF line ends.

use super::{outcome_from_exit, DeliveryOutcome, UnixLines};
use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The `PATH` given to commands unless configured otherwise.
pub const DEFAULT_PATH: &str = "/usr/bin:/bin";

/// The identity of one delivery, exported to the command as environment variables.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MdaEnvironment {
    /// `HOME`, also the working directory: the delivering user's home.
    pub home: PathBuf,
    /// `USER` and `LOGNAME`: the delivering user's login name.
    pub user: String,
    /// `PATH` for the command (usually [`DEFAULT_PATH`]).
    pub path: String,
    /// `LOCAL`: the local part of the recipient.
    pub local: String,
    /// `DOMAIN`: the domain of the recipient.
    pub domain: String,
    /// `RECIPIENT`: the recipient address `local@domain` after expansion.
    pub recipient: String,
    /// `SENDER`: the envelope sender, empty for a bounce (`MAIL FROM:<>`).
    pub sender: String,
    /// `EXTENSION`: the sub-address (`tag` in `user+tag`), set only when present.
    pub extension: Option<String>,
}

impl MdaEnvironment {
    /// The variables as `(name, value)` pairs, in the order OpenSMTPD sets them.
    pub fn variables(&self) -> Vec<(&'static str, String)> {
        let mut vars = vec![
            ("PATH", self.path.clone()),
            ("DOMAIN", self.domain.clone()),
            ("HOME", self.home.to_string_lossy().into_owned()),
            ("RECIPIENT", self.recipient.clone()),
            ("SHELL", "/bin/sh".to_owned()),
            ("LOCAL", self.local.clone()),
            ("LOGNAME", self.user.clone()),
            ("USER", self.user.clone()),
            ("SENDER", self.sender.clone()),
        ];
        if let Some(extension) = &self.extension {
            vars.push(("EXTENSION", extension.clone()));
        }
        vars
    }
}

/// How one MDA command runs.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MdaCommand {
    /// The command line given to `/bin/sh -c`.
    pub command: String,
    /// The environment of the delivery.
    pub env: MdaEnvironment,
    /// How long the command may run before it is killed.
    pub timeout: Duration,
    /// How many bytes of its stderr are kept for the failure text.
    pub max_stderr: usize,
}

/// Run `cmd` with `message` on its standard input and map its exit status (see
/// [`super::outcome_from_exit`]). A command that does not read all its input but exits 0
/// has delivered: the exit status is the command's verdict.
pub fn deliver(cmd: &MdaCommand, message: &mut (dyn Read + Send)) -> DeliveryOutcome {
    let workdir = if cmd.env.home.is_dir() {
        cmd.env.home.as_path()
    } else {
        Path::new("/")
    };
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(&cmd.command)
        .env_clear()
        .envs(cmd.env.variables())
        .current_dir(workdir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return DeliveryOutcome::from_io("cannot run mda command", &e),
    };
    let pid = child.id();
    let (stdin, stderr) = (child.stdin.take(), child.stderr.take());
    let deadline = Instant::now() + cmd.timeout;
    std::thread::scope(|scope| {
        let feeder = scope.spawn(move || feed(message, stdin));
        let collector = scope.spawn(move || collect(stderr, cmd.max_stderr));
        let status = wait_until(&mut child, deadline);
        // Kill the group in any case: a timed-out command, or stragglers it left behind
        // that would hold its stdin or stderr open.
        kill_group(pid);
        let timed_out = status.is_none();
        let status = status.or_else(|| child.wait().ok());
        let fed = feeder
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("stdin writer panicked")));
        let text = collector.join().unwrap_or_default();
        match status {
            _ if timed_out => {
                DeliveryOutcome::TempFail(format!("mda command timed out after {:?}", cmd.timeout))
            }
            None => DeliveryOutcome::TempFail("cannot wait for mda command".to_owned()),
            Some(status) => match (outcome_from_exit(status, &text), fed) {
                (DeliveryOutcome::Delivered, Err(e)) if e.kind() != io::ErrorKind::BrokenPipe => {
                    DeliveryOutcome::from_io("cannot read message for mda", &e)
                }
                (outcome, _) => outcome,
            },
        }
    })
}

/// Poll the child until it exits or the deadline passes (then `None`).
fn wait_until(
    child: &mut std::process::Child,
    deadline: Instant,
) -> Option<std::process::ExitStatus> {
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            Err(_) => return None,
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

fn kill_group(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill has no memory effects; a negative pid names the child's own group.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

/// Copy the message into the command's stdin, then close it.
fn feed(
    message: &mut (dyn Read + Send),
    stdin: Option<std::process::ChildStdin>,
) -> io::Result<()> {
    let mut stdin = stdin.ok_or_else(|| io::Error::other("no stdin"))?;
    io::copy(&mut UnixLines::new(message), &mut stdin)?;
    stdin.flush()
}

/// Read all of stderr, keeping the first `max` bytes.
fn collect(stderr: Option<std::process::ChildStderr>, max: usize) -> String {
    let mut kept = Vec::new();
    if let Some(mut stderr) = stderr {
        let mut buf = [0u8; 4096];
        loop {
            match stderr.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let room = max.saturating_sub(kept.len());
                    kept.extend_from_slice(buf.get(..n.min(room)).unwrap_or_default());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }
    String::from_utf8_lossy(&kept)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
