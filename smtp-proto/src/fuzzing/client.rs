//! Harnesses for the client session machine.
//!
//! [`client_session`] reads its input as a script. In the scripted mode a header picks
//! the client configuration, what a fake server advertises and the messages to send;
//! the rest chooses, reply by reply, what the fake server answers (positive, 4yz, 5yz,
//! silence, hang-up, garbage). The fake server answers only what the client sent, so
//! the run is causal; it is run twice, each server turn fed in one read and then cut
//! into pieces, and both runs must give the same actions. Invariants checked all along:
//! the receive buffer stays under its limit, the client never uses an extension the
//! last EHLO did not advertise, every message gets exactly one outcome with one result
//! per recipient, a recipient is reported delivered exactly when the server took it,
//! with the very body that was given, and the session always ends.
//! In the raw mode the input is fed as server bytes, whatever the client says.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::client::{
    Action, ClientConfig, ClientSession, Credentials, Input, OutboundBody, OutboundMessage,
    OutboundRecipient, RecipientResult, TlsPolicy,
};
use crate::command::{self, Command, ParseOptions};
use crate::data::{BdatChunk, BodyPolicy, BodyProgress, DotReader};
use crate::params::{BodyType, MailParams, Notify, Ret};
use crate::reply::{EhloCapabilities, ReplyLimits};
use crate::types::{ForwardPath, ReversePath};

use super::session::epoch;

/// Bodies a scripted message can carry.
fn body(pick: u8) -> Bytes {
    match pick % 6 {
        0 => Bytes::from_static(b"Subject: hi\r\n\r\nhello\r\n"),
        1 => Bytes::from_static(b"Subject: dots\r\n\r\n.\r\n..two\r\n.x\r\n"),
        2 => Bytes::from_static("Subject: café\r\n\r\nGrüße\r\n".as_bytes()),
        3 => Bytes::new(),
        4 => {
            let mut big = Vec::new();
            for i in 0..1500 {
                big.extend_from_slice(
                    format!(".{i:05} some fifty bytes of text .......\r\n").as_bytes(),
                );
            }
            Bytes::from(big)
        }
        _ => Bytes::from_static(b"no final line end"),
    }
}

/// A parsed scripted run.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The client configuration.
    pub config: Arc<ClientConfig>,
    /// What the fake server advertises after EHLO.
    pub caps: EhloCapabilities,
    /// The fake server speaks LMTP.
    pub lmtp: bool,
    /// The messages, in order; the id is the index.
    pub messages: Vec<OutboundMessage>,
    /// The content of each message, streamed or not.
    pub contents: Vec<Bytes>,
    /// One byte per server reply: what it answers.
    pub choices: Vec<u8>,
    /// Read sizes for the cut run (cycled; 0 counts as 1).
    pub cuts: Vec<u8>,
}

