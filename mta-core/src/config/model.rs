//! The configuration model: what an `smtpd.conf` file means once macros, includes and
//! `file:` tables are resolved, whichever grammar (modern or classic) it was written in.
//!
//! Names follow smtpd.conf(5) of OpenSMTPD 6.8. Options left out of the file stay `None`
//! here (so that printing and parsing again gives the same value); the effective defaults
//! are given by the accessor methods on [`GlobalOptions`].
//!
//! Our extensions to the grammar (not understood by OpenSMTPD):
//! - `queue path "DIR"`: where the queue is kept ([`QueueOptions::path`]);
//! - `control socket "PATH"`: where `smtpctl` connects ([`GlobalOptions::control_socket`]);
//! - `mta resolver "IP[:PORT]"`: the DNS server used for MX lookups ([`MtaOptions::resolver`]);
//! - `mta mx-port N`: the port used to reach MX hosts, 25 by default ([`MtaOptions::mx_port`]);
//! - `metrics listen on ADDRESS [port PORT]`: a Prometheus text endpoint for the counters
//!   of `smtpctl show stats` ([`GlobalOptions::metrics`]).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr}; // allow-impure: address values, no socket
use std::time::Duration;

use crate::table::{Table, TableEntries, TableSource};

/// A whole configuration: tables, certificates, listeners, actions, match rules, filters
/// and global options.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Config {
    /// Tables by name (`table NAME ...`; classic inline tables get generated names).
    pub tables: BTreeMap<String, Table>,
    /// Certificates and keys by pki name (`pki NAME cert|key|dhe ...`).
    pub pki: BTreeMap<String, Pki>,
    /// CA certificates by name (`ca NAME cert FILE`).
    pub ca: BTreeMap<String, String>,
    /// Network listeners, in file order (`listen on ADDRESS ...`).
    pub listeners: Vec<Listener>,
    /// Options of the local enqueuer socket (`listen on socket ...`), if the line is present.
    pub socket_listener: Option<SocketListener>,
    /// Actions (dispatchers) by name (`action NAME METHOD ...`).
    pub actions: BTreeMap<String, Action>,
    /// Match rules, in file order: the first rule that matches an envelope wins.
    pub rules: Vec<Rule>,
    /// Filters by name (`filter NAME ...`).
    pub filters: BTreeMap<String, Filter>,
    /// External processes by name (`proc NAME COMMAND`), shared by `proc` filters.
    pub procs: BTreeMap<String, String>,
    /// Global options (`queue`, `smtp`, `mta`, `bounce`, `srs`, `admd`, `mda wrapper`).
    pub options: GlobalOptions,
}

impl Config {
    /// The table a reference designates: the declared table for `<name>`, or the inline
    /// table written in the rule itself. `None` only for a name that was never declared,
    /// which validation already refuses.
    pub fn table_for<'a>(&'a self, reference: &'a TableRef) -> Option<Cow<'a, Table>> {
        match reference {
            TableRef::Named(name) => self.tables.get(name).map(Cow::Borrowed),
            TableRef::Inline(entries) => Some(Cow::Owned(Table {
                name: String::new(),
                source: TableSource::Inline,
                entries: entries.clone(),
            })),
        }
    }
}

/// A table as written where a rule or option expects one.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum TableRef {
    /// `<name>`: a table declared with `table name ...`.
    Named(String),
    /// A literal value (`"example.org"`, a one-value list) or an inline `{ ... }` table
    /// written in place.
    Inline(TableEntries),
}

impl TableRef {
    /// A reference to a single literal value, as in `for domain "example.org"`.
    pub fn literal(value: &str) -> Self {
        TableRef::Inline(TableEntries::List(vec![value.to_string()]))
    }
}

/// A table reference together with the `regex` keyword that may precede it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TableMatch {
    /// `regex`: the table holds regular expressions rather than plain values.
    pub regex: bool,
    /// The table or literal value matched against.
    pub table: TableRef,
}

/// `pki NAME ...`: a certificate and its key, to prove this server's identity.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Pki {
    /// `pki NAME cert FILE`.
    pub cert: Option<String>,
    /// `pki NAME key FILE`.
    pub key: Option<String>,
    /// `pki NAME dhe none|legacy|auto`.
    pub dhe: Option<Dhe>,
}

