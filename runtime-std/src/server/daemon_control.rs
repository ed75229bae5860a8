//! What `smtpctl` can do to a running daemon: [`DaemonControl`] gives the control socket
//! ([`crate::control::EngineControl`]) its [`DaemonAccess`] over the engine host, the
//! connections' context and the runtime's switches.
//!
//! The runtime effects of the control verbs:
//! - `pause|resume smtp`: the accept loops' [`SmtpPause`] (new clients get `421`);
//! - `log verbose|brief`: the shared [`Log`]'s level;
//! - `trace|untrace`: the [`Log`]'s trace set, for the subsystems with output here
//!   ([`Subsystem`]: smtp, expand, lookup, rules, scheduler, bounce, mta, stat, `all`);
//!   naming another one (imsg, io, mproc, filters) is answered with an error that names it;
//! - `update table NAME`: the `file:` table read again and swapped into the engine;
//! - `show message`: the queued file;
//! - `sendmail`: a local submission, spoken as SMTP over a socket pair to the ordinary
//!   session code ([`conn::serve_local`]), as the local enqueuer (`from local`);
//! - `show routes|hosts`: the relay agent's router, empty before the first relay;
//! - `schedule all`: also scans the offline directory now ([`super::offline::wake`]).

use std::collections::BTreeSet;
use std::io::{self, Read};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mta_core::control::{Effect, Response, Submission};
use mta_core::engine::{Control, Engine, Input};
use mta_core::scheduler::Target;
use mta_core::table::{Table, TableSource};
use mta_core::time::UnixTime;
use smtp_proto::server::ServerConfig;

use super::conn::{self, ConnContext};
use super::engine_host::EngineHost;
use super::listener::SmtpPause;
use super::log::Log;
use super::mailbox::Mailbox;
use super::trace::Subsystem;
use crate::control::submit::submit_over_smtp;
use crate::control::{show_message, DaemonAccess};

/// Largest table file `update table` reads.
const MAX_TABLE_FILE: u64 = 64 * 1024 * 1024;

/// How long a local submission may wait for any one reply of its session.
const ENQUEUE_TIMEOUT: Duration = Duration::from_secs(300);

/// The daemon as the control socket sees it. Build with [`DaemonControl::new`] and hand
/// it to [`crate::control::EngineControl::new`].
pub struct DaemonControl {
    host: Arc<EngineHost>,
    conn: ConnContext,
    local_session: Arc<ServerConfig>,
    paused: Arc<SmtpPause>,
    traceable: Vec<Subsystem>,
    /// The subsystems `trace` named and `untrace` did not, traced here or not.
    traced: Mutex<BTreeSet<String>>,
}

impl DaemonControl {
    /// Control of the daemon around `host`: local submissions are served with `conn` and
    /// the session settings `local_session`; `paused` is the accept loops' switch;
    /// `traceable` lists the subsystems this runtime gives trace output for.
    pub fn new(
        host: Arc<EngineHost>,
        conn: ConnContext,
        local_session: ServerConfig,
        paused: Arc<SmtpPause>,
        traceable: &[Subsystem],
    ) -> DaemonControl {
        DaemonControl {
            host,
            conn,
            local_session: Arc::new(local_session),
            paused,
            traceable: traceable.to_vec(),
            traced: Mutex::new(BTreeSet::new()),
        }
    }

    fn log(&self) -> &Log {
        &self.conn.log
    }

    /// `trace`/`untrace`: trace what `traces` names and this runtime can show (`all`
    /// is every one, `transfer` is `mta`); an error names each subsystem just asked for
    /// that has no output here. Turning `stat` on takes the counters as they are, so
    /// that the next change is the first line.
    fn trace(&self, traces: Vec<String>) -> Response {
        let Ok(mut traced) = self.traced.lock() else {
            return Response::Error("trace state unavailable".to_owned());
        };
        let names =
            |set: &[Subsystem]| -> Vec<&'static str> { set.iter().map(|s| s.name()).collect() };
        let here = names(&self.traceable);
        let known = |t: &str| {
            Subsystem::from_name(t).is_some_and(|s| self.traceable.contains(&s))
                || (t == "all" && !here.is_empty())
        };
        let missing: Vec<String> = traces
            .iter()
            .filter(|t| !traced.contains(*t) && !known(t))
            .cloned()
            .collect();
        *traced = traces.into_iter().collect();
        let on: Vec<Subsystem> = self
            .traceable
            .iter()
            .copied()
            .filter(|s| {
                traced.contains("all") || traced.iter().any(|t| Subsystem::from_name(t) == Some(*s))
            })
            .collect();
        let log = self.log();
        if on.contains(&Subsystem::Stat) && !log.traces(Subsystem::Stat) {
            let mut now = std::collections::BTreeMap::new();
            self.host.with_engine(&mut |engine, _| {
                now = engine
                    .stats()
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect();
            });
            log.reset_stats();
            let _ = log.stats_changed(now);
        }
        log.set_traces(&on);
        log.info(&format!(
            "smtpd: tracing: {}",
            if on.is_empty() {
                "nothing".to_owned()
            } else {
                names(&on).join(", ")
            }
        ));
        if missing.is_empty() {
            Response::Ok
        } else {
            Response::Error(format!(
                "no trace output for {} in this daemon (traced here: {})",
                missing.join(", "),
                if here.is_empty() {
                    "nothing".to_owned()
                } else {
                    here.join(", ")
                }
            ))
        }
    }