impl Scenario {
    /// Reads `[config, caps, caps2, n_messages, (rcpts, body, params) x n, n_cuts,
    /// cuts.., choices..]`.
    pub fn parse(data: &[u8]) -> Scenario {
        let byte = |at: usize| data.get(at).copied().unwrap_or(0);
        let (flags, caps_a, caps_b) = (byte(0), byte(1), byte(2));
        let tls = match flags & 3 {
            0 | 3 => TlsPolicy::Opportunistic,
            1 => TlsPolicy::Required,
            _ => TlsPolicy::Never,
        };
        let lmtp = flags & 64 == 64;
        let tight = flags & 128 == 128;
        let config = ClientConfig {
            tls,
            tls_available: flags & 4 == 0,
            credentials: (flags & 8 == 8).then(|| Credentials {
                user: Bytes::from_static(b"user"),
                password: Bytes::from_static(b"secret"),
            }),
            chunking: flags & 16 == 16,
            implicit_tls: flags & 32 == 32 && flags & 3 == 3,
            lmtp,
            reply_limits: if tight {
                ReplyLimits {
                    max_lines: 8,
                    max_line_len: 64,
                }
            } else {
                ReplyLimits::default()
            },
            ..ClientConfig::default()
        };
        let mut auth = Vec::new();
        if caps_b & 1 == 1 {
            auth.push(Bytes::from_static(b"LOGIN"));
        }
        if caps_b & 2 == 2 {
            auth.push(Bytes::from_static(b"PLAIN"));
        }
        let caps = EhloCapabilities {
            pipelining: caps_a & 1 == 0,
            eightbitmime: caps_a & 2 == 0,
            size: match (caps_a >> 2) & 3 {
                0 => None,
                1 => Some(0),
                2 => Some(40),
                _ => Some(1_000_000),
            },
            enhancedstatuscodes: true,
            smtputf8: caps_a & 16 == 0,
            chunking: caps_a & 32 == 0,
            binarymime: caps_a & 64 == 0,
            dsn: caps_a & 128 == 0,
            starttls: caps_b & 4 == 0,
            auth,
        };
        let n_messages = usize::from(byte(3) % 4);
        let mut at = 4;
        let mut messages = Vec::new();
        let mut contents = Vec::new();
        for n in 0..n_messages {
            let (rcpts, pick, params) = (byte(at), byte(at + 1), byte(at + 2));
            at += 3;
            let utf8 = params & 8 == 8;
            let recipients = (0..rcpts % 5)
                .map(|i| {
                    let local = if utf8 && i == 0 { "ré" } else { "r" };
                    let text = format!("<{local}{n}.{i}@example.net>");
                    let path = ForwardPath::parse(Bytes::from(text), true).unwrap();
                    let mut rcpt = OutboundRecipient::new(path);
                    if params & 16 == 16 {
                        rcpt.params.notify = Some(Notify {
                            success: true,
                            failure: true,
                            ..Notify::default()
                        });
                    }
                    rcpt
                })
                .collect();
            let sender = if params & 1 == 1 {
                ReversePath::Null
            } else {
                ReversePath::parse(Bytes::from(format!("<s{n}@example.org>")), false).unwrap()
            };
            let body_type = match (params >> 1) & 3 {
                1 => Some(BodyType::EightBitMime),
                2 => Some(BodyType::BinaryMime),
                3 => Some(BodyType::SevenBit),
                _ => None,
            };
            let content = body(pick);
            messages.push(OutboundMessage {
                id: n as u64,
                sender,
                recipients,
                params: MailParams {
                    body: body_type,
                    smtputf8: utf8,
                    ret: (params & 32 == 32).then_some(Ret::Headers),
                    envid: (params & 64 == 64).then(|| Bytes::from_static(b"env+id")),
                    ..MailParams::default()
                },
                body: if params & 128 == 128 {
                    OutboundBody::Streamed {
                        size: content.len() as u64,
                        eight_bit: content.iter().any(|&b| b >= 0x80),
                    }
                } else {
                    OutboundBody::Whole(content.clone())
                },
            });
            contents.push(content);
        }
        let n_cuts = usize::from(byte(at) % 16);
        let cuts = data
            .get(at + 1..at + 1 + n_cuts)
            .unwrap_or_default()
            .to_vec();
        let choices = data.get(at + 1 + n_cuts..).unwrap_or_default().to_vec();
        Scenario {
            config: Arc::new(config),
            caps,
            lmtp,
            messages,
            contents,
            choices,
            cuts,
        }
    }
}

/// What the fake server reads next.
#[derive(Debug)]
enum Mode {
    Command,
    AuthLogin(u8),
    Data(DotReader),
    Bdat(BdatChunk, bool),
    /// It said 220 to STARTTLS; it waits for the handshake.
    Tls,
    Closed,
}