/// DHE parameters of a pki (`pki NAME dhe ...`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Dhe {
    /// `none`: no DHE cipher suites (the default).
    None,
    /// `legacy`: 1024-bit parameters.
    Legacy,
    /// `auto`: key length chosen automatically.
    Auto,
}

/// Where a listener listens (`listen on ADDRESS`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ListenAddress {
    /// `all`: every address of the machine (the `all` interface group of OpenBSD; the
    /// portable OpenSMTPD refuses the word, we listen on the unspecified addresses).
    Any,
    /// `localhost`: the loopback addresses.
    Localhost,
    /// A network interface or interface group, such as `lo`, `eth0` or `egress`.
    Interface(String),
    /// An IP address, such as `127.0.0.1` or `::`.
    Ip(IpAddr),
    /// A host name (it contains a dot), resolved by the runtime.
    Host(String),
}

/// `inet4` or `inet6` after the address of a listener.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Family {
    /// `inet4`: IPv4 only.
    Inet4,
    /// `inet6`: IPv6 only.
    Inet6,
}

/// How a listener offers TLS.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum ListenerTls {
    /// No TLS offered.
    #[default]
    None,
    /// `tls`: STARTTLS offered (RFC 3207).
    StartTls,
    /// `tls-require [verify]`: STARTTLS required before a transaction; with `verify`, a valid
    /// client certificate too.
    TlsRequire {
        /// `verify`: require a valid client certificate.
        verify: bool,
    },
    /// `smtps`: TLS from the first byte (RFC 8314), port 465 by default.
    Smtps,
}

/// `auth [<table>]` or `auth-optional [<table>]` on a listener (RFC 4954).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ListenerAuth {
    /// The credentials table; `None` means the system's login credentials.
    pub table: Option<String>,
    /// `auth-optional`: clients may send mail without authenticating.
    pub optional: bool,
}

/// `senders <table> [masquerade]` on a listener.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Senders {
    /// Maps an authenticated user to the addresses it may use as MAIL FROM.
    pub table: String,
    /// `masquerade`: rewrite the From header to the envelope sender.
    pub masquerade: bool,
}

/// `listen on ADDRESS ...`: a TCP listener and its options.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Listener {
    /// Where to listen.
    pub address: ListenAddress,
    /// `inet4` / `inet6`, if the listener is restricted to one family.
    pub family: Option<Family>,
    /// The port; when the file gives none, 25 (or 465 with `smtps`).
    pub port: u16,
    /// TLS mode.
    pub tls: ListenerTls,
    /// `pki NAME`: certificate presented to clients.
    pub pki: Option<String>,
    /// `ca NAME`: CA used to verify client certificates.
    pub ca: Option<String>,
    /// `auth` / `auth-optional`.
    pub auth: Option<ListenerAuth>,
    /// `hostname NAME`: the name in the banner.
    pub hostname: Option<String>,
    /// `hostnames <table>`: banner names by local address.
    pub hostnames: Option<String>,
    /// `tag TAG`: sessions on this listener carry this tag.
    pub tag: Option<String>,
    /// `filter NAME`: filter or filter chain applied to sessions.
    pub filter: Option<String>,
    /// `senders <table> [masquerade]`.
    pub senders: Option<Senders>,
    /// `mask-src`: omit the client address from Received headers.
    pub mask_src: bool,
    /// `no-dsn`: do not offer DSN (RFC 3461).
    pub no_dsn: bool,
    /// `proxy-v2`: accept the PROXY protocol v2 header.
    pub proxy_v2: bool,
    /// `received-auth`: report authentication in Received headers.
    pub received_auth: bool,
}

impl Listener {
    /// A listener on `address` with every option left unset (port 25, no TLS).
    pub fn new(address: ListenAddress) -> Self {
        Listener {
            address,
            family: None,
            port: 25,
            tls: ListenerTls::None,
            pki: None,
            ca: None,
            auth: None,
            hostname: None,
            hostnames: None,
            tag: None,
            filter: None,
            senders: None,
            mask_src: false,
            no_dsn: false,
            proxy_v2: false,
            received_auth: false,
        }
    }
}

