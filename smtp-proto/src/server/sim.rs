//! Deterministic simulation of a pipelining client, the session and a slow engine.
//!
//! Everything runs on a virtual clock from one seed: the client's bytes are cut into
//! random reads and delayed, the engine answers each question after a random delay (so
//! answers come back out of order), and time jumps to the next event. Checked: every
//! reply answers the command it should (the engine's texts name the address they are
//! about), the bodies the engine committed are exactly those the client saw accepted,
//! buffers stay bounded, no timer fires, and the run ends with QUIT.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use quickcheck::QuickCheck;

use super::{Action, Answer, Input, Question, ReqId, ServerConfig, ServerSession};
use crate::data;
use crate::reply::{EnhancedStatus, Reply};

/// SplitMix64: a tiny seeded generator.
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
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// What the client expects the next reply to be about.
#[derive(Clone, Debug)]
enum Expect {
    Greeting,
    Ehlo,
    Mail(String),
    Rcpt(String),
    Data,
    /// The reply after the body of DATA; the body if accepted.
    DataEnd(Vec<u8>),
    /// A BDAT reply; `Some(body)` on the last one.
    Bdat(Option<Vec<u8>>),
    Rset,
    Quit,
}

/// A transaction the client will try.
struct Message {
    sender: String,
    recipients: Vec<String>,
    body: Vec<u8>,
    chunked: bool,
}

struct Client {
    messages: VecDeque<Message>,
    expect: VecDeque<Expect>,
    inbox: Vec<u8>,
    /// Bytes to send, in groups that are sent together.
    outbox: Vec<Bytes>,
    /// The reply lines of the reply being read.
    lines: Vec<String>,
    delivered: Vec<Vec<u8>>,
    /// A recipient of the current transaction was accepted.
    any_accepted: bool,
    pending_body: Option<Vec<u8>>,
    done: bool,
}

impl Client {
    fn new(rng: &mut Rng) -> Client {
        let mut messages = VecDeque::new();
        for n in 0..1 + rng.below(4) {
            let recipients = (0..1 + rng.below(5))
                .map(|i| format!("r{n}.{i}@example.net"))
                .collect();
            let mut body = Vec::new();
            for _ in 0..rng.below(20) {
                if rng.chance(20) {
                    body.push(b'.');
                }
                for _ in 0..rng.below(60) {
                    body.push(b" abcdefghij.,:"[rng.below(14) as usize]);
                }
                body.extend_from_slice(b"\r\n");
            }
            let chunked = rng.chance(40);
            messages.push_back(Message {
                sender: format!("s{n}@example.org"),
                recipients,
                body,
                chunked,
            });
        }
        Client {
            messages,
            expect: VecDeque::from([Expect::Greeting]),
            inbox: Vec::new(),
            outbox: Vec::new(),
            lines: Vec::new(),
            delivered: Vec::new(),
            any_accepted: false,
            pending_body: None,
            done: false,
        }
    }

    fn send(&mut self, bytes: Vec<u8>) {
        self.outbox.push(Bytes::from(bytes));
    }

    /// Sends the next group once every reply of the previous one is in.
    fn next_group(&mut self, rng: &mut Rng) {
        if !self.expect.is_empty() || self.done {
            return;
        }
        if let Some(body) = self.pending_body.take() {
            let wire = data::stuff(&body);
            self.send(wire.to_vec());
            self.expect.push_back(Expect::DataEnd(body));
            return;
        }
        let Some(message) = self.messages.pop_front() else {
            self.send(b"QUIT\r\n".to_vec());
            self.expect.push_back(Expect::Quit);
            self.done = true;
            return;
        };
        let mut group = format!("MAIL FROM:<{}>\r\n", message.sender).into_bytes();
        self.expect.push_back(Expect::Mail(message.sender.clone()));
        for rcpt in &message.recipients {
            group.extend_from_slice(format!("RCPT TO:<{rcpt}>\r\n").as_bytes());
            self.expect.push_back(Expect::Rcpt(rcpt.clone()));
        }
        self.any_accepted = false;
        if message.chunked {
            let cut = rng.below(message.body.len() as u64 + 1) as usize;
            let (first, second) = message.body.split_at(cut);
            group.extend_from_slice(format!("BDAT {}\r\n", first.len()).as_bytes());
            group.extend_from_slice(first);
            self.expect.push_back(Expect::Bdat(None));
            group.extend_from_slice(format!("BDAT {} LAST\r\n", second.len()).as_bytes());
            group.extend_from_slice(second);
            self.expect
                .push_back(Expect::Bdat(Some(message.body.clone())));
        } else {
            group.extend_from_slice(b"DATA\r\n");
            self.expect.push_back(Expect::Data);
            self.pending_body = Some(message.body);
        }
        self.send(group);
    }

