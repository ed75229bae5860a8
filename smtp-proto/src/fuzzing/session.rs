//! Harnesses for the server session machine and DATA dot-stuffing.
//!
//! [`server_session`] reads its input as a script: a header picks the configuration,
//! the answers the engine gives and where the client's stream is cut into reads; the
//! rest is the client's stream (raw, or as indexes into a table of SMTP fragments so
//! random bytes reach deep states). It runs the script twice, once in one read and once
//! cut into pieces, checks the invariants after every step, and checks that both runs
//! produced the same replies, questions and bodies.

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;

use crate::data::{self, BodyPolicy, BodyProgress, DotReader};
use crate::limits::Limits;
use crate::reply::{EnhancedStatus, Reply};
use crate::server::{
    Action, Answer, Event, Extensions, Input, Question, ServerConfig, ServerSession,
};

/// The one clock reading of a harness: an arbitrary epoch from which every test and fuzz
/// run counts virtual time. The machines themselves never read a clock.
#[allow(clippy::disallowed_methods)] // the epoch of virtual time, read once per run
pub fn epoch() -> Instant {
    Instant::now() // allow-impure: the harness epoch of virtual time
}

/// Fragments a token-mode script is made of.
const TOKENS: &[&[u8]] = &[
    b"EHLO client.example\r\n",
    b"HELO client.example\r\n",
    b"MAIL FROM:<a@example.org>\r\n",
    b"MAIL FROM:<> SIZE=10 BODY=8BITMIME\r\n",
    b"MAIL FROM:<b@example.org> BODY=BINARYMIME SMTPUTF8\r\n",
    b"RCPT TO:<r@example.net>\r\n",
    b"RCPT TO:<s@example.net> NOTIFY=SUCCESS\r\n",
    b"DATA\r\n",
    b"BDAT 5\r\n",
    b"BDAT 3 LAST\r\n",
    b"BDAT 0 LAST\r\n",
    b"hello",
    b"\r\n",
    b".\r\n",
    b"..",
    b"\n",
    b"\r",
    b"RSET\r\n",
    b"NOOP\r\n",
    b"VRFY x\r\n",
    b"STARTTLS\r\n",
    b"AUTH PLAIN\r\n",
    b"AUTH LOGIN\r\n",
    b"AGpvZQBzZWNyZXQ=\r\n",
    b"*\r\n",
    b"QUIT\r\n",
    b"GARBAGE\r\n",
    TLS_MARK,
];

/// Where the client's stream continues once TLS is up: bytes between STARTTLS and this
/// mark are plaintext the session must drop, bytes after it arrive "inside TLS".
const TLS_MARK: &[u8] = b"\xffTLS\xff";

/// A parsed fuzz script.
#[derive(Debug)]
pub struct Script {
    /// The session configuration.
    pub config: Arc<ServerConfig>,
    /// The client's bytes, in order.
    pub stream: Vec<u8>,
    /// One byte per question, in the order asked: the engine's verdict.
    pub answers: Vec<u8>,
    /// Read sizes for the cut run (cycled; 0 counts as 1).
    pub cuts: Vec<u8>,
    /// Answer each batch of questions last first.
    pub reverse: bool,
    /// After the stream, let the next timer expire.
    pub expire: bool,
}