/// `listen on socket ...`: options of the local enqueuer socket.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct SocketListener {
    /// `filter NAME`.
    pub filter: Option<String>,
    /// `mask-src`.
    pub mask_src: bool,
    /// `tag TAG`.
    pub tag: Option<String>,
}

/// `action NAME METHOD [OPTIONS]`: how envelopes selected by a rule are delivered.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Action {
    /// The delivery method and its own options.
    pub method: DeliveryMethod,
    /// Options of local delivery (expansion and user lookup); empty for relays except `ttl`.
    pub local: LocalOptions,
}

/// The delivery method of an action.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum DeliveryMethod {
    /// `mbox`: append to the user's mbox.
    Mbox,
    /// `maildir [PATH [junk]]`: deliver into a maildir, `~/Maildir` by default.
    Maildir {
        /// The maildir path (may hold format specifiers such as `%{user.username}`).
        path: Option<String>,
        /// `junk`: file messages marked `X-Spam: yes` into the Junk folder.
        junk: bool,
    },
    /// `lmtp DEST [rcpt-to]`: hand to an LMTP server (RFC 2033).
    Lmtp {
        /// `host:port` or a UNIX socket path.
        dest: String,
        /// `rcpt-to`: use the expanded recipient address rather than the local user.
        rcpt_to: bool,
    },
    /// `mda COMMAND`: run a command with the message on its standard input.
    Mda {
        /// The command (may hold format specifiers).
        command: String,
    },
    /// `forward-only`: accept only if expansion yields remote addresses.
    ForwardOnly,
    /// `expand-only`: accept only if an alias or .forward gives a delivery method.
    ExpandOnly,
    /// `relay ...`: send to another SMTP server.
    Relay(Box<RelayOptions>),
}

/// `backup [mx NAME]` of a relay action.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Backup {
    /// `mx NAME`: only use MXs of higher priority than NAME (else than ourselves).
    pub mx: Option<String>,
}

/// TLS requirement of a relay action (`tls [no-verify]`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RelayTls {
    /// `no-verify`: do not require a valid server certificate.
    pub no_verify: bool,
}

/// The scheme of a relay URL.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RelayScheme {
    /// `smtp://`: opportunistic STARTTLS (the default).
    Smtp,
    /// `smtp+tls://`: mandatory STARTTLS.
    SmtpTls,
    /// `smtp+notls://`: plain text.
    SmtpNoTls,
    /// `lmtp://`: LMTP (a port is required).
    Lmtp,
    /// `smtps://`: TLS from the first byte, port 465 by default.
    Smtps,
}

/// `[proto://[label@]]host[:port]`: the smarthost of a relay action.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RelayUrl {
    /// The protocol; `smtp` when the URL has none.
    pub scheme: RelayScheme,
    /// The credentials label (a key of the `auth` table).
    pub label: Option<String>,
    /// Host name or address (IPv6 addresses without brackets).
    pub host: String,
    /// The port, if the URL gives one.
    pub port: Option<u16>,
}

impl RelayUrl {
    /// Reads a relay URL as `relay host` and the values of a `relay domain` table write
    /// it: `[scheme://][label@]host[:port]`, IPv6 hosts in brackets.
    ///
    /// # Errors
    /// Why the text is not a relay URL (unknown scheme, empty host or label, bad port).
    pub fn parse(text: &str) -> Result<RelayUrl, String> {
        super::values::relay_url(text)
    }
}

