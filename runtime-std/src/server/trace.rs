//! `smtpctl trace`: the subsystems this runtime gives trace output for (smtpctl(8)'s
//! names), and the SMTP tracer of one connection, which logs every command line read
//! and every reply line written (`smtp: session ID <<< MAIL FROM:<a@b>` / `>>> 250
//! 2.0.0 Ok`), as OpenSMTPD's `trace smtp` does. The other subsystems are traced where
//! the runtime sees the engine's and the relay agent's decisions ([`events`]).
//!
//! Message bodies are not logged (one line gives their size), nor are AUTH secrets: the
//! initial response of `AUTH` and every line answering a `334` challenge are shown as
//! `****` (RFC 4954 §4). A tracer only looks at bytes while tracing is on; switched on in
//! the middle of a body, it may show a few body lines as commands until the next reply.
//!
//! smtpctl(8)'s `imsg`, `io`, `mproc` (OpenSMTPD's inter-process messages and buffers)
//! and `filters` have no counterpart with output here and are refused by name.

pub mod events;

pub use events::{credentials, engine_action, lookup, relay_action, relay_input, stats};

use super::log::Log;

/// A subsystem of smtpctl(8) `trace` that this runtime produces output for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Subsystem {
    /// SMTP sessions: the command lines read and the reply lines written.
    Smtp,
    /// Alias, virtual and `.forward` expansion: what each recipient became.
    Expand,
    /// User, `.forward`, `:include:` and credentials lookups, with their answers.
    Lookup,
    /// Which `match` rule (and action) each accepted envelope hit.
    Rules,
    /// Envelopes handed to delivery, deferred, expired, failed, removed.
    Scheduler,
    /// Bounces, delay and success reports queued.
    Bounce,
    /// Outgoing relay sessions (`mta`, formerly `transfer`): resolutions, connections,
    /// per-recipient replies.
    Mta,
    /// Counter changes.
    Stat,
}

impl Subsystem {
    /// Every subsystem with trace output, what `trace all` turns on.
    pub const ALL: &'static [Subsystem] = &[
        Subsystem::Smtp,
        Subsystem::Expand,
        Subsystem::Lookup,
        Subsystem::Rules,
        Subsystem::Scheduler,
        Subsystem::Bounce,
        Subsystem::Mta,
        Subsystem::Stat,
    ];

    /// The name smtpctl(8) uses.
    pub fn name(self) -> &'static str {
        match self {
            Subsystem::Smtp => "smtp",
            Subsystem::Expand => "expand",
            Subsystem::Lookup => "lookup",
            Subsystem::Rules => "rules",
            Subsystem::Scheduler => "scheduler",
            Subsystem::Bounce => "bounce",
            Subsystem::Mta => "mta",
            Subsystem::Stat => "stat",
        }
    }

    /// The subsystem smtpctl(8) calls `name` (`transfer` being the older name of
    /// `mta`), when this runtime traces it.
    pub fn from_name(name: &str) -> Option<Subsystem> {
        if name == "transfer" {
            return Some(Subsystem::Mta);
        }
        Subsystem::ALL.iter().copied().find(|s| s.name() == name)
    }

    /// Its bit in the log's trace mask.
    pub(super) fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

/// Longest part of a line shown; the rest is cut and marked.
const SHOWN: usize = 512;

/// Where the tracer is in the client's byte stream.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// Lines are commands.
    Command,
    /// AUTH is in progress: lines are secrets until a reply other than `334`.
    Auth,
    /// DATA was sent; lines are body if the reply is `354`, else commands again.
    DataPending,
    /// Body lines up to the lone dot; `bytes` counts them.
    Data { bytes: u64 },
    /// A BDAT chunk: this many bytes of body follow (RFC 3030 §2).
    Chunk { left: u64 },
}

/// The SMTP tracer of one connection; feed it what was read and what was written.
#[derive(Debug)]
pub struct SmtpTrace {
    mode: Mode,
    /// The unfinished inbound line, at most [`SHOWN`] bytes of it.
    partial: Vec<u8>,
    /// Bytes of the unfinished line beyond what `partial` keeps.
    cut: usize,
}

impl Default for SmtpTrace {
    fn default() -> Self {
        SmtpTrace {
            mode: Mode::Command,
            partial: Vec::new(),
            cut: 0,
        }
    }
}

impl SmtpTrace {
    /// The client sent `bytes` on session `session`: log its command lines when `smtp`
    /// is traced.
    pub fn inbound(&mut self, log: &Log, session: u64, bytes: &[u8]) {
        if !log.traces(Subsystem::Smtp) {
            if self.mode != Mode::Command || !self.partial.is_empty() {
                *self = SmtpTrace::default();
            }
            return;
        }
        let mut rest = bytes;
        while !rest.is_empty() {
            if let Mode::Chunk { left } = self.mode {
                let n = rest.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                let left = left.saturating_sub(n as u64);
                self.mode = if left == 0 {
                    Mode::Command
                } else {
                    Mode::Chunk { left }
                };
                rest = rest.get(n..).unwrap_or_default();
                continue;
            }
            let (piece, end) = match rest.iter().position(|&b| b == b'\n') {
                Some(at) => (rest.get(..=at).unwrap_or_default(), true),
                None => (rest, false),
            };
            rest = rest.get(piece.len()..).unwrap_or_default();
            let room = SHOWN.saturating_sub(self.partial.len()).min(piece.len());
            self.partial
                .extend_from_slice(piece.get(..room).unwrap_or_default());
            self.cut = self.cut.saturating_add(piece.len() - room);
            if end {
                let raw = std::mem::take(&mut self.partial);
                let cut = std::mem::take(&mut self.cut);
                self.line(log, session, &raw, cut);
            }
        }
    }

