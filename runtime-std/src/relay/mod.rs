//! Relaying: envelopes of `relay` actions leave over SMTP.
//!
//! A [`RelayAgent`] owns one thread that runs the pure [`Router`] and [`MxResolver`] of
//! `mta_core::routing`, with the wall clock as their time. Envelopes come in with
//! [`RelayAgent::submit`] (a [`RelayJob`]: route, sender, recipient, message id); the
//! router asks for MX sets (sent as DNS datagrams by the `dns` module), opens connections (one
//! thread each, driving smtp-proto's `ClientSession`, see the `session` module) and hands them
//! messages; each envelope's result goes to the report callback given at start, which
//! the engine host turns into `Input::DeliveryResult`. The callback runs on reporting
//! threads of their own (`relay-report`, [`REPORTERS`] of them, each message's results on
//! one of them in order): the engine's work on a result (queue files removed, which may
//! wait for the disk, the next envelope scheduled) never holds up the router, and the
//! results of different messages are taken in by the engine side by side.
//!
//! Name servers are those of `mta resolver` or `/etc/resolv.conf`. Exchangers on
//! loopback addresses are refused (RFC 5321 §5.1: a loop), except when `mta resolver`
//! or `mta mx-port` is configured: those are test setups whose sinks listen on
//! 127.0.0.x. An explicit `relay host` may always be loopback. A route with a `src`
//! binds its sockets to that address (the `connect` module).

mod body;
mod connect;
mod dns;
mod session;
mod unsupported;

pub(crate) use unsupported::unsupported_relay_options;

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use mta_core::config::{Config, DeliveryMethod, Pki};
use mta_core::queue::{DeliveryKind, DsnParams, Envelope, EnvelopeId};
use mta_core::routing::{
    route_for_envelope, show_hosts, show_routes, Action, ConnId, Input as RouterInput, MxAction,
    MxInput, MxResolver, MxResolverConfig, RouteKey, Router, RouterConfig, TlsPolicy,
};
use mta_core::scheduler::Outcome;
use mta_core::table::RelayCredentials;
use smtp_proto::client::{ClientConfig, Credentials, TlsPolicy as SessionTls};
use smtp_proto::types::Host;

use crate::server::engine_host::{os_seed, unix_now};
use crate::server::log::Log;
use crate::spool::Spool;
use crate::tls::ClientTls;
use session::{Command, ConnSpec, Delivery};

/// Where each envelope's result goes.
pub type ReportFn = Arc<dyn Fn(EnvelopeId, Outcome) + Send + Sync>;

/// One envelope to relay, with what its session needs.
#[derive(Clone, PartialEq, Eq)]
pub struct RelayJob {
    /// The envelope.
    pub id: EnvelopeId,
    /// Where it goes and how (see [`route_for_envelope`]).
    pub route: RouteKey,
    /// The envelope sender, empty for `<>`.
    pub sender: String,
    /// The recipient address.
    pub recipient: String,
    /// NOTIFY, ORCPT, RET and ENVID to pass on (RFC 3461 §4).
    pub dsn: DsnParams,
    /// The credentials of the route's label
    /// (`relay host smtp+tls://LABEL@host auth <table>`), from the action's credentials
    /// table.
    pub credentials: Option<RelayCredentials>,
}

impl std::fmt::Debug for RelayJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayJob")
            .field("id", &self.id)
            .field("route", &self.route)
            .field("sender", &self.sender)
            .field("recipient", &self.recipient)
            .field("dsn", &self.dsn)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl RelayJob {
    /// The job of a relayed envelope: its route from the options of its `relay` action
    /// and the recipient's domain. `Err` is the outcome to report at once: the action is
    /// gone from the configuration (temporary: a reload may bring it back), or the
    /// envelope is not a relay one.
    pub fn for_envelope(
        envelope: &Envelope,
        config: &Config,
        hostname: &str,
    ) -> Result<RelayJob, Outcome> {
        let DeliveryKind::Relay { action } = &envelope.delivery else {
            return Err(session::perm("not a relayed envelope"));
        };
        let options = match config.actions.get(action).map(|a| &a.method) {
            Some(DeliveryMethod::Relay(options)) => options,
            _ => {
                return Err(session::temp(&format!(
                    "no relay action {action:?} in the configuration"
                )))
            }
        };
        let domain = envelope
            .recipient
            .rsplit_once('@')
            .map_or("", |(_, domain)| domain);
        let spread = u64::from(envelope.id.message_id().get());
        let route = route_for_envelope(config, options, domain, hostname, spread)
            .map_err(|e| session::temp(&format!("relay action {action:?}: {e}")))?;
        let credentials = match &route.auth {
            None => None,
            Some(label) => Some(credentials(config, options.auth.as_deref(), label)?),
        };
        Ok(RelayJob {
            id: envelope.id,
            route,
            credentials,
            sender: envelope.sender.clone().unwrap_or_default(),
            recipient: envelope.recipient.clone(),
            dsn: envelope.dsn.clone(),
        })
    }
}

