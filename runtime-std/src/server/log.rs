//! The daemon's log: one line per event on standard error, in OpenSMTPD's style
//! (`smtp-in: session 5d6c... connected from ...`, `delivery: Ok for ...`), so that
//! administrators used to OpenSMTPD can read it. Verbose lines appear only with `-v` or
//! after `smtpctl log verbose`; trace lines only for the subsystems `smtpctl trace` named.
//! Both switches are shared by every clone and change while the daemon runs.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use super::trace::Subsystem;

/// The trace set last given to any log of this process, for the threads that hold no
/// log (the relay's outbound sessions, which send their lines to the agent's log). A
/// daemon has one log, so it is that log's set.
static PROCESS_TRACES: AtomicU32 = AtomicU32::new(0);

/// Whether `subsystem` is traced by the log last switched in this process (see
/// [`Log::set_traces`]), for threads without a log.
pub fn traced_in_process(subsystem: Subsystem) -> bool {
    PROCESS_TRACES.load(Ordering::Relaxed) & subsystem.bit() != 0
}

/// Where log lines go. Cheap to clone; every thread holds one.
#[derive(Clone, Debug)]
pub struct Log {
    inner: Arc<LogInner>,
}

#[derive(Debug)]
struct LogInner {
    verbose: AtomicBool,
    quiet: bool,
    /// Where a memory log keeps its lines ([`Log::memory`]).
    kept: Option<Mutex<Vec<String>>>,
    /// One bit per traced [`Subsystem`].
    traces: AtomicU32,
    /// The counters as `trace stat` last saw them; `None` until it first looks.
    stats: Mutex<Option<BTreeMap<String, i64>>>,
}

impl Log {
    /// A log on standard error; `verbose` also prints the lines meant for debugging.
    pub fn stderr(verbose: bool) -> Log {
        Log {
            inner: Arc::new(LogInner {
                verbose: AtomicBool::new(verbose),
                quiet: false,
                kept: None,
                traces: AtomicU32::new(0),
                stats: Mutex::new(None),
            }),
        }
    }

    /// A log that prints nothing (tests).
    pub fn quiet() -> Log {
        Log {
            inner: Arc::new(LogInner {
                verbose: AtomicBool::new(false),
                quiet: true,
                kept: None,
                traces: AtomicU32::new(0),
                stats: Mutex::new(None),
            }),
        }
    }

    /// A log that keeps its lines in memory instead of printing them (tests of what is
    /// logged); read them with [`Log::lines`].
    pub fn memory() -> Log {
        Log {
            inner: Arc::new(LogInner {
                verbose: AtomicBool::new(false),
                quiet: false,
                kept: Some(Mutex::new(Vec::new())),
                traces: AtomicU32::new(0),
                stats: Mutex::new(None),
            }),
        }
    }

    /// The lines a [`Log::memory`] kept so far (none for other logs).
    pub fn lines(&self) -> Vec<String> {
        self.inner
            .kept
            .as_ref()
            .and_then(|kept| kept.lock().ok().map(|l| l.clone()))
            .unwrap_or_default()
    }

    /// Print one event line. The line is written with a single `write` so lines of
    /// different threads never interleave.
    pub fn info(&self, line: &str) {
        if self.inner.quiet {
            return;
        }
        if let Some(kept) = &self.inner.kept {
            if let Ok(mut kept) = kept.lock() {
                kept.push(line.trim_end_matches(['\r', '\n']).to_owned());
            }
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
        PROCESS_TRACES.store(bits, Ordering::Relaxed);
    }

    /// Whether `subsystem` is traced: callers skip the work of composing trace lines
    /// when it is not.
    pub fn traces(&self, subsystem: Subsystem) -> bool {
        self.inner.traces.load(Ordering::Relaxed) & subsystem.bit() != 0
    }

    /// Whether any of `subsystems` is traced (one load of the mask).
    pub fn traces_any(&self, subsystems: &[Subsystem]) -> bool {
        let mask = subsystems.iter().fold(0u32, |bits, s| bits | s.bit());
        self.inner.traces.load(Ordering::Relaxed) & mask != 0
    }

    /// Print a trace line of `subsystem` if it is traced.
    pub fn trace(&self, subsystem: Subsystem, line: &str) {
        if self.traces(subsystem) {
            self.info(line);
        }
    }

    /// Print the trace line `line` composes if `subsystem` is traced; nothing is
    /// composed when it is not.
    pub fn trace_with(&self, subsystem: Subsystem, line: impl FnOnce() -> String) {
        if self.traces(subsystem) {
            self.info(&line());
        }
    }

    /// `trace stat`: the counters now, against those seen last; returns a line per
    /// counter that changed (none the first time, which only takes them).
    pub fn stats_changed(&self, now: BTreeMap<String, i64>) -> Vec<String> {
        let Ok(mut seen) = self.inner.stats.lock() else {
            return Vec::new();
        };
        let lines = seen
            .as_ref()
            .map(|before| super::trace::events::stat_lines(before, &now))
            .unwrap_or_default();
        *seen = Some(now);
        lines
    }

    /// Forget the counters seen (`untrace stat`), so the next `trace stat` starts from
    /// the counters as they are then.
    pub fn reset_stats(&self) {
        if let Ok(mut seen) = self.inner.stats.lock() {
            *seen = None;
        }
    }
}
