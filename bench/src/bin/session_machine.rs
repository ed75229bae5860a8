//! The server session machine alone, in memory: DATA throughput and whole transactions
//! per second, every question answered at once. Run by hand:
//! `cargo run --release -p mta-bench --bin session_machine`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smtp_proto::limits::Limits;
use smtp_proto::reply::{EnhancedStatus, Reply};
use smtp_proto::server::{Action, Answer, Input, Question, ServerConfig, ServerSession};

/// Bytes handed to the machine per read, like a runtime reading a socket.
const READ: usize = 64 * 1024;

/// Drives one session: answers questions at once, counts body bytes.
struct Driver {
    session: ServerSession,
    body_bytes: u64,
    replies: u64,
}

fn answer(question: &Question) -> Answer {
    let code = match question {
        Question::DataStart { .. } => 354,
        _ => 250,
    };
    let class = if code == 354 { 3 } else { 2 };
    Answer::from(Reply::new(
        code,
        Some(EnhancedStatus::new(class, 0, 0)),
        "ok",
    ))
}

impl Driver {
    fn new() -> Driver {
        let limits = Limits {
            message_size: u64::MAX,
            transactions: usize::MAX,
            ..Limits::default()
        };
        let config = ServerConfig {
            hostname: "bench.example".into(),
            limits,
            ..ServerConfig::default()
        };
        let mut driver = Driver {
            session: ServerSession::new(Arc::new(config), Instant::now()),
            body_bytes: 0,
            replies: 0,
        };
        driver.drain();
        driver.feed(b"EHLO client.example\r\n");
        driver
    }

    fn drain(&mut self) {
        while let Some(action) = self.session.poll_action() {
            match action {
                Action::Ask(id, question) => {
                    let reply = answer(&question);
                    self.session
                        .handle(Input::Answer(id, reply), Instant::now());
                }
                Action::Body { chunk } => self.body_bytes += chunk.len() as u64,
                Action::Send(bytes) => self.replies += black_box(bytes).len() as u64,
                Action::Close(reason) => panic!("session closed: {reason:?}"),
                _ => {}
            }
        }
    }

    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let n = bytes
                .len()
                .min(READ)
                .min(self.session.recv_capacity().max(1));
            self.session
                .handle(Input::Received(&bytes[..n]), Instant::now());
            bytes = &bytes[n..];
            self.drain();
        }
    }
}

/// A body of `size` bytes: 78-character lines, some starting with a (stuffed) dot.
fn stuffed_body(size: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(size + 100);
    let mut n = 0u64;
    while body.len() < size {
        if n.is_multiple_of(16) {
            body.extend_from_slice(b"..");
        }
        let line = format!(
            "{n:08} The quick brown fox jumps over the lazy dog; pack my box with jugs.\r\n"
        );
        body.extend_from_slice(line.as_bytes());
        n += 1;
    }
    body
}

fn data_throughput() {
    let mut driver = Driver::new();
    let message = stuffed_body(256 * 1024 * 1024);
    let envelope = b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n";
    let mut total = 0u64;
    let start = Instant::now();
    let mut rounds = 0;
    while start.elapsed() < Duration::from_secs(3) || rounds < 2 {
        driver.feed(envelope);
        driver.feed(&message);
        driver.feed(b".\r\n");
        total += message.len() as u64;
        rounds += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "DATA through the machine: {:.0} MB/s ({} MB in {:.2} s, {} body bytes out)",
        total as f64 / secs / 1e6,
        total / 1_000_000,
        secs,
        driver.body_bytes
    );
}

fn transactions(size: usize) {
    let mut driver = Driver::new();
    let body = stuffed_body(size);
    let mut message = b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n".to_vec();
    let prefix = message.len();
    message.extend_from_slice(&body);
    message.extend_from_slice(b".\r\n");
    let start = Instant::now();
    let mut count = 0u64;
    while start.elapsed() < Duration::from_secs(2) {
        for _ in 0..100 {
            // The envelope waits for answers, so it goes first; then the body.
            driver.feed(&message[..prefix]);
            driver.feed(&message[prefix..]);
        }
        count += 100;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "transactions of {} KiB: {:.0}/s ({} in {:.2} s)",
        size / 1024,
        count as f64 / secs,
        count,
        secs
    );
}

fn main() {
    data_throughput();
    transactions(1024);
    transactions(100 * 1024);
}
