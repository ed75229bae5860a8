//! One outbound connection: a thread that connects to an exchanger, drives the pure
//! [`ClientSession`] over the socket (upgrading with STARTTLS when the session asks), and
//! reports the router's inputs (connect result, per-envelope outcomes, close) back to the
//! relay agent.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mta_core::queue::{DsnParams, EnvelopeId, Failure, Ret};
use mta_core::routing::{ConnId, Input as RouterInput, TlsPolicy};
use mta_core::scheduler::Outcome;
use smtp_proto::client::{
    Action, ClientConfig, ClientSession, Input, OutboundMessage, OutboundRecipient, RecipientResult,
};
use smtp_proto::params::{self, MailParams, Notify, OriginalRecipient, RcptParams};
use smtp_proto::reply::{EnhancedStatus, Reply};
use smtp_proto::types::{ForwardPath, ReversePath};

use super::body::SpooledBody;
use super::Event;
use crate::spool::Spool;
use crate::tls::TlsStream;

/// How long the TCP connect and a TLS handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Bytes of session output gathered before they are written without waiting for more.
const WRITE_BATCH: usize = 64 * 1024;

/// One message (all its envelopes on the route) to send over a connection.
#[derive(Clone, Debug)]
pub(crate) struct Delivery {
    /// The queued message to read from the spool.
    pub msgid: String,
    /// The envelope sender, empty for `<>`.
    pub sender: String,
    /// Envelope id, recipient address and its DSN parameters, in RCPT order (`RET=`
    /// and `ENVID=` are the message's: those of the first).
    pub recipients: Vec<(EnvelopeId, String, DsnParams)>,
}

/// What the agent tells a connection thread.
#[derive(Debug)]
pub(crate) enum Command {
    /// Send this message once the session is idle.
    Send(Delivery),
    /// QUIT once idle.
    Quit,
}

/// Where a connection goes and how it talks.
pub(crate) struct ConnSpec {
    /// The router's session id.
    pub conn: ConnId,
    /// Exchanger address and port.
    pub addr: SocketAddr,
    /// Local address to connect from (`relay src`); the kernel's choice when `None`.
    pub src: Option<std::net::IpAddr>,
    /// Exchanger name (SNI, certificate check, logs).
    pub host: String,
    /// TLS policy of the route.
    pub tls: TlsPolicy,
    /// The session settings (HELO name, TLS policy as the session sees it).
    pub session: Arc<ClientConfig>,
    /// The rustls configuration for STARTTLS or smtps; `None` when TLS cannot be done.
    pub tls_config: Option<Arc<rustls::ClientConfig>>,
}

/// The socket, plain or under TLS.
enum Link {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
    Gone,
}

impl Link {
    fn socket(&self) -> Option<&TcpStream> {
        match self {
            Link::Plain(s) => Some(s),
            Link::Tls(t) => Some(t.get_ref()),
            Link::Gone => None,
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Link::Plain(s) => s.read(buf),
            Link::Tls(t) => t.read(buf),
            Link::Gone => Ok(0),
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Link::Plain(s) => s.write_all(bytes),
            Link::Tls(t) => t.write_all(bytes),
            Link::Gone => Err(io::Error::new(io::ErrorKind::NotConnected, "closed")),
        }
    }
}

/// Run one connection to its end; every report goes to `events`.
pub(crate) fn run(
    spec: &ConnSpec,
    spool: &Spool,
    commands: &Receiver<Command>,
    events: &Sender<Event>,
) {
    let report = |input: RouterInput| {
        let _ = events.send(Event::Router(input));
    };
    let link = match connect(spec, events) {
        Ok(link) => link,
        Err(e) => {
            report(RouterInput::ConnectResult {
                conn: spec.conn,
                result: Err(format!("{} [{}]: {e}", spec.host, spec.addr)),
            });
            return;
        }
    };
    report(RouterInput::ConnectResult {
        conn: spec.conn,
        result: Ok(()),
    });
    let error = drive(spec, link, spool, commands, events);
    report(RouterInput::ConnectionClosed {
        conn: spec.conn,
        error,
    });
}

