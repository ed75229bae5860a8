//! The command line of the daemon, shared by both runtimes' binaries: `smtpd [-dnv]
//! [-D name=value] [-f file] [-s socket] [-u user] [-M seed:rate]`, as smtpd(8) has it,
//! plus the control socket, the account a root daemon runs as, and monkey mode.
//!
//! `-n` checks the configuration: it prints `configuration OK` and exits 0, or prints every
//! error as `FILE:LINE:COL: message` on standard error and exits 1. With `-v` it also prints
//! the normalized configuration; with the built-in configuration it also says where the
//! queue and the mail would be kept. Without `-n` the binary serves mail ([`main_with`]
//! takes the runtime's serve function).
//!
//! `-M SEED:RATE[:KIND,...]` (or `--monkey SEED:RATE`) starts the daemon in monkey mode
//! (DESIGN.md, "Faults by design"): the plan of [`mta_core::faults::FaultPlan::parse`] is
//! installed with [`crate::monkey::install`] before anything is served, and a line at start
//! says so with its seed and rate.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use mta_core::faults::FaultPlan;

use crate::config_load::{check_certificate_files, check_listen_addresses, load, LoadError};

/// Usage line.
pub const USAGE: &str =
    "usage: smtpd [-dnv] [-D macro=value] [-f file] [-s socket] [-u user] [-M seed:rate[:kind,...]]";

/// The options of the command line.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Options {
    /// `-f FILE`: the configuration file (the built-in configuration without it).
    pub file: Option<PathBuf>,
    /// `-d`: stay in the foreground and log to standard error.
    pub debug: bool,
    /// `-n`: check the configuration and exit.
    pub check: bool,
    /// `-v`: be verbose.
    pub verbose: bool,
    /// `-D name=value`: macros that override the file's.
    pub macros: Vec<(String, String)>,
    /// `-M SEED:RATE[:KIND,...]` or `--monkey SEED:RATE[:KIND,...]`: monkey mode's plan.
    pub monkey: Option<FaultPlan>,
    /// `-s SOCKET`: where the control socket goes (the default path without it).
    pub socket: Option<PathBuf>,
    /// `-u USER`: the account a daemon started as root runs as after binding
    /// (`_smtpd` without it, as OpenSMTPD).
    pub user: Option<String>,
}

/// Reads the value of `-M`/`--monkey`.
fn monkey_plan(value: &str) -> Result<FaultPlan, String> {
    FaultPlan::parse(value).map_err(|e| format!("-M: {e}"))
}

/// Parses the arguments (without the program name). Flags may be grouped (`-nv`) and
/// option values attached (`-fFILE`); `--monkey` takes its value as the next argument or
/// after `=`.
///
/// # Errors
///
/// A message for an unknown flag, a missing value, a malformed `-D` or `-M`.
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Options, String> {
    let mut o = Options::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if let Some(long) = arg.strip_prefix("--") {
            let value = match long.split_once('=') {
                Some(("monkey", value)) => value.to_owned(),
                None if long == "monkey" => args
                    .next()
                    .ok_or_else(|| "option --monkey needs a value".to_owned())?,
                _ => return Err(format!("unknown option {arg}")),
            };
            o.monkey = Some(monkey_plan(&value)?);
            continue;
        }
        let Some(flags) = arg.strip_prefix('-').filter(|f| !f.is_empty()) else {
            return Err(format!("unexpected argument \"{arg}\""));
        };
        for (i, c) in flags.char_indices() {
            match c {
                'd' => o.debug = true,
                'n' => o.check = true,
                'v' => o.verbose = true,
                'f' | 'D' | 'M' | 's' | 'u' => {
                    let rest = flags.get(i + c.len_utf8()..).unwrap_or("");
                    let value = if rest.is_empty() {
                        args.next()
                            .ok_or_else(|| format!("option -{c} needs a value"))?
                    } else {
                        rest.to_string()
                    };
                    if c == 'f' {
                        o.file = Some(PathBuf::from(value));
                    } else if c == 'M' {
                        o.monkey = Some(monkey_plan(&value)?);
                    } else if c == 's' {
                        o.socket = Some(PathBuf::from(value));
                    } else if c == 'u' {
                        if value.is_empty() {
                            return Err("option -u needs a user name".to_owned());
                        }
                        o.user = Some(value);
                    } else {
                        let (k, v) = value
                            .split_once('=')
                            .ok_or_else(|| format!("-D needs name=value, got \"{value}\""))?;
                        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        {
                            return Err(format!("invalid macro name \"{k}\""));
                        }
                        o.macros.push((k.to_string(), v.to_string()));
                    }
                    break;
                }
                other => return Err(format!("unknown option -{other}")),
            }
        }
    }
    Ok(o)
}

