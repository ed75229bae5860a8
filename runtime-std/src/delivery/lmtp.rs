//! LMTP delivery (RFC 2033): one transaction to a local mail store over TCP or a UNIX
//! socket, with one final reply per accepted recipient.
//!
//! The client sends LHLO, MAIL FROM, one RCPT TO per recipient and DATA, streams the
//! message with CRLF line ends and dot-stuffing (RFC 5321 §4.5.2), reads one reply per
//! recipient that RCPT accepted (RFC 2033 §4.2), then QUIT. Every read and write has a
//! timeout; a broken connection or a timeout is a temporary failure for every recipient
//! not yet answered. Replies are read with `smtp_proto`'s bounded [`ReplyParser`].

use super::DeliveryOutcome;
use bytes::BytesMut;
use smtp_proto::data::DotStuffer;
use smtp_proto::reply::{Reply, ReplyParser};
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

/// Where the LMTP server listens, as written in `lmtp destination` of smtpd.conf.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum LmtpDestination {
    /// `host:port` (a bracketed IPv6 address is accepted: `[::1]:24`).
    Inet {
        /// Host name or address.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// A UNIX socket path (the destination starts with `/`).
    Unix(PathBuf),
}

impl LmtpDestination {
    /// Read a destination: a path starting with `/`, or `host:port`.
    pub fn parse(text: &str) -> Result<LmtpDestination, String> {
        if text.starts_with('/') {
            return Ok(LmtpDestination::Unix(PathBuf::from(text)));
        }
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| format!("lmtp destination {text:?} lacks a port"))?;
        let port = port
            .parse()
            .map_err(|_| format!("invalid port in lmtp destination {text:?}"))?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return Err(format!("lmtp destination {text:?} lacks a host"));
        }
        Ok(LmtpDestination::Inet {
            host: host.to_owned(),
            port,
        })
    }
}

impl std::fmt::Display for LmtpDestination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LmtpDestination::Inet { host, port } if host.contains(':') => {
                write!(f, "[{host}]:{port}")
            }
            LmtpDestination::Inet { host, port } => write!(f, "{host}:{port}"),
            LmtpDestination::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

/// One LMTP transaction to run.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LmtpRequest {
    /// The server to deliver to.
    pub destination: LmtpDestination,
    /// Our name, sent with LHLO.
    pub lhlo_name: String,
    /// The envelope sender, empty for a bounce.
    pub sender: String,
    /// The recipients (a local user, or the address with the `rcpt-to` option).
    pub recipients: Vec<String>,
    /// Timeout of the connection and of every read and write.
    pub timeout: Duration,
}

/// The connection, over TCP or a UNIX socket.
enum Connection {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Read for Connection {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Connection::Tcp(s) => s.read(buf),
            Connection::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Connection {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Connection::Tcp(s) => s.write(buf),
            Connection::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Connection::Tcp(s) => s.flush(),
            Connection::Unix(s) => s.flush(),
        }
    }
}

fn connect(destination: &LmtpDestination, timeout: Duration) -> io::Result<Connection> {
    let timeout = timeout.max(Duration::from_millis(1));
    let connection = match destination {
        LmtpDestination::Unix(path) => {
            let stream = UnixStream::connect(path)?;
            stream.set_read_timeout(Some(timeout))?;
            stream.set_write_timeout(Some(timeout))?;
            Connection::Unix(stream)
        }
        LmtpDestination::Inet { host, port } => {
            let mut last = io::Error::new(io::ErrorKind::NotFound, "host has no address");
            let mut connected = None;
            for addr in (host.as_str(), *port).to_socket_addrs()? {
                match TcpStream::connect_timeout(&addr, timeout) {
                    Ok(stream) => {
                        connected = Some(stream);
                        break;
                    }
                    Err(e) => last = e,
                }
            }
            let stream = connected.ok_or(last)?;
            stream.set_read_timeout(Some(timeout))?;
            stream.set_write_timeout(Some(timeout))?;
            Connection::Tcp(stream)
        }
    };
    Ok(connection)
}

/// A failure of the session, before every recipient has its answer.
enum SessionError {
    /// The connection broke or timed out, or the server spoke nonsense.
    Io(String),
    /// The server refused the transaction with this reply.
    Refused(Reply),
}

impl From<io::Error> for SessionError {
    fn from(e: io::Error) -> Self {
        SessionError::Io(e.to_string())
    }
}

struct Session {
    connection: Connection,
    parser: ReplyParser,
    buf: BytesMut,
}

impl Session {
    fn reply(&mut self) -> Result<Reply, SessionError> {
        loop {
            match self.parser.parse(&mut self.buf) {
                Ok(Some(reply)) => return Ok(reply),
                Ok(None) => {}
                Err(e) => return Err(SessionError::Io(format!("bad reply: {e}"))),
            }
            let mut chunk = [0u8; 4096];
            let n = self.connection.read(&mut chunk)?;
            if n == 0 {
                return Err(SessionError::Io("connection closed by server".to_owned()));
            }
            self.buf
                .extend_from_slice(chunk.get(..n).unwrap_or_default());
        }
    }

