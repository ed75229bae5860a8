//! A process killed while committing loses nothing it had confirmed and leaves nothing
//! half visible. The test runs itself as a child process (selected by an environment
//! variable), kills it with SIGKILL mid-stream, and reopens the spool.

use runtime_std::spool::{GroupCommitter, Spool};
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const CHILD_ENV: &str = "SPOOL_CRASH_CHILD_DIR";

fn body_of(msgid: &str) -> Vec<u8> {
    format!(
        "Message-Id: <{msgid}>\r\n\r\n{}",
        format!("line of {msgid}\r\n").repeat(300)
    )
    .into_bytes()
}

/// In the child: commit messages from 4 threads forever, printing each confirmed id.
#[test]
fn crash_child_commits_until_killed() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let (spool, _) = Spool::open(PathBuf::from(dir)).unwrap();
    let committer = GroupCommitter::start(spool.clone(), 64).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (spool, committer) = (spool.clone(), committer.clone());
            std::thread::spawn(move || {
                for i in 0.. {
                    let msgid = format!("c{t}-{i}");
                    let mut incoming = spool.create_incoming(&msgid).unwrap();
                    incoming.write_chunk(&body_of(&msgid)).unwrap();
                    incoming.add_envelope("e1", msgid.as_bytes()).unwrap();
                    incoming.add_envelope("e2", msgid.as_bytes()).unwrap();
                    committer.commit(incoming).unwrap();
                    println!("committed {msgid}");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

#[test]
fn killed_committer_loses_nothing_confirmed() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let dir = std::env::temp_dir().join(format!("spool-crash-{}-{nanos}", std::process::id()));
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child_commits_until_killed",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut confirmed = Vec::new();
    let start = Instant::now();
    let mut line = String::new();
    // Let it commit a while, then kill it in the middle of its work.
    while confirmed.len() < 40 && start.elapsed() < Duration::from_secs(60) {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(msgid) = line.trim().strip_prefix("committed ") {
            confirmed.push(msgid.to_owned());
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    confirmed.extend(
        rest.lines()
            .filter_map(|l| l.strip_prefix("committed ").map(str::to_owned)),
    );
    assert!(
        confirmed.len() >= 40,
        "the child confirmed only {} commits",
        confirmed.len()
    );

    let (spool, recovered) = Spool::open(&dir).unwrap();
    assert!(recovered.corrupt.is_empty(), "{:?}", recovered.corrupt);
    for message in &recovered.messages {
        let mut body = Vec::new();
        spool
            .read_message(&message.msgid)
            .unwrap()
            .read_to_end(&mut body)
            .unwrap();
        assert_eq!(
            body,
            body_of(&message.msgid),
            "message {} is incomplete",
            message.msgid
        );
        let expected: Vec<(String, Vec<u8>)> = ["e1", "e2"]
            .iter()
            .map(|e| (e.to_string(), message.msgid.clone().into_bytes()))
            .collect();
        assert_eq!(message.envelopes, expected);
    }
    let present: std::collections::HashSet<_> = recovered
        .messages
        .iter()
        .map(|m| m.msgid.as_str())
        .collect();
    for msgid in &confirmed {
        assert!(
            present.contains(msgid.as_str()),
            "confirmed message {msgid} was lost"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