impl Script {
    /// Reads a script: `[flags, limits, n_answers, answers.., n_cuts, cuts.., stream..]`.
    pub fn parse(data: &[u8]) -> Script {
        let byte = |at: usize| data.get(at).copied().unwrap_or(0);
        let (flags, tight) = (byte(0), byte(1));
        let n_answers = usize::from(byte(2) % 32);
        let answers = data.get(3..3 + n_answers).unwrap_or_default().to_vec();
        let at = 3 + n_answers;
        let n_cuts = usize::from(byte(at) % 32);
        let cuts = data
            .get(at + 1..at + 1 + n_cuts)
            .unwrap_or_default()
            .to_vec();
        let raw = data.get(at + 1 + n_cuts..).unwrap_or_default();
        let stream = if flags & 1 == 1 {
            raw.iter()
                .flat_map(|b| TOKENS[usize::from(*b) % TOKENS.len()].iter().copied())
                .collect()
        } else {
            raw.to_vec()
        };
        let small = tight & 1 == 1;
        let limits = if small {
            Limits {
                command_line: 64,
                auth_line: 64,
                text_line: 40,
                message_size: 60,
                recipients: 3,
                transactions: 3,
                errors: 1 + usize::from(tight >> 4),
                pipeline_depth: 2,
                recv_buffer: 128,
            }
        } else {
            Limits::default()
        };
        let extensions = Extensions {
            chunking: tight & 2 == 0,
            binarymime: tight & 4 == 0,
            enhanced_status_codes: tight & 8 == 0,
            ..Extensions::default()
        };
        let config = ServerConfig {
            hostname: "mx.fuzz".into(),
            extensions,
            tls_available: flags & 2 == 2,
            tls_required: flags & 4 == 4,
            auth: flags & 8 == 8,
            auth_plaintext: flags & 16 == 16,
            auth_required: flags & 32 == 32,
            vrfy: flags & 64 == 64,
            normalize_bare_lf: flags & 128 == 128,
            limits,
            ..ServerConfig::default()
        };
        let reverse = tight & 32 == 32;
        let expire = tight & 64 == 64;
        Script {
            config: Arc::new(config),
            stream,
            answers,
            cuts,
            reverse,
            expire,
        }
    }
}

/// The engine's answer to the `index`-th question of a run.
fn verdict(script: &Script, index: usize, question: &Question) -> Answer {
    let pick = script
        .answers
        .get(index % script.answers.len().max(1))
        .copied()
        .unwrap_or(0);
    let (code, class) = match pick % 4 {
        2 => (451, 4),
        3 => (550, 5),
        _ => match question {
            Question::DataStart { .. } => (354, 3),
            Question::Auth { .. } => (235, 2),
            _ => (250, 2),
        },
    };
    let text = format!("answer {index}");
    Answer::from(Reply::new(
        code,
        Some(EnhancedStatus::new(class, 0, 0)),
        text,
    ))
}

/// Everything a run produced, normalized so that runs of the same script under different
/// cuts compare equal: replies as one byte string, questions in order, completed bodies,
/// and the other actions in order (events that count bytes per read left out).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// All bytes sent.
    pub sent: Vec<u8>,
    /// Every question asked, in order.
    pub questions: Vec<Question>,
    /// The bodies that reached `EndOfMessage`.
    pub bodies: Vec<Vec<u8>>,
    /// StartTls, BodyAborted, Close and events, in order.
    pub others: Vec<Action>,
}