    /// Takes replies from the server and checks each against what it answers.
    fn receive(&mut self, bytes: &[u8], rng: &mut Rng) {
        self.inbox.extend_from_slice(bytes);
        while let Some(end) = self.inbox.windows(2).position(|w| w == b"\r\n") {
            let line: Vec<u8> = self.inbox.drain(..end + 2).collect();
            let line = String::from_utf8_lossy(&line[..end]).into_owned();
            let last = line.as_bytes().get(3) == Some(&b' ') || line.len() == 3;
            self.lines.push(line);
            if last {
                let lines = std::mem::take(&mut self.lines);
                self.reply(&lines);
            }
        }
        self.next_group(rng);
    }

    fn reply(&mut self, lines: &[String]) {
        let first = &lines[0];
        let code: u16 = first[..3].parse().expect("reply code");
        let expect = self
            .expect
            .pop_front()
            .unwrap_or_else(|| panic!("reply without a command: {lines:?}"));
        match expect {
            Expect::Greeting => assert_eq!(code, 220),
            Expect::Ehlo => assert_eq!(code, 250, "{lines:?}"),
            Expect::Mail(sender) => {
                assert!(first.contains(&sender), "MAIL reply {first:?} for {sender}")
            }
            Expect::Rcpt(rcpt) => {
                assert!(
                    first.contains(&rcpt) || code == 503,
                    "RCPT reply {first:?} for {rcpt}"
                );
                self.any_accepted |= code == 250;
            }
            Expect::Data => {
                if code != 354 {
                    self.pending_body = None;
                    // Without a 354 the client gives the transaction up.
                    self.send(b"RSET\r\n".to_vec());
                    self.expect.push_back(Expect::Rset);
                }
            }
            Expect::DataEnd(body) | Expect::Bdat(Some(body)) => {
                if code == 250 && first.contains("queued") {
                    self.delivered.push(body);
                }
            }
            Expect::Bdat(None) => {}
            Expect::Rset => assert_eq!(code, 250, "{lines:?}"),
            Expect::Quit => assert_eq!(code, 221, "{lines:?}"),
        }
    }
}

/// The engine: answers after a random delay, collects bodies.
struct Oracle {
    due: Vec<(Instant, u64, ReqId, Question)>,
    body: Vec<u8>,
    committed: Vec<Vec<u8>>,
}

fn verdict(rng: &mut Rng, question: &Question) -> Answer {
    let (code, text) = match question {
        Question::Helo { .. } => (250, "mx.sim hello".to_owned()),
        Question::MailFrom { path, .. } => (250, format!("sender {path:?}")),
        Question::RcptTo { path, .. } => {
            let code = if rng.chance(25) { 550 } else { 250 };
            (code, format!("recipient {path:?}"))
        }
        Question::DataStart { .. } => {
            if rng.chance(10) {
                (451, "not now".to_owned())
            } else {
                (354, "go".to_owned())
            }
        }
        Question::EndOfMessage { size } => (250, format!("queued {size}")),
        _ => (250, "ok".to_owned()),
    };
    let class = (code / 100) as u8;
    Answer::from(Reply::new(
        code,
        Some(EnhancedStatus::new(class, 0, 0)),
        text,
    ))
}

/// What a run went through, to check the simulation exercises what it claims.
#[derive(Default)]
struct Stats {
    delivered: usize,
    answered_out_of_order: usize,
}