/// The credentials of `label` in the table named `table`; a missing table, label or a
/// malformed entry fails temporarily (a configuration fix brings it back), never by
/// sending the mail without authenticating.
fn credentials(
    config: &Config,
    table: Option<&str>,
    label: &str,
) -> Result<RelayCredentials, Outcome> {
    let table = table
        .and_then(|name| config.tables.get(name))
        .ok_or_else(|| session::temp(&format!("no credentials table for label {label:?}")))?;
    match table.relay_credentials(label) {
        Ok(Some(found)) => Ok(found),
        Ok(None) => Err(session::temp(&format!(
            "no credentials for label {label:?} in table {}",
            table.name
        ))),
        Err(e) => Err(session::temp(&format!("credentials of {label:?}: {e}"))),
    }
}

/// What the agent thread waits for.
pub(crate) enum Event {
    /// A new envelope.
    Job(RelayJob),
    /// A DNS answer for the resolver.
    Dns(mta_core::dns::Input),
    /// A report of a connection thread.
    Router(RouterInput),
    /// A line for the log, from a connection thread.
    Log(String),
    /// Render the router's state for the control socket.
    Show(Listing, Sender<Vec<String>>),
    /// `smtpctl schedule`: lift MX cool-downs and disabled routes.
    RetryNow,
}

/// Which of the router's listings to render.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Listing {
    /// `show routes`.
    Routes,
    /// `show hosts`.
    Hosts,
}

/// Threads that hand results to the report callback: the engine's side of a result can
/// wait for the disk (queue files are removed), so several run side by side.
pub const REPORTERS: usize = 8;

/// How long a control request waits for the agent thread's answer.
const SHOW_TIMEOUT: Duration = Duration::from_secs(5);

/// The relay agent: hand it envelopes, results come back through the report callback.
pub struct RelayAgent {
    events: Mutex<Sender<Event>>,
}

impl RelayAgent {
    /// Start the agent thread for the `mta` options of `config`; `hostname` is our
    /// EHLO name, `spool` where message bodies are read, `report` where each envelope's
    /// result goes (called on the agent's reporting threads, concurrently for different
    /// messages, in order for each message).
    ///
    /// # Errors
    /// A thread or the DNS sockets cannot be started.
    pub fn start(
        config: &Config,
        hostname: &str,
        spool: Spool,
        log: Log,
        report: ReportFn,
    ) -> io::Result<RelayAgent> {
        let mta = &config.options.mta;
        let resolv_conf = std::fs::read_to_string("/etc/resolv.conf").ok();
        let mx_config = MxResolverConfig {
            dns: mta_core::dns::ResolverConfig::from_sources(
                mta.resolver.as_deref(),
                resolv_conf.as_deref(),
            ),
            allow_loopback: mta.resolver.is_some() || mta.mx_port.is_some(),
        };
        let router_config = RouterConfig::from_options(mta);
        let (tx, rx) = channel();
        let transport = dns::DnsTransport::start(&tx)?;
        let helo = Host::parse(Bytes::from(hostname.to_owned()), true)
            .unwrap_or_else(|_| ClientConfig::default().helo);
        let mut reports = Vec::with_capacity(REPORTERS);
        for _ in 0..REPORTERS {
            let (tx, reported) = channel::<Report>();
            let log = log.clone();
            let report = Arc::clone(&report);
            std::thread::Builder::new()
                .name("relay-report".to_owned())
                .spawn(move || {
                    for Report { id, outcome, line } in reported {
                        if let Some(line) = line {
                            log.info(&line);
                        }
                        report(id, outcome);
                    }
                })?;
            reports.push(tx);
        }
        let mut agent = Agent {
            router: Router::new(router_config, os_seed()),
            mx: MxResolver::new(mx_config, os_seed()),
            jobs: HashMap::new(),
            conns: HashMap::new(),
            tls_configs: HashMap::new(),
            ca_files: config.ca.clone(),
            pki: config.pki.clone(),
            credentials: HashMap::new(),
            events: tx.clone(),
            transport,
            helo,
            spool,
            log,
            reports,
        };
        std::thread::Builder::new()
            .name("relay".to_owned())
            .spawn(move || agent.run(&rx))?;
        Ok(RelayAgent {
            events: Mutex::new(tx),
        })
    }