fn connect(spec: &ConnSpec, events: &Sender<Event>) -> io::Result<Link> {
    // Monkey mode: a connect that fails like a refused one (the router tries another MX
    // or defers).
    if let Some(reason) = crate::monkey::strike(mta_core::faults::Fault::Connect) {
        return Err(io::Error::other(reason));
    }
    let stream = super::connect::connect(spec.addr, spec.src, CONNECT_TIMEOUT)?;
    stream.set_nodelay(true)?;
    stream.set_write_timeout(Some(CONNECT_TIMEOUT.saturating_mul(10)))?;
    if let TlsPolicy::Implicit { .. } = spec.tls {
        let config = spec
            .tls_config
            .clone()
            .ok_or_else(|| io::Error::other("no TLS configuration for smtps"))?;
        let tls = TlsStream::connect(stream, config, &spec.host, CONNECT_TIMEOUT)?;
        log_tls(spec, &tls, events);
        return Ok(Link::Tls(Box::new(tls)));
    }
    Ok(Link::Plain(stream))
}

/// A message handed to the session, and which envelope each of its recipients is.
struct InFlight {
    envelopes: Vec<EnvelopeId>,
    /// Envelopes left out of the message (their address cannot be sent), reported with it.
    refused: Vec<(EnvelopeId, Outcome)>,
}