/// Runs one seeded simulation; panics when an invariant breaks.
fn simulate(seed: u64) -> Stats {
    let mut rng = Rng(seed);
    let mut now = crate::fuzzing::session::epoch();
    let config = Arc::new(ServerConfig {
        hostname: "mx.sim".into(),
        ..ServerConfig::default()
    });
    let limit = config.limits.recv_buffer;
    let mut server = ServerSession::new(config, now);
    let mut client = Client::new(&mut rng);
    client.send(b"EHLO client.sim\r\n".to_vec());
    client.expect.push_back(Expect::Ehlo);
    let latency = Duration::from_millis(1 + rng.below(30));
    let mut c2s: VecDeque<(Instant, Bytes)> = VecDeque::new();
    let mut s2c: VecDeque<(Instant, Bytes)> = VecDeque::new();
    let mut oracle = Oracle {
        due: Vec::new(),
        body: Vec::new(),
        committed: Vec::new(),
    };
    let mut closed = false;
    let mut stats = Stats::default();
    let mut last_answered = ReqId(0);
    for _ in 0..100_000 {
        for group in client.outbox.drain(..) {
            let mut rest = group;
            while !rest.is_empty() {
                let n = (1 + rng.below(40) as usize).min(rest.len());
                c2s.push_back((now + latency, rest.split_to(n)));
            }
        }
        while let Some(action) = server.poll_action() {
            match action {
                Action::Send(bytes) => s2c.push_back((now + latency, bytes)),
                Action::Ask(id, question) => {
                    if let Question::EndOfMessage { .. } = question {
                        oracle.committed.push(std::mem::take(&mut oracle.body));
                    }
                    let at = now + Duration::from_millis(rng.below(50));
                    oracle.due.push((at, rng.next(), id, question));
                }
                Action::Body { chunk } => oracle.body.extend_from_slice(&chunk),
                Action::BodyAborted { .. } => oracle.body.clear(),
                Action::Close(reason) => {
                    assert_eq!(reason, super::CloseReason::Quit);
                    closed = true;
                }
                Action::StartTls => panic!("no STARTTLS in this script"),
                Action::Event(_) => {}
            }
        }
        assert!(server.buffered_len() <= limit);
        if closed && s2c.is_empty() {
            break;
        }
        // The next event: a link head, an answer, or a server timer (which must not fire).
        oracle.due.sort_by_key(|(at, tie, ..)| (*at, *tie));
        let heads = [
            c2s.front().map(|c| c.0),
            s2c.front().map(|c| c.0),
            oracle.due.first().map(|d| d.0),
        ];
        let next = heads
            .into_iter()
            .flatten()
            .min()
            .expect("deadlock: nothing left to happen");
        if let Some(timer) = server.poll_timeout() {
            assert!(timer > next, "a server timer would fire");
        }
        now = now.max(next);
        if c2s.front().is_some_and(|c| c.0 <= now) && server.recv_capacity() > 0 {
            let (at, mut bytes) = c2s.pop_front().expect("head");
            let cap = server.recv_capacity();
            if bytes.len() > cap {
                c2s.push_front((at, bytes.split_off(cap)));
            }
            server.handle(Input::Received(&bytes), now);
        } else if s2c.front().is_some_and(|s| s.0 <= now) {
            let (_, bytes) = s2c.pop_front().expect("head");
            client.receive(&bytes, &mut rng);
        } else if oracle.due.first().is_some_and(|d| d.0 <= now) {
            let (_, _, id, question) = oracle.due.remove(0);
            if id < last_answered {
                stats.answered_out_of_order += 1;
            }
            last_answered = last_answered.max(id);
            let answer = verdict(&mut rng, &question);
            server.handle(Input::Answer(id, answer), now);
        } else {
            // The client's bytes wait for room: only an answer can make it.
            assert!(
                !oracle.due.is_empty(),
                "client blocked with nothing in flight"
            );
            now = oracle.due[0].0;
        }
    }
    assert!(closed, "the session did not end");
    assert!(
        client.expect.is_empty(),
        "replies missing: {:?}",
        client.expect
    );
    assert_eq!(
        oracle.committed, client.delivered,
        "committed bodies differ from accepted ones"
    );
    stats.delivered = client.delivered.len();
    stats
}

#[test]
fn seeded_simulations_keep_replies_in_order() {
    fn prop(seed: u64) -> bool {
        simulate(seed);
        true
    }
    QuickCheck::new()
        .tests(300)
        .quickcheck(prop as fn(u64) -> bool);
}

#[test]
fn simulations_deliver_and_reorder_answers() {
    let (mut delivered, mut reordered) = (0, 0);
    for seed in 0..200 {
        let stats = simulate(seed);
        delivered += stats.delivered;
        reordered += stats.answered_out_of_order;
    }
    assert!(delivered > 100, "only {delivered} messages delivered");
    assert!(reordered > 50, "only {reordered} answers out of order");
}