/// A small SMTP server that answers the client's commands as the choices say and
/// checks the client against what it advertised.
struct FakeServer<'a> {
    scenario: &'a Scenario,
    choice: usize,
    rx: BytesMut,
    mode: Mode,
    advertised: EhloCapabilities,
    tls: bool,
    mail: bool,
    /// Recipients accepted in this transaction.
    rcpts: Vec<Bytes>,
    body: Vec<u8>,
    eight_bit_declared: bool,
    /// `(recipient, body, via BDAT)` for each recipient the server took.
    delivered: Vec<Delivery>,
    /// The server has hung up.
    hung_up: bool,
    /// It went silent: the client must time out.
    silent: bool,
}

/// A recipient the fake server took: its path, the body, whether it came by BDAT.
pub type Delivery = (Bytes, Vec<u8>, bool);

/// What a reply choice means.
enum Pick {
    Yes,
    Temp,
    Perm,
    Silence,
    HangUp,
    Garbage(u8),
}

impl FakeServer<'_> {
    fn pick(&mut self) -> Pick {
        let c = self.scenario.choices.get(self.choice).copied();
        self.choice += 1;
        match c {
            None => Pick::Yes,
            Some(c) if c < 160 => Pick::Yes,
            Some(c) if c < 190 => Pick::Temp,
            Some(c) if c < 220 => Pick::Perm,
            Some(c) if c < 226 => Pick::Silence,
            Some(c) if c < 232 => Pick::HangUp,
            Some(c) => Pick::Garbage(c),
        }
    }

    /// Appends the reply chosen for a command whose positive answer is `yes`.
    fn answer(&mut self, out: &mut Vec<u8>, yes: &str) -> bool {
        match self.pick() {
            Pick::Yes => {
                out.extend_from_slice(yes.as_bytes());
                return true;
            }
            Pick::Temp => out.extend_from_slice(b"451 4.3.0 try later\r\n"),
            Pick::Perm => out.extend_from_slice(b"550 5.7.1 no\r\n"),
            Pick::Silence => self.silent = true,
            Pick::HangUp => self.hung_up = true,
            Pick::Garbage(c) => {
                // Extra replies after the last one due are left out: whether they are
                // out of turn depends on timing, which cutting a turn changes.
                out.extend_from_slice(match c % 7 {
                    0 => b"421 4.3.2 going away\r\n".as_slice(),
                    1 => b"250-first\r\n251 other code\r\n",
                    2 => b"250 bare lf\n",
                    3 => b"2500 no separator\r\n",
                    4 => b"354 unexpected\r\n",
                    5 => b"199 low\r\n",
                    _ => b"250-endless\r\n250-endless\r\n250-endless\r\n250-endless\r\n250-",
                });
                // The fake server is out of step with its client now: it stops.
                self.hung_up = true;
            }
        }
        false
    }

    /// Reads what the client sent; returns the server's turn.
    fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.rx.extend_from_slice(bytes);
        let mut out = Vec::new();
        let mut commands = 0usize;
        while !self.hung_up && !self.silent {
            match &mut self.mode {
                Mode::Closed | Mode::Tls => {
                    assert!(self.rx.is_empty(), "client wrote after QUIT or STARTTLS");
                    break;
                }
                Mode::Data(reader) => {
                    let mut body = std::mem::take(&mut self.body);
                    let progress = reader.read(&mut self.rx, &mut |c| body.extend_from_slice(&c));
                    assert_eq!(reader.fault(), None, "client sent a malformed body");
                    self.body = body;
                    if progress == BodyProgress::NeedMore {
                        break;
                    }
                    self.end_of_body(&mut out);
                }
                Mode::Bdat(chunk, last) => {
                    let last = *last;
                    while let Some(piece) = chunk.take(&mut self.rx) {
                        self.body.extend_from_slice(&piece);
                    }
                    if !chunk.is_complete() {
                        break;
                    }
                    if !self.mail || self.rcpts.is_empty() {
                        self.mode = Mode::Command;
                        out.extend_from_slice(b"503 5.5.1 no recipients\r\n");
                    } else if last {
                        self.end_of_body(&mut out);
                    } else {
                        self.mode = Mode::Command;
                        out.extend_from_slice(b"250 2.0.0 chunk\r\n");
                    }
                }
                Mode::Command | Mode::AuthLogin(_) => {
                    let Some(end) = self.rx.windows(2).position(|w| w == b"\r\n") else {
                        break;
                    };
                    let line = self.rx.split_to(end + 2).freeze();
                    let line = line.slice(..end);
                    commands += 1;
                    if !self.advertised.pipelining {
                        assert!(commands <= 1, "pipelined without PIPELINING: {line:?}");
                    }
                    self.command(&line, &mut out);
                }
            }
        }
        out
    }

    fn end_of_body(&mut self, out: &mut Vec<u8>) {
        let rcpts = std::mem::take(&mut self.rcpts);
        let body = std::mem::take(&mut self.body);
        if !self.eight_bit_declared {
            assert!(
                body.iter().all(|&b| b < 0x80),
                "8-bit body without BODY=8BITMIME"
            );
        }
        self.mail = false;
        let via_bdat = matches!(self.mode, Mode::Bdat(..));
        self.mode = Mode::Command;
        let groups: Vec<Vec<Bytes>> = if self.scenario.lmtp {
            rcpts.into_iter().map(|r| vec![r]).collect()
        } else {
            vec![rcpts]
        };
        for group in groups {
            if self.hung_up || self.silent {
                return;
            }
            if self.answer(out, "250 2.0.0 queued\r\n") {
                for rcpt in group {
                    self.delivered.push((rcpt, body.clone(), via_bdat));
                }
            }
        }
    }

    fn command(&mut self, line: &Bytes, out: &mut Vec<u8>) {
        if let Mode::AuthLogin(step) = self.mode {
            self.mode = Mode::Command;
            if step == 0 {
                out.extend_from_slice(b"334 UGFzc3dvcmQ6\r\n");
                self.mode = Mode::AuthLogin(1);
            } else {
                self.answer(out, "235 2.7.0 ok\r\n");
            }
            return;
        }
        let upper = line.to_ascii_uppercase();
        if upper.starts_with(b"LHLO ") || upper.starts_with(b"EHLO ") {
            assert_eq!(
                upper.starts_with(b"LHLO "),
                self.scenario.lmtp,
                "LHLO vs EHLO"
            );
            let mut caps = self.scenario.caps.clone();
            caps.starttls &= !self.tls;
            if self.answer(out, "") {
                let reply = caps.reply(Bytes::from_static(b"fake.example hello"));
                out.extend_from_slice(&reply.to_bytes());
                self.advertised = caps;
            }
            return;
        }
        let parsed = command::parse(line.clone(), &ParseOptions { smtputf8: true });
        let Ok(parsed) = parsed else {
            panic!("client sent an unparsable command: {line:?}");
        };
        let caps = self.advertised.clone();
        match parsed {
            Command::Helo(_) => {
                if self.answer(out, "250 fake.example\r\n") {
                    self.advertised = EhloCapabilities::default();
                }
            }
            Command::StartTls => {
                assert!(caps.starttls && !self.tls, "STARTTLS not advertised");
                if self.answer(out, "220 2.0.0 go ahead\r\n") {
                    self.mode = Mode::Tls;
                }
            }
            Command::Auth { mechanism, initial } => {
                assert!(
                    caps.supports_auth(&mechanism),
                    "AUTH {mechanism:?} not advertised"
                );
                assert!(self.tls, "AUTH in plaintext");
                if initial.is_some() {
                    self.answer(out, "235 2.7.0 ok\r\n");
                } else {
                    out.extend_from_slice(b"334 VXNlcm5hbWU6\r\n");
                    self.mode = Mode::AuthLogin(0);
                }
            }
            Command::Mail(_, params) => {
                check_mail(&caps, &params);
                self.eight_bit_declared = params.body.is_some_and(|b| b != BodyType::SevenBit);
                self.rcpts.clear();
                self.mail = self.answer(out, "250 2.1.0 sender ok\r\n");
            }
            Command::Rcpt(path, params) => {
                assert!(caps.dsn || (params.notify.is_none() && params.orcpt.is_none()));
                if !self.mail {
                    out.extend_from_slice(b"503 5.5.1 MAIL first\r\n");
                } else if self.answer(out, "250 2.1.5 recipient ok\r\n") {
                    let mut addr = BytesMut::new();
                    path.render(&mut addr);
                    self.rcpts.push(addr.freeze());
                }
            }
            Command::Data => {
                if !self.mail || self.rcpts.is_empty() {
                    out.extend_from_slice(b"554 5.5.1 no valid recipients\r\n");
                } else if self.answer(out, "354 go on\r\n") {
                    self.body.clear();
                    self.mode = Mode::Data(DotReader::new(BodyPolicy {
                        max_line: 1000,
                        max_size: u64::MAX,
                        normalize_bare_lf: false,
                    }));
                }
            }
            Command::Bdat { size, last } => {
                assert!(caps.chunking, "BDAT without CHUNKING");
                self.body.clear();
                self.mode = Mode::Bdat(BdatChunk::new(size), last);
            }
            Command::Rset => {
                self.mail = false;
                self.rcpts.clear();
                out.extend_from_slice(b"250 2.0.0 reset\r\n");
            }
            Command::Quit => {
                out.extend_from_slice(b"221 2.0.0 bye\r\n");
                self.mode = Mode::Closed;
            }
            other => panic!("the client never sends {other:?}"),
        }
    }
}