fn drive(
    spec: &ConnSpec,
    mut link: Link,
    spool: &Spool,
    commands: &Receiver<Command>,
    events: &Sender<Event>,
) -> Option<String> {
    let mut session = ClientSession::new(Arc::clone(&spec.session), Instant::now());
    let mut buf = vec![0u8; 16 * 1024];
    let mut ready = false;
    let mut error = None;
    let mut next_tag: u64 = 0;
    let mut in_flight: Vec<(u64, InFlight)> = Vec::new();
    // The body of the message being sent, and whether the session asked for it.
    let mut body: Option<SpooledBody> = None;
    let mut body_wanted = false;
    // What the session said since the last write: pipelined commands, the body and its
    // final dot leave together in one write (TCP_NODELAY sends each write at once).
    let mut out: Vec<u8> = Vec::new();
    loop {
        while let Some(action) = session.poll_action() {
            match action {
                Action::Send(bytes) => {
                    out.extend_from_slice(&bytes);
                    if out.len() >= WRITE_BATCH {
                        flush(&mut link, &mut out, &mut session, &mut error);
                    }
                }
                Action::StartTls => {
                    flush(&mut link, &mut out, &mut session, &mut error);
                    let upgraded =
                        match (std::mem::replace(&mut link, Link::Gone), &spec.tls_config) {
                            (Link::Plain(stream), Some(config)) => TlsStream::connect(
                                stream,
                                Arc::clone(config),
                                &spec.host,
                                CONNECT_TIMEOUT,
                            )
                            .map_err(|e| e.to_string()),
                            _ => Err("TLS is not available".to_owned()),
                        };
                    match upgraded {
                        Ok(tls) => {
                            log_tls(spec, &tls, events);
                            link = Link::Tls(Box::new(tls));
                            session.handle(Input::TlsEstablished, Instant::now());
                        }
                        Err(e) => {
                            error.get_or_insert(format!("STARTTLS: {e}"));
                            session.handle(Input::PeerClosed, Instant::now());
                        }
                    }
                }
                Action::BodyWanted { .. } => body_wanted = true,
                Action::Outcome(outcome) => {
                    crate::server::trace::events::relay_replies(events, spec.conn, &outcome);
                    let position = in_flight.iter().position(|(tag, _)| *tag == outcome.id);
                    if let Some((_, flight)) = position.map(|p| in_flight.remove(p)) {
                        let mut results: Vec<(EnvelopeId, Outcome)> = flight
                            .envelopes
                            .iter()
                            .zip(outcome.recipients.iter())
                            .map(|(id, result)| (*id, to_outcome(result, &spec.host)))
                            .collect();
                        results.extend(flight.refused);
                        let _ = events.send(Event::Router(RouterInput::SessionOutcome {
                            conn: spec.conn,
                            results,
                        }));
                    }
                }
                Action::Ready => ready = true,
                Action::SessionError(e) => {
                    error.get_or_insert(e.reason.to_string());
                    body_wanted = false;
                    body = None;
                }
                Action::Close => {}
            }
        }
        if session.is_closed() {
            flush(&mut link, &mut out, &mut session, &mut error);
            return error;
        }
        if body_wanted {
            // One chunk at a time, its write drained before the next is read.
            match body.as_mut().map(SpooledBody::next_chunk) {
                Some(Ok(Some(chunk))) => session.handle(Input::BodyChunk(chunk), Instant::now()),
                Some(Ok(None)) => {
                    body_wanted = false;
                    body = None;
                    session.handle(Input::BodyEnd, Instant::now());
                }
                Some(Err(e)) => {
                    body_wanted = false;
                    error.get_or_insert(format!("cannot read the message: {e}"));
                    session.handle(Input::PeerClosed, Instant::now());
                }
                None => {
                    body_wanted = false;
                    error.get_or_insert("no body to send".to_owned());
                    session.handle(Input::PeerClosed, Instant::now());
                }
            }
            continue;
        }
        if ready && session.is_idle() {
            flush(&mut link, &mut out, &mut session, &mut error);
            if session.is_closed() {
                continue;
            }
            ready = false;
            match commands.recv() {
                Ok(Command::Send(delivery)) => {
                    next_tag = next_tag.wrapping_add(1);
                    match build_message(next_tag, &delivery, spool) {
                        Ok((message, spooled, envelopes, refused)) => {
                            body = Some(spooled);
                            in_flight.push((next_tag, InFlight { envelopes, refused }));
                            session.handle(Input::Message(message), Instant::now());
                        }
                        Err(results) => {
                            let _ = events.send(Event::Router(RouterInput::SessionOutcome {
                                conn: spec.conn,
                                results,
                            }));
                            ready = true;
                        }
                    }
                }
                Ok(Command::Quit) | Err(_) => session.handle(Input::Quit, Instant::now()),
            }
            continue;
        }
        flush(&mut link, &mut out, &mut session, &mut error);
        if session.is_closed() {
            continue;
        }
        let now = Instant::now();
        let wait = session
            .poll_timeout()
            .map(|deadline| deadline.saturating_duration_since(now))
            .unwrap_or(Duration::from_secs(300))
            .max(Duration::from_millis(1));
        if let Some(socket) = link.socket() {
            let _ = socket.set_read_timeout(Some(wait));
        }
        let cap = session.recv_capacity().clamp(1, buf.len());
        let slot = buf.get_mut(..cap).unwrap_or_default();
        match link.read(slot) {
            Ok(0) => session.handle(Input::PeerClosed, Instant::now()),
            Ok(n) => session.handle(
                Input::Received(slot.get(..n).unwrap_or_default()),
                Instant::now(),
            ),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                session.handle_timeout(Instant::now());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                error.get_or_insert(format!("read: {e}"));
                session.handle(Input::PeerClosed, Instant::now());
            }
        }
    }
}

/// Writes what the session said; a failed write ends the session (`PeerClosed`).
fn flush(
    link: &mut Link,
    out: &mut Vec<u8>,
    session: &mut ClientSession,
    error: &mut Option<String>,
) {
    if out.is_empty() {
        return;
    }
    if let Err(e) = link.write_all(out) {
        error.get_or_insert(format!("write: {e}"));
        session.handle(Input::PeerClosed, Instant::now());
    }
    out.clear();
}

/// The outbound message of `delivery` and its body opened in the spool (streamed with
/// CRLF line ends), the envelopes whose recipients it carries, and the envelopes whose address cannot be
/// written in RCPT TO (they fail for good). `Err` holds a result for every envelope when
/// the message cannot be sent at all.
#[allow(clippy::type_complexity)]
fn build_message(
    tag: u64,
    delivery: &Delivery,
    spool: &Spool,
) -> Result<
    (
        OutboundMessage,
        SpooledBody,
        Vec<EnvelopeId>,
        Vec<(EnvelopeId, Outcome)>,
    ),
    Vec<(EnvelopeId, Outcome)>,
