//! The daemon's log: one line per event on standard error, in OpenSMTPD's style
//! (`smtp-in: session 5d6c... connected from ...`, `delivery: Ok for ...`), so that
//! administrators used to OpenSMTPD can read it. Verbose lines appear only with `-v`.

use std::io::Write;
use std::sync::Arc;

/// Where log lines go. Cheap to clone; every thread holds one.
#[derive(Clone, Debug)]
pub struct Log {
    inner: Arc<LogInner>,
}

#[derive(Debug)]
struct LogInner {
    verbose: bool,
    quiet: bool,
}

impl Log {
    /// A log on standard error; `verbose` also prints the lines meant for debugging.
    pub fn stderr(verbose: bool) -> Log {
        Log {
            inner: Arc::new(LogInner {
                verbose,
                quiet: false,
            }),
        }
    }

    /// A log that prints nothing (tests).
    pub fn quiet() -> Log {
        Log {
            inner: Arc::new(LogInner {
                verbose: false,
                quiet: true,
            }),
        }
    }

    /// Print one event line. The line is written with a single `write` so lines of
    /// different threads never interleave.
    pub fn info(&self, line: &str) {
        if self.inner.quiet {
            return;
        }
        let mut text = String::with_capacity(line.len().saturating_add(1));
        text.push_str(line.trim_end_matches(['\r', '\n']));
        text.push('\n');
        let _ = std::io::stderr().write_all(text.as_bytes());
    }

    /// Print a line only in verbose mode (`-v`).
    pub fn debug(&self, line: &str) {
        if self.inner.verbose {
            self.info(line);
        }
    }

    /// Print a warning (a problem the daemon survives).
    pub fn warn(&self, line: &str) {
        self.info(&format!("warn: {line}"));
    }
}