    /// `update table NAME`: read the table's file again and swap it into the engine.
    fn update_table(&self, name: &str) -> Response {
        let Some(config) = self.host.config() else {
            return Response::Error("engine unavailable".to_owned());
        };
        let Some(table) = config.tables.get(name) else {
            return Response::Error(format!("no such table: {name}"));
        };
        let TableSource::File(path) = &table.source else {
            return Response::Error(format!(
                "table {name} is written in the configuration, not backed by a file"
            ));
        };
        let result = read_table_file(path)
            .map_err(|e| format!("cannot read table file {path}: {e}"))
            .and_then(|text| {
                Table::parse_file(name, path, &text)
                    .map_err(|e| format!("in table file {path} {e}"))
            })
            .and_then(|table| self.host.replace_table(table));
        match result {
            Ok(()) => {
                self.log()
                    .info(&format!("smtpd: table {name} updated from {path}"));
                Response::Ok
            }
            Err(e) => {
                self.log()
                    .warn(&format!("smtpd: table {name} not updated: {e}"));
                Response::Error(e)
            }
        }
    }

    /// `sendmail`: one SMTP session of the local enqueuer over a socket pair, served by
    /// the ordinary session code on a thread of its own; answers the final reply.
    fn enqueue(&self, submission: &Submission) -> Response {
        match self.enqueue_over_pair(submission) {
            Ok(response) => response,
            Err(e) => Response::Error(format!("local submission failed: {e}")),
        }
    }

    fn enqueue_over_pair(&self, submission: &Submission) -> io::Result<Response> {
        let local = LocalEnqueuer {
            host: Arc::clone(&self.host),
            conn: self.conn.clone(),
            session: Arc::clone(&self.local_session),
        };
        local.with_session(|stream| submit_over_smtp(stream, submission, "localhost"))
    }

    /// `show routes` (`hosts` false) or `show hosts`: from the relay agent's router.
    fn show_relay(&self, hosts: bool) -> Response {
        match self.host.relay_agent() {
            None => Response::Text(Vec::new()),
            Some(agent) => Response::Text(if hosts {
                agent.show_hosts()
            } else {
                agent.show_routes()
            }),
        }
    }
}

/// What a local submission needs: the engine host, the connections' context and the
/// local enqueuer's session settings. The control socket's `sendmail` and the offline
/// directory ([`super::offline`]) submit through it.
#[derive(Clone)]
pub(crate) struct LocalEnqueuer {
    /// The engine the session talks to.
    pub host: Arc<EngineHost>,
    /// What every connection shares.
    pub conn: ConnContext,
    /// The local enqueuer's session settings.
    pub session: Arc<ServerConfig>,
}

impl LocalEnqueuer {
    /// Runs `client` against one SMTP session of the local enqueuer (`from local`),
    /// served by the ordinary session code on a thread of its own over a socket pair.
    ///
    /// # Errors
    /// When the socket pair or the thread cannot be made.
    pub(crate) fn with_session<T>(
        &self,
        client: impl FnOnce(&mut UnixStream) -> T,
    ) -> io::Result<T> {
        let (mut ours, theirs) = UnixStream::pair()?;
        ours.set_read_timeout(Some(ENQUEUE_TIMEOUT))?;
        ours.set_write_timeout(Some(ENQUEUE_TIMEOUT))?;
        let mailbox = Arc::new(Mailbox::new()?);
        let ctx = self.conn.clone();
        let config = Arc::clone(&self.session);
        let host = Arc::clone(&self.host);
        // The session ends on its own after QUIT or the shutdown below; it is not joined,
        // so a session still waiting for the engine never holds the caller.
        std::thread::Builder::new()
            .name("enqueue".to_owned())
            .spawn(move || {
                conn::serve_local(theirs, config, ctx, mailbox, |m| host.open_local(m));
            })?;
        let result = client(&mut ours);
        let _ = ours.shutdown(Shutdown::Both);
        Ok(result)
    }
}

/// The text of a table file, bounded.
fn read_table_file(path: &str) -> io::Result<String> {
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_TABLE_FILE.saturating_add(1))
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_TABLE_FILE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {MAX_TABLE_FILE} bytes"),
        ));
    }
    Ok(text)
}

impl DaemonAccess for DaemonControl {
    fn read_engine(&self, f: &mut dyn FnMut(&Engine, UnixTime)) {
        self.host.with_engine(f);
    }

    fn feed(&self, input: Input) {
        if let Input::Control(Control::Schedule(target)) = &input {
            // An explicit schedule means "try now": MXs in a cool-down are tried too.
            if let Some(agent) = self.host.relay_agent() {
                agent.retry_now();
            }
            if *target == Target::All {
                super::offline::wake();
            }
        }
        self.host.feed(input);
    }

    fn perform(&self, effect: Effect) -> Response {
        match effect {
            Effect::PauseSmtp => {
                self.paused.pause();
                self.log().info("smtpd: smtp paused: new sessions get 421");
                Response::Ok
            }
            Effect::ResumeSmtp => {
                self.paused.resume();
                self.log().info("smtpd: smtp resumed");
                Response::Ok
            }
            Effect::Verbose(verbose) => {
                self.log().set_verbose(verbose);
                self.log().info(if verbose {
                    "smtpd: log verbose"
                } else {
                    "smtpd: log brief"
                });
                Response::Ok
            }
            Effect::Trace { traces } => self.trace(traces),
            Effect::UpdateTable(name) => self.update_table(&name),
            Effect::ShowMessage(msgid) => show_message(&self.conn.spool, msgid),
            Effect::ShowRoutes => self.show_relay(false),
            Effect::ShowHosts => self.show_relay(true),
            Effect::Enqueue(submission) => self.enqueue(&submission),
        }
    }
}