/// Options of a `relay` action.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct RelayOptions {
    /// `host URL`: relay through this host instead of MX lookups.
    pub host: Option<RelayUrl>,
    /// `auth <table>`: credentials for the smarthost.
    pub auth: Option<String>,
    /// `tls [no-verify]`.
    pub tls: Option<RelayTls>,
    /// `pki NAME`: client certificate.
    pub pki: Option<String>,
    /// `ca NAME`: CA used to verify the server.
    pub ca: Option<String>,
    /// `backup [mx NAME]`.
    pub backup: Option<Backup>,
    /// `helo NAME`.
    pub helo: Option<String>,
    /// `helo-src <table>`: HELO name by source address.
    pub helo_src: Option<String>,
    /// `domain <table>`: smarthost by destination domain.
    pub domain: Option<String>,
    /// `mail-from ADDRESS`: MAIL FROM to use.
    pub mail_from: Option<String>,
    /// `src ADDRESS | <table>`: source addresses.
    pub src: Option<TableRef>,
    /// `srs`: rewrite senders of forwarded mail (Sender Rewriting Scheme).
    pub srs: bool,
}

/// Options of local delivery methods, plus `ttl` which any action may carry.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct LocalOptions {
    /// `alias <table>`: aliases(5) expansion.
    pub alias: Option<String>,
    /// `virtual <table>`: virtual expansion.
    pub virtual_table: Option<String>,
    /// `userbase <table>`: user lookups instead of the system's password database.
    pub userbase: Option<String>,
    /// `user NAME`: deliver as this user.
    pub user: Option<String>,
    /// `ttl DELAY`: how long a message may stay in the queue.
    pub ttl: Option<Duration>,
    /// `wrapper NAME`: run the MDA through this `mda wrapper`.
    pub wrapper: Option<String>,
}

/// `match CRITERIA action NAME | reject`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Rule {
    /// The criteria, in the order written; all must hold.
    pub criteria: Vec<Criterion>,
    /// What happens to an envelope that matches.
    pub decision: Decision,
}

/// What a matching rule does.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Decision {
    /// `action NAME`: accept and deliver with this action.
    Action(String),
    /// `reject`: refuse the recipient during the SMTP dialogue.
    Reject,
}

/// One criterion of a rule, possibly negated with `!`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Criterion {
    /// `!`: the criterion must not hold.
    pub negated: bool,
    /// What is tested.
    pub kind: CriterionKind,
}

/// What a criterion tests.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum CriterionKind {
    /// `from ...`: where the session comes from.
    From(FromCriterion),
    /// `for ...`: where the envelope goes.
    For(ForCriterion),
    /// `auth [[regex] VALUE | <table>]`: the session authenticated (as one of these users).
    Auth(Option<TableMatch>),
    /// `helo ...`: the HELO/EHLO name.
    Helo(TableMatch),
    /// `mail-from ...`: the MAIL FROM address.
    MailFrom(TableMatch),
    /// `rcpt-to ...`: the RCPT TO address.
    RcptTo(TableMatch),
    /// `tag [regex] TAG`: the session's tag.
    Tag {
        /// `regex`: the tag is a regular expression.
        regex: bool,
        /// The tag or regex.
        tag: String,
    },
    /// `tls`: the session is encrypted.
    Tls,
}

/// The `from` criteria.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum FromCriterion {
    /// `from any`.
    Any,
    /// `from local`: a local address or the local enqueuer (the default).
    Local,
    /// `from socket`: the local enqueuer only.
    Socket,
    /// `from src ...`: the client address is in the table (addresses or CIDR networks).
    Src(TableMatch),
    /// `from auth [...]`: the session authenticated (as one of these users).
    Auth(Option<TableMatch>),
    /// `from rdns [...]`: the client has a reverse DNS name (in the table).
    Rdns(Option<TableMatch>),
    /// `from mail-from ...`: the sender is in the table.
    MailFrom(TableMatch),
}

/// The `for` criteria.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ForCriterion {
    /// `for any`.
    Any,
    /// `for local`: a local domain (the default).
    Local,
    /// `for domain ...`: the recipient domain is in the table.
    Domain(TableMatch),
    /// `for rcpt-to ...`: the recipient address is in the table.
    RcptTo(TableMatch),
}

/// `filter NAME ...`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Filter {
    /// `filter NAME phase PHASE match CONDITION DECISION`: a builtin filter.
    Builtin(BuiltinFilter),
    /// `filter NAME proc PROC`: a filter served by a `proc` process.
    Proc(String),
    /// `filter NAME proc-exec COMMAND [user U] [group G] [chroot DIR]`.
    ProcExec(ProcExec),
    /// `filter NAME chain { F1, F2 }`: filters run in order.
    Chain(Vec<String>),
}