/// MAIL parameters only for advertised extensions (RFC 1870, 6152, 3030, 6531, 3461).
fn check_mail(caps: &EhloCapabilities, params: &MailParams) {
    if let Some(size) = params.size {
        let max = caps.size.expect("SIZE= without SIZE");
        assert!(
            max == 0 || size <= max,
            "SIZE={size} over the advertised {max}"
        );
    }
    match params.body {
        Some(BodyType::BinaryMime) => assert!(caps.binarymime && caps.chunking),
        Some(_) => assert!(caps.eightbitmime, "BODY= without 8BITMIME"),
        None => {}
    }
    assert!(!params.smtputf8 || caps.smtputf8, "SMTPUTF8 not advertised");
    assert!(caps.dsn || (params.ret.is_none() && params.envid.is_none()));
}

/// A run, normalized for comparison: the actions in order, consecutive `Send`s joined.
#[derive(Debug, PartialEq, Eq)]
pub struct Transcript {
    /// Every action, `Send`s of one stretch joined.
    pub actions: Vec<Action>,
    /// What the fake server delivered.
    pub delivered: Vec<Delivery>,
}

/// Runs `scenario`, each server turn cut into reads of the sizes in `cuts` (one read
/// if empty).
///
/// # Panics
/// When an invariant breaks.
pub fn run(scenario: &Scenario, cuts: &[u8]) -> Transcript {
    let mut now = epoch();
    let config = scenario.config.clone();
    let limit = config.recv_buffer();
    let mut client = ClientSession::new(config, now);
    let mut server = FakeServer {
        scenario,
        choice: 0,
        rx: BytesMut::new(),
        mode: Mode::Command,
        advertised: EhloCapabilities::default(),
        tls: scenario.config.implicit_tls,
        mail: false,
        rcpts: Vec::new(),
        body: Vec::new(),
        eight_bit_declared: false,
        delivered: Vec::new(),
        hung_up: false,
        silent: false,
    };
    let mut actions: Vec<Action> = Vec::new();
    let mut next_message = 0usize;
    let mut outcomes = vec![0usize; scenario.messages.len()];
    let mut cut = 0usize;
    let mut turn = Vec::new();
    server.answer(&mut turn, "220 fake.example ESMTP\r\n");
    let mut closed = false;
    for _ in 0..10_000 {
        let mut to_server = Vec::new();
        let mut tls = false;
        let mut ready = false;
        let mut wanted = None;
        while let Some(action) = client.poll_action() {
            assert!(!closed, "action after Close: {action:?}");
            match &action {
                Action::Send(bytes) => {
                    assert!(!bytes.is_empty(), "empty Send");
                    to_server.extend_from_slice(bytes);
                }
                Action::StartTls => tls = true,
                Action::Ready => ready = true,
                Action::BodyWanted { id } => wanted = Some(*id),
                Action::Outcome(outcome) => {
                    let index = usize::try_from(outcome.id).unwrap();
                    outcomes[index] += 1;
                    let message = &scenario.messages[index];
                    assert_eq!(outcome.recipients.len(), message.recipients.len());
                }
                Action::SessionError(_) => {}
                Action::Close => closed = true,
            }
            match (actions.last_mut(), action) {
                (Some(Action::Send(joined)), Action::Send(more)) => {
                    let mut both = BytesMut::from(&joined[..]);
                    both.extend_from_slice(&more);
                    *joined = both.freeze();
                }
                (_, action) => actions.push(action),
            }
        }
        assert!(
            client.buffered_len() <= limit,
            "receive buffer over its limit"
        );
        if closed {
            break;
        }
        if let Some(id) = wanted {
            // The caller streams the content in pieces of a fixed size, then ends it.
            let mut rest = scenario.contents[usize::try_from(id).unwrap()].clone();
            while !rest.is_empty() {
                let piece = rest.split_to(700.min(rest.len()));
                client.handle(Input::BodyChunk(piece), now);
            }
            client.handle(Input::BodyEnd, now);
            if !to_server.is_empty() && !server.hung_up && !server.silent {
                turn.extend(server.feed(&to_server));
            }
            continue;
        }
        if ready {
            assert!(client.is_idle());
            if let Some(message) = scenario.messages.get(next_message) {
                next_message += 1;
                client.handle(Input::Message(message.clone()), now);
            } else {
                client.handle(Input::Quit, now);
            }
            continue;
        }
        if !to_server.is_empty() && !server.hung_up && !server.silent {
            turn.extend(server.feed(&to_server));
        }
        if !turn.is_empty() {
            let mut rest = &std::mem::take(&mut turn)[..];
            while !rest.is_empty() && !client.is_closed() {
                let size = match cuts.get(cut % cuts.len().max(1)) {
                    None => rest.len(),
                    Some(&c) => usize::from(c.max(1)),
                };
                cut += 1;
                let (piece, tail) = rest.split_at(size.min(rest.len()));
                client.handle(Input::Received(piece), now);
                rest = tail;
            }
            continue;
        }
        if tls {
            server.mode = Mode::Command;
            server.tls = true;
            server.advertised = EhloCapabilities::default();
            client.handle(Input::TlsEstablished, now);
            continue;
        }
        if server.hung_up {
            client.handle(Input::PeerClosed, now);
            continue;
        }
        let deadline = client
            .poll_timeout()
            .expect("client stuck without a timeout");
        assert!(deadline > now, "a timer in the past");
        now = deadline;
        client.handle_timeout(now);
    }
    assert!(closed, "the session did not end");
    let given = &outcomes[..next_message];
    assert!(
        given.iter().all(|&n| n == 1),
        "outcomes per message: {outcomes:?}"
    );
    // Delivered exactly when the server took it, with the body given (DATA ends a
    // body that lacks one with a CRLF).
    let mut reported = Vec::new();
    let mut taken = server.delivered.iter();
    for action in &actions {
        if let Action::Outcome(outcome) = action {
            let message = &scenario.messages[usize::try_from(outcome.id).unwrap()];
            for (rcpt, result) in message.recipients.iter().zip(&outcome.recipients) {
                if let RecipientResult::Delivered(_) = result {
                    let mut addr = BytesMut::new();
                    rcpt.path.render(&mut addr);
                    let via_bdat = taken.next().is_some_and(|d| d.2);
                    let mut expected =
                        scenario.contents[usize::try_from(outcome.id).unwrap()].to_vec();
                    let open = !expected.is_empty() && !expected.ends_with(b"\r\n");
                    if open && !via_bdat {
                        expected.extend_from_slice(b"\r\n");
                    }
                    reported.push((addr.freeze(), expected, via_bdat));
                }
            }
        }
    }
    assert_eq!(
        reported, server.delivered,
        "delivered recipients or bodies differ"
    );
    Transcript {
        actions,
        delivered: server.delivered,
    }
}