    /// One whole inbound line (with its line ending, `cut` bytes not kept).
    fn line(&mut self, log: &Log, session: u64, raw: &[u8], cut: usize) {
        let text = String::from_utf8_lossy(raw);
        let text = text.trim_end_matches(['\r', '\n']);
        let show = |what: &str| {
            let more = if cut > 0 { " [...]" } else { "" };
            log.info(&format!("smtp: session {session:016x} <<< {what}{more}"));
        };
        match self.mode {
            Mode::Command | Mode::Chunk { .. } => {
                let mut words = text.split_ascii_whitespace();
                let verb = words.next().unwrap_or("").to_ascii_uppercase();
                match verb.as_str() {
                    "AUTH" => {
                        let mechanism = words.next().unwrap_or("");
                        let secret = if words.next().is_some() { " ****" } else { "" };
                        show(&format!("AUTH {mechanism}{secret}"));
                        self.mode = Mode::Auth;
                    }
                    "DATA" => {
                        show(text);
                        self.mode = Mode::DataPending;
                    }
                    "BDAT" => {
                        show(text);
                        if let Some(size) = words.next().and_then(|n| n.parse::<u64>().ok()) {
                            if size > 0 {
                                self.mode = Mode::Chunk { left: size };
                            }
                        }
                    }
                    _ => show(text),
                }
            }
            Mode::Auth => show("****"),
            // The client should wait for 354; what it sent before is not shown.
            Mode::DataPending => {}
            Mode::Data { bytes } => {
                if text == "." {
                    show(&format!("[message body, {bytes} bytes]"));
                    show(".");
                    self.mode = Mode::Command;
                } else {
                    let len = (raw.len().saturating_add(cut)) as u64;
                    self.mode = Mode::Data {
                        bytes: bytes.saturating_add(len),
                    };
                }
            }
        }
    }

    /// The server wrote `bytes` (whole replies) on session `session`: log each reply line
    /// when `smtp` is traced, and follow the protocol (354 starts a body, an AUTH ends
    /// with its first reply that is not 334).
    pub fn outbound(&mut self, log: &Log, session: u64, bytes: &[u8]) {
        if !log.traces(Subsystem::Smtp) {
            return;
        }
        let text = String::from_utf8_lossy(bytes);
        for line in text.lines() {
            let shown: String = line.chars().take(SHOWN).collect();
            log.info(&format!("smtp: session {session:016x} >>> {shown}"));
            let code = line.get(..3).unwrap_or("");
            let last = line.get(3..4) != Some("-");
            if !last {
                continue;
            }
            self.mode = match (self.mode, code) {
                (_, "354") => Mode::Data { bytes: 0 },
                (Mode::Auth, "334") => Mode::Auth,
                (Mode::Auth, _) => Mode::Command,
                (Mode::DataPending, c) if c.starts_with('2') => Mode::DataPending,
                (Mode::DataPending, _) => Mode::Command,
                (mode, _) => mode,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in Subsystem::ALL {
            assert_eq!(Subsystem::from_name(s.name()), Some(*s));
        }
        assert_eq!(Subsystem::from_name("transfer"), Some(Subsystem::Mta));
        assert_eq!(Subsystem::from_name("imsg"), None);
        let bits: Vec<u32> = Subsystem::ALL.iter().map(|s| s.bit()).collect();
        assert!(bits.iter().all(|b| b.count_ones() == 1));
        assert_eq!(
            bits.iter().fold(0, |a, b| a | b).count_ones() as usize,
            bits.len()
        );
    }

    #[test]
    fn modes_follow_the_dialogue() {
        let log = Log::quiet();
        log.set_traces(&[Subsystem::Smtp]);
        let mut t = SmtpTrace::default();
        t.inbound(&log, 1, b"EHLO x\r\nAUTH PLAIN c2VjcmV0\r\n");
        assert_eq!(t.mode, Mode::Auth);
        t.outbound(&log, 1, b"235 2.7.0 ok\r\n");
        assert_eq!(t.mode, Mode::Command);
        t.inbound(&log, 1, b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDA");
        assert_eq!(t.mode, Mode::Command);
        t.inbound(&log, 1, b"TA\r\n");
        assert_eq!(t.mode, Mode::DataPending);
        t.outbound(&log, 1, b"250 ok\r\n250 ok\r\n");
        assert_eq!(t.mode, Mode::DataPending);
        t.outbound(&log, 1, b"354 go\r\n");
        t.inbound(&log, 1, b"Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n");
        assert_eq!(t.mode, Mode::Command);
        t.inbound(&log, 1, b"BDAT 5 LAST\r\nab");
        assert_eq!(t.mode, Mode::Chunk { left: 3 });
        t.inbound(&log, 1, b"c\r\nNOOP\r\n");
        assert_eq!(t.mode, Mode::Command);
        t.inbound(&log, 1, b"DATA\r\n");
        t.outbound(&log, 1, b"554 no valid recipients\r\n");
        assert_eq!(t.mode, Mode::Command);
    }

    #[test]
    fn long_lines_are_kept_bounded_and_off_means_idle() {
        let log = Log::quiet();
        log.set_traces(&[Subsystem::Smtp]);
        let mut t = SmtpTrace::default();
        t.inbound(&log, 1, &vec![b'x'; 100_000]);
        assert_eq!(t.partial.len(), SHOWN);
        assert_eq!(t.cut, 100_000 - SHOWN);
        log.set_traces(&[]);
        t.inbound(&log, 1, b"more");
        assert!(t.partial.is_empty());
    }
}