    /// Queue an envelope for relaying.
    pub fn submit(&self, job: RelayJob) {
        if let Ok(events) = self.events.lock() {
            let _ = events.send(Event::Job(job));
        }
    }

    /// `smtpctl show routes`: the router's routes, one line each, as
    /// [`mta_core::routing::show_routes`] renders them (empty when the agent thread is
    /// gone or does not answer within a few seconds).
    pub fn show_routes(&self) -> Vec<String> {
        self.show(Listing::Routes)
    }

    /// `smtpctl show hosts`: the MX hosts the router knows, one line each, with their
    /// broken state, as [`mta_core::routing::show_hosts`] renders them.
    pub fn show_hosts(&self) -> Vec<String> {
        self.show(Listing::Hosts)
    }

    /// `smtpctl schedule`: the administrator wants the queue tried now, so MX cool-downs
    /// and disabled routes end ([`RouterInput::RetryNow`]). Call it before the envelopes
    /// are handed out again: the agent takes its events in order.
    pub fn retry_now(&self) {
        if let Ok(events) = self.events.lock() {
            let _ = events.send(Event::RetryNow);
        }
    }

    fn show(&self, listing: Listing) -> Vec<String> {
        let (tx, rx) = channel();
        let sent = self
            .events
            .lock()
            .is_ok_and(|events| events.send(Event::Show(listing, tx)).is_ok());
        if !sent {
            return Vec::new();
        }
        rx.recv_timeout(SHOW_TIMEOUT).unwrap_or_default()
    }
}

/// What a rustls client configuration depends on: certificate verification, the CA
/// name to verify with (system roots when `None`), the client certificate's pki name.
type TlsKey = (bool, Option<String>, Option<String>);

/// The agent thread's state.
struct Agent {
    router: Router,
    mx: MxResolver,
    jobs: HashMap<EnvelopeId, RelayJob>,
    conns: HashMap<ConnId, Sender<Command>>,
    /// rustls configurations by (`verify`, `ca`, `pki`), built once each.
    tls_configs: HashMap<TlsKey, Option<Arc<rustls::ClientConfig>>>,
    /// CA certificate files by `ca` name, from the configuration at start.
    ca_files: BTreeMap<String, String>,
    /// Certificates and keys by `pki` name, from the configuration at start.
    pki: BTreeMap<String, Pki>,
    /// Credentials by route label, from the envelopes that use them.
    credentials: HashMap<String, RelayCredentials>,
    events: Sender<Event>,
    transport: dns::DnsTransport,
    helo: Host,
    spool: Spool,
    log: Log,
    /// To the reporting threads, by message.
    reports: Vec<Sender<Report>>,
}

/// One envelope's result for the reporting thread, with its log line.
struct Report {
    id: EnvelopeId,
    outcome: Outcome,
    line: Option<String>,
}