/// Runs the configuration check of the command line (`-n`, whether given or not) and
/// returns the exit status. `out` and `err` stand for standard output and standard error.
pub fn run<I: IntoIterator<Item = String>>(
    args: I,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    match parse_args(args) {
        Ok(options) => check(&options, out, err),
        Err(e) => {
            let _ = writeln!(err, "smtpd: {e}\n{USAGE}");
            1
        }
    }
}

/// Checks the configuration `options` name (`-n`) and returns the exit status.
pub fn check(options: &Options, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match load(options.file.as_deref(), &options.macros) {
        Ok(loaded) => {
            let mut problems = check_listen_addresses(&loaded);
            problems.extend(check_certificate_files(&loaded));
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } == 0 {
                // Run as root, the daemon needs the account it drops to after binding.
                let account = options
                    .user
                    .as_deref()
                    .unwrap_or(crate::server::privdrop::DEFAULT_ACCOUNT);
                if let Err(e) = crate::server::privdrop::find_account(account) {
                    problems.push(format!("smtpd: {e}"));
                }
            }
            if !problems.is_empty() {
                for p in problems {
                    let _ = writeln!(err, "{p}");
                }
                return 1;
            }
            if options.verbose {
                let _ = write!(out, "{}", loaded.config.to_modern_string());
            }
            if loaded.builtin {
                let queue = loaded
                    .config
                    .options
                    .queue
                    .path
                    .clone()
                    .unwrap_or_else(|| loaded.state_dir.join("queue").display().to_string());
                let _ = writeln!(out, "using the built-in configuration");
                let _ = writeln!(out, "queue (spool): {queue}");
                let _ = writeln!(
                    out,
                    "mail (maildirs): {}",
                    loaded.state_dir.join("mail").display()
                );
            }
            let _ = writeln!(out, "configuration OK");
            0
        }
        Err(LoadError::Config(errors)) => {
            for e in &errors.0 {
                let _ = writeln!(err, "{e}");
            }
            1
        }
        Err(e) => {
            let _ = writeln!(err, "{e}");
            1
        }
    }
}

/// Installs the monkey-mode plan of `options`, if any, and returns the line to log at
/// start (`smtpd: monkey mode on: seed S rate R ...`).
///
/// # Errors
/// When a plan is installed already (the process's plan is set once).
pub fn install_monkey(options: &Options) -> Result<Option<String>, String> {
    let Some(plan) = options.monkey else {
        return Ok(None);
    };
    crate::monkey::install(plan).map_err(|old| format!("monkey mode is on already ({old})"))?;
    Ok(Some(crate::monkey::banner(&plan)))
}