/// A process started for a `proc-exec` filter.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ProcExec {
    /// The command; relative commands run from the filters directory.
    pub command: String,
    /// `user NAME`.
    pub user: Option<String>,
    /// `group NAME`.
    pub group: Option<String>,
    /// `chroot DIR`.
    pub chroot: Option<String>,
}

/// A builtin filter rule.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BuiltinFilter {
    /// When the filter runs.
    pub phase: FilterPhase,
    /// The condition that triggers the decision.
    pub condition: FilterCondition,
    /// What happens when the condition holds.
    pub decision: FilterDecision,
}

/// The SMTP phase at which a builtin filter runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FilterPhase {
    /// `connect`: before the banner.
    Connect,
    /// `helo`.
    Helo,
    /// `ehlo`.
    Ehlo,
    /// `mail-from`.
    MailFrom,
    /// `rcpt-to`.
    RcptTo,
    /// `data`.
    Data,
    /// `commit`: after the final dot.
    Commit,
}

/// `[!] CONDITION` of a builtin filter.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FilterCondition {
    /// `!`.
    pub negated: bool,
    /// What is tested.
    pub kind: FilterConditionKind,
}

/// What a builtin filter condition tests.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum FilterConditionKind {
    /// `fcrdns`: forward-confirmed reverse DNS is valid.
    Fcrdns,
    /// `rdns [<table>]`.
    Rdns(Option<TableMatch>),
    /// `src <table>`.
    Src(TableMatch),
    /// `helo <table>`.
    Helo(TableMatch),
    /// `auth [<table>]`.
    Auth(Option<TableMatch>),
    /// `mail-from <table>`.
    MailFrom(TableMatch),
    /// `rcpt-to <table>`.
    RcptTo(TableMatch),
}

/// The decision of a builtin filter.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum FilterDecision {
    /// `bypass`: skip the remaining filters.
    Bypass,
    /// `disconnect "4xx|5xx text"`.
    Disconnect(String),
    /// `junk`: add `X-Spam: yes`.
    Junk,
    /// `reject "4xx|5xx text"`.
    Reject(String),
    /// `rewrite VALUE`: replace the command parameter.
    Rewrite(String),
}

/// `queue ...` options.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct QueueOptions {
    /// `queue ttl DELAY`: expiry of undeliverable messages (default 4 days).
    pub ttl: Option<Duration>,
    /// `queue compression`.
    pub compression: bool,
    /// `queue encryption [KEY]`: `Some(None)` when the key is to be read at startup.
    pub encryption: Option<Option<String>>,
    /// `queue path "DIR"` (our extension): where the queue is kept.
    pub path: Option<String>,
}

/// `smtp ...` options.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct SmtpOptions {
    /// `smtp max-message-size SIZE` in bytes (default 35M, RFC 1870 SIZE).
    pub max_message_size: Option<u64>,
    /// `smtp limit max-mails N`: messages per session (default 100).
    pub max_mails: Option<u64>,
    /// `smtp limit max-rcpt N`: recipients per transaction (default 1000).
    pub max_rcpt: Option<u64>,
    /// `smtp sub-addr-delim C` (default `+`).
    pub sub_addr_delim: Option<char>,
    /// `smtp ciphers STRING`.
    pub ciphers: Option<String>,
}

/// `mta limit [for domain D] KEY VALUE`: a limit of outbound delivery.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MtaLimit {
    /// `for domain D`: the destination domain the limit applies to, or every domain.
    pub domain: Option<String>,
    /// The limit name, such as `max-conn-per-host`.
    pub key: String,
    /// Its value.
    pub value: u64,
}

/// `mta ...` options.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct MtaOptions {
    /// `mta max-deferred N` (default 100).
    pub max_deferred: Option<u64>,
    /// `mta limit ...` lines, in file order.
    pub limits: Vec<MtaLimit>,
    /// `mta resolver "IP[:PORT]"` (our extension): the DNS server to query.
    pub resolver: Option<String>,
    /// `mta mx-port N` (our extension): the port of MX hosts (default 25).
    pub mx_port: Option<u16>,
}