/// Runs `script`, the stream cut into reads of the sizes in `cuts` (one read if empty).
///
/// # Panics
/// When an invariant breaks: a buffer past its limit, a reply with no command, an
/// action after Close.
pub fn run(script: &Script, cuts: &[u8]) -> Outcome {
    let mut now = epoch();
    let mut session = ServerSession::new(script.config.clone(), now);
    let mut out = Outcome::default();
    let mut body = Vec::new();
    let mut lines_in = 0usize;
    let mut replies_out = 0usize;
    let mut closed = false;
    let mut stream = &script.stream[..];
    let mut cut = 0usize;
    let mut pending: Vec<Input<'static>> = Vec::new();
    let mut steps = 0usize;
    let mut resume = 0usize;
    loop {
        // Drain, answering every question at once (optionally last first).
        let mut questions = Vec::new();
        while let Some(action) = session.poll_action() {
            assert!(!closed, "action after Close: {action:?}");
            match action {
                Action::Send(bytes) => {
                    // Count final reply lines (`xyz ` rather than `xyz-`).
                    replies_out += bytes
                        .split(|b| *b == b'\n')
                        .filter(|line| line.get(3) == Some(&b' '))
                        .count();
                    out.sent.extend_from_slice(&bytes);
                }
                Action::Ask(id, question) => {
                    if let Question::EndOfMessage { .. } = question {
                        out.bodies.push(std::mem::take(&mut body));
                    }
                    // Verdicts follow the order of asking, whatever the order of answering.
                    questions.push((out.questions.len(), id, question.clone()));
                    out.questions.push(question);
                }
                Action::Body { chunk } => {
                    assert!(!chunk.is_empty(), "empty body chunk");
                    body.extend_from_slice(&chunk);
                }
                Action::BodyAborted { .. } => {
                    body.clear();
                    // Which fault is seen first depends on the cuts; the reply does not.
                    out.others.push(Action::BodyAborted { fault: None });
                }
                Action::StartTls => {
                    out.others.push(action);
                    // The plaintext stream ends here; what follows the mark came inside TLS.
                    // Both runs resume at the same place: the first mark not yet used.
                    let all = &script.stream[resume..];
                    let mark = all.windows(TLS_MARK.len()).position(|w| w == TLS_MARK);
                    resume = mark.map_or(script.stream.len(), |at| resume + at + TLS_MARK.len());
                    stream = &script.stream[resume..];
                    pending.push(Input::TlsEstablished {
                        protocol: "TLSv1.3",
                        cipher: "FUZZ",
                    });
                }
                Action::Close(_) => {
                    closed = true;
                    out.others.push(action);
                }
                Action::Event(Event::DiscardedPlaintext { .. }) => {}
                Action::Event(_) => out.others.push(action),
            }
        }
        let limits = script.config.limits;
        assert!(
            session.buffered_len() <= limits.recv_buffer,
            "receive buffer past its limit"
        );
        assert!(
            session.held_replies() <= limits.pipeline_depth + 2,
            "too many replies held"
        );
        // Each reply answers a line of input, except the greeting and a closing 421.
        assert!(replies_out <= 2 + lines_in, "replies without commands");
        steps += 1;
        assert!(steps < 1_000_000, "the session does not make progress");
        if script.reverse {
            questions.reverse();
        }
        if !questions.is_empty() {
            for (index, id, question) in questions {
                session.handle(Input::Answer(id, verdict(script, index, &question)), now);
            }
            continue;
        }
        if let Some(input) = pending.pop() {
            session.handle(input, now);
            continue;
        }
        if session.is_closed() {
            break;
        }
        if stream.is_empty() {
            if script.expire {
                if let Some(at) = session.poll_timeout() {
                    now = at;
                    session.handle_timeout(now);
                    continue;
                }
            }
            session.handle(Input::PeerClosed, now);
            continue;
        }
        let size = match cuts.get(cut % cuts.len().max(1)) {
            _ if cuts.is_empty() => stream.len(),
            Some(n) => usize::from(*n).max(1),
            None => 1,
        };
        cut += 1;
        let size = size.min(stream.len()).min(session.recv_capacity().max(1));
        let (read, rest) = stream.split_at(size);
        lines_in += read.iter().filter(|b| **b == b'\n').count();
        stream = rest;
        session.handle(Input::Received(read), now);
    }
    out
}

/// The server session harness: same script, one read versus many, invariants checked.
pub fn server_session(data: &[u8]) {
    let script = Script::parse(data);
    let whole = run(&script, &[]);
    let cut = run(&script, &script.cuts);
    assert_eq!(whole, cut, "cutting the stream changed the outcome");
}