/// Feeds `data` to a client as server bytes, whatever it sends, cut at the sizes of
/// its first bytes, then lets every timer expire: never a panic, the buffer stays
/// bounded, the one message gets one outcome, the session ends.
pub fn raw(data: &[u8]) {
    let mut now = epoch();
    let flags = data.first().copied().unwrap_or(0);
    let config = Arc::new(ClientConfig {
        tls_available: true,
        credentials: (flags & 1 == 1).then(|| Credentials {
            user: Bytes::from_static(b"user"),
            password: Bytes::from_static(b"secret"),
        }),
        lmtp: flags & 2 == 2,
        chunking: flags & 4 == 4,
        reply_limits: if flags & 8 == 8 {
            ReplyLimits {
                max_lines: 3,
                max_line_len: 32,
            }
        } else {
            ReplyLimits::default()
        },
        ..ClientConfig::default()
    });
    let limit = config.recv_buffer();
    let mut client = ClientSession::new(config, now);
    let scenario = Scenario::parse(&[0, 0, 0, 1, 2, 2, 0]);
    for message in scenario.messages {
        client.handle(Input::Message(message), now);
    }
    client.handle(Input::Quit, now);
    let size = usize::from(data.get(1).copied().unwrap_or(0)).max(1);
    let mut rest = data.get(2..).unwrap_or_default();
    let (mut outcomes, mut closed, mut tls) = (0, false, false);
    for _ in 0..data.len() + 100 {
        while let Some(action) = client.poll_action() {
            assert!(!closed, "action after Close: {action:?}");
            match action {
                Action::StartTls => tls = true,
                Action::Outcome(_) => outcomes += 1,
                Action::Close => closed = true,
                _ => {}
            }
        }
        assert!(
            client.buffered_len() <= limit,
            "receive buffer over its limit"
        );
        if closed {
            break;
        }
        if !rest.is_empty() {
            let (piece, tail) = rest.split_at(size.min(rest.len()));
            client.handle(Input::Received(piece), now);
            rest = tail;
        } else if std::mem::take(&mut tls) {
            client.handle(Input::TlsEstablished, now);
        } else {
            let deadline = client
                .poll_timeout()
                .expect("client stuck without a timeout");
            now = now.max(deadline);
            client.handle_timeout(now);
        }
    }
    assert!(closed, "the session did not end");
    assert_eq!(outcomes, 1, "one outcome for the one message");
}

/// The fuzz entry: raw server bytes when the first byte is odd, otherwise a scripted
/// run compared with the same run cut into pieces.
pub fn client_session(data: &[u8]) {
    let rest = data.get(1..).unwrap_or_default();
    if data.first().is_some_and(|b| b & 1 == 1) {
        return raw(rest);
    }
    let scenario = Scenario::parse(rest);
    let whole = run(&scenario, &[]);
    if !scenario.cuts.is_empty() {
        let cut = run(&scenario, &scenario.cuts);
        assert_eq!(whole, cut, "cutting the server's turns changed the run");
    }
}