impl Agent {
    fn run(&mut self, events: &Receiver<Event>) {
        loop {
            let now = unix_now();
            let deadline = [self.router.poll_timeout(), self.mx.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            let wait = deadline.map_or(Duration::from_secs(60), |d| {
                Duration::from_millis(d.as_millis().saturating_sub(now.as_millis()))
            });
            match events.recv_timeout(wait.max(Duration::from_millis(1))) {
                Ok(event) => self.handle(event),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            let now = unix_now();
            if self.mx.poll_timeout().is_some_and(|d| d <= now) {
                self.mx.handle(MxInput::Tick, now);
            }
            if self.router.poll_timeout().is_some_and(|d| d <= now) {
                self.router.handle_timeout(now);
            }
            self.drive();
        }
    }

    fn handle(&mut self, event: Event) {
        let now = unix_now();
        match event {
            Event::Job(job) => {
                let input = RouterInput::Envelope {
                    route: job.route.clone(),
                    id: job.id,
                };
                if let (Some(label), Some(found)) = (&job.route.auth, &job.credentials) {
                    self.credentials.insert(label.clone(), found.clone());
                }
                self.jobs.insert(job.id, job);
                self.router.handle(input, now);
            }
            Event::Dns(input) => self.mx.handle(MxInput::Dns(input), now),
            Event::Log(line) => self.log.info(&line),
            Event::RetryNow => self.router.handle(RouterInput::RetryNow, now),
            Event::Show(listing, answer) => {
                let lines = match listing {
                    Listing::Routes => show_routes(&self.router, now),
                    Listing::Hosts => show_hosts(&self.router, now),
                };
                let _ = answer.send(lines);
            }
            Event::Router(input) => {
                crate::server::trace::relay_input(&self.log, &input);
                if let RouterInput::ConnectionClosed { conn, .. }
                | RouterInput::ConnectResult {
                    conn,
                    result: Err(_),
                } = &input
                {
                    self.conns.remove(conn);
                }
                self.router.handle(input, now);
            }
        }
    }

    /// Run both machines' actions until neither has any.
    fn drive(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(action) = self.router.poll_action() {
                progressed = true;
                self.router_action(action);
            }
            while let Some(action) = self.mx.poll_action() {
                progressed = true;
                match action {
                    MxAction::Resolved { query, result } => self
                        .router
                        .handle(RouterInput::Resolved { query, result }, unix_now()),
                    MxAction::Dns(send) => self.transport.send(send),
                }
            }
            if !progressed {
                return;
            }
        }
    }

    fn router_action(&mut self, action: Action) {
        crate::server::trace::relay_action(&self.log, &action);
        let now = unix_now();
        match action {
            Action::Resolve(query) => self.mx.handle(MxInput::Resolve(query), now),
            Action::Connect {
                conn,
                addr,
                host,
                src,
                tls,
                auth,
                helo,
                ca,
                pki,
            } => self.connect(
                Outbound {
                    conn,
                    addr,
                    host,
                    src,
                    tls,
                    helo,
                },
                auth.as_deref(),
                (ca, pki),
            ),
            Action::SendMessage { conn, envelopes } => self.send_message(conn, &envelopes),
            Action::Quit { conn } => {
                if let Some(commands) = self.conns.get(&conn) {
                    let _ = commands.send(Command::Quit);
                }
            }
            Action::EnvelopeDelivered { ids } => self.finish(&ids, &Outcome::Delivered),
            Action::EnvelopeTempFail { ids, failure } => {
                self.finish(&ids, &Outcome::TempFail(failure));
            }
            Action::EnvelopePermFail { ids, failure } => {
                self.finish(&ids, &Outcome::PermFail(failure));
            }
            Action::Log(line) => self.log.info(&line),
        }
    }

    fn finish(&mut self, ids: &[EnvelopeId], outcome: &Outcome) {
        for id in ids {
            let line = self.jobs.remove(id).map(|job| {
                let (status, detail) = match outcome {
                    Outcome::Delivered => ("Ok", "Sent"),
                    Outcome::TempFail(f) => ("TempFail", f.text.as_str()),
                    Outcome::PermFail(f) => ("PermFail", f.text.as_str()),
                };
                format!(
                    "smtp-out: delivery: {status} for {id}: from=<{}>, to=<{}>, route={}, stat={detail}",
                    job.sender, job.recipient, job.route
                )
            });
            let shard = usize::try_from(id.message_id().get()).unwrap_or(0) % REPORTERS;
            if let Some(reports) = self.reports.get(shard) {
                let _ = reports.send(Report {
                    id: *id,
                    outcome: outcome.clone(),
                    line,
                });
            }
        }
    }

    /// The rustls configuration of `key`, built at its first use; `None` (logged) when
    /// it cannot be built: sessions then go without TLS where their policy allows.
    fn tls_config(&mut self, key: TlsKey) -> Option<Arc<rustls::ClientConfig>> {
        if let Some(found) = self.tls_configs.get(&key) {
            return found.clone();
        }
        // Built before the daemon dropped its privileges (keys only root can read).
        if let Some(preloaded) = crate::server::privdrop::preloaded_client_tls(&key) {
            self.tls_configs.insert(key, Some(Arc::clone(&preloaded)));
            return Some(preloaded);
        }
        let (verify, ca, pki) = &key;
        let built = self.build_tls(*verify, ca.as_deref(), pki.as_deref());
        let config = match built {
            Ok(config) => Some(config),
            Err(e) => {
                self.log
                    .warn(&format!("smtp-out: no TLS for relaying: {e}"));
                None
            }
        };
        self.tls_configs.insert(key, config.clone());
        config
    }

    fn build_tls(
        &self,
        verify: bool,
        ca: Option<&str>,
        pki: Option<&str>,
    ) -> Result<Arc<rustls::ClientConfig>, String> {
        let ca_file = match ca {
            Some(name) => Some(
                self.ca_files
                    .get(name)
                    .ok_or_else(|| format!("ca \"{name}\" is not defined"))?
                    .as_str(),
            ),
            None => None,
        };
        let built = match pki {
            None => ClientTls::client_config(verify, ca_file),
            Some(name) => {
                let files = self
                    .pki
                    .get(name)
                    .and_then(|p| p.cert.as_deref().zip(p.key.as_deref()));
                let (cert, key) =
                    files.ok_or_else(|| format!("pki \"{name}\" has no certificate and key"))?;
                ClientTls::client_config_with_cert(verify, ca_file, cert, key)
            }
        };
        built.map_err(|e| e.to_string())
    }

    fn connect(
        &mut self,
        out: Outbound,
        auth: Option<&str>,
        (ca, pki): (Option<String>, Option<String>),
    ) {
        let Outbound {
            conn,
            addr,
            host,
            src,
            tls,
            helo,
        } = out;
        let (session_tls, implicit, verify) = match tls {
            TlsPolicy::Opportunistic => (SessionTls::Opportunistic, false, false),
            TlsPolicy::Required { verify } => (SessionTls::Required, false, verify),
            TlsPolicy::Implicit { verify } => (SessionTls::Required, true, verify),
            TlsPolicy::Disabled => (SessionTls::Never, false, false),
        };
        let tls_config = if tls == TlsPolicy::Disabled {
            None
        } else {
            // The CA only matters where the certificate is checked.
            self.tls_config((verify, ca.filter(|_| verify), pki))
        };
        let helo = match helo {
            None => self.helo.clone(),
            Some(name) => match Host::parse(Bytes::from(name.clone()), true) {
                Ok(helo) => helo,
                Err(e) => {
                    self.log.warn(&format!(
                        "smtp-out: helo name {name:?} is not a host name ({e}), using {}",
                        String::from_utf8_lossy(self.helo.as_bytes())
                    ));
                    self.helo.clone()
                }
            },
        };
        let session = Arc::new(ClientConfig {
            helo,
            tls: session_tls,
            tls_available: tls_config.is_some(),
            implicit_tls: implicit,
            credentials: auth
                .and_then(|label| self.credentials.get(label))
                .map(|found| Credentials {
                    user: Bytes::from(found.user.clone()),
                    password: Bytes::from(found.password.clone()),
                }),
            ..ClientConfig::default()
        });
        let spec = ConnSpec {
            conn,
            addr,
            src,
            host,
            tls,
            session,
            tls_config,
        };
        let (tx, rx) = channel();
        let events = self.events.clone();
        let spool = self.spool.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("relay-{conn}"))
            .spawn(move || session::run(&spec, &spool, &rx, &events));
        match spawned {
            Ok(_) => {
                self.conns.insert(conn, tx);
            }
            Err(e) => self.router.handle(
                RouterInput::ConnectResult {
                    conn,
                    result: Err(format!("cannot start a thread: {e}")),
                },
                unix_now(),
            ),
        }
    }