/// The dot-stuffing harness: reading back a stuffed body ends exactly at its end and
/// gives the body back (for bodies whose lines all end in CRLF).
pub fn dot_stuffing(data: &[u8]) {
    let wire = data::stuff(data);
    let policy = BodyPolicy {
        max_line: usize::MAX,
        max_size: u64::MAX,
        normalize_bare_lf: false,
    };
    let mut reader = DotReader::new(policy);
    let mut buf = BytesMut::from(&wire[..]);
    let mut back = Vec::new();
    let progress = reader.read(&mut buf, &mut |chunk| back.extend_from_slice(&chunk));
    assert_eq!(progress, BodyProgress::Complete, "stuffed body has no end");
    assert!(buf.is_empty(), "end of data found before the end");
    let bare = data.windows(2).any(|w| w[0] == b'\r' && w[1] != b'\n')
        || data
            .iter()
            .enumerate()
            .any(|(i, b)| *b == b'\n' && (i == 0 || data[i - 1] != b'\r'))
        || data.last() == Some(&b'\r');
    if !bare && (data.is_empty() || data.ends_with(b"\r\n")) {
        assert_eq!(back, data, "unstuff(stuff(body)) != body");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::QuickCheck;

    #[test]
    fn random_scripts_keep_the_invariants() {
        fn prop(data: Vec<u8>) -> bool {
            server_session(&data);
            true
        }
        QuickCheck::new()
            .tests(2000)
            .quickcheck(prop as fn(Vec<u8>) -> bool);
    }

    #[test]
    fn token_scripts_keep_the_invariants() {
        fn prop(header: (u8, u8), answers: Vec<u8>, cuts: Vec<u8>, tokens: Vec<u8>) -> bool {
            let mut data = vec![header.0 | 1, header.1, answers.len() as u8 % 32];
            data.extend(answers.iter().take(answers.len() % 32));
            data.push(cuts.len() as u8 % 32);
            data.extend(cuts.iter().take(cuts.len() % 32));
            data.extend(tokens);
            server_session(&data);
            true
        }
        QuickCheck::new()
            .tests(3000)
            .quickcheck(prop as fn((u8, u8), Vec<u8>, Vec<u8>, Vec<u8>) -> bool);
    }

    #[test]
    fn dot_stuffing_round_trips() {
        fn prop(data: Vec<u8>) -> bool {
            dot_stuffing(&data);
            true
        }
        QuickCheck::new()
            .tests(2000)
            .quickcheck(prop as fn(Vec<u8>) -> bool);
    }

    #[test]
    fn a_full_token_session_delivers_a_body() {
        // EHLO, MAIL, RCPT, DATA, "hello", CRLF, ".", QUIT, in tokens.
        let data = [1u8, 0, 0, 1, 3, 0, 2, 5, 7, 11, 12, 13, 25];
        let script = Script::parse(&data);
        let outcome = run(&script, &[]);
        assert_eq!(outcome.bodies, vec![b"hello\r\n".to_vec()]);
        assert!(String::from_utf8_lossy(&outcome.sent).contains("221 2.0.0 mx.fuzz Bye"));
        assert_eq!(outcome, run(&script, &[1]));
    }
}

#[cfg(test)]
mod seed_tests {
    use super::*;

    #[test]
    fn token_seed_reaches_bdat_after_tls_and_auth() {
        // The committed seed fuzz/corpus/server_session/seed-tls-auth-bdat.
        let seed = [
            11, 0, 5, 0, 0, 0, 0, 3, 3, 7, 1, 13, 0, 20, 27, 0, 21, 23, 2, 5, 6, 8, 11, 9, 13, 25,
        ];
        server_session(&seed);
        let outcome = run(&Script::parse(&seed), &[]);
        let sent = String::from_utf8_lossy(&outcome.sent);
        assert!(sent.contains("220 2.0.0 Ready to start TLS"), "{sent}");
        assert!(sent.contains("250 AUTH PLAIN LOGIN"), "{sent}");
        assert!(outcome
            .questions
            .iter()
            .any(|q| matches!(q, Question::Auth { .. })));
        assert!(outcome
            .questions
            .iter()
            .any(|q| matches!(q, Question::DataStart { chunking: true })));
    }
}
