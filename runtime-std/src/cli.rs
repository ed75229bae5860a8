//! The command line of the daemon, shared by both runtimes' binaries: `smtpd [-dnv]
//! [-D name=value] [-f file]`, as smtpd(8) has it.
//!
//! `-n` checks the configuration: it prints `configuration OK` and exits 0, or prints every
//! error as `FILE:LINE:COL: message` on standard error and exits 1. With `-v` it also prints
//! the normalized configuration; with the built-in configuration it also says where the
//! queue and the mail would be kept. Serving mail is not built yet: without `-n` the
//! binaries refuse with [`NOT_BUILT`].

use std::io::Write;
use std::path::PathBuf;

use crate::config_load::{check_certificate_files, check_listen_addresses, load, LoadError};

/// What the binaries say when asked to serve mail, which is not built yet.
pub const NOT_BUILT: &str =
    "smtpd: serving mail is not built yet; only -n (check the configuration) works";

/// Usage line.
pub const USAGE: &str = "usage: smtpd [-dnv] [-D macro=value] [-f file]";

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
}

/// Parses the arguments (without the program name). Flags may be grouped (`-nv`) and
/// option values attached (`-fFILE`).
///
/// # Errors
///
/// A message for an unknown flag, a missing value or a malformed `-D`.
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Options, String> {
    let mut o = Options::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let Some(flags) = arg.strip_prefix('-').filter(|f| !f.is_empty()) else {
            return Err(format!("unexpected argument \"{arg}\""));
        };
        for (i, c) in flags.char_indices() {
            match c {
                'd' => o.debug = true,
                'n' => o.check = true,
                'v' => o.verbose = true,
                'f' | 'D' => {
                    let rest = flags.get(i + c.len_utf8()..).unwrap_or("");
                    let value = if rest.is_empty() {
                        args.next()
                            .ok_or_else(|| format!("option -{c} needs a value"))?
                    } else {
                        rest.to_string()
                    };
                    if c == 'f' {
                        o.file = Some(PathBuf::from(value));
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

/// Runs the command line and returns the exit status. `out` and `err` stand for standard
/// output and standard error.
pub fn run<I: IntoIterator<Item = String>>(
    args: I,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let options = match parse_args(args) {
        Ok(o) => o,
        Err(e) => {
            let _ = writeln!(err, "smtpd: {e}\n{USAGE}");
            return 1;
        }
    };
    if !options.check {
        let _ = writeln!(err, "{NOT_BUILT}");
        return 1;
    }
    match load(options.file.as_deref(), &options.macros) {
        Ok(loaded) => {
            let mut problems = check_listen_addresses(&loaded);
            problems.extend(check_certificate_files(&loaded));
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

/// The `main` of both binaries: runs [`run`] on the process's arguments and exits.
pub fn main() -> ! {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let code = run(
        std::env::args().skip(1),
        &mut stdout.lock(),
        &mut stderr.lock(),
    );
    std::process::exit(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn flags_group_and_values_attach() {
        let o = parse_args(args("-nv -f/etc/x.conf -D a=b -Dc=d")).expect("parses");
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
    fn serving_is_refused() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(run(args("-d"), &mut out, &mut err), 1);
        assert_eq!(String::from_utf8_lossy(&err).trim(), NOT_BUILT);
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