/// The `main` of both binaries: parses the process's arguments; with `-n` checks the
/// configuration, otherwise installs the monkey-mode plan of `-M` (logging a line that
/// says so) and hands the options to `serve`, the runtime's daemon.
pub fn main_with(serve: fn(&Options) -> ExitCode) -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("smtpd: {e}\n{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    if options.check {
        let stdout = std::io::stdout();
        let stderr = std::io::stderr();
        let code = check(&options, &mut stdout.lock(), &mut stderr.lock());
        return if code == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    match install_monkey(&options) {
        Ok(Some(line)) => eprintln!("{line}"),
        Ok(None) => {}
        Err(e) => {
            eprintln!("smtpd: {e}");
            return ExitCode::FAILURE;
        }
    }
    serve(&options)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn flags_group_and_values_attach() {
        let o = parse_args(args("-nv -f/etc/x.conf -D a=b -Dc=d -s /run/x.sock")).expect("parses");
        assert_eq!(o.socket, Some(PathBuf::from("/run/x.sock")));
        assert!(o.check && o.verbose && !o.debug);
        assert_eq!(o.file, Some(PathBuf::from("/etc/x.conf")));
        assert_eq!(
            o.macros,
            vec![("a".into(), "b".into()), ("c".into(), "d".into())]
        );
        assert!(parse_args(args("-x")).is_err());
        assert!(parse_args(args("-f")).is_err());
        assert!(parse_args(args("-D novalue")).is_err());
    }

    #[test]
    fn the_account_to_run_as_is_named_with_u() {
        assert_eq!(parse_args(args("-d")).expect("parses").user, None);
        let o = parse_args(args("-d -u mail")).expect("parses");
        assert_eq!(o.user.as_deref(), Some("mail"));
        let attached = parse_args(args("-du_smtpq")).expect("parses");
        assert_eq!(attached.user.as_deref(), Some("_smtpq"));
        assert!(parse_args(args("-u")).is_err());
    }

    #[test]
    fn monkey_plans_parse_short_and_long() {
        let o = parse_args(args("-d -M 42:0.2")).expect("parses");
        assert!(o.debug);
        let plan = o.monkey.expect("a plan");
        assert_eq!((plan.seed(), plan.rate().to_string()), (42, "0.2".into()));
        let attached = parse_args(args("-dM7:0.5:spool,delivery")).expect("parses");
        assert_eq!(
            attached.monkey.map(|p| p.spec()),
            Some("7:0.5:spool,delivery".into())
        );
        for long in ["--monkey 42:0.2", "--monkey=42:0.2"] {
            let o = parse_args(args(long)).expect(long);
            assert_eq!(o.monkey, Some(plan), "{long}");
        }
        for bad in [
            "-M",
            "--monkey",
            "-M 42",
            "-M x:0.2",
            "-M 1:2",
            "--monkey=1:0.1:disk",
            "--other",
        ] {
            assert!(parse_args(args(bad)).is_err(), "{bad}");
        }
        assert_eq!(parse_args(args("-n")).expect("parses").monkey, None);
        assert_eq!(
            install_monkey(&parse_args(args("-d")).expect("parses")),
            Ok(None)
        );
    }

    #[test]
    fn check_ignores_monkey_mode() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(
            run(
                args("-n -M 1:0.5 -D state_dir=/srv/smtpd"),
                &mut out,
                &mut err
            ),
            0
        );
        assert!(String::from_utf8_lossy(&out).ends_with("configuration OK\n"));
    }

    #[test]
    fn the_builtin_configuration_checks() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(
            run(args("-n -D state_dir=/srv/smtpd"), &mut out, &mut err),
            0
        );
        let out = String::from_utf8_lossy(&out);
        assert!(out.contains("queue (spool): /srv/smtpd/queue"), "{out}");
        assert!(out.ends_with("configuration OK\n"), "{out}");
    }

    #[test]
    fn state_dir_depends_on_the_user() {
        use crate::config_load::state_dir_for;
        assert_eq!(
            state_dir_for(0, None, None),
            PathBuf::from("/var/spool/smtpd")
        );
        assert_eq!(
            state_dir_for(1000, Some("/x".into()), Some("/home/u".into())),
            PathBuf::from("/x/smtpd")
        );
        assert_eq!(
            state_dir_for(1000, None, Some("/home/u".into())),
            PathBuf::from("/home/u/.local/state/smtpd")
        );
    }
}
