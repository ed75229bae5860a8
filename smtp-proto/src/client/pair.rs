//! The client session against the server session, wired in memory: every byte the one
//! sends is read by the other, cut into random reads, the engine behind the server
//! answers every question at once. Checked: each message reaches the server byte for
//! byte, the client's per-recipient results are what the engine said, and both ends
//! close after QUIT.

use std::sync::Arc;

use bytes::Bytes;
use quickcheck::QuickCheck;

use super::{
    Action, ClientConfig, ClientSession, Credentials, Input, OutboundBody, OutboundMessage,
    OutboundRecipient, RecipientResult, TlsPolicy,
};
use crate::params::{BodyType, MailParams};
use crate::reply::{EnhancedStatus, Reply};
use crate::server::{self, Answer, Question, ServerConfig, ServerSession};
use crate::types::{ForwardPath, ReversePath};

/// SplitMix64, for reproducible runs from one seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn body(rng: &mut Rng) -> Bytes {
    let mut body = b"Subject: pair\r\n\r\n".to_vec();
    for _ in 0..rng.below(3000) {
        if rng.below(5) == 0 {
            body.push(b'.');
        }
        for _ in 0..rng.below(90) {
            body.push(b" abcxyz.\xc3\xa9-"[rng.below(11) as usize]);
        }
        body.extend_from_slice(b"\r\n");
    }
    Bytes::from(body)
}

/// The engine: every answer positive, except recipients whose name starts with `no`.
fn verdict(question: &Question) -> Answer {
    let (code, text) = match question {
        Question::Helo { .. } => (250, "mx.pair hello".to_owned()),
        Question::RcptTo { path, .. } if format!("{path:?}").contains("no") => {
            (550, "unknown user".to_owned())
        }
        Question::DataStart { .. } => (354, "go ahead".to_owned()),
        Question::EndOfMessage { size } => (250, format!("queued {size}")),
        Question::Auth { .. } => (235, "authenticated".to_owned()),
        _ => (250, "ok".to_owned()),
    };
    let class = (code / 100) as u8;
    Answer::from(Reply::new(
        code,
        Some(EnhancedStatus::new(class, 0, 0)),
        text,
    ))
}

/// What a run produced.
struct Pair {
    /// Outcomes by message id.
    outcomes: Vec<(u64, Vec<RecipientResult>)>,
    /// Bodies the server committed, in order.
    committed: Vec<Vec<u8>>,
    /// The client ended under TLS, authenticated.
    tls: bool,
    authenticated: bool,
    /// The client sent BDAT at least once.
    bdat: bool,
}

/// Runs the messages through one connection; `cut` bounds the size of each read.
fn run(
    client_config: ClientConfig,
    server_config: ServerConfig,
    messages: Vec<OutboundMessage>,
    contents: &[Bytes],
    rng: &mut Rng,
) -> Pair {
    let now = crate::fuzzing::session::epoch();
    let mut client = ClientSession::new(Arc::new(client_config), now);
    let mut server = ServerSession::new(Arc::new(server_config), now);
    let mut messages = messages.into_iter();
    let (mut c2s, mut s2c) = (Vec::<u8>::new(), Vec::<u8>::new());
    let (mut client_tls, mut server_tls) = (false, false);
    let (mut client_closed, mut server_closed) = (false, false);
    let mut pair = Pair {
        outcomes: Vec::new(),
        committed: Vec::new(),
        tls: false,
        authenticated: false,
        bdat: false,
    };
    let mut body = Vec::new();
    for _ in 0..100_000 {
        let mut progress = false;
        while let Some(action) = client.poll_action() {
            progress = true;
            match action {
                Action::Send(bytes) => {
                    pair.bdat |= bytes.windows(5).any(|w| w == b"BDAT ");
                    c2s.extend_from_slice(&bytes);
                }
                Action::StartTls => client_tls = true,
                Action::Ready => match messages.next() {
                    Some(message) => client.handle(Input::Message(message), now),
                    None => client.handle(Input::Quit, now),
                },
                Action::BodyWanted { id } => {
                    // Streamed in pieces of random size, each written at once.
                    let mut rest = contents[id as usize].clone();
                    while !rest.is_empty() {
                        let n = (1 + rng.below(20_000) as usize).min(rest.len());
                        client.handle(Input::BodyChunk(rest.split_to(n)), now);
                    }
                    client.handle(Input::BodyEnd, now);
                }
                Action::Outcome(o) => pair.outcomes.push((o.id, o.recipients)),
                Action::SessionError(e) => panic!("session error: {e:?}"),
                Action::Close => {
                    client_closed = true;
                    pair.tls = client.is_tls();
                    pair.authenticated = client.is_authenticated();
                }
            }
        }
        let mut answers = Vec::new();
        while let Some(action) = server.poll_action() {
            progress = true;
            match action {
                server::Action::Send(bytes) => s2c.extend_from_slice(&bytes),
                server::Action::StartTls => server_tls = true,
                server::Action::Ask(id, question) => {
                    if let Question::EndOfMessage { .. } = question {
                        pair.committed.push(std::mem::take(&mut body));
                    }
                    answers.push((id, verdict(&question)));
                }
                server::Action::Body { chunk } => body.extend_from_slice(&chunk),
                server::Action::BodyAborted { .. } => body.clear(),
                server::Action::Close(_) => server_closed = true,
                server::Action::Event(_) => {}
            }
        }
        for (id, answer) in answers {
            server.handle(server::Input::Answer(id, answer), now);
        }
        if client_closed && server_closed {
            return pair;
        }
        if client_tls && server_tls && c2s.is_empty() && s2c.is_empty() {
            client_tls = false;
            server_tls = false;
            let tls = server::Input::TlsEstablished {
                protocol: "TLSv1.3",
                cipher: "PAIR",
            };
            server.handle(tls, now);
            client.handle(Input::TlsEstablished, now);
            continue;
        }
        let cap = server.recv_capacity();
        if !c2s.is_empty() && cap > 0 {
            let n = (1 + rng.below(9000) as usize).min(c2s.len()).min(cap);
            let piece: Vec<u8> = c2s.drain(..n).collect();
            server.handle(server::Input::Received(&piece), now);
            progress = true;
        }
        if !s2c.is_empty() {
            let n = (1 + rng.below(300) as usize).min(s2c.len());
            let piece: Vec<u8> = s2c.drain(..n).collect();
            client.handle(Input::Received(&piece), now);
            progress = true;
        }
        if !progress && client_closed {
            server.handle(server::Input::PeerClosed, now);
        } else {
            assert!(progress, "stuck: client {client:?}");
        }
    }
    panic!("the pair did not finish");
}