    fn send_message(&mut self, conn: ConnId, envelopes: &[EnvelopeId]) {
        let first = envelopes.first().and_then(|id| self.jobs.get(id));
        let delivery = first.map(|job| Delivery {
            msgid: job.id.message_id().to_string(),
            sender: mail_from(job),
            recipients: envelopes
                .iter()
                .filter_map(|id| {
                    let job = self.jobs.get(id)?;
                    Some((*id, job.recipient.clone(), job.dsn.clone()))
                })
                .collect(),
        });
        let sent = match (delivery, self.conns.get(&conn)) {
            (Some(delivery), Some(commands)) => commands.send(Command::Send(delivery)).is_ok(),
            _ => false,
        };
        if !sent {
            let results = envelopes
                .iter()
                .map(|id| (*id, session::temp("relay session lost")))
                .collect();
            self.router
                .handle(RouterInput::SessionOutcome { conn, results }, unix_now());
        }
    }
}

/// Where a session goes and how it greets: the parts of a router's `Connect` that the
/// connection thread needs.
struct Outbound {
    conn: ConnId,
    addr: std::net::SocketAddr,
    host: String,
    src: Option<std::net::IpAddr>,
    tls: TlsPolicy,
    helo: Option<String>,
}

/// The MAIL FROM of a job: the route's `mail-from` in place of the envelope sender,
/// except for the null sender of a report, which stays `<>` so that no report is ever
/// answered with another (RFC 5321 §4.5.5).
fn mail_from(job: &RelayJob) -> String {
    match &job.route.mail_from {
        Some(address) if !job.sender.is_empty() => address.clone(),
        _ => job.sender.clone(),
    }
}