> {
    let all_fail = |outcome: Outcome| {
        delivery
            .recipients
            .iter()
            .map(|(id, _, _)| (*id, outcome.clone()))
            .collect::<Vec<_>>()
    };
    let sender = ReversePath::parse(Bytes::from(format!("<{}>", delivery.sender)), true)
        .map_err(|e| all_fail(perm(&format!("sender cannot be relayed: {e}"))))?;
    let (spooled, body) = SpooledBody::open(spool, &delivery.msgid).map_err(|e| {
        all_fail(temp(&format!(
            "cannot read message {}: {e}",
            delivery.msgid
        )))
    })?;
    let mut recipients = Vec::new();
    let mut envelopes = Vec::new();
    let mut refused = Vec::new();
    for (id, address, dsn) in &delivery.recipients {
        match ForwardPath::parse(Bytes::from(format!("<{address}>")), true) {
            Ok(path) => {
                recipients.push(OutboundRecipient {
                    path,
                    params: rcpt_params(dsn),
                });
                envelopes.push(*id);
            }
            Err(e) => refused.push((*id, perm(&format!("recipient cannot be relayed: {e}")))),
        }
    }
    if recipients.is_empty() {
        return Err(refused);
    }
    let message = OutboundMessage {
        id: tag,
        sender,
        recipients,
        params: mail_params(delivery.recipients.first().map(|(_, _, dsn)| dsn)),
        body,
    };
    Ok((message, spooled, envelopes, refused))
}

/// `RET=` and `ENVID=` passed on (RFC 3461 §4.3, §4.4: a relay keeps them); the session
/// drops them when the server does not advertise DSN.
fn mail_params(dsn: Option<&DsnParams>) -> MailParams {
    MailParams {
        ret: dsn.and_then(|d| d.ret).map(|ret| match ret {
            Ret::Full => params::Ret::Full,
            Ret::Headers => params::Ret::Headers,
        }),
        envid: dsn.and_then(|d| d.envid.clone()).map(Bytes::from),
        ..MailParams::default()
    }
}

/// `NOTIFY=` and `ORCPT=` passed on (RFC 3461 §4.1, §4.2).
fn rcpt_params(dsn: &DsnParams) -> RcptParams {
    RcptParams {
        notify: dsn.notify.map(|n| Notify {
            never: !n.success && !n.failure && !n.delay,
            success: n.success,
            failure: n.failure,
            delay: n.delay,
        }),
        orcpt: dsn.orcpt.as_deref().and_then(|orcpt| {
            let (addr_type, addr) = orcpt.split_once(';')?;
            Some(OriginalRecipient {
                addr_type: Bytes::from(addr_type.to_owned()),
                addr: Bytes::from(addr.to_owned()),
            })
        }),
    }
}

/// OpenSMTPD's line for a session that went under TLS.
fn log_tls(spec: &ConnSpec, tls: &TlsStream, events: &Sender<Event>) {
    let info = tls.info();
    let _ = events.send(Event::Log(format!(
        "smtp-out: Started TLS on session {}: version={}, cipher={}, bits={}",
        spec.conn,
        info.protocol,
        info.openssl_cipher(),
        info.cipher_bits()
    )));
}

fn to_outcome(result: &RecipientResult, host: &str) -> Outcome {
    let failure = |reply: &Reply, class: u8| Failure {
        status: reply.status.unwrap_or(EnhancedStatus::new(class, 0, 0)),
        text: reply.to_string().trim_end().to_owned(),
        remote_mta: Some(host.to_owned()),
    };
    match result {
        RecipientResult::Delivered(_) => Outcome::Delivered,
        RecipientResult::TempFail(reply) => Outcome::TempFail(failure(reply, 4)),
        RecipientResult::PermFail(reply) => Outcome::PermFail(failure(reply, 5)),
    }
}

pub(crate) fn temp(text: &str) -> Outcome {
    Outcome::TempFail(Failure {
        status: EnhancedStatus::new(4, 0, 0),
        text: text.to_owned(),
        remote_mta: None,
    })
}

pub(crate) fn perm(text: &str) -> Outcome {
    Outcome::PermFail(Failure {
        status: EnhancedStatus::new(5, 0, 0),
        text: text.to_owned(),
        remote_mta: None,
    })
}