fn mailbox(text: String) -> ForwardPath {
    ForwardPath::parse(Bytes::from(text), false).unwrap()
}

/// One seeded run: random bodies, recipients, extensions used, TLS and AUTH.
fn seeded(seed: u64) -> Pair {
    let mut rng = Rng(seed);
    let tls = rng.below(2) == 0;
    let auth = tls && rng.below(2) == 0;
    let client_config = ClientConfig {
        tls: if tls {
            TlsPolicy::Required
        } else {
            TlsPolicy::Opportunistic
        },
        tls_available: tls,
        credentials: auth.then(|| Credentials {
            user: Bytes::from_static(b"user"),
            password: Bytes::from_static(b"secret"),
        }),
        chunking: rng.below(2) == 0,
        ..ClientConfig::default()
    };
    let mut server_config = ServerConfig {
        hostname: "mx.pair".into(),
        tls_available: tls,
        auth,
        ..ServerConfig::default()
    };
    server_config.extensions.pipelining = rng.below(3) != 0;
    server_config.extensions.binarymime = true;
    let mut messages = Vec::new();
    let mut contents = Vec::new();
    for id in 0..1 + rng.below(4) {
        let recipients = (0..1 + rng.below(4))
            .map(|i| {
                let name = if rng.below(4) == 0 { "no" } else { "r" };
                OutboundRecipient::new(mailbox(format!("<{name}{id}.{i}@example.net>")))
            })
            .collect();
        let binary = rng.below(4) == 0;
        let content = body(&mut rng);
        let body = if rng.below(3) == 0 {
            OutboundBody::Streamed {
                size: content.len() as u64,
                eight_bit: content.iter().any(|&b| b >= 0x80),
            }
        } else {
            OutboundBody::Whole(content.clone())
        };
        contents.push(content);
        messages.push(OutboundMessage {
            id,
            sender: ReversePath::parse(Bytes::from(format!("<s{id}@example.org>")), false).unwrap(),
            recipients,
            params: MailParams {
                body: binary.then_some(BodyType::BinaryMime),
                ..MailParams::default()
            },
            body,
        });
    }
    let pair = run(
        client_config,
        server_config,
        messages.clone(),
        &contents,
        &mut rng,
    );
    assert_eq!(pair.outcomes.len(), messages.len());
    let mut expected_bodies = Vec::new();
    for ((id, results), message) in pair.outcomes.iter().zip(&messages) {
        assert_eq!(*id, message.id);
        let mut any = false;
        for (result, rcpt) in results.iter().zip(&message.recipients) {
            let refused = format!("{:?}", rcpt.path).contains("no");
            match result {
                RecipientResult::Delivered(r) => {
                    assert!(!refused && r.code == 250, "{r:?}");
                    any = true;
                }
                RecipientResult::PermFail(r) => assert!(refused && r.code == 550, "{r:?}"),
                RecipientResult::TempFail(r) => panic!("temporary failure {r:?}"),
            }
        }
        if any {
            expected_bodies.push(contents[message.id as usize].to_vec());
        }
    }
    assert_eq!(
        pair.committed, expected_bodies,
        "bodies differ (seed {seed})"
    );
    pair
}

#[test]
fn client_delivers_to_the_server_byte_exact() {
    fn prop(seed: u64) -> bool {
        seeded(seed);
        true
    }
    QuickCheck::new()
        .tests(150)
        .quickcheck(prop as fn(u64) -> bool);
}

#[test]
fn pair_covers_tls_auth_chunking_and_refusals() {
    let (mut tls, mut auth, mut bdat, mut refused, mut delivered) = (0, 0, 0, 0, 0);
    for seed in 0..60 {
        let pair = seeded(seed);
        tls += usize::from(pair.tls);
        auth += usize::from(pair.authenticated);
        bdat += usize::from(pair.bdat);
        for (_, results) in &pair.outcomes {
            for result in results {
                match result {
                    RecipientResult::Delivered(_) => delivered += 1,
                    _ => refused += 1,
                }
            }
        }
    }
    assert!(
        tls > 10 && auth > 5 && bdat > 10,
        "tls {tls} auth {auth} bdat {bdat}"
    );
    assert!(
        delivered > 50 && refused > 10,
        "{delivered} delivered, {refused} refused"
    );
}
