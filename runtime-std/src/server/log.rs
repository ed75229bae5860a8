//! The daemon's log: one line per event on standard error, in OpenSMTPD's style
//! (`smtp-in: session 5d6c... connected from ...`, `delivery: Ok for ...`), so that
//! administrators used to OpenSMTPD can read it. Verbose lines appear only with `-v` or
//! after `smtpctl log verbose`; trace lines only for the subsystems `smtpctl trace` named.
//! Both switches are shared by every clone and change while the daemon runs.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use super::trace::Subsystem;

/// Where log lines go. Cheap to clone; every thread holds one.
#[derive(Clone, Debug)]
pub struct Log {
    inner: Arc<LogInner>,
}

#[derive(Debug)]
struct LogInner {
    verbose: AtomicBool,
    quiet: bool,
    /// One bit per traced [`Subsystem`].
    traces: AtomicU32,
}

impl Log {
    /// A log on standard error; `verbose` also prints the lines meant for debugging.
    pub fn stderr(verbose: bool) -> Log {
        Log {
            inner: Arc::new(LogInner {
                verbose: AtomicBool::new(verbose),
                quiet: false,
                traces: AtomicU32::new(0),
            }),
        }
    }

    /// A log that prints nothing (tests).
    pub fn quiet() -> Log {
        Log {
            inner: Arc::new(LogInner {
                verbose: AtomicBool::new(false),
                quiet: true,
                traces: AtomicU32::new(0),
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

    /// Print a line only in verbose mode (`-v`, `smtpctl log verbose`).
    pub fn debug(&self, line: &str) {
        if self.is_verbose() {
            self.info(line);
        }
    }

    /// Print a warning (a problem the daemon survives).
    pub fn warn(&self, line: &str) {
        self.info(&format!("warn: {line}"));
    }

    /// Switch verbose lines on or off for every holder of this log (`smtpctl log
    /// verbose|brief`).
    pub fn set_verbose(&self, verbose: bool) {
        self.inner.verbose.store(verbose, Ordering::Relaxed);
    }

    /// Whether verbose lines are printed.
    pub fn is_verbose(&self) -> bool {
        self.inner.verbose.load(Ordering::Relaxed)
    }

    /// Trace exactly the subsystems in `traced` from now on (`smtpctl trace|untrace`).
    pub fn set_traces(&self, traced: &[Subsystem]) {
        let bits = traced.iter().fold(0u32, |bits, s| bits | s.bit());
        self.inner.traces.store(bits, Ordering::Relaxed);
    }

    /// Whether `subsystem` is traced: callers skip the work of composing trace lines
    /// when it is not.
    pub fn traces(&self, subsystem: Subsystem) -> bool {
        self.inner.traces.load(Ordering::Relaxed) & subsystem.bit() != 0
    }

    /// Print a trace line of `subsystem` if it is traced.
    pub fn trace(&self, subsystem: Subsystem, line: &str) {
        if self.traces(subsystem) {
            self.info(line);
        }
    }
}