    /// Send a command line and read its reply.
    fn command(&mut self, line: &str) -> Result<Reply, SessionError> {
        self.connection
            .write_all(format!("{line}\r\n").as_bytes())?;
        self.reply()
    }

    /// Send a command that must succeed with a `expected`-class reply.
    fn expect(&mut self, line: &str, expected: u16) -> Result<(), SessionError> {
        let reply = self.command(line)?;
        if reply.code / 100 == expected {
            Ok(())
        } else {
            Err(SessionError::Refused(reply))
        }
    }
}

/// Run the LMTP transaction and return one outcome per recipient, in order.
pub fn deliver(request: &LmtpRequest, message: &mut dyn Read) -> Vec<DeliveryOutcome> {
    let count = request.recipients.len();
    let mut outcomes: Vec<Option<DeliveryOutcome>> = vec![None; count];
    let context = format!("lmtp {}", request.destination);
    if let Err(error) = transaction(request, message, &mut outcomes) {
        let failure = match error {
            SessionError::Io(text) => DeliveryOutcome::TempFail(format!("{context}: {text}")),
            SessionError::Refused(reply) => from_reply(&context, &reply),
        };
        for outcome in outcomes.iter_mut().filter(|o| o.is_none()) {
            *outcome = Some(failure.clone());
        }
    }
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| DeliveryOutcome::TempFail(format!("{context}: no reply"))))
        .collect()
}

fn transaction(
    request: &LmtpRequest,
    message: &mut dyn Read,
    outcomes: &mut [Option<DeliveryOutcome>],
) -> Result<(), SessionError> {
    let context = format!("lmtp {}", request.destination);
    if has_line_break(&request.sender) || has_line_break(&request.lhlo_name) {
        return Err(SessionError::Io(
            "line break in sender or LHLO name".to_owned(),
        ));
    }
    let connection = connect(&request.destination, request.timeout)?;
    let mut session = Session {
        connection,
        parser: ReplyParser::default(),
        buf: BytesMut::new(),
    };
    let greeting = session.reply()?;
    if greeting.code / 100 != 2 {
        return Err(SessionError::Refused(greeting));
    }
    session.expect(&format!("LHLO {}", request.lhlo_name), 2)?;
    session.expect(&format!("MAIL FROM:<{}>", request.sender), 2)?;
    let mut accepted = Vec::new();
    for (index, recipient) in request.recipients.iter().enumerate() {
        if has_line_break(recipient) {
            set(
                outcomes,
                index,
                DeliveryOutcome::PermFail(format!("{context}: line break in recipient")),
            );
            continue;
        }
        let reply = session.command(&format!("RCPT TO:<{recipient}>"))?;
        if reply.code / 100 == 2 {
            accepted.push(index);
        } else {
            set(outcomes, index, from_reply(&context, &reply));
        }
    }
    if accepted.is_empty() {
        let _ = session.command("QUIT");
        return Ok(());
    }
    session.expect("DATA", 3)?;
    send_body(&mut session.connection, message)?;
    // RFC 2033 §4.2: one reply per accepted recipient, in RCPT order.
    for index in accepted {
        let reply = session.reply()?;
        set(outcomes, index, from_reply(&context, &reply));
    }
    let _ = session.command("QUIT");
    Ok(())
}

fn set(outcomes: &mut [Option<DeliveryOutcome>], index: usize, outcome: DeliveryOutcome) {
    if let Some(slot) = outcomes.get_mut(index) {
        *slot = Some(outcome);
    }
}

fn has_line_break(text: &str) -> bool {
    text.contains(['\r', '\n'])
}

/// Stream the message with CRLF line ends, dot-stuffed, ended by `.` CRLF.
fn send_body(connection: &mut Connection, message: &mut dyn Read) -> Result<(), SessionError> {
    let mut stuffer = DotStuffer::new();
    let mut after_cr = false;
    let mut buf = vec![0u8; 64 * 1024];
    let mut crlf = Vec::with_capacity(buf.len() * 2);
    let mut out = BytesMut::with_capacity(buf.len() * 2);
    loop {
        let n = match message.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(SessionError::Io(format!("cannot read message: {e}"))),
        };
        crlf.clear();
        for &byte in buf.get(..n).unwrap_or_default() {
            if byte == b'\n' && !after_cr {
                crlf.push(b'\r');
            }
            crlf.push(byte);
            after_cr = byte == b'\r';
        }
        stuffer.push(&crlf, &mut out);
        connection.write_all(&out)?;
        out.clear();
    }
    stuffer.finish(&mut out);
    connection.write_all(&out)?;
    connection.flush()?;
    Ok(())
}

/// 2yz delivered, 4yz temporary, 5yz permanent, anything else temporary.
fn from_reply(context: &str, reply: &Reply) -> DeliveryOutcome {
    let text: Vec<String> = reply
        .lines
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    let status = reply.status.map(|s| format!(" {s}")).unwrap_or_default();
    let described = format!("{context}: {}{status} {}", reply.code, text.join(" "));
    match reply.code / 100 {
        2 => DeliveryOutcome::Delivered,
        5 => DeliveryOutcome::PermFail(described),
        _ => DeliveryOutcome::TempFail(described),
    }
}