/// `srs ...` options.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct SrsOptions {
    /// `srs key SECRET`.
    pub key: Option<String>,
    /// `srs key backup SECRET`.
    pub backup_key: Option<String>,
    /// `srs ttl DELAY` (default 4 days).
    pub ttl: Option<Duration>,
}

/// Global options.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct GlobalOptions {
    /// `queue ...`.
    pub queue: QueueOptions,
    /// `bounce warn-interval D [, D ...]` (at most four; default one warning after 4h).
    pub bounce_warn_interval: Vec<Duration>,
    /// `smtp ...`.
    pub smtp: SmtpOptions,
    /// `mta ...`.
    pub mta: MtaOptions,
    /// `srs ...`.
    pub srs: SrsOptions,
    /// `admd ID`: the authserv-id given to filters.
    pub admd: Option<String>,
    /// `mda wrapper NAME COMMAND` by name.
    pub mda_wrappers: BTreeMap<String, String>,
    /// `control socket "PATH"` (our extension): where `smtpctl` connects.
    pub control_socket: Option<String>,
    /// `metrics listen on ADDRESS [port PORT]` (our extension): where the Prometheus
    /// endpoint listens, or no endpoint.
    pub metrics: Option<MetricsListener>,
}

/// `metrics listen on ADDRESS [port PORT]` (our extension): the address of the HTTP
/// endpoint that serves the counters of `smtpctl show stats` in the Prometheus text
/// format. Any address is accepted, but one that is not loopback shows the counters
/// (message and session counts) to whoever can reach it on that network.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MetricsListener {
    /// The IPv4 or IPv6 address to bind.
    pub address: IpAddr,
    /// `port PORT`, when given.
    pub port: Option<u16>,
}

impl MetricsListener {
    /// The port of the endpoint when the line names none: 9464, the default port of
    /// OpenTelemetry's Prometheus exporter (registered with Prometheus for that use).
    pub const DEFAULT_PORT: u16 = 9464;

    /// The effective port: `port PORT`, or [`MetricsListener::DEFAULT_PORT`].
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(Self::DEFAULT_PORT)
    }

    /// The socket address to bind.
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.port())
    }
}

impl GlobalOptions {
    /// Effective queue lifetime of a message: `queue ttl`, or 4 days.
    pub fn queue_ttl(&self) -> Duration {
        self.queue.ttl.unwrap_or(Duration::from_secs(4 * 86_400))
    }

    /// Effective maximum message size: `smtp max-message-size`, or 35 MiB.
    pub fn max_message_size(&self) -> u64 {
        self.smtp.max_message_size.unwrap_or(35 * 1024 * 1024)
    }

    /// Effective maximum number of messages per session: `smtp limit max-mails`, or 100.
    pub fn max_mails(&self) -> u64 {
        self.smtp.max_mails.unwrap_or(100)
    }

    /// Effective maximum number of recipients per transaction: `smtp limit max-rcpt`, or 1000.
    pub fn max_rcpt(&self) -> u64 {
        self.smtp.max_rcpt.unwrap_or(1000)
    }

    /// Effective sub-address delimiter: `smtp sub-addr-delim`, or `+`.
    pub fn sub_addr_delim(&self) -> char {
        self.smtp.sub_addr_delim.unwrap_or('+')
    }

    /// Effective delays after which a delayed-delivery warning is sent (default: 4 hours).
    pub fn bounce_warn_interval(&self) -> Vec<Duration> {
        if self.bounce_warn_interval.is_empty() {
            vec![Duration::from_secs(4 * 3600)]
        } else {
            self.bounce_warn_interval.clone()
        }
    }

    /// Effective port of MX hosts: `mta mx-port`, or 25, the SMTP port.
    pub fn mx_port(&self) -> u16 {
        self.mta.mx_port.unwrap_or(25)
    }

    /// Effective number of envelopes cached per suspended host: `mta max-deferred`, or 100.
    pub fn max_deferred(&self) -> u64 {
        self.mta.max_deferred.unwrap_or(100)
    }
}
